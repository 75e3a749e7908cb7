/* plugins/common/oai_http.h — (internal) what the plugins that call an OpenAI-compatible
 * API share: a growable string, the message of an error body, the retry rules of
 * ../shared/reference/llm-api.md §3 and a libcurl multi engine that sends jobs with those
 * rules (oai_http.c). Compiled into each plugin that uses it; nothing here is exported. */
#ifndef OAI_HTTP_H
#define OAI_HTTP_H

#include <serbench/serbench.h>

#include <stddef.h>
#include <stdint.h>

/* ---- small growable string (prompt.c) ---------------------------------------------- */

typedef struct oai_buf {
    char *p; /* NUL-terminated when non-NULL */
    size_t n, cap;
    int oom; /* set once an allocation failed; p stays valid */
} oai_buf;

void oai_buf_add(oai_buf *b, const char *s, size_t n);
void oai_buf_str(oai_buf *b, const char *s);
void oai_buf_printf(oai_buf *b, const char *fmt, ...) SB_PRINTF(2, 3);
/* Hand over the text (malloc'ed, never NULL unless out of memory) and reset b. */
char *oai_buf_take(oai_buf *b);
void oai_buf_free(oai_buf *b);

/* The error message of an error body in the OpenAI shape {"error":{"message","type",
 * "code"}} or vLLM's older {"object":"error","message","type","code":<int>}. Copies into
 * the buffers (empty when absent); code is copied as text either way. */
void oai_error_parse(const char *body, size_t len, char *msg, size_t msg_size, char *type,
                     size_t type_size, char *code, size_t code_size);

/* ---- HTTP engine (http.c) ---------------------------------------------------------- */

/* Replace every copy of the two secrets (key, organization; NULL or shorter than 4 characters:
 * skipped) in text, NUL-terminated and edited in place, with "***". */
void oai_scrub(const char *const secrets[2], char *text);

/* Parse a Go duration ("1s", "6m0s", "20ms", "1h2m3.5s", "0s", "250us"). Returns 1 and the
 * seconds, or 0 when malformed. */
int oai_go_duration(const char *s, double *seconds);

/* Parse an HTTP date (RFC 7231 IMF-fixdate, RFC 850, asctime) into Unix seconds; -1 when
 * it is not one. */
int64_t oai_http_date(const char *s);

/* The delay before retry number n (0 for the first retry), in seconds:
 *  - retry_after_ms (a number of milliseconds; NULL when absent) or retry_after (seconds
 *    as a number, or an HTTP date compared with now_unix) when 0 < value <= 120 s: exactly
 *    that value;
 *  - a value over 120 s: -1 (do not retry);
 *  - otherwise (absent, unparsable, <= 0): full jitter u * min(backoff_max, base * 2^n),
 *    u uniform in [0,1) supplied by the caller. */
double oai_retry_delay(int n, const char *retry_after_ms, const char *retry_after, int64_t now_unix,
                       double base, double backoff_max, double u);

/* How long to hold back every request after an answer whose x-ratelimit-remaining-*
 * header is `remaining` and x-ratelimit-reset-* is `reset` (a Go duration): the reset time
 * (at most 120 s) when remaining is 0, else 0. */
double oai_ratelimit_wait(const char *remaining, const char *reset);

/* Classify a finished HTTP exchange. Returns 1 when it is worth retrying: status 408, 409,
 * 429 (unless the body says insufficient_quota) and >= 500; x-should-retry "true"/"false"
 * (should_retry 1/0, -1 when absent) overrides the status. */
int oai_retryable(long status, const char *body, size_t len, int should_retry);

typedef enum oai_method { OAI_POST_JSON = 0, OAI_GET = 1, OAI_POST_FILE = 2 } oai_method;

/* One request the engine sends (and re-sends after retryable failures). Owned by the
 * caller, who keeps it alive until the engine reports it done. */
typedef struct oai_job {
    struct oai_job *next; /* engine queue link */
    oai_method method;
    char *url;  /* owned by the caller */
    char *body; /* POST_JSON body, or POST_FILE file content; owned by the caller */
    size_t body_len;
    const char *file_name; /* POST_FILE: name of the uploaded part */
    const char *purpose;   /* POST_FILE: the purpose field */
    double tokens;         /* estimated tokens for tpm pacing (0 for none) */
    int attempts;          /* sends so far for this submission (reset by oai_http_submit) */
    double not_before;     /* monotonic seconds */
    void *user;            /* caller's pointer */
} oai_job;

/* What the engine saw when it hands a job back. */
typedef struct oai_result {
    long status;      /* HTTP status, 0 when the transfer failed */
    const char *body; /* response body (NUL-terminated), or "" */
    size_t len;
    const char *request_id; /* x-request-id, or NULL */
    int gave_up;            /* retryable failures exhausted max_retries (or a retry-after
                               over 120 s, or the stage is stopping) */
    const char *error;      /* with gave_up or status 0: what happened last */
    int permanent;          /* status 0 from a failure retrying cannot fix (the server's
                               TLS certificate not trusted, a malformed URL): not retried */
} oai_result;

typedef enum oai_verdict {
    OAI_ACCEPT = 0, /* the job is finished (the caller may submit it again) */
    OAI_RETRY = 1   /* a 2xx body that is unusable (malformed): retry like a 5xx */
} oai_verdict;

typedef struct oai_http_cb {
    /* Called before each send of a job. Return 1 to send it, 0 when the caller finished it
     * without a request (a cache hit). May submit other jobs. */
    int (*prepare)(void *ctx, oai_job *job);
    /* Called once per finished job: a 2xx answer, a non-retryable status, or gave_up. */
    oai_verdict (*done)(void *ctx, oai_job *job, const oai_result *r);
} oai_http_cb;

typedef struct oai_http_cfg {
    double timeout_s, connect_timeout_s;
    int concurrency;
    double rpm, tpm; /* 0 = no limit */
    int max_retries;
    double backoff_base_s, backoff_max_s;
    const char *ca_file; /* NULL = libcurl's default bundle */
    const char *api_key; /* NULL = no Authorization header; copied, wiped on destroy */
    const char *organization;
    const char *user_agent;  /* NULL = "serbench/1" */
    const char *answer_kind; /* what a usable 2xx body is, for messages ("a chat completion");
                                NULL = "a usable answer" */
} oai_http_cfg;

typedef struct oai_http oai_http;

typedef struct oai_http_stats {
    size_t sent, retries, by_transport, by_status_429, by_status_5xx, by_other, malformed;
    double paced_s; /* time spent waiting for rpm/tpm or rate-limit headers */
} oai_http_stats;

sb_status oai_http_create(const oai_http_cfg *cfg, const sb_host *host, oai_http **out,
                          sb_error *err);
void oai_http_destroy(oai_http **e);
/* Queue a job (attempts reset to 0). */
void oai_http_submit(oai_http *e, oai_job *job);
/* Queue a job to be sent no earlier than `delay_s` from now. */
void oai_http_submit_after(oai_http *e, oai_job *job, double delay_s);
/* Run until every queued job is done, oai_http_stop was called and in-flight requests
 * finished, or the user cancelled (in-flight requests are aborted; SB_ERR_CANCELLED). */
sb_status oai_http_run(oai_http *e, const oai_http_cb *cb, void *ctx, sb_error *err);
/* Requests in flight at most, 1..concurrency (e.g. 1 while probing a server). */
void oai_http_set_limit(oai_http *e, int n);
/* From a callback: send nothing more; requests in flight finish (without retries). */
void oai_http_stop(oai_http *e);
int oai_http_stopping(const oai_http *e);
const oai_http_stats *oai_http_get_stats(const oai_http *e);
/* Monotonic clock in seconds. */
double oai_now(void);

#endif
