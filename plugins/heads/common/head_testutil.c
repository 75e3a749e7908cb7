/* plugins/heads/common/head_testutil.c — see head_testutil.h. */
#include "head_testutil.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

ht_capture ht_cap = { .cancel_after = -1 };

static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (level == SB_LOG_INFO)
        snprintf(ht_cap.info, sizeof ht_cap.info, "%s", line);
    if (level == SB_LOG_WARN)
        snprintf(ht_cap.warn, sizeof ht_cap.warn, "%s", line);
    if (level <= SB_LOG_INFO && getenv("HT_TEST_LOG")) /* to watch a test train */
        fprintf(stderr, "%s\n", line);
    if (level != SB_LOG_DEBUG || strncmp(line, "epoch ", 6) != 0 || ht_cap.n >= HT_MAX_EPOCHS)
        return;
    double dev = NAN;
    const char *d = strstr(line, ", dev ");
    if (d) {
        const char *sp = strchr(d + 6, ' ');
        if (sp)
            dev = strtod(sp + 1, NULL);
    }
    ht_cap.dev[ht_cap.n] = dev;
    ht_cap.best[ht_cap.n] = strstr(line, "(best)") != NULL;
    ht_cap.n++;
}

static void cap_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    (void)done;
    (void)total;
}

static int cap_cancelled(const sb_host *h)
{
    (void)h;
    return ht_cap.cancel_after >= 0 && ht_cap.cancel_calls++ >= ht_cap.cancel_after;
}

sb_host ht_host = {
    .struct_size = sizeof(sb_host),
    .log = cap_log,
    .progress = cap_progress,
    .cancelled = cap_cancelled,
    .cache_dir = "/tmp",
    .seed = 1,
    .threads = 1,
};

const sb_head_data ht_empty = { .struct_size = sizeof(sb_head_data) };

void ht_reset(uint64_t seed)
{
    memset(&ht_cap, 0, sizeof ht_cap);
    ht_cap.cancel_after = -1;
    ht_host.seed = seed;
}

ht_split ht_alloc_split(size_t n, int L, int D, int K)
{
    ht_split s;
    memset(&s, 0, sizeof s);
    s.x = calloc((n ? n : 1) * (size_t)L * (size_t)D, sizeof(float));
    s.y = calloc(n ? n : 1, sizeof(int32_t));
    s.d.struct_size = sizeof s.d;
    s.d.n = n;
    s.d.n_layers = L;
    s.d.dim = D;
    s.d.x = s.x;
    s.d.n_classes = K;
    s.d.y = s.y;
    if (K == 0) {
        s.value = calloc(n ? n : 1, sizeof(double));
        s.d.value = s.value;
        for (size_t i = 0; i < n; i++)
            s.y[i] = -1;
    }
    cr_assert(s.x && s.y && (K > 0 || s.value), "out of memory");
    return s;
}

ht_split ht_make_blobs(size_t n, int L, int D, int K, int info, double sep, uint64_t mseed,
                       uint64_t seed)
{
    ht_split s = ht_alloc_split(n, L, D, K);
    sb_rng r, rm;
    sb_rng_seed(&rm, mseed, 99);
    double *mu = malloc(sizeof(double) * (size_t)K * (size_t)D);
    for (int i = 0; i < K * D; i++)
        mu[i] = sep * sb_rng_normal(&rm);
    sb_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++) {
        int y = (int)sb_rng_below(&r, (uint64_t)K);
        s.y[i] = y;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                double v = sb_rng_normal(&r) * (1.0 + l) + 3.0 * l;
                if (l == info)
                    v += mu[y * D + d];
                s.x[(i * (size_t)L + (size_t)l) * (size_t)D + (size_t)d] = (float)v;
            }
    }
    free(mu);
    return s;
}

ht_split ht_make_regression(size_t n, int L, int D, int info, int nonlinear, double noise,
                            uint64_t seed)
{
    cr_assert(D >= 2 && info < L);
    ht_split s = ht_alloc_split(n, L, D, 0);
    sb_rng r;
    sb_rng_seed(&r, seed, 13);
    for (size_t i = 0; i < n; i++) {
        float *x_i = s.x + i * (size_t)L * (size_t)D;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++)
                x_i[l * D + d] = (float)(sb_rng_normal(&r) * (1.0 + l) + 3.0 * l);
        /* the informative layer's first two features, standardised back */
        double z0 = (x_i[info * D] - 3.0 * info) / (1.0 + info);
        double z1 = (x_i[info * D + 1] - 3.0 * info) / (1.0 + info);
        double f = nonlinear ? 2.0 * fabs(z0) - 1.0 + sin(2.0 * z1) : 1.5 * z0 - z1 + 0.5;
        s.value[i] = f + noise * sb_rng_normal(&r);
    }
    return s;
}

void ht_free_split(ht_split *s)
{
    free(s->x);
    free(s->y);
    free(s->value);
    memset(s, 0, sizeof *s);
}

double ht_value_sd(const ht_split *s)
{
    double m = 0.0, ss = 0.0;
    for (size_t i = 0; i < s->d.n; i++)
        m += s->value[i];
    m /= (double)s->d.n;
    for (size_t i = 0; i < s->d.n; i++)
        ss += (s->value[i] - m) * (s->value[i] - m);
    return sqrt(ss / (double)s->d.n);
}

sb_opts *ht_opts(const sb_option *table, const char *yaml)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(table, yaml, "test-head", &o, &err), SB_OK, "options '%s': %s",
                 yaml, err.msg);
    return o;
}

void *ht_create(const sb_head_vtable *vt, const sb_host *host, sb_opts *o, int L, int D, int K)
{
    void *inst = NULL;
    sb_error err = { 0 };
    cr_assert_eq(vt->create(host, o, L, D, K, &inst, &err), SB_OK, "create: %s", err.msg);
    return inst;
}

void ht_train(const sb_head_vtable *vt, void *inst, const sb_head_data *tr, const sb_head_data *dv)
{
    sb_error err = { 0 };
    sb_status st = vt->train(inst, tr, dv, &err);
    cr_assert_eq(st, SB_OK, "train: %s: %s", err.where, err.msg);
}

float *ht_predict(const sb_head_vtable *vt, void *inst, const sb_head_data *d, int width)
{
    float *p = malloc(sizeof(float) * (d->n ? d->n : 1) * (size_t)width);
    sb_error err = { 0 };
    cr_assert_eq(vt->predict(inst, d, p, &err), SB_OK, "predict: %s", err.msg);
    return p;
}

double ht_accuracy(const float *probs, const int32_t *y, size_t n, int K)
{
    size_t ok = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0)
            continue;
        m++;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (probs[i * (size_t)K + (size_t)k] > probs[i * (size_t)K + (size_t)best])
                best = k;
        ok += best == y[i];
    }
    return (double)ok / (double)m;
}

double ht_mae(const float *pred, const double *value, size_t n)
{
    double s = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(value[i])) {
            s += fabs(pred[i] - value[i]);
            m++;
        }
    return s / (double)m;
}

void ht_save(const sb_head_vtable *vt, void *inst, const char *path)
{
    sb_st_writer *w = sb_st_writer_create();
    cr_assert_not_null(w);
    sb_error err = { 0 };
    cr_assert_eq(vt->save(inst, w, &err), SB_OK, "save: %s", err.msg);
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK, "commit: %s", err.msg);
    sb_st_writer_destroy(&w);
}

sb_status ht_load(const sb_head_vtable *vt, void *inst, const char *path, const char *parts,
                  int new_output, int n_classes, sb_error *err)
{
    sb_st_file *f = NULL;
    cr_assert_eq(sb_st_open(path, &f, err), SB_OK, "open %s: %s", path, err->msg);
    sb_head_init init = {
        .struct_size = sizeof init, .parts = parts, .new_output = new_output, .n_classes = n_classes
    };
    sb_status st = vt->load(inst, f, &init, err);
    sb_st_close(&f);
    return st;
}

const char *ht_tmp_path(const char *tag)
{
    static char path[512];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/sb-head-%s-%ld.safetensors", dir && *dir ? dir : "/tmp", tag,
             (long)getpid());
    return path;
}

/* ---- shared test bodies ------------------------------------------------------------------ */

void ht_test_checkpoint_round_trip(const sb_head_vtable *vt, const sb_option *table,
                                   const char *yaml)
{
    enum { L = 3, D = 6 };
    const int Ks[2] = { 4, 0 };
    for (int c = 0; c < 2; c++) {
        int K = Ks[c], W = K ? K : 1;
        ht_split tr = K ? ht_make_blobs(200, L, D, K, 1, 1.5, 1, 1)
                        : ht_make_regression(200, L, D, 1, 0, 0.1, 1);
        ht_split te = K ? ht_make_blobs(60, L, D, K, 1, 1.5, 1, 2)
                        : ht_make_regression(60, L, D, 1, 0, 0.1, 2);
        sb_opts *o = ht_opts(table, yaml);
        ht_reset(5);
        void *a = ht_create(vt, &ht_host, o, L, D, K);
        ht_train(vt, a, &tr.d, &ht_empty);
        float *pa = ht_predict(vt, a, &te.d, W);
        const char *path = ht_tmp_path("roundtrip");
        ht_save(vt, a, path);
        /* a fresh instance under another seed: nothing of it may survive the load */
        ht_reset(99);
        void *b = ht_create(vt, &ht_host, o, L, D, K);
        sb_error err = { 0 };
        cr_assert_eq(ht_load(vt, b, path, "all", 0, K, &err), SB_OK, "load: %s", err.msg);
        float *pb = ht_predict(vt, b, &te.d, W);
        cr_assert(memcmp(pa, pb, sizeof(float) * te.d.n * (size_t)W) == 0,
                  "K=%d: the loaded model predicts otherwise", K);
        /* NULL init means "all" with the output kept */
        void *c2 = ht_create(vt, &ht_host, o, L, D, K);
        sb_st_file *f = NULL;
        cr_assert_eq(sb_st_open(path, &f, &err), SB_OK, "%s", err.msg);
        cr_assert_eq(vt->load(c2, f, NULL, &err), SB_OK, "load with NULL init: %s", err.msg);
        sb_st_close(&f);
        float *pc = ht_predict(vt, c2, &te.d, W);
        cr_assert(memcmp(pa, pc, sizeof(float) * te.d.n * (size_t)W) == 0);
        unlink(path);
        free(pa);
        free(pb);
        free(pc);
        vt->destroy(a);
        vt->destroy(b);
        vt->destroy(c2);
        sbi_opts_destroy(&o);
        ht_free_split(&tr);
        ht_free_split(&te);
    }
}

void ht_test_fine_tune(const sb_head_vtable *vt, const sb_option *table, const char *yaml)
{
    enum { L = 3, D = 8 };
    /* the same informative layer and feature scales, another label set */
    ht_split tr4 = ht_make_blobs(400, L, D, 4, 0, 2.0, 1, 1);
    ht_split tr3 = ht_make_blobs(300, L, D, 3, 0, 2.0, 7, 2);
    ht_split dv3 = ht_make_blobs(100, L, D, 3, 0, 2.0, 7, 3);
    ht_split te3 = ht_make_blobs(300, L, D, 3, 0, 2.0, 7, 4);
    /* shift the fine-tuning data: recomputed statistics would differ from the loaded ones */
    for (size_t i = 0; i < tr3.d.n * L * D; i++)
        tr3.x[i] += 0.25f;
    for (size_t i = 0; i < dv3.d.n * L * D; i++)
        dv3.x[i] += 0.25f;
    for (size_t i = 0; i < te3.d.n * L * D; i++)
        te3.x[i] += 0.25f;
    sb_opts *o = ht_opts(table, yaml);
    ht_reset(3);
    void *a = ht_create(vt, &ht_host, o, L, D, 4);
    ht_train(vt, a, &tr4.d, &ht_empty);
    char path[512], path_b[512];
    snprintf(path, sizeof path, "%s", ht_tmp_path("finetune"));
    snprintf(path_b, sizeof path_b, "%s", ht_tmp_path("finetune-b"));
    ht_save(vt, a, path);

    void *b = ht_create(vt, &ht_host, o, L, D, 3);
    sb_error err = { 0 };
    cr_assert_eq(ht_load(vt, b, path, "all", 0, 4, &err), SB_ERR_CONFIG,
                 "another class count loaded without new_output");
    cr_assert(strstr(err.msg, "n_classes is 4 in the checkpoint but 3 here"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, path, "all", 1, 4, &err), SB_OK, "load: %s", err.msg);
    float probs[3 * 8];
    sb_error_clear(&err);
    cr_assert_eq(vt->predict(b, &te3.d, probs, &err), SB_ERR_INVALID,
                 "a new output layer predicted before train");
    ht_train(vt, b, &tr3.d, &dv3.d);
    cr_assert(strstr(ht_cap.info, "from a checkpoint"), "summary: %s", ht_cap.info);
    float *p = ht_predict(vt, b, &te3.d, 3);
    double acc = ht_accuracy(p, te3.y, te3.d.n, 3);
    cr_log_info("fine-tuned 4 -> 3 classes: test accuracy %.3f", acc);
    cr_assert_gt(acc, 0.85, "fine-tuned accuracy %.3f", acc);
    /* the statistics are the checkpoint's: saving b gives a's mu and inv_sd */
    ht_save(vt, b, path_b);
    sb_st_file *fa = NULL, *fb = NULL;
    cr_assert_eq(sb_st_open(path, &fa, &err), SB_OK);
    cr_assert_eq(sb_st_open(path_b, &fb, &err), SB_OK);
    const char *names[2] = { "mu", "inv_sd" };
    for (int i = 0; i < 2; i++) {
        const sb_st_tensor *ta = sb_st_find(fa, names[i]), *tb = sb_st_find(fb, names[i]);
        cr_assert(ta && tb && ta->nbytes == tb->nbytes);
        cr_assert(memcmp(ta->data, tb->data, ta->nbytes) == 0,
                  "%s was recomputed from the fine-tuning split", names[i]);
    }
    const sb_st_tensor *wb = sb_st_find(fb, "W");
    cr_assert(wb && wb->shape[0] == 3, "the new output layer has 3 rows");
    sb_st_close(&fa);
    sb_st_close(&fb);
    unlink(path);
    unlink(path_b);
    free(p);
    vt->destroy(a);
    vt->destroy(b);
    sbi_opts_destroy(&o);
    ht_free_split(&tr4);
    ht_free_split(&tr3);
    ht_free_split(&dv3);
    ht_free_split(&te3);
}

/* Writes a file with the tensors of `src` except `drop`, and `reshape` as a (2,2) tensor. */
static void write_altered(const char *src, const char *dst, const char *drop, const char *reshape,
                          int keep_config)
{
    sb_st_file *f = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sb_st_open(src, &f, &err), SB_OK, "%s", err.msg);
    sb_st_writer *w = sb_st_writer_create();
    for (size_t i = 0; i < sb_st_count(f); i++) {
        const sb_st_tensor *t = sb_st_at(f, i);
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        if (reshape && strcmp(t->name, reshape) == 0) {
            const float four[4] = { 1, 2, 3, 4 };
            const int64_t shape[2] = { 2, 2 };
            cr_assert_eq(sb_st_writer_add(w, t->name, SB_DT_F32, 2, shape, four, &err), SB_OK);
            continue;
        }
        cr_assert_eq(sb_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err),
                     SB_OK, "%s", err.msg);
    }
    if (keep_config)
        cr_assert_eq(sb_st_writer_meta(w, "head_config", sb_st_metadata(f, "head_config"), &err),
                     SB_OK);
    cr_assert_eq(sb_st_writer_commit(w, dst, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    sb_st_close(&f);
}

void ht_test_checkpoint_errors(const sb_head_vtable *vt, const sb_option *table, const char *yaml)
{
    enum { L = 2, D = 5, K = 3 };
    ht_split tr = ht_make_blobs(60, L, D, K, 0, 1.0, 1, 1);
    sb_opts *o = ht_opts(table, yaml);
    ht_reset(1);
    void *a = ht_create(vt, &ht_host, o, L, D, K);
    sb_st_writer *w0 = sb_st_writer_create();
    sb_error err = { 0 };
    cr_assert_eq(vt->save(a, w0, &err), SB_ERR_INVALID, "save before train");
    sb_st_writer_destroy(&w0);
    ht_train(vt, a, &tr.d, &ht_empty);
    char path[512];
    snprintf(path, sizeof path, "%s", ht_tmp_path("errors"));
    ht_save(vt, a, path);

    /* another feature width: the first difference, both values */
    void *b = ht_create(vt, &ht_host, o, L, D + 1, K);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, path, "all", 0, K, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "dim is 5 in the checkpoint but 6 here"), "%s", err.msg);
    vt->destroy(b);
    b = ht_create(vt, &ht_host, o, L + 1, D, K);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, path, "all", 1, K, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "n_layers is 2 in the checkpoint but 3 here"), "%s", err.msg);
    vt->destroy(b);

    b = ht_create(vt, &ht_host, o, L, D, K);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, path, "stage1", 0, K, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "stage1") && strstr(err.msg, "\"all\""), "%s", err.msg);

    char bad[512];
    snprintf(bad, sizeof bad, "%s", ht_tmp_path("errors-bad"));
    write_altered(path, bad, "mu", NULL, 1);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, bad, "all", 0, K, &err), SB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "no tensor mu"), "%s", err.msg);
    write_altered(path, bad, NULL, "W", 1);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, bad, "all", 0, K, &err), SB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "tensor W has shape [2, 2], expected [3, "), "%s", err.msg);
    /* with new_output the output layer is not read: a bad W does not matter */
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, bad, "all", 1, K, &err), SB_OK, "%s", err.msg);
    vt->destroy(b);
    b = ht_create(vt, &ht_host, o, L, D, K);
    write_altered(path, bad, NULL, NULL, 0);
    sb_error_clear(&err);
    cr_assert_eq(ht_load(vt, b, bad, "all", 0, K, &err), SB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "head_config"), "%s", err.msg);
    /* the failed loads left b untouched: still untrained */
    float probs[K * 60];
    sb_error_clear(&err);
    cr_assert_eq(vt->predict(b, &tr.d, probs, &err), SB_ERR_INVALID);
    unlink(path);
    unlink(bad);
    vt->destroy(a);
    vt->destroy(b);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
}

void ht_test_inputs(const sb_head_vtable *vt, const sb_option *table, const char *yaml,
                    const char *head)
{
    enum { L = 2, D = 4, K = 2 };
    ht_split tr = ht_make_blobs(40, L, D, K, 0, 1.0, 1, 1);
    sb_head_input in[2] = {
        { .name = "wavlm", .modality = SB_INPUT_AUDIO, .n_layers = L, .dim = D, .x = tr.x },
        { .name = "tfidf", .modality = SB_INPUT_TEXT, .n_layers = 1, .dim = 7, .x = NULL },
    };
    tr.d.inputs = in;
    tr.d.n_inputs = 2;
    sb_opts *o = ht_opts(table, yaml);
    ht_reset(1);
    void *a = ht_create(vt, &ht_host, o, L, D, K);
    sb_error err = { 0 };
    cr_assert_eq(vt->train(a, &tr.d, &ht_empty, &err), SB_ERR_CONFIG);
    char want[160];
    snprintf(want, sizeof want,
             "the %s head reads one encoder; experiment.encoder lists 2 (wavlm, tfidf): use the "
             "hierarchical head to fuse them, or list one",
             head);
    cr_assert_str_eq(err.msg, want);
    tr.d.n_inputs = 1;
    ht_train(vt, a, &tr.d, &ht_empty);
    /* the dev split is held to the same rule */
    ht_split dv = ht_make_blobs(20, L, D, K, 0, 1.0, 1, 2);
    dv.d.inputs = in;
    dv.d.n_inputs = 2;
    sb_error_clear(&err);
    cr_assert_eq(vt->train(a, &tr.d, &dv.d, &err), SB_ERR_CONFIG, "train with a 2-input dev split");
    cr_assert_str_eq(err.msg, want);
    ht_free_split(&dv);
    tr.d.n_inputs = 2;
    float probs[K * 40];
    sb_error_clear(&err);
    cr_assert_eq(vt->predict(a, &tr.d, probs, &err), SB_ERR_CONFIG, "predict with 2 inputs");
    /* an ABI 1.1 host's struct ends before n_inputs: whatever follows is not read */
    tr.d.struct_size = (uint32_t)offsetof(sb_head_data, speaker);
    ht_train(vt, a, &tr.d, &ht_empty);
    vt->destroy(a);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
}

void ht_test_cancel(const sb_head_vtable *vt, const sb_option *table, const char *yaml)
{
    ht_split tr = ht_make_blobs(100, 2, 4, 3, 0, 1.0, 1, 1);
    sb_opts *o = ht_opts(table, yaml);
    ht_reset(1);
    void *a = ht_create(vt, &ht_host, o, 2, 4, 3);
    ht_cap.cancel_after = 5;
    sb_error err = { 0 };
    cr_assert_eq(vt->train(a, &tr.d, &ht_empty, &err), SB_ERR_CANCELLED, "%s", err.msg);
    cr_assert_eq(ht_cap.cancel_calls, 6);
    float probs[300];
    sb_error_clear(&err);
    cr_assert_eq(vt->predict(a, &tr.d, probs, &err), SB_ERR_INVALID, "cancelled, yet trained");
    vt->destroy(a);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
}

/* The dev score of the one epoch trained, as logged (%.5f), against `metric` recomputed from
 * the predictions of the model it leaves (MAE for a regression task). */
static void check_dev_metric(const sb_head_vtable *vt, const sb_option *table, const char *yaml,
                             const char *metric, int K, const ht_split *tr, const ht_split *dv)
{
    char y[256];
    snprintf(y, sizeof y, "%s\nepochs: 1\nmetric: %s", yaml, metric);
    sb_opts *o = ht_opts(table, y);
    ht_reset(3);
    void *a = ht_create(vt, &ht_host, o, tr->d.n_layers, tr->d.dim, K);
    ht_train(vt, a, &tr->d, &dv->d);
    cr_assert_eq(ht_cap.n, 1);
    size_t n = dv->d.n;
    float *p = ht_predict(vt, a, &dv->d, K ? K : 1);
    double want;
    if (K == 0) {
        want = ht_mae(p, dv->value, n);
    } else if (strcmp(metric, "wa") == 0) {
        want = ht_accuracy(p, dv->y, n, K);
    } else { /* ua: the mean recall of the classes present */
        double hit[16] = { 0 }, cnt[16] = { 0 }, sum = 0.0;
        int present = 0;
        for (size_t i = 0; i < n; i++) {
            const float *pi = p + i * (size_t)K;
            int best = 0;
            for (int k = 1; k < K; k++)
                best = pi[k] > pi[best] ? k : best;
            cnt[dv->y[i]] += 1.0;
            hit[dv->y[i]] += best == dv->y[i];
        }
        for (int k = 0; k < K; k++)
            if (cnt[k] > 0.0) {
                sum += hit[k] / cnt[k];
                present++;
            }
        want = sum / present;
    }
    cr_assert(fabs(ht_cap.dev[0] - want) <= 6e-6,
              "metric %s (K %d): dev logged %.6f, predictions give %.6f", metric, K, ht_cap.dev[0],
              want);
    free(p);
    vt->destroy(a);
    sbi_opts_destroy(&o);
}

void ht_test_dev_metric(const sb_head_vtable *vt, const sb_option *table, const char *yaml)
{
    enum { L = 2, D = 4, K = 3 };
    ht_split tr = ht_make_blobs(90, L, D, K, 1, 0.6, 5, 1);
    ht_split dv = ht_make_blobs(200, L, D, K, 1, 0.6, 5, 2);
    check_dev_metric(vt, table, yaml, "ua", K, &tr, &dv);
    check_dev_metric(vt, table, yaml, "wa", K, &tr, &dv);
    ht_free_split(&tr);
    ht_free_split(&dv);
    tr = ht_make_regression(90, L, D, 1, 0, 0.2, 1);
    dv = ht_make_regression(60, L, D, 1, 0, 0.2, 2);
    char mse[256]; /* an MSE loss, so that dev MAE is not the training loss */
    snprintf(mse, sizeof mse, "%s\nloss: mse", yaml);
    check_dev_metric(vt, table, mse, "ua", 0, &tr, &dv);
    ht_free_split(&tr);
    ht_free_split(&dv);
}
