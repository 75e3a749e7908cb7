/* plugins/encoders/fbank/test_fbank_plugin.c — the fbank plugin as the host sees it:
 * dlopen the built module, read its descriptor and option table, validate options with
 * sbi_opts_parse (as the host does), and check info/encode against sb_fbank directly. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef SB_FBANK_PLUGIN
#error "build with -DSB_FBANK_PLUGIN=path/to/fbank.so"
#endif

static void *handle;
static const sb_plugin *desc;
static const sb_encoder_vtable *vt;

static void load(void)
{
    handle = dlopen(SB_FBANK_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    cr_assert(handle, "dlopen [%s]: %s", SB_FBANK_PLUGIN, dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(handle, SB_PLUGIN_ENTRY_NAME);
    cr_assert(entry, "no [%s] in [%s]", SB_PLUGIN_ENTRY_NAME, SB_FBANK_PLUGIN);
    desc = entry();
    cr_assert(desc);
    vt = desc->vtable;
}

static void unload(void)
{
    if (handle)
        dlclose(handle);
}

TestSuite(fbank_plugin, .init = load, .fini = unload);

/* Options from YAML text, validated against the plugin's table; NULL on failure with the
 * error in *err. */
static sb_opts *opts(const char *yaml, sb_error *err)
{
    sb_opts *o = NULL;
    if (sbi_opts_parse(desc->options, yaml, "test.yaml", &o, err) != SB_OK)
        return NULL;
    return o;
}

/* Create an instance from YAML; asserts success. */
static void *make(const char *yaml, sb_opts **o)
{
    sb_error err = { 0 };
    *o = opts(yaml, &err);
    cr_assert(*o, "options '%s': %s", yaml, err.msg);
    void *inst = NULL;
    cr_assert_eq(vt->create(sbi_test_host(1, 1), *o, &inst, &err), SB_OK, "create: %s", err.msg);
    cr_assert(inst);
    return inst;
}

Test(fbank_plugin, descriptor)
{
    cr_expect_eq(desc->abi_minor, SB_ABI_MINOR);
    cr_expect_eq(desc->struct_size, sizeof(sb_plugin));
    cr_expect_eq(desc->kind, SB_KIND_ENCODER);
    cr_expect_str_eq(desc->name, "fbank");
    cr_expect_str_eq(desc->version, "1.0.0");
    cr_expect(desc->summary && *desc->summary);
    cr_expect_eq(vt->struct_size, sizeof(sb_encoder_vtable));
    cr_expect(vt->create && vt->info && vt->encode && vt->destroy);
    /* Only the entry point is exported. */
    cr_expect_null(dlsym(handle, "fbank_create"));
    cr_expect_null(dlsym(handle, "fbank_options"));

    static const struct {
        const char *name;
        sb_opt_type type;
        const char *def;
    } want[] = {
        { "n_mels", SB_OPT_INT, "80" },      { "frame_ms", SB_OPT_FLOAT, "25" },
        { "hop_ms", SB_OPT_FLOAT, "10" },    { "f_min", SB_OPT_FLOAT, "20" },
        { "f_max", SB_OPT_FLOAT, "0" },      { "preemph", SB_OPT_FLOAT, "0.97" },
        { "pool", SB_OPT_ENUM, "mean+std" }, { "sample_rate", SB_OPT_INT, "16000" },
    };
    size_t i = 0;
    for (; desc->options[i].name; i++) {
        cr_assert_lt(i, sizeof want / sizeof want[0], "extra option %s", desc->options[i].name);
        cr_expect_str_eq(desc->options[i].name, want[i].name);
        cr_expect_eq(desc->options[i].type, want[i].type, "%s type", want[i].name);
        cr_expect_str_eq(desc->options[i].def, want[i].def, "%s default", want[i].name);
        cr_expect(desc->options[i].help && *desc->options[i].help);
    }
    cr_expect_eq(i, sizeof want / sizeof want[0]);
    cr_expect_eq(desc->options[0].min, 8);
    cr_expect_eq(desc->options[0].max, 256);
    cr_expect_str_eq(desc->options[6].choices, "mean|mean+std");
}

static void expect_info(const char *yaml, int rate, int dim)
{
    sb_opts *o;
    void *inst = make(yaml, &o);
    sb_encoder_info info = { .struct_size = sizeof info };
    sb_error err = { 0 };
    cr_assert_eq(vt->info(inst, &info, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(info.sample_rate, rate, "%s", yaml);
    cr_expect_eq(info.n_layers, 1, "%s", yaml);
    cr_expect_eq(info.dim, dim, "%s", yaml);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(fbank_plugin, info)
{
    expect_info("{}", 16000, 160);
    expect_info("pool: mean", 16000, 80);
    expect_info("n_mels: 40\nsample_rate: 8000", 8000, 80);
    expect_info("n_mels: 8\npool: mean", 16000, 8);
}

/* 1.3 s of a vowel-like signal with noise, deterministic. */
static float *signal(size_t n)
{
    float *x = malloc(n * sizeof *x);
    uint32_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        double t = (double)i / 16000.0;
        double f0 = 110.0 + 60.0 * t;
        double v = 0;
        for (int h = 1; h < 12; h++)
            v += sin(2.0 * M_PI * h * f0 * t) / h;
        x[i] = (float)(0.2 * v * (0.5 + 0.5 * sin(2.0 * M_PI * 3.0 * t)) +
                       0.01 * ((double)(s >> 8) / 16777216.0 - 0.5));
    }
    return x;
}

/* The pooled vector computed here from sb_fbank's frames another way: Welford's running
 * mean and variance in double, one pass per band. */
static void reference_pool(const sb_fbank_config *c, const float *x, size_t n, int with_std,
                           float *out)
{
    sb_fbank *fb = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sb_fbank_create(c, &fb, &err), SB_OK, "%s", err.msg);
    size_t T = sb_fbank_n_frames(fb, n), M = (size_t)c->n_mels;
    float *f = malloc(T * M * sizeof *f);
    cr_assert_eq(sb_fbank_compute(fb, x, n, f, &err), SB_OK, "%s", err.msg);
    for (size_t m = 0; m < M; m++) {
        double mean = 0, m2 = 0;
        for (size_t t = 0; t < T; t++) {
            double v = f[t * M + m], d = v - mean;
            mean += d / (double)(t + 1);
            m2 += d * (v - mean);
        }
        out[m] = (float)mean;
        if (with_std)
            out[M + m] = (float)sqrt(m2 / (double)T);
    }
    free(f);
    sb_fbank_destroy(&fb);
}

static void check_encode(const char *yaml, const sb_fbank_config *c, int with_std, size_t n)
{
    sb_opts *o;
    void *inst = make(yaml, &o);
    float *x = signal(n);
    size_t dim = (size_t)c->n_mels * (with_std ? 2 : 1);
    float *got = malloc(dim * sizeof *got), *want = malloc(dim * sizeof *want);
    for (size_t i = 0; i < dim; i++)
        got[i] = NAN;
    sb_error err = { 0 };
    cr_assert_eq(vt->encode(inst, x, n, got, &err), SB_OK, "%s", err.msg);
    reference_pool(c, x, n, with_std, want);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < dim; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    /* Same frames, two summation orders in double, rounded to float: ~1 ulp. */
    cr_expect_leq(worst, 1e-5, "%s, n=%zu: max-abs %.3g at %zu (got %f, want %f)", yaml, n, worst,
                  at, (double)got[at], (double)want[at]);
    /* Encoding is repeatable on one instance (scratch reuse does not leak state). */
    float *again = malloc(dim * sizeof *again);
    cr_assert_eq(vt->encode(inst, x, n, again, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(memcmp(got, again, dim * sizeof *got), 0, "second encode differs");
    free(again);
    free(got);
    free(want);
    free(x);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(fbank_plugin, encode_pools_mean_and_std)
{
    sb_fbank_config c;
    sb_fbank_config_default(&c);
    check_encode("{}", &c, 1, 20800);
    check_encode("{}", &c, 1, 100);   /* one frame: std 0 */
    check_encode("{}", &c, 1, 90000); /* longer than the first scratch buffer */
    check_encode("pool: mean", &c, 0, 20800);
    c.n_mels = 40, c.f_min = 100, c.f_max = 4000, c.preemph = 0, c.hop_ms = 5;
    check_encode("n_mels: 40\nf_min: 100\nf_max: 4000\npreemph: 0\nhop_ms: 5", &c, 1, 20800);
}

Test(fbank_plugin, one_frame_has_zero_std)
{
    sb_opts *o;
    void *inst = make("n_mels: 16", &o);
    float x[300], out[32];
    for (int i = 0; i < 300; i++)
        x[i] = (float)sin(0.1 * i);
    cr_assert_eq(vt->encode(inst, x, 300, out, NULL), SB_OK);
    for (int m = 0; m < 16; m++)
        cr_expect_eq(out[16 + m], 0.0f, "std of band %d over one frame: %f", m,
                     (double)out[16 + m]);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(fbank_plugin, empty_audio_is_an_error)
{
    sb_opts *o;
    void *inst = make("{}", &o);
    float x[1] = { 0 }, out[160];
    sb_error err = { 0 };
    cr_expect_eq(vt->encode(inst, x, 0, out, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "empty audio"), "message: %s", err.msg);
    vt->destroy(inst);
    vt->destroy(NULL);
    sbi_opts_destroy(&o);
}

/* A host whose log is captured, to see the plugin's warnings. */
static char logged[4096];

static void capture_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void capture_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    size_t len = strlen(logged);
    if (level != SB_LOG_WARN || len + 2 >= sizeof logged)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(logged + len, sizeof logged - len - 1, fmt, ap);
    va_end(ap);
    strcat(logged, "\n");
}

Test(fbank_plugin, warns_about_filters_that_cover_no_bin)
{
    sb_host host = *sbi_test_host(1, 1);
    host.log = capture_log;
    sb_error err = { 0 };
    sb_opts *o = opts("n_mels: 256\npool: mean+std", &err);
    cr_assert(o, "%s", err.msg);
    void *inst = NULL;
    logged[0] = '\0';
    cr_assert_eq(vt->create(&host, o, &inst, &err), SB_OK, "%s", err.msg);
    int warned = -1;
    const char *at = strstr(logged, " of the 256 mel filters");
    if (at) {
        while (at > logged && at[-1] >= '0' && at[-1] <= '9')
            at--;
        warned = atoi(at);
    }
    cr_expect_gt(warned, 0, "no warning about empty filters; log: '%s'", logged);
    /* The count matches what the filterbank does: that many bands are constant at the
     * floor even for broadband audio. */
    float *x = signal(16000), out[512];
    cr_assert_eq(vt->encode(inst, x, 16000, out, &err), SB_OK, "%s", err.msg);
    int constant = 0;
    for (int m = 0; m < 256; m++)
        if (fabs(out[m] - log(1e-10)) < 1e-4 && out[256 + m] == 0.0f)
            constant++;
    cr_expect_eq(constant, warned, "%d constant bands, warning said %d", constant, warned);
    free(x);
    vt->destroy(inst);
    sbi_opts_destroy(&o);

    /* The default 80 filters all cover bins: no warning. */
    o = opts("{}", &err);
    logged[0] = '\0';
    cr_assert_eq(vt->create(&host, o, &inst, &err), SB_OK, "%s", err.msg);
    cr_expect_str_eq(logged, "", "unexpected warning: %s", logged);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

static void expect_option_error(const char *yaml, const char *needle)
{
    sb_error err = { 0 };
    sb_opts *o = opts(yaml, &err);
    cr_expect_null(o, "options '%s' accepted", yaml);
    cr_expect_neq(err.code, SB_OK);
    cr_expect(strstr(err.msg, needle) || strstr(err.where, needle),
              "options '%s': message lacks '%s': %s: %s", yaml, needle, err.where, err.msg);
    sbi_opts_destroy(&o);
}

Test(fbank_plugin, option_table_rejects_bad_values)
{
    expect_option_error("n_mels: 300", "n_mels");
    expect_option_error("n_mels: 4", "n_mels");
    expect_option_error("preemph: 1.5", "preemph");
    expect_option_error("pool: median", "pool");
    expect_option_error("n_mel: 40", "n_mels"); /* "did you mean" */
}

static void expect_create_error(const char *yaml, const char *needle)
{
    sb_error err = { 0 };
    sb_opts *o = opts(yaml, &err);
    cr_assert(o, "options '%s': %s", yaml, err.msg);
    void *inst = (void *)&err;
    sb_status st = vt->create(sbi_test_host(1, 1), o, &inst, &err);
    cr_expect_eq(st, SB_ERR_CONFIG, "'%s': status %d, message: %s", yaml, st, err.msg);
    cr_expect_null(inst);
    cr_expect(strstr(err.msg, needle), "'%s': message lacks '%s': %s", yaml, needle, err.msg);
    sbi_opts_destroy(&o);
}

Test(fbank_plugin, create_rejects_inconsistent_values)
{
    expect_create_error("f_max: 9000", "Nyquist");
    expect_create_error("f_min: 5000\nf_max: 4000", "f_min");
    expect_create_error("f_min: 8000", "f_min");
    expect_create_error("sample_rate: 8000\nf_max: 6000", "Nyquist");
}
