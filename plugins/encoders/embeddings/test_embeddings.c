/* plugins/encoders/embeddings/test_embeddings.c — the embeddings encoder through its vtable
 * against the test server (tests/llm-server/llm_server.py, started per test on a free
 * port): vectors equal the server's, batching and de-duplication, the cache (a rerun sends
 * nothing), every fault kind recovering or failing with a clear message, the width checks
 * and key hygiene; plus the wire functions on hand-made answers. */
#include "embeddings.h"
#include "internal.h"
#include "oai_http.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const sb_plugin *serbench_plugin_v1(void);

/* ---- the test server --------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
    char url[64]; /* http://127.0.0.1:PORT/v1 */
} server;

static void server_start(server *s, const char *const *extra)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    cr_assert(root, "SB_SOURCE_ROOT is not set (run through meson test)");
    char script[1024], port_file[128], log_file[128];
    snprintf(script, sizeof script, "%s/tests/llm-server/llm_server.py", root);
    snprintf(s->dir, sizeof s->dir, "/tmp/sb-emb-XXXXXX");
    cr_assert(mkdtemp(s->dir));
    snprintf(port_file, sizeof port_file, "%s/port", s->dir);
    snprintf(log_file, sizeof log_file, "%s/log.jsonl", s->dir);
    const char *argv[32] = { "/usr/bin/python3", script,    "--port", "0",
                             "--port-file",      port_file, "--log",  log_file };
    int argc = 8;
    for (int i = 0; extra && extra[i]; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    char err_file[128];
    snprintf(err_file, sizeof err_file, "%s/stderr", s->dir);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        /* The server dies with the test process, also when an assertion ends it early. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int out = open("/dev/null", O_WRONLY), err = open(err_file, O_WRONLY | O_CREAT, 0644);
        if (out >= 0)
            dup2(out, 1);
        if (err >= 0)
            dup2(err, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok) {
                snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/v1", s->port);
                return;
            }
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("the test server did not start");
}

static void server_stop(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    oai_buf_add(ud, p, size * n);
    return size * n;
}

/* A request to the server; returns the parsed JSON answer (status in *status). */
static json_t *http(const server *s, const char *method, const char *path, const char *body,
                    long *status)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    CURL *c = curl_easy_init();
    oai_buf b = { 0 };
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, path);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    if (status)
        *status = st;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = json_loads(b.p ? b.p : "", 0, NULL);
    oai_buf_free(&b);
    return j;
}

static void set_faults(const server *s, const char *faults_json)
{
    long st;
    json_decref(http(s, "POST", "/_admin/faults", faults_json, &st));
    cr_assert_eq(st, 200, "faults %s refused", faults_json);
}

static long stat_of(const server *s, const char *key)
{
    json_t *j = http(s, "GET", "/_admin/stats", NULL, NULL);
    long v = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

/* The server's vectors for texts (float encoding), into ref [n, dim]. */
static void server_vectors(const server *s, const char *model, const char *const *texts, size_t n,
                           int dimensions, float *ref, int dim)
{
    char *body = emb_request_body(model, texts, n, dimensions, 0);
    long st;
    json_t *j = http(s, "POST", "/v1/embeddings", body, &st);
    free(body);
    cr_assert_eq(st, 200);
    json_t *data = json_object_get(j, "data");
    cr_assert_eq(json_array_size(data), n);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(data, i);
        size_t ix = (size_t)json_integer_value(json_object_get(item, "index"));
        json_t *e = json_object_get(item, "embedding");
        cr_assert_eq(json_array_size(e), (size_t)dim);
        for (int k = 0; k < dim; k++)
            ref[ix * (size_t)dim + (size_t)k] = (float)json_number_value(json_array_get(e, k));
    }
    json_decref(j);
}

/* The `input` arrays of the embeddings requests in the server's log, in order. */
static size_t logged_batches(const server *s, size_t *sizes, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/log.jsonl", s->dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[1 << 16];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *p = json_string_value(json_object_get(j, "path"));
        if (p && strcmp(p, "/v1/embeddings") == 0 && n < cap) {
            json_t *in = json_object_get(json_object_get(j, "body"), "input");
            sizes[n++] = json_array_size(in);
        }
        json_decref(j);
    }
    fclose(f);
    return n;
}

/* ---- the encoder ------------------------------------------------------------------- */

typedef struct enc {
    void *inst;
    sb_opts *o;
    const sb_encoder_vtable *vt;
} enc;

static sb_host g_host;
static int g_puts;

static sb_status counting_put(const sb_host *h, const char *key, const void *v, size_t len,
                              sb_error *err)
{
    g_puts++;
    return sbi_test_cache_put(h, key, v, len, err);
}

static const sb_host *host(void)
{
    g_host = *sbi_test_host(7, 1);
    g_host.cache_put = counting_put;
    return &g_host;
}

/* Create an instance from YAML options with base_url set to the server's. */
static sb_status make(enc *e, const server *s, const char *opts, sb_error *err)
{
    const sb_plugin *p = serbench_plugin_v1();
    e->vt = p->vtable;
    e->inst = NULL;
    e->o = NULL;
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "base_url: %s\nmodel: test-embed\n%s",
             s ? s->url : "http://127.0.0.1:9/v1", opts);
    sb_status st = sbi_opts_parse(p->options, yaml, "t.yaml", &e->o, err);
    if (st != SB_OK)
        return st;
    return e->vt->create(host(), e->o, &e->inst, err);
}

static void unmake(enc *e)
{
    if (e->inst)
        e->vt->destroy(e->inst);
    e->inst = NULL;
    sbi_opts_destroy(&e->o);
}

static sb_status encode(enc *e, const char *const *texts, size_t n, float *out, sb_error *err)
{
    return e->vt->encode_text(e->inst, texts, n, out, err);
}

static void check_close(const float *a, const float *ref, size_t n, const char *what)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > worst)
            worst = d, at = i;
    }
    cr_assert(worst <= 1e-6, "%s: max abs error %g at %zu (%g vs %g)", what, worst, at, a[at],
              ref[at]);
}

static double cosine(const float *a, const float *b, int dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static const char *const TEXTS[] = {
    "I am so happy today!",   "happy today", "The train is late again.",
    "Why would you do that?", "Okay.",       "I can't believe it, this is wonderful",
    "the late train, again",  "Oh my God.",
};
#define N_TEXTS (sizeof TEXTS / sizeof TEXTS[0])

/* ---- wire functions ---------------------------------------------------------------- */

Test(embeddings, base64_and_answer_parsing)
{
    unsigned char raw[16];
    cr_assert_eq(emb_base64_decode("AACAPwAAAMA=", 12, raw, sizeof raw), 8);
    float f[2];
    memcpy(f, raw, 8); /* little-endian 1.0f, -2.0f */
    cr_assert(f[0] == 1.0f && f[1] == -2.0f);
    cr_assert_eq(emb_base64_decode("AAC*PwAA", 8, raw, sizeof raw), -1);
    cr_assert_eq(emb_base64_decode("AACAPwAAAMA=", 12, raw, 4), -1);

    float v[6];
    int w;
    char why[256];
    const char *ok = "{\"data\":[{\"index\":1,\"embedding\":[4,5,6]},"
                     "{\"index\":0,\"embedding\":\"AACAPwAAAMAAAEBA\"}]}";
    cr_assert_eq(emb_parse(ok, strlen(ok), 2, 3, v, &w, why, sizeof why), EMB_PARSE_OK, "%s", why);
    cr_assert(v[0] == 1 && v[1] == -2 && v[2] == 3 && v[3] == 4 && v[5] == 6);
    const char *few = "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}";
    cr_assert_eq(emb_parse(few, strlen(few), 2, 3, v, &w, why, sizeof why), EMB_PARSE_MALFORMED);
    cr_assert(strstr(why, "1 embeddings for 2 texts"), "%s", why);
    const char *rep = "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]},"
                      "{\"index\":0,\"embedding\":[1,2,3]}]}";
    cr_assert_eq(emb_parse(rep, strlen(rep), 2, 3, v, &w, why, sizeof why), EMB_PARSE_MALFORMED);
    const char *wide = "{\"data\":[{\"index\":0,\"embedding\":[1,2,3,4]}]}";
    cr_assert_eq(emb_parse(wide, strlen(wide), 1, 3, v, &w, why, sizeof why), EMB_PARSE_WIDTH);
    cr_assert_eq(w, 4);
    const char *cut = "{\"data\":[{\"index\":0,\"embedding\":[1,";
    cr_assert_eq(emb_parse(cut, strlen(cut), 1, 3, v, &w, why, sizeof why), EMB_PARSE_MALFORMED);
    cr_assert(strstr(why, "not JSON"), "%s", why);
    const char *str = "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\",3]}]}";
    cr_assert_eq(emb_parse(str, strlen(str), 1, 3, v, &w, why, sizeof why), EMB_PARSE_MALFORMED);

    char *body = emb_request_body("m", TEXTS, 2, 0, 1);
    cr_assert_str_eq(body, "{\"model\":\"m\",\"input\":[\"I am so happy today!\",\"happy "
                           "today\"],\"encoding_format\":\"base64\"}");
    free(body);
    body = emb_request_body("m", TEXTS, 1, 16, 0);
    cr_assert(strstr(body, "\"dimensions\":16") && strstr(body, "\"float\""), "%s", body);
    free(body);

    char k1[SB_HASH_HEX], k2[SB_HASH_HEX], k3[SB_HASH_HEX], k4[SB_HASH_HEX];
    emb_cache_key("m", 0, 64, "a", k1);
    emb_cache_key("m", 64, 64, "a", k2);
    emb_cache_key("n", 0, 64, "a", k3);
    emb_cache_key("m", 0, 64, "b", k4);
    cr_assert(strcmp(k1, k2) && strcmp(k1, k3) && strcmp(k1, k4));
}

/* ---- against the server ------------------------------------------------------------ */

Test(embeddings, descriptor_info_and_fingerprint)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_ENCODER);
    cr_assert_str_eq(p->name, "embeddings");
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, NULL, "dim: 256\nsend_dimensions: true\n", &err), SB_OK, "%s", err.msg);
    cr_assert_not_null(e.vt->encode_text);
    sb_encoder_info info = { .struct_size = sizeof info };
    cr_assert_eq(e.vt->info(e.inst, &info, &err), SB_OK);
    cr_assert_eq(info.input, SB_INPUT_TEXT);
    cr_assert_eq(info.n_layers, 1);
    cr_assert_eq(info.dim, 256);
    char fp[128];
    cr_assert_eq(e.vt->fingerprint(e.inst, fp, &err), SB_OK);
    cr_assert_str_eq(fp, "test-embed|dimensions=256");
    unmake(&e);
    cr_assert_neq(make(&e, NULL, "send_dimensions: true\n", &err), SB_OK);
    cr_assert(strstr(err.msg, "dim"), "%s", err.msg);
    unmake(&e);
    sb_error_clear(&err);
    cr_assert_neq(make(&e, NULL, "dim: 8\napi_key_env: sk-not-a-name-123\n", &err), SB_OK);
    cr_assert_null(strstr(err.msg, "sk-not-a-name-123"), "%s", err.msg);
    unmake(&e);
}

Test(embeddings, vectors_equal_the_servers_in_batches_and_a_rerun_sends_nothing)
{
    server s;
    server_start(&s, NULL);
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, &s, "dim: 64\nbatch: 3\nconcurrency: 2\n", &err), SB_OK, "%s", err.msg);
    float out[N_TEXTS * 64], ref[N_TEXTS * 64];
    cr_assert_eq(encode(&e, TEXTS, N_TEXTS, out, &err), SB_OK, "%s", err.msg);
    server_vectors(&s, "test-embed", TEXTS, N_TEXTS, 0, ref, 64);
    check_close(out, ref, N_TEXTS * 64, "base64 answers");
    cr_assert_eq(stat_of(&s, "embeddings"), 3 + 1); /* ceil(8/3) + the reference request */
    size_t sizes[16];
    cr_assert_eq(logged_batches(&s, sizes, 16), 4);
    cr_assert(sizes[0] + sizes[1] + sizes[2] == N_TEXTS && sizes[0] <= 3 && sizes[1] <= 3 &&
              sizes[2] <= 3);
    cr_assert_eq(g_puts, (int)N_TEXTS);
    /* texts sharing words are close */
    cr_assert_gt(cosine(out, out + 64, 64), cosine(out, out + 2 * 64, 64) + 0.3);
    cr_assert_gt(cosine(out + 2 * 64, out + 6 * 64, 64), 0.5);
    unmake(&e);

    /* A new instance over the same cache sends nothing; in float encoding the same. */
    cr_assert_eq(make(&e, &s, "dim: 64\nencoding_format: float\n", &err), SB_OK);
    float again[N_TEXTS * 64];
    cr_assert_eq(encode(&e, TEXTS, N_TEXTS, again, &err), SB_OK, "%s", err.msg);
    check_close(again, ref, N_TEXTS * 64, "cached");
    cr_assert_eq(stat_of(&s, "embeddings"), 4, "a cache hit must send no request");
    sbi_test_cache_clear();
    cr_assert_eq(encode(&e, TEXTS, N_TEXTS, again, &err), SB_OK, "%s", err.msg);
    check_close(again, ref, N_TEXTS * 64, "float answers");
    cr_assert_eq(stat_of(&s, "embeddings"), 5);
    unmake(&e);
    server_stop(&s);
}

Test(embeddings, repeated_texts_are_sent_once_and_empty_text_is_sent_as_is)
{
    server s;
    server_start(&s, NULL);
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, &s, "dim: 64\nbatch: 2\n", &err), SB_OK, "%s", err.msg);
    const char *texts[] = { "Okay.", "", "Yeah.", "Okay.", "Yeah.", "Okay.", "fine" };
    const size_t n = sizeof texts / sizeof texts[0];
    float out[7 * 64], ref[7 * 64];
    cr_assert_eq(encode(&e, texts, n, out, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(stat_of(&s, "embedding_inputs"), 4);
    cr_assert_eq(stat_of(&s, "embeddings"), 2);
    server_vectors(&s, "test-embed", texts, n, 0, ref, 64);
    check_close(out, ref, n * 64, "with repeats");
    unmake(&e);
    server_stop(&s);

    /* A server that refuses empty texts: the error names the item. */
    const char *const strict[] = { "--reject-empty-input", NULL };
    server_start(&s, strict);
    sbi_test_cache_clear();
    cr_assert_eq(make(&e, &s, "dim: 64\n", &err), SB_OK, "%s", err.msg);
    cr_assert_eq(encode(&e, texts, n, out, &err), SB_ERR_API);
    cr_assert_str_eq(err.where, "text 1");
    cr_assert(strstr(err.msg, "empty text (text 1)") && strstr(err.msg, "HTTP 400"), "%s", err.msg);
    cr_assert_eq(stat_of(&s, "embeddings"), 1, "a 400 is not retried");
    unmake(&e);
    server_stop(&s);
}

Test(embeddings, dimensions_sent_or_checked)
{
    server s;
    server_start(&s, NULL);
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, &s, "dim: 16\nsend_dimensions: true\n", &err), SB_OK, "%s", err.msg);
    float out[N_TEXTS * 64], ref[N_TEXTS * 64];
    cr_assert_eq(encode(&e, TEXTS, N_TEXTS, out, &err), SB_OK, "%s", err.msg);
    server_vectors(&s, "test-embed", TEXTS, N_TEXTS, 16, ref, 16);
    check_close(out, ref, N_TEXTS * 16, "dimensions 16");
    unmake(&e);

    /* dim 16 without sending it: the server's 64 is an error naming both widths */
    cr_assert_eq(make(&e, &s, "dim: 16\n", &err), SB_OK, "%s", err.msg);
    cr_assert_eq(encode(&e, TEXTS, 2, out, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "width 64") && strstr(err.msg, "dim is 16"), "%s", err.msg);
    cr_assert_str_eq(err.where, "dim");
    unmake(&e);

    /* a server that answers vectors one wider than asked (the wrong_dim fault) */
    sb_error_clear(&err);
    set_faults(&s, "[{\"kind\": \"wrong_dim\"}]");
    cr_assert_eq(make(&e, &s, "dim: 64\n", &err), SB_OK, "%s", err.msg);
    cr_assert_eq(encode(&e, TEXTS + 5, 1, out, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "width 65") && strstr(err.msg, "dim is 64"), "%s", err.msg);
    unmake(&e);
    server_stop(&s);
}

/* Each fault once: the encoder retries and ends with the server's vectors. */
Test(embeddings, every_retryable_fault_recovers, .timeout = 120)
{
    server s;
    server_start(&s, NULL);
    static const struct {
        const char *faults;
        long requests; /* the server sees */
    } cases[] = {
        { "[{\"kind\": \"rate_limit\", \"retry_after_ms\": 30}]", 2 },
        { "[{\"kind\": \"rate_limit\", \"retry_after\": 1}]", 2 },
        { "[{\"kind\": \"server_error\"}]", 2 },
        { "[{\"kind\": \"unavailable\"}]", 2 },
        { "[{\"kind\": \"vllm_error\"}]", 2 },
        { "[{\"kind\": \"timeout\", \"delay_s\": 3}]", 2 },
        { "[{\"kind\": \"drop\", \"count\": 2}]", 3 },
        { "[{\"kind\": \"malformed_json\"}]", 2 },
        { "[{\"kind\": \"wrong_count\"}]", 2 },
        { "[{\"kind\": \"wrong_count\", \"match\": \"train\"}, {\"kind\": \"out_of_schema\"}]", 2 },
    };
    float ref[N_TEXTS * 64];
    server_vectors(&s, "test-embed", TEXTS, N_TEXTS, 0, ref, 64);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sbi_test_cache_clear();
        json_decref(http(&s, "POST", "/_admin/reset", "{}", NULL));
        set_faults(&s, cases[k].faults);
        enc e;
        sb_error err = { 0 };
        cr_assert_eq(make(&e, &s,
                          "dim: 64\nbatch: 8\ntimeout_s: 1\nbackoff_base_s: 0.01\n"
                          "backoff_max_s: 0.05\n",
                          &err),
                     SB_OK, "%s", err.msg);
        float out[N_TEXTS * 64];
        double t0 = oai_now();
        cr_assert_eq(encode(&e, TEXTS, N_TEXTS, out, &err), SB_OK, "%s: %s", cases[k].faults,
                     err.msg);
        double dt = oai_now() - t0;
        check_close(out, ref, N_TEXTS * 64, cases[k].faults);
        cr_assert_eq(stat_of(&s, "embeddings"), cases[k].requests, "%s", cases[k].faults);
        if (strstr(cases[k].faults, "\"retry_after\": 1"))
            cr_assert_geq(dt, 0.95, "Retry-After 1 s was not honoured (%.3f s)", dt);
        unmake(&e);
    }
    server_stop(&s);
}

/* One instance keeps its engine across calls: its connection is reused and the rpm limit
 * holds over calls, not within each; after a failed call the next one starts clean. */
Test(embeddings, calls_share_one_engine_and_a_failed_call_does_not_poison_the_next)
{
    server s;
    server_start(&s, NULL);
    sbi_test_cache_clear();
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, &s, "dim: 64\nbatch: 2\nconcurrency: 1\nrpm: 120\n", &err), SB_OK, "%s",
                 err.msg);
    float ref[N_TEXTS * 64], out[N_TEXTS * 64];
    server_vectors(&s, "test-embed", TEXTS, N_TEXTS, 0, ref, 64);
    long c0 = stat_of(&s, "connections");
    double t0 = oai_now();
    for (size_t i = 0; i < 6; i += 2)
        cr_assert_eq(encode(&e, TEXTS + i, 2, out + i * 64, &err), SB_OK, "%s", err.msg);
    double dt = oai_now() - t0;
    check_close(out, ref, 6 * 64, "three calls");
    /* one connection for the three calls, one for this stats request */
    cr_assert_eq(stat_of(&s, "connections") - c0, 2, "the calls did not share a connection");
    /* 120 rpm holds 2 requests at once and refills one per 0.5 s: the third call waits */
    cr_assert_geq(dt, 0.45, "rpm did not hold across calls (%.3f s for 3 requests)", dt);

    set_faults(&s, "[{\"kind\": \"bad_request\"}]");
    cr_assert_eq(encode(&e, TEXTS + 6, 2, out + 6 * 64, &err), SB_ERR_API);
    cr_assert(strstr(err.msg, "HTTP 400"), "%s", err.msg);
    sb_error err2 = { 0 };
    cr_assert_eq(encode(&e, TEXTS + 6, 2, out + 6 * 64, &err2), SB_OK, "%s", err2.msg);
    check_close(out + 6 * 64, ref + 6 * 64, 2 * 64, "after a failed call");
    unmake(&e);
    server_stop(&s);
}

Test(embeddings, unrecoverable_faults_fail_clearly, .timeout = 120)
{
    server s;
    server_start(&s, NULL);
    static const struct {
        const char *faults;
        const char *words[3]; /* in the message */
        long requests;
        sb_status code;
    } cases[] = {
        { "[{\"kind\": \"bad_request\"}]", { "HTTP 400", "Invalid request", NULL }, 1, SB_ERR_API },
        { "[{\"kind\": \"unauthorized\"}]", { "HTTP 401", "credentials", NULL }, 1, SB_ERR_API },
        { "[{\"kind\": \"insufficient_quota\"}]", { "quota", "not retried", NULL }, 1, SB_ERR_API },
        { "[{\"kind\": \"server_error\", \"count\": 10}]",
          { "HTTP 500", "gave up after 3 attempts", NULL },
          3,
          SB_ERR_NETWORK },
        { "[{\"kind\": \"malformed_json\", \"count\": 10}]",
          { "not an embeddings list", "not JSON", NULL },
          3,
          SB_ERR_NETWORK },
        { "[{\"kind\": \"wrong_count\", \"count\": 10}]",
          { "7 embeddings for 8 texts", NULL, NULL },
          3,
          SB_ERR_NETWORK },
        { "[{\"kind\": \"rate_limit\", \"retry_after\": 300}]",
          { "more than 120 s", NULL, NULL },
          1,
          SB_ERR_NETWORK },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sbi_test_cache_clear();
        json_decref(http(&s, "POST", "/_admin/reset", "{}", NULL));
        set_faults(&s, cases[k].faults);
        enc e;
        sb_error err = { 0 };
        cr_assert_eq(
            make(&e, &s, "dim: 64\nbatch: 8\nmax_retries: 2\nbackoff_base_s: 0.01\n", &err), SB_OK,
            "%s", err.msg);
        float out[N_TEXTS * 64];
        cr_assert_eq(encode(&e, TEXTS, N_TEXTS, out, &err), cases[k].code, "%s: %s",
                     cases[k].faults, err.msg);
        for (int w = 0; w < 3 && cases[k].words[w]; w++)
            cr_assert(strstr(err.msg, cases[k].words[w]), "%s: '%s' not in: %s", cases[k].faults,
                      cases[k].words[w], err.msg);
        cr_assert_eq(stat_of(&s, "embeddings"), cases[k].requests, "%s", cases[k].faults);
        unmake(&e);
    }
    server_stop(&s);
}

#define PLANTED_KEY "sk-planted-SECRET-9f8e7d6c5b4a"

Test(embeddings, the_api_key_is_sent_and_never_in_an_error)
{
    setenv("EMB_TEST_KEY", PLANTED_KEY, 1);
    setenv("EMB_SERVER_KEY", PLANTED_KEY, 1);
    const char *const authed[] = { "--api-key-env", "EMB_SERVER_KEY", NULL };
    server s;
    server_start(&s, authed);
    enc e;
    sb_error err = { 0 };
    cr_assert_eq(make(&e, &s, "dim: 64\napi_key_env: EMB_TEST_KEY\n", &err), SB_OK, "%s", err.msg);
    float out[N_TEXTS * 64];
    cr_assert_eq(encode(&e, TEXTS, 2, out, &err), SB_OK, "%s", err.msg);
    /* an error message that echoes the key (as some servers do) is scrubbed */
    set_faults(&s, "[{\"kind\": \"unauthorized\", \"message\": \"Incorrect API key provided: "
                   "" PLANTED_KEY ".\"}]");
    cr_assert_eq(encode(&e, TEXTS + 2, 2, out, &err), SB_ERR_API);
    cr_assert(strstr(err.msg, "Incorrect API key provided: ***"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "SECRET"), "%s", err.msg);
    cr_assert_null(strstr(err.where, "SECRET"), "%s", err.where);
    cr_assert(strstr(err.msg, "EMB_TEST_KEY"), "the message names the variable: %s", err.msg);
    unmake(&e);

    /* a wrong key: 401 with the server's own message */
    setenv("EMB_TEST_KEY", "sk-wrong-key-0000", 1);
    sb_error_clear(&err);
    cr_assert_eq(make(&e, &s, "dim: 64\napi_key_env: EMB_TEST_KEY\n", &err), SB_OK);
    cr_assert_eq(encode(&e, TEXTS + 4, 2, out, &err), SB_ERR_API);
    cr_assert(strstr(err.msg, "HTTP 401"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "sk-wrong-key"), "%s", err.msg);
    unmake(&e);

    /* an unset variable fails only when a request is needed, naming the variable */
    unsetenv("EMB_TEST_KEY");
    sb_error_clear(&err);
    cr_assert_eq(make(&e, &s, "dim: 64\napi_key_env: EMB_TEST_KEY\n", &err), SB_OK);
    cr_assert_eq(encode(&e, TEXTS, 2, out, &err), SB_OK, "cached: %s", err.msg);
    cr_assert_eq(encode(&e, TEXTS + 6, 2, out, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "EMB_TEST_KEY") && strstr(err.msg, "not set"), "%s", err.msg);
    unmake(&e);
    server_stop(&s);
}

Test(embeddings, normalize_applies_to_cached_vectors)
{
    enc e;
    sb_error err = { 0 };
    /* no server: everything comes from the cache */
    float v[4] = { 3, 0, 4, 0 };
    char key[SB_HASH_HEX];
    emb_cache_key("test-embed", 0, 4, "hello", key);
    cr_assert_eq(sbi_test_cache_put(sbi_test_host(7, 1), key, v, sizeof v, &err), SB_OK);
    const char *t[] = { "hello" };
    float out[4];
    cr_assert_eq(make(&e, NULL, "dim: 4\n", &err), SB_OK, "%s", err.msg);
    cr_assert_eq(encode(&e, t, 1, out, &err), SB_OK, "%s", err.msg);
    cr_assert(fabsf(out[0] - 0.6f) < 1e-7f && fabsf(out[2] - 0.8f) < 1e-7f);
    unmake(&e);
    cr_assert_eq(make(&e, NULL, "dim: 4\nnormalize: false\n", &err), SB_OK, "%s", err.msg);
    cr_assert_eq(encode(&e, t, 1, out, &err), SB_OK, "%s", err.msg);
    cr_assert(out[0] == 3 && out[2] == 4);
    unmake(&e);
}
