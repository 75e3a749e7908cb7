/* plugins/encoders/embeddings/embeddings.c — the `embeddings` text encoder: one vector per
 * transcript from an OpenAI-compatible /v1/embeddings API (OpenAI, vLLM, Ollama, llama.cpp,
 * TEI), sent in batches over the HTTP engine it shares with the llm labeller, with the same
 * retry rules, options and secret handling (plugins/common/oai_http.c, oai_client.c), each
 * text's vector cached in the host's plugin cache so a rerun sends nothing.
 * docs/encoders.md is the user's guide. */
#include "embeddings.h"
#include "oai_client.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sb_option emb_options[] = {
    OAI_OPT_BASE_URL("/embeddings"),
    { .name = "model",
      .type = SB_OPT_STRING,
      .flags = SB_OPT_REQUIRED,
      .help = "embedding model, e.g. text-embedding-3-small" },
    { .name = "dim",
      .type = SB_OPT_INT,
      .flags = SB_OPT_REQUIRED | SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 65536,
      .help = "width of the vectors (the model's own, e.g. 1536, or the dimensions asked for "
              "with send_dimensions); an answer of another width is an error" },
    { .name = "send_dimensions",
      .type = SB_OPT_BOOL,
      .def = "false",
      .help = "send dim as the request's `dimensions` (text-embedding-3 models shorten their "
              "vectors; older models and many local servers refuse the field)" },
    OAI_OPT_API_KEY_ENV,
    OAI_OPT_ORGANIZATION_ENV,
    OAI_OPT_CA_FILE,
    { .name = "batch",
      .type = SB_OPT_INT,
      .def = "64",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 2048,
      .help = "texts per request (OpenAI takes at most 2048)" },
    { .name = "concurrency",
      .type = SB_OPT_INT,
      .def = "4",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 64,
      .help = "requests in flight at once" },
    { .name = "encoding_format",
      .type = SB_OPT_ENUM,
      .def = "base64",
      .choices = "base64|float",
      .help = "how vectors travel: base64 float32 (exact and about 4x smaller) or JSON numbers "
              "(for servers without base64)" },
    { .name = "normalize",
      .type = SB_OPT_BOOL,
      .def = "true",
      .help = "scale each vector to unit L2 norm (the cache keeps the server's vector)" },
    OAI_OPT_TIMEOUT_S,
    OAI_OPT_CONNECT_TIMEOUT_S,
    { .name = "max_retries",
      .type = SB_OPT_INT,
      .def = "6",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 100,
      .help = "retries of one request after 408/409/429/5xx, timeouts, dropped connections and "
              "malformed answers" },
    OAI_OPT_BACKOFF_BASE_S,
    OAI_OPT_BACKOFF_MAX_S,
    OAI_OPT_RPM,
    { .name = NULL },
};

typedef struct emb {
    const sb_host *host;
    oai_client api;      /* url = base_url + "/embeddings", model, secrets, engine settings */
    int dim, dimensions; /* dimensions: sent as `dimensions` when > 0 */
    int batch, base64, normalize;
    oai_http *http; /* kept across calls: connections are reused and rpm holds across batches;
                       dropped after a failed call so the next one starts clean */
} emb;

/* One request: texts uniq[first .. first+n) of the call. */
typedef struct emb_req {
    oai_job job;
    size_t first, n;
} emb_req;

/* One encode_text call. */
typedef struct emb_call {
    emb *E;
    const char *const *texts;
    float *out;    /* [n_texts, dim] */
    size_t *uniq;  /* text index of each distinct uncached text, [n_uniq] */
    size_t *owner; /* for each text: the uniq slot that answers it, or SIZE_MAX (cached) */
    char (*keys)[SB_HASH_HEX];
    size_t n_texts, n_uniq;
    float *scratch; /* [batch, dim] */
    oai_http *http;
    sb_error *err;
    sb_status fatal;
    int put_failed;
    char last_malformed[256];
} emb_call;

/* Record the first stage-stopping error (secrets scrubbed) and stop the engine. */
static void call_fail(emb_call *c, sb_status code, const char *where, const char *fmt, ...)
    SB_PRINTF(4, 5);
static void call_fail(emb_call *c, sb_status code, const char *where, const char *fmt, ...)
{
    if (c->fatal != SB_OK)
        return;
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    oai_client_vformat(&c->E->api, msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->fatal = sb_error_set(c->err, code, where, "%s", msg);
    if (c->http)
        oai_http_stop(c->http);
}

static void l2_normalize(float *v, int dim)
{
    double ss = 0;
    for (int j = 0; j < dim; j++)
        ss += (double)v[j] * v[j];
    if (ss <= 0)
        return; /* a zero vector stays zero */
    float inv = (float)(1.0 / sqrt(ss));
    for (int j = 0; j < dim; j++)
        v[j] *= inv;
}

/* Write a server vector (as cached) to every text it answers. */
static void deliver(emb_call *c, size_t slot, const float *v)
{
    const emb *E = c->E;
    for (size_t i = 0; i < c->n_texts; i++)
        if (c->owner[i] == slot) {
            float *row = c->out + i * (size_t)E->dim;
            memcpy(row, v, (size_t)E->dim * sizeof *row);
            if (E->normalize)
                l2_normalize(row, E->dim);
        }
}

static int on_prepare(void *ctx, oai_job *job)
{
    (void)ctx;
    (void)job;
    return 1;
}

/* The text index a 400 answer most likely refers to: the first empty text of the request,
 * or SIZE_MAX. */
static size_t empty_text_of(const emb_call *c, const emb_req *q)
{
    for (size_t k = 0; k < q->n; k++)
        if (!c->texts[c->uniq[q->first + k]][0])
            return c->uniq[q->first + k];
    return SIZE_MAX;
}

static void http_error(emb_call *c, const emb_req *q, const oai_result *r)
{
    const emb *E = c->E;
    char msg[700], type[64], code[64];
    oai_error_parse(r->body, r->len, msg, sizeof msg, type, sizeof type, code, sizeof code);
    char where[64];
    size_t i0 = c->uniq[q->first];
    snprintf(where, sizeof where, "text %zu", i0);
    const char *m = msg[0] ? msg : "(no message)";
    long st = r->status;
    if (st == 400) {
        size_t e = empty_text_of(c, q);
        if (e != SIZE_MAX) {
            snprintf(where, sizeof where, "text %zu", e);
            call_fail(c, SB_ERR_API, where,
                      "the server refused a request holding an empty text (text %zu) with HTTP "
                      "400: %s; this server does not embed empty texts, so give the utterance "
                      "a transcript or leave it out",
                      e, m);
            return;
        }
        call_fail(c, SB_ERR_API, where,
                  "the server refused the request for %zu text%s from text %zu with HTTP 400: "
                  "%s (model %s%s)",
                  q->n, q->n == 1 ? "" : "s", i0, m, E->api.model,
                  E->dimensions > 0 ? ", dimensions sent: set send_dimensions: false if the "
                                      "model has no dimensions parameter"
                                    : "");
    } else if (st == 401 || st == 403) {
        call_fail(c, SB_ERR_API, "api_key_env",
                  "the server refused the credentials (HTTP %ld: %s); %s%s%s", st, m,
                  E->api.api_key_env ? "check the key in the environment variable " : "",
                  E->api.api_key_env ? E->api.api_key_env : "no api_key_env is set",
                  E->api.api_key_env ? ""
                                     : " (set it to the name of the variable holding the key)");
    } else if (st == 404) {
        call_fail(c, SB_ERR_API, "base_url",
                  "HTTP 404 from %s: %s; check base_url (it should end in /v1) and model %s",
                  E->api.url, m, E->api.model);
    } else if (st == 429) {
        call_fail(c, SB_ERR_API, where,
                  "HTTP 429 %s: %s; not retried (quota or billing: fix the account, then rerun; "
                  "what was embedded is cached)",
                  type[0] ? type : code, m);
    } else {
        call_fail(c, SB_ERR_API, where, "HTTP %ld from %s: %s", st, E->api.url, m);
    }
}

static oai_verdict on_done(void *ctx, oai_job *job, const oai_result *r)
{
    emb_call *c = ctx;
    emb_req *q = job->user;
    const emb *E = c->E;
    char where[64];
    snprintf(where, sizeof where, "text %zu", c->uniq[q->first]);
    if (r->permanent || r->gave_up || r->status == 0) {
        char last[300] = "";
        if (c->last_malformed[0])
            snprintf(last, sizeof last, " (the last unusable answer: %s)", c->last_malformed);
        call_fail(c, SB_ERR_NETWORK, where,
                  "embeddings request for %zu text%s from text %zu to %s failed: %s%s", q->n,
                  q->n == 1 ? "" : "s", c->uniq[q->first], E->api.url,
                  r->error ? r->error : "no answer", last);
        return OAI_ACCEPT;
    }
    if (r->status < 200 || r->status >= 300) {
        http_error(c, q, r);
        return OAI_ACCEPT;
    }
    if (c->fatal != SB_OK)
        return OAI_ACCEPT;
    int width = E->dim;
    char why[256];
    emb_parse_status ps =
        emb_parse(r->body, r->len, q->n, E->dim, c->scratch, &width, why, sizeof why);
    if (ps == EMB_PARSE_MALFORMED) {
        snprintf(c->last_malformed, sizeof c->last_malformed, "%s", why);
        E->host->log(E->host, SB_LOG_DEBUG, "unusable embeddings answer for text %zu: %s",
                     c->uniq[q->first], why);
        return OAI_RETRY;
    }
    if (ps == EMB_PARSE_WIDTH) {
        call_fail(c, SB_ERR_CONFIG, "dim",
                  "the server answered vectors of width %d for model %s, but dim is %d: set "
                  "dim: %d%s",
                  width, E->api.model, E->dim, width,
                  E->dimensions > 0 ? " (the server ignored the dimensions sent)"
                                    : ", or send_dimensions: true if the model can shorten its "
                                      "vectors");
        return OAI_ACCEPT;
    }
    for (size_t k = 0; k < q->n; k++) {
        size_t slot = q->first + k;
        const float *v = c->scratch + k * (size_t)E->dim;
        const char *key = c->keys[c->uniq[slot]];
        if (key[0]) {
            sb_error perr = { 0 };
            if (E->host->cache_put(E->host, key, v, (size_t)E->dim * sizeof *v, &perr) != SB_OK &&
                !c->put_failed) {
                c->put_failed = 1;
                E->host->log(E->host, SB_LOG_WARN,
                             "cannot cache embeddings (they will be asked for again next "
                             "run): %s",
                             perr.msg);
            }
        }
        deliver(c, slot, v);
    }
    return OAI_ACCEPT;
}

/* A cache miss, sorted by key to find repeated texts. */
typedef struct miss_ref {
    const char *key;
    size_t i;
} miss_ref;

static int by_key(const void *a, const void *b)
{
    const miss_ref *x = a, *y = b;
    int d = strcmp(x->key, y->key);
    return d ? d : (x->i > y->i) - (x->i < y->i);
}

static sb_status emb_encode_text(void *inst, const char *const *texts, size_t n, float *out,
                                 sb_error *err)
{
    emb *E = inst;
    if (n == 0)
        return SB_OK;
    const size_t dim = (size_t)E->dim;
    emb_call c = { .E = E, .texts = texts, .out = out, .n_texts = n, .err = err };
    c.keys = malloc(n * sizeof *c.keys);
    c.owner = malloc(n * sizeof *c.owner);
    c.uniq = malloc(n * sizeof *c.uniq);
    miss_ref *miss = malloc(n * sizeof *miss);
    c.scratch = malloc((size_t)E->batch * dim * sizeof *c.scratch);
    emb_req *reqs = NULL;
    sb_status st = SB_OK;
    if (!c.keys || !c.owner || !c.uniq || !miss || !c.scratch) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    /* 1. the cache */
    size_t n_miss = 0;
    for (size_t i = 0; i < n; i++) {
        if (!texts[i]) {
            char where[64];
            snprintf(where, sizeof where, "text %zu", i);
            st = sb_error_set(err, SB_ERR_INVALID, where, "text %zu is NULL", i);
            goto done;
        }
        emb_cache_key(E->api.model, E->dimensions, E->dim, texts[i], c.keys[i]);
        c.owner[i] = SIZE_MAX;
        char *val = NULL;
        size_t len = 0;
        int got = c.keys[i][0] ? E->host->cache_get(E->host, c.keys[i], &val, &len) : 0;
        if (got == 1 && len == dim * sizeof(float)) {
            memcpy(out + i * dim, val, len);
            if (E->normalize)
                l2_normalize(out + i * dim, E->dim);
        } else {
            if (got == 1)
                E->host->log(E->host, SB_LOG_WARN,
                             "cached vector of text %zu has %zu bytes, not %zu: asking again", i,
                             len, dim * sizeof(float));
            miss[n_miss++] = (miss_ref){ c.keys[i], i };
        }
        free(val);
    }
    if (n_miss == 0)
        goto done;
    st = oai_client_need_key(&E->api, err);
    if (st != SB_OK)
        goto done;
    /* 2. one request slot per distinct text (a repeated "Okay." is sent once) */
    qsort(miss, n_miss, sizeof *miss, by_key);
    for (size_t k = 0; k < n_miss; k++) {
        size_t i = miss[k].i;
        if (k > 0 && strcmp(miss[k].key, miss[k - 1].key) == 0 &&
            strcmp(texts[i], texts[c.uniq[c.n_uniq - 1]]) == 0) {
            c.owner[i] = c.n_uniq - 1;
            continue;
        }
        c.uniq[c.n_uniq] = i;
        c.owner[i] = c.n_uniq++;
    }
    /* 3. the requests */
    size_t n_req = (c.n_uniq + (size_t)E->batch - 1) / (size_t)E->batch;
    reqs = calloc(n_req, sizeof *reqs);
    if (!reqs) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    if (!E->http) {
        st = oai_client_open(&E->api, E->host, &E->http, err);
        if (st != SB_OK)
            goto done;
    }
    c.http = E->http;
    const oai_http_stats before = *oai_http_get_stats(c.http);
    const char **batch_texts = malloc((size_t)E->batch * sizeof *batch_texts);
    if (!batch_texts) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < n_req; r++) {
        emb_req *q = &reqs[r];
        q->first = r * (size_t)E->batch;
        q->n = c.n_uniq - q->first < (size_t)E->batch ? c.n_uniq - q->first : (size_t)E->batch;
        for (size_t k = 0; k < q->n; k++)
            batch_texts[k] = texts[c.uniq[q->first + k]];
        q->job.method = OAI_POST_JSON;
        q->job.url = E->api.url;
        q->job.body = emb_request_body(E->api.model, batch_texts, q->n, E->dimensions, E->base64);
        q->job.user = q;
        if (!q->job.body) {
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        q->job.body_len = strlen(q->job.body);
        oai_http_submit(c.http, &q->job);
    }
    free(batch_texts);
    if (st == SB_OK) {
        const oai_http_cb cb = { .prepare = on_prepare, .done = on_done };
        st = oai_http_run(c.http, &cb, &c, err);
        if (st == SB_OK)
            st = c.fatal;
        if (st != SB_OK)
            oai_client_scrub(&E->api, err->msg);
    }
    if (st == SB_OK) {
        const oai_http_stats *s = oai_http_get_stats(c.http);
        E->host->log(E->host, SB_LOG_DEBUG,
                     "%zu texts: %zu cached, %zu sent in %zu requests (%zu retries)", n, n - n_miss,
                     c.n_uniq, n_req, s->retries - before.retries);
    }
    for (size_t r = 0; r < n_req; r++)
        free(reqs[r].job.body);
done:
    if (st != SB_OK)
        oai_http_destroy(&E->http);
    free(reqs);
    free(c.keys);
    free(c.owner);
    free(c.uniq);
    free(miss);
    free(c.scratch);
    return st;
}

static void emb_destroy(void *inst)
{
    emb *E = inst;
    if (!E)
        return;
    oai_http_destroy(&E->http);
    oai_client_free(&E->api);
    free(E);
}

static sb_status emb_create(const sb_host *host, const sb_opts *o, void **inst, sb_error *err)
{
    *inst = NULL;
    if (host->struct_size < offsetof(sb_host, cache_put) + sizeof host->cache_put)
        return sb_error_set(err, SB_ERR_PLUGIN, NULL,
                            "the embeddings encoder needs a serbench with plugin ABI 1.2 or "
                            "newer (text encoders and a plugin cache)");
    emb *E = calloc(1, sizeof *E);
    if (!E)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    E->host = host;
    sb_status st = oai_client_init(&E->api, host, o, "/embeddings", err);
    E->dim = (int)sb_opts_int(o, "dim");
    E->dimensions = sb_opts_bool(o, "send_dimensions") ? E->dim : 0;
    E->batch = (int)sb_opts_int(o, "batch");
    E->base64 = strcmp(sb_opts_str(o, "encoding_format"), "base64") == 0;
    E->normalize = sb_opts_bool(o, "normalize");
    E->api.http.user_agent = "serbench-embeddings/1";
    E->api.http.answer_kind = "an embeddings list";
    if (st != SB_OK) {
        emb_destroy(E);
        return st;
    }
    *inst = E;
    return SB_OK;
}

static sb_status emb_info(void *inst, sb_encoder_info *info, sb_error *err)
{
    (void)err;
    const emb *E = inst;
    info->sample_rate = 16000; /* unused: the encoder reads text */
    info->n_layers = 1;
    info->dim = E->dim;
    if (info->struct_size >= offsetof(sb_encoder_info, input) + sizeof info->input)
        info->input = SB_INPUT_TEXT;
    return SB_OK;
}

/* The model and the width: what the options cannot show is that an API model may change
 * behind its name (docs/encoders.md), so pin dated model names where there are any. */
static sb_status emb_fingerprint(void *inst, char out[128], sb_error *err)
{
    (void)err;
    const emb *E = inst;
    char d[48];
    snprintf(d, sizeof d, E->dimensions > 0 ? "|dimensions=%d" : "|native=%d", E->dim);
    size_t ml = strlen(E->api.model), dl = strlen(d);
    if (ml + dl < 128) {
        memcpy(out, E->api.model, ml);
        memcpy(out + ml, d, dl + 1);
    } else {
        char h[SB_HASH_HEX];
        sb_hash_hex(E->api.model, strlen(E->api.model), h);
        snprintf(out, 128, "%.40s~%.32s%s", E->api.model, h, d); /* <= 40+1+32+47 */
    }
    return SB_OK;
}

static const sb_encoder_vtable emb_vtable = {
    .struct_size = sizeof(sb_encoder_vtable),
    .create = emb_create,
    .info = emb_info,
    .fingerprint = emb_fingerprint,
    .encode = NULL,
    .destroy = emb_destroy,
    .frames = NULL,
    .fit = NULL,
    .encode_text = emb_encode_text,
};

static const sb_plugin emb_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_ENCODER,
    .name = "embeddings",
    .version = "1.0.0",
    .summary = "text embeddings from an OpenAI-compatible /v1/embeddings API (OpenAI, vLLM, "
               "Ollama, llama.cpp): batched, concurrent, retried, cached per text",
    .options = emb_options,
    .vtable = &emb_vtable,
};

SB_PLUGIN_DEFINE(emb_plugin)
