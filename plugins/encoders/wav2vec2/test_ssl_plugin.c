/* plugins/encoders/wav2vec2/test_ssl_plugin.c — one SSL encoder plugin as the host sees it
 * (built once per plugin with -DSB_SSL_PLUGIN=path -DSB_SSL_NAME=name -DSB_SSL_TYPE=
 * model_type): descriptor and options, model_type check, layer selection, pooling against
 * sb_ssl_forward run directly, max_seconds truncation (logged), fingerprint, bad audio. A
 * tiny random checkpoint of the plugin's family is written here with sb_st_writer. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#if !defined(SB_SSL_PLUGIN) || !defined(SB_SSL_NAME) || !defined(SB_SSL_TYPE)
#error "build with -DSB_SSL_PLUGIN=path -DSB_SSL_NAME=name -DSB_SSL_TYPE=model_type"
#endif

static void *handle;
static const sb_plugin *desc;
static const sb_encoder_vtable *vt;
static char dir[512];

static void load(void)
{
    handle = dlopen(SB_SSL_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    cr_assert(handle, "dlopen [%s]: %s", SB_SSL_PLUGIN, dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(handle, SB_PLUGIN_ENTRY_NAME);
    cr_assert(entry, "no [%s] in [%s]", SB_PLUGIN_ENTRY_NAME, SB_SSL_PLUGIN);
    desc = entry();
    vt = desc->vtable;
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sb-sslplug-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void unload(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (strstr(dir, "sb-sslplug-"))
        cr_expect_eq(system(cmd), 0);
    if (handle)
        dlclose(handle);
}

TestSuite(ssl_plugin, .init = load, .fini = unload);

/* ---- a tiny checkpoint of any family: 2 conv layers, H 8, 2 heads, FF 16 ------------- */

static sb_st_writer *W;
static uint32_t rng = 5;

static void put(const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    const int64_t shape[3] = { d0, d1, d2 };
    int64_t n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) {
        rng = rng * 1664525u + 1013904223u;
        v[i] = (float)((double)(rng >> 8) / 16777216.0 - 0.5);
    }
    sb_error err = { 0 };
    cr_assert_eq(sb_st_writer_add(W, name, SB_DT_F32, ndim, shape, v, &err), SB_OK, "%s", err.msg);
    free(v);
}

/* Writes dir/name/{config.json, model.safetensors}; returns the folder. */
static const char *tiny(const char *name, const char *type, int layers)
{
    static char path[4][700];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 700, "%s/%s", dir, name);
    mkdir(p, 0755);
    const int d2v = !strcmp(type, "data2vec-audio"), wavlm = !strcmp(type, "wavlm");
    char f[800];
    snprintf(f, sizeof f, "%s/config.json", p);
    FILE *fp = fopen(f, "w");
    fprintf(fp,
            "{\"model_type\": \"%s\", \"conv_dim\": [4, 6], \"conv_kernel\": [10, 3], "
            "\"conv_stride\": [5, 2], \"feat_extract_norm\": \"group\", \"hidden_size\": 8, "
            "\"num_hidden_layers\": %d, \"num_attention_heads\": 2, \"intermediate_size\": 16, "
            "\"num_conv_pos_embeddings\": %d, \"conv_pos_kernel_size\": 3, "
            "\"num_conv_pos_embedding_groups\": 2}",
            type, layers, d2v ? 2 : 4);
    fclose(fp);
    W = sb_st_writer_create();
    put("feature_extractor.conv_layers.0.conv.weight", 3, 4, 1, 10);
    put("feature_extractor.conv_layers.0.layer_norm.weight", 1, 4, 0, 0);
    put("feature_extractor.conv_layers.0.layer_norm.bias", 1, 4, 0, 0);
    put("feature_extractor.conv_layers.1.conv.weight", 3, 6, 4, 3);
    if (d2v) {
        put("feature_extractor.conv_layers.1.layer_norm.weight", 1, 6, 0, 0);
        put("feature_extractor.conv_layers.1.layer_norm.bias", 1, 6, 0, 0);
        for (int l = 0; l < 2; l++) {
            char n[96];
            snprintf(n, sizeof n, "encoder.pos_conv_embed.layers.%d.conv.weight", l);
            put(n, 3, 8, 4, 3);
            snprintf(n, sizeof n, "encoder.pos_conv_embed.layers.%d.conv.bias", l);
            put(n, 1, 8, 0, 0);
        }
    } else {
        put("encoder.pos_conv_embed.conv.weight_g", 3, 1, 1, 4);
        put("encoder.pos_conv_embed.conv.weight_v", 3, 8, 4, 4);
        put("encoder.pos_conv_embed.conv.bias", 1, 8, 0, 0);
    }
    put("feature_projection.layer_norm.weight", 1, 6, 0, 0);
    put("feature_projection.layer_norm.bias", 1, 6, 0, 0);
    put("feature_projection.projection.weight", 2, 8, 6, 0);
    put("feature_projection.projection.bias", 1, 8, 0, 0);
    put("encoder.layer_norm.weight", 1, 8, 0, 0);
    put("encoder.layer_norm.bias", 1, 8, 0, 0);
    static const struct {
        const char *n;
        int nd;
        int64_t a, b;
    } per[] = {
        { "attention.q_proj.weight", 2, 8, 8 },
        { "attention.q_proj.bias", 1, 8, 0 },
        { "attention.k_proj.weight", 2, 8, 8 },
        { "attention.k_proj.bias", 1, 8, 0 },
        { "attention.v_proj.weight", 2, 8, 8 },
        { "attention.v_proj.bias", 1, 8, 0 },
        { "attention.out_proj.weight", 2, 8, 8 },
        { "attention.out_proj.bias", 1, 8, 0 },
        { "layer_norm.weight", 1, 8, 0 },
        { "layer_norm.bias", 1, 8, 0 },
        { "feed_forward.intermediate_dense.weight", 2, 16, 8 },
        { "feed_forward.intermediate_dense.bias", 1, 16, 0 },
        { "feed_forward.output_dense.weight", 2, 8, 16 },
        { "feed_forward.output_dense.bias", 1, 8, 0 },
        { "final_layer_norm.weight", 1, 8, 0 },
        { "final_layer_norm.bias", 1, 8, 0 },
        { "attention.gru_rel_pos_linear.weight", 2, 8, 4 },
        { "attention.gru_rel_pos_linear.bias", 1, 8, 0 },
    };
    for (int l = 0; l < layers; l++)
        for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
            if (!wavlm && strstr(per[i].n, "gru"))
                continue;
            char n[128];
            snprintf(n, sizeof n, "encoder.layers.%d.%s", l, per[i].n);
            put(n, per[i].nd, per[i].a, per[i].b, 0);
        }
    if (wavlm) {
        put("encoder.layers.0.attention.rel_attn_embed.weight", 2, 320, 2, 0);
        for (int l = 0; l < layers; l++) {
            char n[128];
            const int64_t shape[4] = { 1, 2, 1, 1 };
            const float c[2] = { 0.8f, 1.4f };
            snprintf(n, sizeof n, "encoder.layers.%d.attention.gru_rel_pos_const", l);
            cr_assert_eq(sb_st_writer_add(W, n, SB_DT_F32, 4, shape, c, NULL), SB_OK);
        }
    }
    snprintf(f, sizeof f, "%s/model.safetensors", p);
    sb_error err = { 0 };
    cr_assert_eq(sb_st_writer_commit(W, f, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&W);
    return p;
}

/* ---- host-side helpers ---------------------------------------------------------------- */

static char logged[4096];

static void capture_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void capture_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    size_t len = strlen(logged);
    if (level > SB_LOG_WARN || len + 2 >= sizeof logged)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(logged + len, sizeof logged - len - 1, fmt, ap);
    va_end(ap);
    strcat(logged, "\n");
}

static sb_host host;

static sb_status create(const char *yaml, sb_opts **o, void **inst, sb_error *err)
{
    host = *sbi_test_host(1, 1);
    host.log = capture_log;
    *o = NULL;
    *inst = NULL;
    sb_status st = sbi_opts_parse(desc->options, yaml, "test.yaml", o, err);
    if (st)
        return st;
    return vt->create(&host, *o, inst, err);
}

static void *make(const char *yaml, sb_opts **o)
{
    sb_error err = { 0 };
    void *inst = NULL;
    cr_assert_eq(create(yaml, o, &inst, &err), SB_OK, "%s: %s: %s", yaml, err.where, err.msg);
    return inst;
}

static char yaml[2048];

static const char *cfg(const char *ckpt, const char *more)
{
    snprintf(yaml, sizeof yaml, "checkpoint: %s\n%s", ckpt, more);
    return yaml;
}

static float *signal(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.3 * sin(0.013 * (double)i) + 0.05 * sin(1.7 * (double)i));
    return x;
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(ssl_plugin, descriptor)
{
    cr_expect_eq(desc->abi_minor, SB_ABI_MINOR);
    cr_expect_eq(desc->struct_size, sizeof(sb_plugin));
    cr_expect_eq(desc->kind, SB_KIND_ENCODER);
    cr_expect_str_eq(desc->name, SB_SSL_NAME);
    cr_expect(desc->summary && *desc->summary);
    cr_expect(vt->create && vt->info && vt->encode && vt->destroy && vt->fingerprint);
    cr_expect_geq(vt->struct_size, offsetof(sb_encoder_vtable, frames) + sizeof vt->frames);
    cr_expect(vt->frames);
    cr_expect_null(dlsym(handle, "ssl_encoder_create"), "only the entry point is exported");
    const char *names[] = { "checkpoint", "layers", "pool", "normalize", "max_seconds", "frames" };
    for (size_t i = 0; i < 6; i++) {
        cr_assert_not_null(desc->options[i].name);
        cr_expect_str_eq(desc->options[i].name, names[i]);
        cr_expect(desc->options[i].help && *desc->options[i].help);
    }
    cr_expect_null(desc->options[6].name);
    cr_expect(desc->options[0].flags & SB_OPT_REQUIRED);
}

Test(ssl_plugin, info_follows_layers_and_pool)
{
    const char *ck = tiny("info", SB_SSL_TYPE, 3);
    sb_opts *o;
    sb_encoder_info info = { .struct_size = sizeof info };
    void *e = make(cfg(ck, ""), &o);
    cr_assert_eq(vt->info(e, &info, NULL), SB_OK);
    cr_expect_eq(info.sample_rate, 16000);
    cr_expect_eq(info.n_layers, 4, "all = N+1 hidden states");
    cr_expect_eq(info.dim, 8);
    cr_expect_eq(info.frame_dim, 0, "frames are off by default");
    vt->destroy(e);
    sbi_opts_destroy(&o);
    e = make(cfg(ck, "layers: [3, 1]\npool: mean+std"), &o);
    cr_assert_eq(vt->info(e, &info, NULL), SB_OK);
    cr_expect_eq(info.n_layers, 2);
    cr_expect_eq(info.dim, 16);
    vt->destroy(e);
    sbi_opts_destroy(&o);
    vt->destroy(NULL);
}

static void expect_create_error(const char *y, sb_status code, const char *needle)
{
    sb_opts *o;
    void *inst = NULL;
    sb_error err = { 0 };
    sb_status st = create(y, &o, &inst, &err);
    cr_expect_eq(st, code, "'%s': status %d: %s", y, st, err.msg);
    cr_expect_null(inst);
    char all[2100];
    snprintf(all, sizeof all, "%s: %s", err.where, err.msg);
    cr_expect(strstr(all, needle), "'%s': message lacks '%s': %s", y, needle, all);
    sbi_opts_destroy(&o);
}

Test(ssl_plugin, bad_options)
{
    const char *ck = tiny("bad", SB_SSL_TYPE, 2);
    expect_create_error(cfg(ck, "layers: [3]"), SB_ERR_CONFIG, "from 0 to 2");
    expect_create_error(cfg(ck, "layers: [1, 1]"), SB_ERR_CONFIG, "distinct");
    expect_create_error(cfg(ck, "layers: [x]"), SB_ERR_CONFIG, "layers item 'x'");
    expect_create_error(cfg(ck, "max_seconds: 0.001"), SB_ERR_CONFIG, "max_seconds");
    expect_create_error("pool: mean", SB_ERR_CONFIG, "checkpoint");
    /* another family's checkpoint */
    const char *other = !strcmp(SB_SSL_TYPE, "hubert") ? "wav2vec2" : "hubert";
    const char *ck2 = tiny("other", other, 1);
    expect_create_error(cfg(ck2, ""), SB_ERR_CONFIG, "model_type");
    char want[64];
    snprintf(want, sizeof want, "use the '%s' encoder plugin", other);
    expect_create_error(cfg(ck2, ""), SB_ERR_CONFIG, want);
    expect_create_error(cfg("/nonexistent/ckpt", ""), SB_ERR_IO, "does not exist");
}

/* The reference pooling: hidden states from sb_ssl_forward directly, mean and std. */
typedef struct refpool {
    int want[8];
    int n;
    float out[8][16];
    int with_std;
} refpool;

static sb_status ref_cb(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    refpool *r = user;
    for (int k = 0; k < r->n; k++) {
        if (r->want[k] != index)
            continue;
        for (int c = 0; c < H; c++) {
            double m = 0, v = 0;
            for (size_t t = 0; t < T; t++)
                m += h[t * H + c];
            m /= (double)T;
            for (size_t t = 0; t < T; t++)
                v += (h[t * H + c] - m) * (h[t * H + c] - m);
            r->out[k][c] = (float)m;
            if (r->with_std)
                r->out[k][H + c] = (float)sqrt(v / (double)T);
        }
    }
    return SB_OK;
}

static void check_pool(const char *ck, const char *more, const int *want, int n_want, int with_std,
                       int normalize, size_t n, size_t n_ref)
{
    sb_opts *o;
    void *e = make(cfg(ck, more), &o);
    float *x = signal(n), got[8 * 16];
    sb_error err = { 0 };
    cr_assert_eq(vt->encode(e, x, n, got, &err), SB_OK, "%s", err.msg);
    refpool r = { .n = n_want, .with_std = with_std };
    memcpy(r.want, want, (size_t)n_want * sizeof *want);
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(ck, &m, &err), SB_OK);
    cr_assert_eq(sb_ssl_forward(m, x, n_ref, normalize, -1, ref_cb, &r, &err), SB_OK);
    const int dim = with_std ? 16 : 8;
    for (int k = 0; k < n_want; k++)
        for (int c = 0; c < dim; c++)
            cr_expect_leq(fabsf(got[k * dim + c] - r.out[k][c]), 1e-6f,
                          "%s: slot %d (hidden %d) dim %d: %g vs %g", more, k, want[k], c,
                          (double)got[k * dim + c], (double)r.out[k][c]);
    sb_ssl_close(&m);
    free(x);
    vt->destroy(e);
    sbi_opts_destroy(&o);
}

Test(ssl_plugin, encode_pools_selected_layers)
{
    const char *ck = tiny("pool", SB_SSL_TYPE, 3);
    check_pool(ck, "", (int[]){ 0, 1, 2, 3 }, 4, 0, -1, 3000, 3000);
    check_pool(ck, "layers: [2, 0]\npool: mean+std", (int[]){ 2, 0 }, 2, 1, -1, 3000, 3000);
    check_pool(ck, "layers: [1]\nnormalize: on", (int[]){ 1 }, 1, 0, 1, 777, 777);
    check_pool(ck, "layers: [3]\nnormalize: off", (int[]){ 3 }, 1, 0, 0, 20, 20); /* 1 frame */
}

Test(ssl_plugin, max_seconds_truncates_and_logs)
{
    const char *ck = tiny("trunc", SB_SSL_TYPE, 2);
    logged[0] = '\0';
    check_pool(ck, "max_seconds: 0.1\npool: mean+std", (int[]){ 0, 1, 2 }, 3, 1, -1, 4000, 1600);
    cr_expect(strstr(logged, "utterance of 0.25 s cut to max_seconds = 0.10 s"), "log: %s", logged);
}

Test(ssl_plugin, fingerprint_is_the_weights_digest)
{
    const char *ck = tiny("fp", SB_SSL_TYPE, 1);
    sb_opts *o;
    void *e = make(cfg(ck, ""), &o);
    char a[128], b[128];
    cr_assert_eq(vt->fingerprint(e, a, NULL), SB_OK);
    cr_assert_eq(vt->fingerprint(e, b, NULL), SB_OK);
    cr_expect_str_eq(a, b);
    cr_expect_eq(strlen(a), strlen("weights:") + 32);
    vt->destroy(e);
    sbi_opts_destroy(&o);
    const char *ck2 = tiny("fp2", SB_SSL_TYPE, 2);
    e = make(cfg(ck2, ""), &o);
    cr_assert_eq(vt->fingerprint(e, b, NULL), SB_OK);
    cr_expect_str_neq(a, b, "different weights, same fingerprint");
    vt->destroy(e);
    sbi_opts_destroy(&o);
}

Test(ssl_plugin, bad_audio)
{
    const char *ck = tiny("audio", SB_SSL_TYPE, 1);
    sb_opts *o;
    void *e = make(cfg(ck, ""), &o);
    float x[100] = { 0 }, out[64];
    sb_error err = { 0 };
    cr_expect_eq(vt->encode(e, x, 0, out, &err), SB_ERR_AUDIO);
    sb_error_clear(&err);
    cr_expect_eq(vt->encode(e, x, 19, out, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "shorter than one encoder frame"), "%s", err.msg);
    x[50] = INFINITY;
    sb_error_clear(&err);
    cr_expect_eq(vt->encode(e, x, 100, out, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "sample 50"), "%s", err.msg);
    vt->destroy(e);
    sbi_opts_destroy(&o);
}

/* Frames: the selected hidden states themselves, in slot order, equal to sb_ssl_forward's;
 * their mean is the pooled output; the buffer is reused once grown. */
typedef struct refframes {
    int want[4];
    int n;
    float *h[4]; /* [T, H] copies */
    size_t T;
} refframes;

static sb_status frames_cb(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    refframes *r = user;
    for (int k = 0; k < r->n; k++)
        if (r->want[k] == index) {
            r->h[k] = malloc(T * (size_t)H * sizeof *h);
            memcpy(r->h[k], h, T * (size_t)H * sizeof *h);
            r->T = T;
        }
    return SB_OK;
}

Test(ssl_plugin, frames_are_the_selected_hidden_states)
{
    const char *ck = tiny("frames", SB_SSL_TYPE, 3);
    sb_opts *o;
    void *e = make(cfg(ck, "layers: [3, 1]\nframes: f16"), &o);
    sb_encoder_info info = { .struct_size = sizeof info };
    cr_assert_eq(vt->info(e, &info, NULL), SB_OK);
    cr_expect_eq(info.frame_dim, 8);
    cr_expect_eq(info.frame_bits, 16);
    const float *fr = NULL;
    size_t T = 0;
    sb_error err = { 0 };
    cr_expect_eq(vt->frames(e, &fr, &T, &err), SB_ERR_INVALID, "frames before any encode");
    const size_t lens[3] = { 3000, 1200, 3000 };
    const float *first = NULL;
    for (int pass = 0; pass < 3; pass++) {
        const size_t n = lens[pass];
        float *x = signal(n), pooled[2 * 8];
        sb_error_clear(&err);
        cr_assert_eq(vt->encode(e, x, n, pooled, &err), SB_OK, "%s", err.msg);
        cr_assert_eq(vt->frames(e, &fr, &T, &err), SB_OK, "%s", err.msg);
        if (pass == 0)
            first = fr;
        else
            cr_expect_eq(fr, first, "the frame buffer is reused, not reallocated");
        refframes r = { .want = { 3, 1 }, .n = 2 };
        sb_ssl_model *m = NULL;
        cr_assert_eq(sb_ssl_open(ck, &m, &err), SB_OK);
        cr_assert_eq(sb_ssl_forward(m, x, n, -1, -1, frames_cb, &r, &err), SB_OK);
        cr_assert_eq(T, r.T, "pass %d: T %zu vs %zu", pass, T, r.T);
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < T * 8; i++)
                cr_expect_eq(fr[(size_t)k * T * 8 + i], r.h[k][i], "slot %d element %zu", k, i);
            for (int c = 0; c < 8; c++) {
                double mu = 0;
                for (size_t t = 0; t < T; t++)
                    mu += fr[((size_t)k * T + t) * 8 + c];
                mu /= (double)T;
                cr_expect_leq(fabs(mu - pooled[k * 8 + c]), 1e-6, "slot %d dim %d", k, c);
            }
            free(r.h[k]);
        }
        sb_ssl_close(&m);
        free(x);
    }
    /* A failed encode leaves no frames behind. */
    float bad[10] = { 0 }, out[16];
    sb_error_clear(&err);
    cr_expect_eq(vt->encode(e, bad, 10, out, &err), SB_ERR_AUDIO);
    sb_error_clear(&err);
    cr_expect_eq(vt->frames(e, &fr, &T, &err), SB_ERR_INVALID);
    vt->destroy(e);
    sbi_opts_destroy(&o);
    /* f32, and an ABI 1.0 host's smaller info struct is left alone past its end. */
    e = make(cfg(ck, "frames: f32"), &o);
    cr_assert_eq(vt->info(e, &info, NULL), SB_OK);
    cr_expect_eq(info.frame_bits, 32);
    cr_expect_eq(info.frame_dim, 8);
    struct {
        sb_encoder_info info;
    } old;
    memset(&old, 0x5a, sizeof old);
    old.info.struct_size = (uint32_t)(offsetof(sb_encoder_info, dim) + sizeof(int));
    cr_assert_eq(vt->info(e, &old.info, NULL), SB_OK);
    cr_expect_eq(old.info.dim, 8);
    cr_expect_eq(old.info.frame_dim, 0x5a5a5a5a, "wrote past an ABI 1.0 struct");
    vt->destroy(e);
    sbi_opts_destroy(&o);
    expect_create_error(cfg(ck, "frames: f8"), SB_ERR_CONFIG, "frames");
}
