/* plugins/labellers/llm/batch.c — the Batch API mode: the requests not in the response
 * cache go into a JSONL file (custom_id = the request's cache key), which is uploaded
 * (POST /files) and run as a batch (POST /batches); the batch is polled, its output and
 * error files downloaded and matched by custom_id, answers cached and delivered. Missing
 * lines, retryable failures and re-asks go into the next round's batch. The batch id is
 * kept in the host cache under a key derived from the set of request keys, so a process
 * restarted mid-batch polls the same batch instead of paying for a second one. */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_MAX_LINES 50000
#define BATCH_MAX_BYTES (190u * 1024u * 1024u) /* under the API's 200 MB */

/* ---- one blocking request through the engine (with its retries) --------------------- */

typedef struct once {
    llm_run *r;
    const char *what;
    long status;
    oai_buf body;
    char request_id[128];
    char error[800];
    int failed; /* gave up, or a non-retryable status (r->fatal set) */
} once;

static int once_prepare(void *ctx, oai_job *job)
{
    (void)ctx;
    (void)job;
    return 1;
}

static oai_verdict once_done(void *ctx, oai_job *job, const oai_result *res)
{
    once *o = ctx;
    (void)job;
    o->status = res->status;
    if (res->request_id)
        snprintf(o->request_id, sizeof o->request_id, "%s", res->request_id);
    if (res->permanent) {
        if (!o->r->fatal)
            llm_run_transport_error(o->r, res->error);
        o->failed = 1;
        return OAI_ACCEPT;
    }
    if (res->gave_up || res->status == 0) {
        snprintf(o->error, sizeof o->error, "%s", res->error ? res->error : "no answer");
        o->failed = 1;
        return OAI_ACCEPT;
    }
    if (res->status < 200 || res->status >= 300) {
        llm_run_http_error(o->r, o->what, res);
        o->failed = 1;
        return OAI_ACCEPT;
    }
    oai_buf_add(&o->body, res->body, res->len);
    return OAI_ACCEPT;
}

/* Send one request; on success *out is the parsed JSON answer (or NULL with want_json 0:
 * the raw text in o->body). Errors go to r->err. */
static sb_status request(llm_run *r, const char *what, oai_method m, const char *url, char *body,
                         size_t len, const char *file_name, int want_json, json_t **out,
                         oai_buf *text)
{
    once o = { .r = r, .what = what };
    oai_job job = { .method = m,
                    .url = (char *)url,
                    .body = body,
                    .body_len = len,
                    .file_name = file_name,
                    .purpose = "batch" };
    oai_http_submit(r->http, &job);
    oai_http_cb cb = { once_prepare, once_done };
    sb_status st = oai_http_run(r->http, &cb, &o, r->err);
    if (st == SB_OK && o.failed && !r->fatal)
        r->fatal = sb_error_set(r->err, SB_ERR_NETWORK, url, "%s: %s", what, o.error);
    if (st == SB_OK && r->fatal)
        st = r->fatal;
    if (st == SB_OK && want_json) {
        json_error_t je;
        *out = json_loadb(o.body.p ? o.body.p : "", o.body.n, 0, &je);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            st = r->fatal = sb_error_set(r->err, SB_ERR_API, url,
                                         "%s: the answer is not a JSON object (%s)", what, je.text);
        }
    }
    if (st == SB_OK && text) {
        *text = o.body;
        memset(&o.body, 0, sizeof o.body);
    }
    oai_buf_free(&o.body);
    return st;
}

/* ---- rounds ------------------------------------------------------------------------ */

static int cmp_call_key(const void *a, const void *b)
{
    const llm_call *x = *(llm_call *const *)a, *y = *(llm_call *const *)b;
    return strcmp(x->key, y->key);
}

/* An id the server gave us, before it goes into a URL. */
static int id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 200)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static char *url_join(const llm *L, const char *a, const char *b, const char *c)
{
    oai_buf u = { 0 };
    oai_buf_printf(&u, "%s%s%s%s", L->api.base_url, a, b ? b : "", c ? c : "");
    return oai_buf_take(&u);
}

/* Pause up to `seconds`, watching for cancellation. Returns 0 when cancelled. */
static int nap(const sb_host *h, double seconds)
{
    double end = oai_now() + seconds;
    for (;;) {
        if (h->cancelled(h))
            return 0;
        double left = end - oai_now();
        if (left <= 0)
            return 1;
        double step = left < 0.1 ? left : 0.1;
        struct timespec ts = { (time_t)step, (long)((step - (double)(time_t)step) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

/* Apply one output or error line to the calls waiting for its custom_id. */
static void apply_line(llm_run *r, llm_call **calls, size_t n, json_t *line, size_t *n_ok,
                       size_t *n_retry)
{
    const sb_host *h = r->L->host;
    const char *cid = json_string_value(json_object_get(line, "custom_id"));
    if (!cid)
        return;
    /* calls[] is sorted by key; find the run of calls with this key. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(calls[mid]->key, cid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= n || strcmp(calls[lo]->key, cid) != 0)
        return; /* not ours (or already answered) */
    json_t *resp = json_object_get(line, "response");
    json_t *status = json_object_get(resp, "status_code");
    json_t *body = json_object_get(resp, "body");
    const char *rid = json_string_value(json_object_get(resp, "request_id"));
    long code = json_is_integer(status) ? (long)json_integer_value(status) : 0;
    llm_answer a;
    char why[300];
    if (code == 200 && llm_answer_from_json(body, &a, why, sizeof why)) {
        int put = 0;
        char key[SB_HASH_HEX];
        snprintf(key, sizeof key, "%s", cid);
        for (size_t i = lo; i < n && strcmp(calls[i]->key, key) == 0; i++) {
            llm_call *c = calls[i];
            if (!c->in_batch)
                continue;
            c->in_batch = 0;
            if (!put) {
                /* Cached under the key (body "batch": priced at batch prices if re-read). */
                json_t *env = json_pack("{s:i, s:s?, s:O, s:b}", "attempts", 1, "request_id", rid,
                                        "response", body, "batch", 1);
                char *t = env ? json_dumps(env, JSON_COMPACT) : NULL;
                json_decref(env);
                sb_error e = { 0 };
                if (!t || h->cache_put(h, c->key, t, strlen(t), &e) != SB_OK)
                    r->n_puts_failed++;
                free(t);
                put = 1;
            }
            llm_call_answer(r, c, &a, rid, 1, 0, 1);
            (*n_ok)++;
        }
        llm_answer_clear(&a);
        return;
    }
    /* A failed line: retry the retryable ones in the next round, fail the rest. */
    char *btext = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *err = json_object_get(line, "error");
    char msg[500] = "", type[64] = "", ecode[64] = "";
    int retry;
    if (code) {
        oai_error_parse(btext, btext ? strlen(btext) : 0, msg, sizeof msg, type, sizeof type, ecode,
                        sizeof ecode);
        retry = code == 200 || oai_retryable(code, btext, btext ? strlen(btext) : 0, -1);
        if (code == 200)
            snprintf(msg, sizeof msg, "%s", why);
    } else {
        const char *m = json_string_value(json_object_get(err, "message"));
        snprintf(msg, sizeof msg, "%s", m ? m : "no response");
        retry = 1;
    }
    free(btext);
    for (size_t i = lo; i < n && strcmp(calls[i]->key, cid) == 0; i++) {
        llm_call *c = calls[i];
        if (!c->in_batch)
            continue;
        c->in_batch = 0;
        if (rid)
            snprintf(c->request_id, sizeof c->request_id, "%s", rid);
        if (retry) {
            (*n_retry)++;
        } else {
            llm_call_fail(r, c, "batch line failed with HTTP %ld%s%s: %s", code,
                          ecode[0] ? " " : "", ecode, msg[0] ? msg : "no message");
        }
    }
}

static sb_status apply_file(llm_run *r, const char *file_id, llm_call **calls, size_t n,
                            size_t *n_ok, size_t *n_retry)
{
    if (!id_ok(file_id))
        return r->fatal = sb_error_set(r->err, SB_ERR_API, r->L->api.base_url,
                                       "the Batch API gave a file id that is not an id");
    char *url = url_join(r->L, "/files/", file_id, "/content");
    oai_buf text = { 0 };
    sb_status st = url ? request(r, "downloading a batch result file", OAI_GET, url, NULL, 0, NULL,
                                 0, NULL, &text)
                       : SB_ERR_NOMEM;
    free(url);
    if (st != SB_OK) {
        oai_buf_free(&text);
        return st;
    }
    char *p = text.p;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_t *line = json_loadb(p, len, 0, NULL);
        if (json_is_object(line))
            apply_line(r, calls, n, line, n_ok, n_retry);
        json_decref(line);
        p = nl ? nl + 1 : NULL;
    }
    oai_buf_free(&text);
    return SB_OK;
}

/* A batch that is over (completed, failed, expired, cancelled) is not collected again: what
 * it left unanswered goes into a new batch, even with the same set of requests. */
static void batch_over(const sb_host *h, const char *key, const char *batch_id)
{
    json_t *rec = json_pack("{s:s, s:b}", "batch_id", batch_id, "over", 1);
    char *t = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    sb_error e = { 0 };
    if (!t || h->cache_put(h, key, t, strlen(t), &e) != SB_OK)
        h->log(h, SB_LOG_WARN,
               "could not note in the store that batch %s is over (%s): the next run would "
               "collect it again instead of resubmitting what it left unanswered",
               batch_id, e.msg);
    free(t);
}

/* Submit (or find) the batch for calls[0..n) (sorted, unique keys in `lines`), wait for it,
 * and apply its files. */
static sb_status run_batch(llm_run *r, llm_call **calls, size_t n, int round)
{
    const llm *L = r->L;
    const sb_host *h = L->host;
    /* The batch's identity: the set of its request keys. */
    sb_hasher *hs = sb_hasher_create();
    if (!hs)
        return sb_error_set(r->err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_hasher_str(hs, "llm-batch/1");
    sb_hasher_str(hs, L->api.base_url);
    size_t n_lines = 0;
    oai_buf jsonl = { 0 };
    for (size_t i = 0; i < n; i++) {
        calls[i]->in_batch = 1;
        if (i && strcmp(calls[i]->key, calls[i - 1]->key) == 0)
            continue;
        sb_hasher_str(hs, calls[i]->key);
        oai_buf_printf(&jsonl,
                       "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"/v1/chat/"
                       "completions\",\"body\":%s}\n",
                       calls[i]->key, calls[i]->body);
        n_lines++;
    }
    char set[SB_HASH_HEX], key[SB_HASH_HEX + 16];
    sb_hasher_hex(hs, set);
    sb_hasher_destroy(&hs);
    snprintf(key, sizeof key, "llm-batch/1/%s", set);
    if (jsonl.oom) {
        oai_buf_free(&jsonl);
        return sb_error_set(r->err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    char *v = NULL;
    size_t vlen = 0;
    json_t *saved = h->cache_get(h, key, &v, &vlen) == 1 ? json_loadb(v, vlen, 0, NULL) : NULL;
    free(v);
    char batch_id[256] = "";
    const char *sid = json_string_value(json_object_get(saved, "batch_id"));
    sb_status st = SB_OK;
    if (id_ok(sid) && !json_is_true(json_object_get(saved, "over"))) {
        snprintf(batch_id, sizeof batch_id, "%s", sid);
        h->log(h, SB_LOG_INFO,
               "round %d: resuming batch %s (%zu requests, submitted by an earlier run)", round,
               batch_id, n_lines);
    } else {
        char fname[80];
        snprintf(fname, sizeof fname, "serbench-%.16s.jsonl", set);
        char *url = url_join(L, "/files", NULL, NULL);
        json_t *file = NULL;
        st = url ? request(r, "uploading the batch input file", OAI_POST_FILE, url, jsonl.p,
                           jsonl.n, fname, 1, &file, NULL)
                 : SB_ERR_NOMEM;
        free(url);
        const char *fid = json_string_value(json_object_get(file, "id"));
        if (st == SB_OK && !id_ok(fid))
            st = r->fatal = sb_error_set(r->err, SB_ERR_API, L->api.base_url,
                                         "the file upload answered without a file id");
        json_t *req = NULL;
        if (st == SB_OK)
            req = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "input_file_id", fid, "endpoint",
                            "/v1/chat/completions", "completion_window", "24h", "metadata",
                            "created_by", "serbench llm labeller", "request_set", set);
        char *req_text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        json_t *b = NULL;
        if (st == SB_OK) {
            url = url_join(L, "/batches", NULL, NULL);
            st = url && req_text ? request(r, "creating the batch", OAI_POST_JSON, url, req_text,
                                           strlen(req_text), NULL, 1, &b, NULL)
                                 : SB_ERR_NOMEM;
            free(url);
        }
        free(req_text);
        const char *bid = json_string_value(json_object_get(b, "id"));
        if (st == SB_OK && !id_ok(bid))
            st = r->fatal = sb_error_set(r->err, SB_ERR_API, L->api.base_url,
                                         "the batch was created without an id in the answer");
        if (st == SB_OK) {
            snprintf(batch_id, sizeof batch_id, "%s", bid);
            json_t *rec = json_pack("{s:s, s:s, s:i}", "batch_id", bid, "input_file_id", fid,
                                    "requests", (int)n_lines);
            char *t = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
            json_decref(rec);
            sb_error e = { 0 };
            if (!t || h->cache_put(h, key, t, strlen(t), &e) != SB_OK)
                h->log(h, SB_LOG_WARN,
                       "could not remember batch %s in the store (%s): a restart would submit "
                       "it again",
                       bid, e.msg);
            free(t);
            h->log(h, SB_LOG_INFO, "round %d: submitted batch %s with %zu requests", round,
                   batch_id, n_lines);
        }
        json_decref(file);
        json_decref(b);
    }
    json_decref(saved);
    oai_buf_free(&jsonl);
    if (st != SB_OK)
        return st;
    /* Poll until the batch is over. */
    char *url = url_join(L, "/batches/", batch_id, NULL);
    if (!url)
        return sb_error_set(r->err, SB_ERR_NOMEM, NULL, "out of memory");
    json_t *b = NULL;
    char last[64] = "";
    for (;;) {
        json_decref(b);
        b = NULL;
        st = request(r, "polling the batch", OAI_GET, url, NULL, 0, NULL, 1, &b, NULL);
        if (st != SB_OK)
            break;
        const char *status = json_string_value(json_object_get(b, "status"));
        json_t *rc = json_object_get(b, "request_counts");
        if (status && strcmp(status, last) != 0) {
            h->log(h, SB_LOG_INFO, "batch %s: %s (%lld of %lld done, %lld failed)", batch_id,
                   status, (long long)json_integer_value(json_object_get(rc, "completed")),
                   (long long)json_integer_value(json_object_get(rc, "total")),
                   (long long)json_integer_value(json_object_get(rc, "failed")));
            snprintf(last, sizeof last, "%s", status);
        }
        if (status && (!strcmp(status, "completed") || !strcmp(status, "failed") ||
                       !strcmp(status, "expired") || !strcmp(status, "cancelled")))
            break;
        if (!nap(h, L->batch_poll_s)) {
            st = sb_error_set(r->err, SB_ERR_CANCELLED, NULL,
                              "cancelled by the user while batch %s runs at the server; it keeps "
                              "running there, and the next run of this stage collects it "
                              "instead of submitting again",
                              batch_id);
            break;
        }
    }
    free(url);
    if (st != SB_OK) {
        json_decref(b);
        return st;
    }
    const char *status = json_string_value(json_object_get(b, "status"));
    if (!strcmp(status, "failed")) {
        json_t *e0 = json_array_get(json_object_get(json_object_get(b, "errors"), "data"), 0);
        const char *m = json_string_value(json_object_get(e0, "message"));
        json_t *line = json_object_get(e0, "line");
        char msg[600];
        snprintf(msg, sizeof msg, "%s", m ? m : "no message");
        oai_client_scrub(&L->api, msg);
        st = r->fatal = sb_error_set(
            r->err, SB_ERR_API, L->api.base_url,
            "batch %s failed validation%s%lld: %s. Check the requests with `serbench label "
            "--plan`; labels delivered before this are stored",
            batch_id, json_is_integer(line) ? " at line " : "",
            json_is_integer(line) ? (long long)json_integer_value(line) : 0LL, msg);
        json_decref(b);
        batch_over(h, key, batch_id);
        return st;
    }
    size_t n_ok = 0, n_retry = 0;
    const char *files[2] = { json_string_value(json_object_get(b, "output_file_id")),
                             json_string_value(json_object_get(b, "error_file_id")) };
    for (int f = 0; f < 2 && st == SB_OK; f++)
        if (files[f])
            st = apply_file(r, files[f], calls, n, &n_ok, &n_retry);
    size_t missing = 0;
    for (size_t i = 0; i < n; i++)
        if (calls[i]->in_batch) {
            calls[i]->in_batch = 0;
            missing++;
        }
    h->log(h, SB_LOG_INFO,
           "batch %s (%s): %zu answered, %zu failed retryably, %zu missing from both files",
           batch_id, status, n_ok, n_retry, missing);
    json_decref(b);
    if (st == SB_OK) /* every answer it delivered is applied (and cached) */
        batch_over(h, key, batch_id);
    return st;
}

sb_status llm_run_batch(llm_run *r)
{
    const llm *L = r->L;
    const sb_host *h = L->host;
    size_t total_calls = r->n_items * (size_t)L->samples;
    llm_call **calls = malloc((total_calls + 1) * sizeof *calls);
    if (!calls)
        return sb_error_set(r->err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_status st = SB_OK;
    int round;
    for (round = 1; round <= L->batch_max_rounds && st == SB_OK && !r->fatal; round++) {
        /* What is still open after the cache (which answers earlier rounds too). */
        size_t n = 0;
        for (size_t i = 0; i < r->n_items; i++)
            for (int s = 0; s < L->samples; s++) {
                llm_call *c = &r->items[i].calls[s];
                if (c->state == LLM_CALL_PENDING && !llm_call_from_cache(r, c))
                    calls[n++] = c;
            }
        if (!n)
            break;
        if (h->cancelled(h)) {
            st = sb_error_set(r->err, SB_ERR_CANCELLED, NULL, "cancelled by the user");
            break;
        }
        qsort(calls, n, sizeof *calls, cmp_call_key);
        /* At most BATCH_MAX_LINES unique lines and BATCH_MAX_BYTES per batch. */
        size_t a = 0;
        while (a < n && st == SB_OK) {
            size_t b = a, lines = 0, bytes = 0;
            while (b < n) {
                int fresh = b == a || strcmp(calls[b]->key, calls[b - 1]->key) != 0;
                size_t sz = strlen(calls[b]->body) + 120;
                if (fresh && b > a && (lines + 1 > BATCH_MAX_LINES || bytes + sz > BATCH_MAX_BYTES))
                    break;
                if (fresh) {
                    lines++;
                    bytes += sz;
                }
                b++;
            }
            st = run_batch(r, calls + a, b - a, round);
            a = b;
        }
    }
    if (st == SB_OK && !r->fatal) {
        size_t left = 0;
        for (size_t i = 0; i < r->n_items; i++)
            for (int s = 0; s < L->samples; s++) {
                llm_call *c = &r->items[i].calls[s];
                if (c->state == LLM_CALL_PENDING && !llm_call_from_cache(r, c)) {
                    left++;
                    llm_call_fail(r, c,
                                  "no usable answer after %d batch round%s (batch_max_rounds); "
                                  "the next run submits it again",
                                  L->batch_max_rounds, L->batch_max_rounds == 1 ? "" : "s");
                }
            }
        if (left)
            h->log(h, SB_LOG_WARN, "%zu requests still unanswered after %d batch rounds", left,
                   L->batch_max_rounds);
    }
    free(calls);
    h->log(h, SB_LOG_INFO,
           "batch mode: %zu answers from the response cache, %zu re-asked; %zu labelled, %zu "
           "invalid, %zu failed",
           r->n_cache_hits, r->n_reasked, r->n_ok, r->n_invalid, r->n_failed);
    if (st != SB_OK)
        return st;
    return r->fatal;
}
