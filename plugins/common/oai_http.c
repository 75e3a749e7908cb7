/* plugins/common/oai_http.c — the HTTP engine of the plugins that call an OpenAI-compatible
 * API (the llm labeller, the embeddings encoder): one libcurl multi handle driving
 * `concurrency` reused easy handles (keep-alive, no thread per request), retries with the
 * OpenAI SDK's rules (retry-after-ms / retry-after up to 120 s, else full-jitter exponential
 * backoff; x-should-retry obeyed), and pacing from rpm/tpm token buckets and the
 * x-ratelimit-* headers. The API key lives only in a header list that is wiped on destroy;
 * nothing here logs a header. Also the growable string and the error-body parser both use. */
#include "oai_http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- oai_buf ----------------------------------------------------------------------- */

static int buf_reserve(oai_buf *b, size_t extra)
{
    if (b->oom)
        return 0;
    if (b->n + extra + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void oai_buf_add(oai_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void oai_buf_str(oai_buf *b, const char *s)
{
    oai_buf_add(b, s, strlen(s));
}

void oai_buf_printf(oai_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

char *oai_buf_take(oai_buf *b)
{
    if (b->oom) {
        oai_buf_free(b);
        return NULL;
    }
    char *p = b->p ? b->p : strdup("");
    memset(b, 0, sizeof *b);
    return p;
}

void oai_buf_free(oai_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- error bodies ------------------------------------------------------------------ */

static void copy_json_text(json_t *v, char *out, size_t size)
{
    if (!size)
        return;
    out[0] = 0;
    if (json_is_string(v))
        snprintf(out, size, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

void oai_error_parse(const char *body, size_t len, char *msg, size_t msg_size, char *type,
                     size_t type_size, char *code, size_t code_size)
{
    copy_json_text(NULL, msg, msg_size);
    copy_json_text(NULL, type, type_size);
    copy_json_text(NULL, code, code_size);
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    json_t *e = json_object_get(root, "error");
    json_t *src = json_is_object(e) ? e : root; /* OpenAI / Ollama / new vLLM, or old vLLM */
    if (json_is_string(e)) {
        copy_json_text(e, msg, msg_size); /* {"error": "text"} (llama.cpp, Ollama native) */
    } else {
        copy_json_text(json_object_get(src, "message"), msg, msg_size);
        if (!msg[0])
            copy_json_text(json_object_get(root, "detail"), msg, msg_size); /* FastAPI */
    }
    copy_json_text(json_object_get(src, "type"), type, type_size);
    copy_json_text(json_object_get(src, "code"), code, code_size);
    json_decref(root);
}

double oai_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- header values ----------------------------------------------------------------- */

int oai_go_duration(const char *s, double *seconds)
{
    if (!s)
        return 0;
    while (isspace((unsigned char)*s))
        s++;
    double total = 0;
    if (strcmp(s, "0") == 0) {
        *seconds = 0;
        return 1;
    }
    int parts = 0;
    while (*s && !isspace((unsigned char)*s)) {
        const char *p = s;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p))
                p++;
        }
        if (p == s || (p == s + 1 && *s == '.'))
            return 0;
        char num[64];
        if ((size_t)(p - s) >= sizeof num)
            return 0;
        memcpy(num, s, (size_t)(p - s));
        num[p - s] = 0;
        double v = strtod(num, NULL);
        double unit;
        if (strncmp(p, "ms", 2) == 0)
            unit = 1e-3, p += 2;
        else if (strncmp(p, "us", 2) == 0)
            unit = 1e-6, p += 2;
        else if (strncmp(p, "\xc2\xb5s", 3) == 0)
            unit = 1e-6, p += 3;
        else if (strncmp(p, "ns", 2) == 0)
            unit = 1e-9, p += 2;
        else if (*p == 'h')
            unit = 3600, p += 1;
        else if (*p == 'm')
            unit = 60, p += 1;
        else if (*p == 's')
            unit = 1, p += 1;
        else
            return 0;
        total += v * unit;
        parts++;
        s = p;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (!parts || *s)
        return 0;
    *seconds = total;
    return 1;
}

int64_t oai_http_date(const char *s)
{
    if (!s || !*s)
        return -1;
    time_t t = curl_getdate(s, NULL);
    return t == (time_t)-1 ? -1 : (int64_t)t;
}

/* A plain decimal number (optional fraction), surrounding spaces allowed. */
static int plain_number(const char *s, double *v)
{
    if (!s)
        return 0;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s) && *s != '.' && *s != '-')
        return 0;
    char *end;
    double x = strtod(s, &end);
    if (end == s)
        return 0;
    while (isspace((unsigned char)*end))
        end++;
    if (*end || !isfinite(x))
        return 0;
    *v = x;
    return 1;
}

double oai_retry_delay(int n, const char *retry_after_ms, const char *retry_after, int64_t now_unix,
                       double base, double backoff_max, double u)
{
    const double cap_s = 120.0;
    double v;
    if (plain_number(retry_after_ms, &v)) {
        v /= 1000.0;
        if (v > cap_s)
            return -1;
        if (v > 0)
            return v;
    }
    if (retry_after) {
        if (plain_number(retry_after, &v)) {
            if (v > cap_s)
                return -1;
            if (v > 0)
                return v;
        } else {
            int64_t t = oai_http_date(retry_after);
            if (t >= 0) {
                double d = (double)(t - now_unix);
                if (d > cap_s)
                    return -1;
                if (d > 0)
                    return d;
            }
        }
    }
    double cap = base * pow(2.0, n < 0 ? 0 : n > 60 ? 60 : n);
    if (cap > backoff_max)
        cap = backoff_max;
    if (u < 0)
        u = 0;
    if (u >= 1)
        u = 0.999999;
    return u * cap;
}

int oai_retryable(long status, const char *body, size_t len, int should_retry)
{
    if (should_retry == 1)
        return 1;
    if (should_retry == 0)
        return 0;
    if (status == 408 || status == 409 || status >= 500)
        return 1;
    if (status == 429) {
        char msg[8], type[64], code[64];
        oai_error_parse(body, len, msg, sizeof msg, type, sizeof type, code, sizeof code);
        return strcmp(type, "insufficient_quota") != 0 && strcmp(code, "insufficient_quota") != 0;
    }
    return 0;
}

/* ---- the engine -------------------------------------------------------------------- */

typedef struct slot {
    CURL *easy;
    oai_job *job;
    curl_mime *mime;
    oai_buf body;
    char errbuf[CURL_ERROR_SIZE];
    /* response headers of the current exchange */
    char request_id[128], retry_after[96], retry_after_ms[32];
    char rem_req[32], reset_req[32], rem_tok[32], reset_tok[32];
    int should_retry;
} slot;

typedef struct bucket {
    double rate, cap, level, t; /* per second; rate 0 = unlimited */
} bucket;

struct oai_http {
    oai_http_cfg cfg;
    const sb_host *host;
    CURLM *multi;
    slot *slots;
    int n_slots, n_active;
    int limit;            /* requests in flight at most (<= n_slots) */
    oai_job *head, *tail; /* ready queue */
    oai_job **heap;       /* delayed jobs, min-heap on not_before */
    size_t n_heap, cap_heap;
    struct curl_slist *json_headers, *plain_headers;
    sb_rng rng;
    double hold_until; /* no new request before (rate-limit headers, a 429) */
    bucket rpm, tpm;
    int stopping;
    int curl_inited;
    oai_http_stats stats;
    char *secrets[2]; /* the key and organization, only to blank them out of what is logged
                         or handed back (a server may echo them); wiped on destroy */
};

void oai_scrub(const char *const secrets[2], char *text)
{
    for (int i = 0; i < 2; i++) {
        const char *secret = secrets[i];
        size_t n = secret ? strlen(secret) : 0;
        if (n < 4)
            continue;
        char *p;
        while ((p = strstr(text, secret))) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, strlen(p + n) + 1);
        }
    }
}

/* Append j to the queue of requests ready to send. */
static void queue_push(oai_http *e, oai_job *j)
{
    j->next = NULL;
    if (e->tail)
        e->tail->next = j;
    else
        e->head = j;
    e->tail = j;
}

static void heap_push(oai_http *e, oai_job *j)
{
    if (e->n_heap == e->cap_heap) {
        size_t cap = e->cap_heap ? 2 * e->cap_heap : 64;
        oai_job **h = realloc(e->heap, cap * sizeof *h);
        if (!h) {
            queue_push(e, j); /* out of memory: send it now rather than lose it */
            return;
        }
        e->heap = h;
        e->cap_heap = cap;
    }
    size_t i = e->n_heap++;
    e->heap[i] = j;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (e->heap[p]->not_before <= e->heap[i]->not_before)
            break;
        oai_job *t = e->heap[p];
        e->heap[p] = e->heap[i];
        e->heap[i] = t;
        i = p;
    }
}

static oai_job *heap_pop(oai_http *e)
{
    oai_job *top = e->heap[0];
    e->heap[0] = e->heap[--e->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->n_heap && e->heap[l]->not_before < e->heap[m]->not_before)
            m = l;
        if (r < e->n_heap && e->heap[r]->not_before < e->heap[m]->not_before)
            m = r;
        if (m == i)
            break;
        oai_job *t = e->heap[m];
        e->heap[m] = e->heap[i];
        e->heap[i] = t;
        i = m;
    }
    return top;
}

static void queue_push_front(oai_http *e, oai_job *j)
{
    j->next = e->head;
    e->head = j;
    if (!e->tail)
        e->tail = j;
}

static oai_job *queue_pop(oai_http *e)
{
    oai_job *j = e->head;
    if (j) {
        e->head = j->next;
        if (!e->head)
            e->tail = NULL;
        j->next = NULL;
    }
    return j;
}

void oai_http_submit(oai_http *e, oai_job *job)
{
    job->attempts = 0;
    job->not_before = 0;
    queue_push(e, job);
}

void oai_http_submit_after(oai_http *e, oai_job *job, double delay_s)
{
    job->attempts = 0;
    job->not_before = oai_now() + (delay_s > 0 ? delay_s : 0);
    heap_push(e, job);
}

void oai_http_set_limit(oai_http *e, int n)
{
    e->limit = n < 1 ? 1 : n > e->n_slots ? e->n_slots : n;
}

void oai_http_stop(oai_http *e)
{
    e->stopping = 1;
}

int oai_http_stopping(const oai_http *e)
{
    return e->stopping;
}

const oai_http_stats *oai_http_get_stats(const oai_http *e)
{
    return &e->stats;
}

static void bucket_init(bucket *b, double per_minute)
{
    memset(b, 0, sizeof *b);
    if (per_minute <= 0)
        return;
    b->rate = per_minute / 60.0;
    b->cap = b->rate < 1 ? 1 : b->rate; /* one second's worth, at least one unit */
    b->level = b->cap;
    b->t = oai_now();
}

/* Seconds until `cost` may be spent (0 = now). A cost above the capacity waits for a full
 * bucket and then drives the level negative, which keeps the long-run rate. */
static double bucket_wait(bucket *b, double cost, double now)
{
    if (b->rate <= 0)
        return 0;
    b->level += (now - b->t) * b->rate;
    if (b->level > b->cap)
        b->level = b->cap;
    b->t = now;
    double need = cost < b->cap ? cost : b->cap;
    return b->level >= need ? 0 : (need - b->level) / b->rate;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n;
    if (s->body.n + len > ((size_t)1 << 30))
        return 0; /* a runaway answer: abort the transfer */
    oai_buf_add(&s->body, p, len);
    return s->body.oom ? 0 : len;
}

static void header_value(const char *v, size_t n, char *out, size_t size)
{
    while (n && isspace((unsigned char)*v))
        v++, n--;
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    if (n >= size)
        n = size - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue or a redirect): forget the last one's. */
        s->request_id[0] = s->retry_after[0] = s->retry_after_ms[0] = 0;
        s->rem_req[0] = s->reset_req[0] = s->rem_tok[0] = s->reset_tok[0] = 0;
        s->should_retry = -1;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - p), vl = len - nl - 1;
    const char *v = colon + 1;
    static const struct {
        const char *name;
        size_t off, size;
    } want[] = {
        { "x-request-id", offsetof(slot, request_id), sizeof(((slot *)0)->request_id) },
        { "retry-after", offsetof(slot, retry_after), sizeof(((slot *)0)->retry_after) },
        { "retry-after-ms", offsetof(slot, retry_after_ms), sizeof(((slot *)0)->retry_after_ms) },
        { "x-ratelimit-remaining-requests", offsetof(slot, rem_req), sizeof(((slot *)0)->rem_req) },
        { "x-ratelimit-reset-requests", offsetof(slot, reset_req), sizeof(((slot *)0)->reset_req) },
        { "x-ratelimit-remaining-tokens", offsetof(slot, rem_tok), sizeof(((slot *)0)->rem_tok) },
        { "x-ratelimit-reset-tokens", offsetof(slot, reset_tok), sizeof(((slot *)0)->reset_tok) },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strlen(want[i].name) == nl && strncasecmp(p, want[i].name, nl) == 0) {
            header_value(v, vl, (char *)s + want[i].off, want[i].size);
            return len;
        }
    if (nl == 14 && strncasecmp(p, "x-should-retry", 14) == 0) {
        char b[16];
        header_value(v, vl, b, sizeof b);
        s->should_retry = strcasecmp(b, "true") == 0 ? 1 : strcasecmp(b, "false") == 0 ? 0 : -1;
    }
    return len;
}

/* Wipe a header list before freeing it (it may hold the key). */
static void headers_free(struct curl_slist **l)
{
    for (struct curl_slist *s = *l; s; s = s->next)
        if (s->data)
            memset(s->data, 0, strlen(s->data));
    curl_slist_free_all(*l);
    *l = NULL;
}

static struct curl_slist *headers_build(const oai_http_cfg *cfg, int json)
{
    struct curl_slist *l = NULL, *t;
    const char *fixed[] = { json ? "Content-Type: application/json" : NULL,
                            "Accept: application/json", "Expect:" };
    for (size_t i = 0; i < 3; i++)
        if (fixed[i]) {
            if (!(t = curl_slist_append(l, fixed[i])))
                goto fail;
            l = t;
        }
    const char *names[2] = { "Authorization: Bearer ", "OpenAI-Organization: " };
    const char *vals[2] = { cfg->api_key, cfg->organization };
    for (int i = 0; i < 2; i++) {
        if (!vals[i] || !*vals[i])
            continue;
        size_t n = strlen(names[i]) + strlen(vals[i]) + 1;
        char *h = malloc(n);
        if (!h)
            goto fail;
        snprintf(h, n, "%s%s", names[i], vals[i]);
        t = curl_slist_append(l, h);
        memset(h, 0, n);
        free(h);
        if (!t)
            goto fail;
        l = t;
    }
    return l;
fail:
    headers_free(&l);
    return NULL;
}

sb_status oai_http_create(const oai_http_cfg *cfg, const sb_host *host, oai_http **out,
                          sb_error *err)
{
    *out = NULL;
    oai_http *e = calloc(1, sizeof *e);
    if (!e)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    e->cfg = *cfg;
    e->cfg.api_key = e->cfg.organization = NULL; /* only the header lists keep them */
    e->host = host;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(e);
        return sb_error_set(err, SB_ERR_NETWORK, NULL, "libcurl could not be initialised");
    }
    e->curl_inited = 1;
    const char *secrets[2] = { cfg->api_key, cfg->organization };
    for (int i = 0; i < 2; i++)
        if (secrets[i] && *secrets[i] && !(e->secrets[i] = strdup(secrets[i]))) {
            oai_http_destroy(&e);
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
    e->n_slots = cfg->concurrency > 0 ? cfg->concurrency : 1;
    e->limit = e->n_slots;
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->multi = curl_multi_init();
    e->json_headers = headers_build(cfg, 1);
    e->plain_headers = headers_build(cfg, 0);
    int ok = e->slots && e->multi && e->json_headers && e->plain_headers;
    for (int i = 0; ok && i < e->n_slots; i++)
        ok = (e->slots[i].easy = curl_easy_init()) != NULL;
    if (!ok) {
        oai_http_destroy(&e);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory (libcurl handles)");
    }
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->n_slots);
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->n_slots + 2);
    sb_rng_seed(&e->rng, host->seed,
                0x6c6c6d2d68747470ull /* "llm-http", kept from the llm labeller */);
    bucket_init(&e->rpm, cfg->rpm);
    bucket_init(&e->tpm, cfg->tpm);
    *out = e;
    return SB_OK;
}

void oai_http_destroy(oai_http **pe)
{
    if (!pe || !*pe)
        return;
    oai_http *e = *pe;
    for (int i = 0; e->slots && i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->job && e->multi)
            curl_multi_remove_handle(e->multi, s->easy);
        if (s->easy)
            curl_easy_cleanup(s->easy);
        curl_mime_free(s->mime);
        oai_buf_free(&s->body);
    }
    free(e->slots);
    if (e->multi)
        curl_multi_cleanup(e->multi);
    headers_free(&e->json_headers);
    headers_free(&e->plain_headers);
    free(e->heap);
    for (int i = 0; i < 2; i++)
        if (e->secrets[i]) {
            memset(e->secrets[i], 0, strlen(e->secrets[i]));
            free(e->secrets[i]);
        }
    if (e->curl_inited)
        curl_global_cleanup();
    free(e);
    *pe = NULL;
}

static int launch(oai_http *e, slot *s, oai_job *j)
{
    CURL *c = s->easy;
    curl_easy_reset(c); /* keeps the multi handle's connections alive */
    s->body.n = 0;
    if (s->body.p)
        s->body.p[0] = 0;
    s->errbuf[0] = 0;
    s->request_id[0] = s->retry_after[0] = s->retry_after_ms[0] = 0;
    s->rem_req[0] = s->reset_req[0] = s->rem_tok[0] = s->reset_tok[0] = 0;
    s->should_retry = -1;
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(e->cfg.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(e->cfg.connect_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(c, CURLOPT_PRIVATE, s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, e->cfg.user_agent ? e->cfg.user_agent : "serbench/1");
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (e->cfg.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, e->cfg.ca_file);
    switch (j->method) {
    case OAI_POST_JSON:
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->json_headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
        break;
    case OAI_GET:
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->plain_headers);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        break;
    case OAI_POST_FILE: {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->plain_headers);
        curl_mime_free(s->mime);
        s->mime = curl_mime_init(c);
        curl_mimepart *part = s->mime ? curl_mime_addpart(s->mime) : NULL;
        if (!part)
            return 0;
        curl_mime_name(part, "purpose");
        curl_mime_data(part, j->purpose ? j->purpose : "batch", CURL_ZERO_TERMINATED);
        if (!(part = curl_mime_addpart(s->mime)))
            return 0;
        curl_mime_name(part, "file");
        curl_mime_data(part, j->body, j->body_len);
        curl_mime_filename(part, j->file_name ? j->file_name : "requests.jsonl");
        curl_mime_type(part, "application/jsonl");
        curl_easy_setopt(c, CURLOPT_MIMEPOST, s->mime);
        break;
    }
    }
    if (curl_multi_add_handle(e->multi, c) != CURLM_OK)
        return 0;
    s->job = j;
    j->attempts++;
    e->n_active++;
    e->stats.sent++;
    return 1;
}

double oai_ratelimit_wait(const char *remaining, const char *reset)
{
    double r, d;
    if (!remaining || !plain_number(remaining, &r) || r > 0 || !oai_go_duration(reset, &d) ||
        d <= 0)
        return 0;
    return d > 120 ? 120 : d;
}

/* The x-ratelimit headers: when a remaining count reaches 0, hold until its reset. */
static void note_ratelimit(oai_http *e, const slot *s, double now)
{
    const char *rem[2] = { s->rem_req, s->rem_tok }, *reset[2] = { s->reset_req, s->reset_tok };
    for (int i = 0; i < 2; i++) {
        double d = rem[i][0] ? oai_ratelimit_wait(rem[i], reset[i]) : 0;
        if (d > 0 && now + d > e->hold_until) {
            e->hold_until = now + d;
            e->host->log(e->host, SB_LOG_DEBUG,
                         "rate limit: no %s left; pausing %.2f s until the window resets",
                         i ? "tokens" : "requests", d);
        }
    }
}

/* Transfer failures that a retry cannot fix: TLS trust and configuration problems. */
static int permanent(CURLcode cc)
{
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN: return 1;
    default: return 0;
    }
}

static void finish(oai_http *e, slot *s, CURLcode cc, const oai_http_cb *cb, void *ctx)
{
    oai_job *j = s->job;
    curl_multi_remove_handle(e->multi, s->easy);
    s->job = NULL;
    e->n_active--;
    double now = oai_now();
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    note_ratelimit(e, s, now);
    oai_result r = { .status = cc == CURLE_OK ? status : 0,
                     .body = s->body.p ? s->body.p : "",
                     .len = s->body.n,
                     .request_id = s->request_id[0] ? s->request_id : NULL };
    char desc[700];
    if (cc != CURLE_OK && permanent(cc)) {
        snprintf(desc, sizeof desc, "cannot talk to the server: %s",
                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        r.error = desc;
        r.permanent = 1;
        e->stats.by_transport++;
        cb->done(ctx, j, &r);
        return;
    }
    if (cc != CURLE_OK) {
        snprintf(desc, sizeof desc, "no answer from the server: %s",
                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        e->stats.by_transport++;
    } else if (status >= 200 && status < 300) {
        r.error = NULL;
        if (cb->done(ctx, j, &r) == OAI_ACCEPT)
            return;
        snprintf(desc, sizeof desc, "HTTP %ld with a body that is not %s", status,
                 e->cfg.answer_kind ? e->cfg.answer_kind : "a usable answer");
        e->stats.malformed++;
    } else if (oai_retryable(status, r.body, r.len, s->should_retry)) {
        char msg[300], type[64], code[64];
        oai_error_parse(r.body, r.len, msg, sizeof msg, type, sizeof type, code, sizeof code);
        snprintf(desc, sizeof desc, "HTTP %ld%s%s", status, msg[0] ? ": " : "", msg);
        if (status == 429)
            e->stats.by_status_429++;
        else if (status >= 500)
            e->stats.by_status_5xx++;
        else
            e->stats.by_other++;
    } else {
        cb->done(ctx, j, &r); /* not retryable: the caller decides */
        return;
    }
    /* A retryable failure: its text is logged and handed back, so without secrets. */
    oai_scrub((const char *const *)e->secrets, desc);
    r.error = desc;
    if (e->stopping) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof desc - l, " (not retried: the stage is stopping)");
        r.gave_up = 1;
        cb->done(ctx, j, &r);
        return;
    }
    if (j->attempts > e->cfg.max_retries) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof desc - l, "; gave up after %d attempt%s", j->attempts,
                 j->attempts == 1 ? "" : "s");
        r.gave_up = 1;
        cb->done(ctx, j, &r);
        return;
    }
    double delay =
        oai_retry_delay(j->attempts - 1, s->retry_after_ms[0] ? s->retry_after_ms : NULL,
                        s->retry_after[0] ? s->retry_after : NULL, (int64_t)time(NULL),
                        e->cfg.backoff_base_s, e->cfg.backoff_max_s, sb_rng_uniform(&e->rng));
    if (delay < 0) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof desc - l,
                 "; the server asks to retry after more than 120 s (retry-after %s%s), so this "
                 "run does not wait",
                 s->retry_after_ms[0] ? s->retry_after_ms : s->retry_after,
                 s->retry_after_ms[0] ? " ms" : "");
        r.gave_up = 1;
        cb->done(ctx, j, &r);
        return;
    }
    e->stats.retries++;
    e->host->log(e->host, SB_LOG_DEBUG, "retry %d in %.2f s: %s%s%s%s", j->attempts, delay, desc,
                 r.request_id ? " (request id " : "", r.request_id ? r.request_id : "",
                 r.request_id ? ")" : "");
    if (status == 429 && now + delay > e->hold_until)
        e->hold_until = now + delay; /* a rate limit holds back every request */
    j->not_before = now + delay;
    heap_push(e, j);
}

static void abort_all(oai_http *e)
{
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].job) {
            curl_multi_remove_handle(e->multi, e->slots[i].easy);
            e->slots[i].job = NULL;
        }
    e->n_active = 0;
    e->head = e->tail = NULL;
    e->n_heap = 0;
}

static slot *free_slot(oai_http *e)
{
    for (int i = 0; i < e->n_slots; i++)
        if (!e->slots[i].job)
            return &e->slots[i];
    return NULL;
}

sb_status oai_http_run(oai_http *e, const oai_http_cb *cb, void *ctx, sb_error *err)
{
    for (;;) {
        if (e->host->cancelled(e->host)) {
            int n = e->n_active;
            abort_all(e);
            return sb_error_set(err, SB_ERR_CANCELLED, NULL,
                                "cancelled by the user (%d request%s in flight abandoned); what "
                                "was labelled is stored and the next run asks only for the rest",
                                n, n == 1 ? "" : "s");
        }
        double now = oai_now();
        while (e->n_heap && e->heap[0]->not_before <= now)
            queue_push(e, heap_pop(e));
        double wait = 0.1;
        while (!e->stopping && e->n_active < e->limit && e->head) {
            oai_job *j = queue_pop(e);
            if (!cb->prepare(ctx, j) || e->stopping)
                continue; /* answered without a request (cache), or the stage stopped */
            double w = 0;
            if (e->hold_until > now)
                w = e->hold_until - now;
            double wr = bucket_wait(&e->rpm, 1, now), wt = bucket_wait(&e->tpm, j->tokens, now);
            if (wr > w)
                w = wr;
            if (wt > w)
                w = wt;
            if (w > 0) {
                queue_push_front(e, j);
                e->stats.paced_s += w < wait ? w : wait;
                if (w < wait)
                    wait = w;
                break;
            }
            e->rpm.level -= 1;
            e->tpm.level -= j->tokens;
            slot *s = free_slot(e);
            if (!s || !launch(e, s, j)) {
                abort_all(e);
                return sb_error_set(err, SB_ERR_NETWORK, j->url,
                                    "libcurl refused to start a request");
            }
        }
        if (!e->n_active && (e->stopping || (!e->head && !e->n_heap)))
            break;
        int running = 0;
        CURLMcode mc = curl_multi_perform(e->multi, &running);
        if (mc != CURLM_OK) {
            abort_all(e);
            return sb_error_set(err, SB_ERR_NETWORK, NULL, "libcurl: %s", curl_multi_strerror(mc));
        }
        CURLMsg *msg;
        int left;
        int finished = 0;
        while ((msg = curl_multi_info_read(e->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (s && s->job) {
                finish(e, s, msg->data.result, cb, ctx);
                finished++;
            }
        }
        if (finished)
            continue; /* refill the slots at once */
        now = oai_now();
        if (e->n_heap && e->heap[0]->not_before - now < wait)
            wait = e->heap[0]->not_before - now;
        int ms = (int)(wait * 1000);
        if (ms < 1)
            ms = 1;
        curl_multi_poll(e->multi, NULL, 0, ms, NULL);
    }
    return SB_OK;
}
