/* plugins/encoders/tfidf/test_tfidf.c — the tfidf plugin as the host sees it: dlopen the
 * built module, validate options against its table, fit and encode through the vtable, and
 * compare with scikit-learn / numpy (tests/fixtures/tfidf/tfidf.json, written by
 * scripts/gen-tfidf-fixtures.py; the test does not run python). */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifndef SB_TFIDF_PLUGIN
#error "build with -DSB_TFIDF_PLUGIN=path/to/tfidf.so"
#endif
#ifndef SB_TFIDF_FIXTURES
#error "build with -DSB_TFIDF_FIXTURES=path/to/tests/fixtures/tfidf"
#endif

static void *handle;
static const sb_plugin *desc;
static const sb_encoder_vtable *vt;
static json_t *fixture;

static void load(void)
{
    handle = dlopen(SB_TFIDF_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    cr_assert(handle, "dlopen [%s]: %s", SB_TFIDF_PLUGIN, dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(handle, SB_PLUGIN_ENTRY_NAME);
    cr_assert(entry, "no [%s] in [%s]", SB_PLUGIN_ENTRY_NAME, SB_TFIDF_PLUGIN);
    desc = entry();
    cr_assert(desc);
    vt = desc->vtable;
    json_error_t jerr;
    fixture = json_load_file(SB_TFIDF_FIXTURES "/tfidf.json", 0, &jerr);
    cr_assert(fixture, "[%s/tfidf.json]:%d: %s", SB_TFIDF_FIXTURES, jerr.line, jerr.text);
}

static void unload(void)
{
    json_decref(fixture);
    if (handle)
        dlclose(handle);
}

TestSuite(tfidf, .init = load, .fini = unload);

/* The strings of fixture array `key`, borrowed from the fixture; *n gets the count. */
static const char **strings(const char *key, size_t *n)
{
    const json_t *a = json_object_get(fixture, key);
    cr_assert(json_is_array(a), "fixture has no array '%s'", key);
    *n = json_array_size(a);
    const char **s = calloc(*n + 1, sizeof *s);
    for (size_t i = 0; i < *n; i++)
        s[i] = json_string_value(json_array_get(a, i));
    return s;
}

/* Options from YAML text, validated against the plugin's table; NULL with *err on failure. */
static sb_opts *opts(const char *yaml, sb_error *err)
{
    sb_opts *o = NULL;
    if (sbi_opts_parse(desc->options, yaml, "test.yaml", &o, err) != SB_OK)
        return NULL;
    return o;
}

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

/* An instance fitted on the fixture's training texts (`train` or `train_alt`). */
static void *make_fitted(const char *yaml, const char *train_key, sb_opts **o)
{
    void *inst = make(yaml, o);
    size_t n;
    const char **train = strings(train_key, &n);
    sb_error err = { 0 };
    cr_assert_eq(vt->fit(inst, train, n, &err), SB_OK, "fit: %s", err.msg);
    free(train);
    return inst;
}

static int dim_of(void *inst)
{
    sb_encoder_info info = { .struct_size = sizeof info };
    sb_error err = { 0 };
    cr_assert_eq(vt->info(inst, &info, &err), SB_OK, "%s", err.msg);
    return info.dim;
}

Test(tfidf, descriptor)
{
    cr_expect_eq(desc->abi_minor, SB_ABI_MINOR);
    cr_expect_eq(desc->struct_size, sizeof(sb_plugin));
    cr_expect_eq(desc->kind, SB_KIND_ENCODER);
    cr_expect_str_eq(desc->name, "tfidf");
    cr_expect(desc->summary && *desc->summary);
    cr_expect_eq(vt->struct_size, sizeof(sb_encoder_vtable));
    cr_expect(vt->create && vt->info && vt->fingerprint && vt->fit && vt->encode_text &&
              vt->destroy);
    cr_expect_null(dlsym(handle, "tfidf_create"));
    static const char *const names[] = { "ngram",        "char_ngram", "features", "lowercase",
                                         "sublinear_tf", "norm",       "svd",      "svd_iter" };
    size_t i = 0;
    for (; desc->options[i].name; i++) {
        cr_assert_lt(i, sizeof names / sizeof names[0], "extra option %s", desc->options[i].name);
        cr_expect_str_eq(desc->options[i].name, names[i]);
        cr_expect(desc->options[i].help && *desc->options[i].help, "%s has no help", names[i]);
    }
    cr_expect_eq(i, sizeof names / sizeof names[0]);

    sb_opts *o;
    void *inst = make("{}", &o);
    sb_encoder_info info = { .struct_size = sizeof info };
    cr_assert_eq(vt->info(inst, &info, NULL), SB_OK);
    cr_expect_eq(info.input, SB_INPUT_TEXT);
    cr_expect_eq(info.n_layers, 1);
    cr_expect_eq(info.dim, 4096);
    cr_expect_eq(info.frame_dim, 0);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
    inst = make("svd: 16", &o);
    cr_expect_eq(dim_of(inst), 16);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

/* Encode the fixture's test texts with case c's options and compare with the expected
 * vectors: |got - want| <= atol + rtol |want| everywhere (the absent entries are 0). */
static void check_case(const json_t *c, double atol, double rtol)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *yaml = json_string_value(json_object_get(c, "options"));
    const size_t dim = (size_t)json_integer_value(json_object_get(c, "dim"));
    sb_opts *o;
    void *inst = make_fitted(yaml, "train", &o);
    cr_assert_eq((size_t)dim_of(inst), dim, "%s: dim", name);
    size_t n;
    const char **tests = strings("tests", &n);
    float *got = malloc(n * dim * sizeof *got);
    for (size_t i = 0; i < n * dim; i++)
        got[i] = NAN;
    sb_error err = { 0 };
    cr_assert_eq(vt->encode_text(inst, tests, n, got, &err), SB_OK, "%s: %s", name, err.msg);
    double *want = calloc(n * dim, sizeof *want);
    const json_t *exp = json_object_get(c, "expected");
    cr_assert_eq(json_array_size(exp), n, "%s: expected rows", name);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(exp, i);
        for (size_t p = 0; p < json_array_size(row); p++) {
            const json_t *pair = json_array_get(row, p);
            const size_t j = (size_t)json_integer_value(json_array_get(pair, 0));
            cr_assert_lt(j, dim);
            want[i * dim + j] = json_real_value(json_array_get(pair, 1));
        }
    }
    double worst_abs = 0, worst_rel = 0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n * dim; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])))
            bad++;
        if (!(d <= worst_abs)) {
            worst_abs = d;
            at = i;
        }
        if (want[i] != 0 && d / fabs(want[i]) > worst_rel)
            worst_rel = d / fabs(want[i]);
    }
    cr_expect_eq(bad, 0,
                 "%s: %zu entries off; max-abs %.3g at text %zu feature %zu (got %.9g, want "
                 "%.9g), max-rel %.3g",
                 name, bad, worst_abs, at / dim, at % dim, (double)got[at], want[at], worst_rel);
    cr_log_info("%s: max-abs %.3g, max-rel %.3g", name, worst_abs, worst_rel);
    free(want);
    free(got);
    free(tests);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

static const json_t *find_case(const char *name)
{
    const json_t *cases = json_object_get(fixture, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    }
    cr_assert_fail("fixture has no case '%s'", name);
    return NULL;
}

/* float output of double sklearn values: half an ulp of float, plus a little. */
Test(tfidf, sklearn_parity_words)
{
    check_case(find_case("default"), 1e-7, 1e-6);
    check_case(find_case("word_1_3_sublinear_none"), 1e-7, 1e-6);
}

Test(tfidf, sklearn_parity_char_wb)
{
    check_case(find_case("char_wb_2_4"), 1e-7, 1e-6);
    check_case(find_case("word_and_char_wb"), 1e-7, 1e-6);
}

/* With enough power iterations the randomized SVD reaches numpy's exact SVD (signs fixed by
 * the same convention); the float components allow ~1e-6. */
Test(tfidf, svd_matches_numpy)
{
    check_case(find_case("svd_exact"), 2e-6, 1e-4);
}

/* With the default iterations the components are approximate; the subspace they span keeps
 * nearly all the training energy that the exact top-8 subspace keeps. */
Test(tfidf, svd_default_keeps_the_top_subspace)
{
    const json_t *c = find_case("svd_default_iter");
    const double best = json_real_value(json_object_get(c, "train_energy"));
    sb_opts *o;
    void *inst = make_fitted(json_string_value(json_object_get(c, "options")), "train", &o);
    size_t n;
    const char **train = strings("train", &n);
    float *z = malloc(n * 8 * sizeof *z);
    cr_assert_eq(vt->encode_text(inst, train, n, z, NULL), SB_OK);
    double kept = 0;
    for (size_t i = 0; i < n * 8; i++)
        kept += (double)z[i] * z[i];
    cr_log_info("svd default iterations: kept %.6f of the best %.6f", kept, best);
    cr_expect_leq(kept, best * (1 + 1e-5), "kept %.6f, more than the optimum %.6f", kept, best);
    cr_expect_geq(kept, best * 0.99, "kept %.6f, optimum %.6f", kept, best);
    free(z);
    free(train);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(tfidf, empty_text_is_a_zero_vector)
{
    static const char *const yamls[] = { "{}", "ngram: [0, 0]\nchar_ngram: [2, 4]", "svd: 8",
                                         "norm: none" };
    for (size_t y = 0; y < sizeof yamls / sizeof yamls[0]; y++) {
        sb_opts *o;
        void *inst = make_fitted(yamls[y], "train", &o);
        const size_t dim = (size_t)dim_of(inst);
        const char *texts[] = { "", "  \t ", "?!" };
        float *out = malloc(3 * dim * sizeof *out);
        for (size_t i = 0; i < 3 * dim; i++)
            out[i] = NAN;
        sb_error err = { 0 };
        cr_assert_eq(vt->encode_text(inst, texts, 3, out, &err), SB_OK, "%s", err.msg);
        size_t nonzero = 0;
        for (size_t i = 0; i < 3 * dim; i++)
            nonzero += out[i] != 0.0f;
        /* "?!" has char_wb n-grams (" ?!", ...) but no word tokens. */
        const size_t want_nonzero_max = y == 1 ? dim : 0;
        cr_expect_leq(nonzero, want_nonzero_max, "'%s': %zu nonzero entries", yamls[y], nonzero);
        for (size_t i = 0; i < 2 * dim; i++)
            cr_assert_eq(out[i], 0.0f, "'%s': empty text entry %zu = %g", yamls[y], i,
                         (double)out[i]);
        free(out);
        vt->destroy(inst);
        sbi_opts_destroy(&o);
    }
}

/* One call of n texts equals n calls of one (no state leaks between texts). */
Test(tfidf, batches_equal_single_calls)
{
    sb_opts *o;
    void *inst = make_fitted("char_ngram: [2, 3]\nsvd: 5", "train", &o);
    size_t n;
    const char **tests = strings("tests", &n);
    float *all = malloc(n * 5 * sizeof *all), one[5];
    cr_assert_eq(vt->encode_text(inst, tests, n, all, NULL), SB_OK);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(vt->encode_text(inst, tests + i, 1, one, NULL), SB_OK);
        cr_expect_eq(memcmp(one, all + i * 5, sizeof one), 0, "text %zu differs", i);
    }
    free(all);
    free(tests);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

static void fingerprint_of(const char *yaml, const char *train, char out[128])
{
    sb_opts *o;
    void *inst = make_fitted(yaml, train, &o);
    sb_error err = { 0 };
    cr_assert_eq(vt->fingerprint(inst, out, &err), SB_OK, "%s", err.msg);
    cr_assert_lt(strlen(out), 128);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(tfidf, fingerprint_identifies_the_fit)
{
    char a[128], b[128], c[128], d[128], e[128], f[128];
    fingerprint_of("{}", "train", a);
    fingerprint_of("{}", "train", b);
    fingerprint_of("{}", "train_alt", c);
    fingerprint_of("sublinear_tf: true", "train", d);
    fingerprint_of("svd: 4", "train", e);
    fingerprint_of("svd: 4", "train_alt", f);
    cr_expect_str_eq(a, b, "same fit, different fingerprints");
    cr_expect_str_neq(a, c, "a different training split gives the same fingerprint");
    cr_expect_str_neq(a, d, "different options give the same fingerprint");
    cr_expect_str_neq(a, e);
    cr_expect_str_neq(e, f);
    cr_expect(strncmp(a, "tfidf-", 6) == 0 && strlen(a) == 6 + 32, "fingerprint '%s'", a);

    sb_opts *o;
    void *inst = make("{}", &o);
    sb_error err = { 0 };
    cr_expect_eq(vt->fingerprint(inst, a, &err), SB_ERR_INVALID);
    cr_expect(strstr(err.msg, "fit"), "message: %s", err.msg);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

Test(tfidf, encode_before_fit_and_empty_fit_are_errors)
{
    sb_opts *o;
    void *inst = make("{}", &o);
    const char *texts[] = { "hello there" };
    float out[4096];
    sb_error err = { 0 };
    cr_expect_eq(vt->encode_text(inst, texts, 1, out, &err), SB_ERR_INVALID);
    cr_expect(strstr(err.msg, "must call fit"), "message: %s", err.msg);
    sb_error_clear(&err);
    cr_expect_eq(vt->fit(inst, texts, 0, &err), SB_ERR_INVALID);
    cr_expect(strstr(err.msg, "no transcripts in the training split"), "message: %s", err.msg);
    /* A failed fit leaves the instance unfitted. */
    sb_error_clear(&err);
    cr_expect_eq(vt->encode_text(inst, texts, 1, out, &err), SB_ERR_INVALID);
    /* A NULL transcript is named by its index. */
    const char *with_null[] = { "fine", NULL };
    sb_error_clear(&err);
    cr_expect_eq(vt->fit(inst, with_null, 2, &err), SB_ERR_INVALID);
    cr_expect_str_eq(err.where, "text 1");
    vt->destroy(inst);
    vt->destroy(NULL);
    sbi_opts_destroy(&o);

    /* More components than training texts. */
    inst = make("svd: 50", &o);
    size_t n;
    const char **train = strings("train", &n);
    sb_error_clear(&err);
    cr_expect_eq(vt->fit(inst, train, n, &err), SB_ERR_INVALID);
    cr_expect(strstr(err.msg, "svd 50 needs at least 50 training transcripts"), "message: %s",
              err.msg);
    free(train);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}

static void expect_bad_options(const char *yaml, const char *needle)
{
    sb_error err = { 0 };
    sb_opts *o = opts(yaml, &err);
    if (o) {
        void *inst = (void *)&err;
        cr_expect_eq(vt->create(sbi_test_host(1, 1), o, &inst, &err), SB_ERR_CONFIG,
                     "'%s' accepted", yaml);
        cr_expect_null(inst);
    }
    cr_expect(strstr(err.msg, needle) || strstr(err.where, needle),
              "'%s': message lacks '%s': %s: %s", yaml, needle, err.where, err.msg);
    sbi_opts_destroy(&o);
}

Test(tfidf, bad_options)
{
    expect_bad_options("ngram: [2, 1]", "minimum length is above the maximum");
    expect_bad_options("ngram: [0, 2]", "start at 1");
    expect_bad_options("ngram: [1, 9]", "0..8");
    expect_bad_options("ngram: [1, x]", "'x'");
    expect_bad_options("ngram: [1]", "ngram");
    expect_bad_options("char_ngram: [5, 2]", "char_ngram");
    expect_bad_options("ngram: [0, 0]", "both [0, 0]");
    expect_bad_options("features: 8", "features");
    expect_bad_options("norm: l1", "norm");
    expect_bad_options("features: 16\nsvd: 16", "below features");
}

/* 10,000 MELD-length utterances (the fixture's 80 transcripts, cycled) in host-sized batches
 * of 256; the bound is loose (shared machine), the time goes to the log. */
Test(tfidf, speed)
{
    size_t n1, n2;
    const char **a = strings("train", &n1), **b = strings("train_alt", &n2);
    enum { N = 10000, BATCH = 256 };
    const char **texts = malloc(N * sizeof *texts);
    for (size_t i = 0; i < N; i++)
        texts[i] = i % 2 ? a[(i / 2) % n1] : b[(i / 2) % n2];
    static const char *const yamls[] = { "{}", "char_ngram: [2, 4]", "svd: 64" };
    for (size_t y = 0; y < 3; y++) {
        sb_opts *o;
        void *inst = make(yamls[y], &o);
        struct timespec t0, t1, t2;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sb_error err = { 0 };
        cr_assert_eq(vt->fit(inst, texts, N, &err), SB_OK, "%s", err.msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const size_t dim = (size_t)dim_of(inst);
        float *out = malloc(BATCH * dim * sizeof *out);
        for (size_t i = 0; i < N; i += BATCH) {
            const size_t m = N - i < BATCH ? N - i : BATCH;
            cr_assert_eq(vt->encode_text(inst, texts + i, m, out, &err), SB_OK, "%s", err.msg);
        }
        clock_gettime(CLOCK_MONOTONIC, &t2);
        const double fit_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        const double enc_s = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (t2.tv_nsec - t1.tv_nsec);
        fprintf(stderr, "tfidf speed [%s]: fit %d texts %.3f s, encode %.3f s (dim %zu)\n",
                yamls[y], N, fit_s, enc_s, dim);
        cr_expect_lt(enc_s, 5.0, "[%s] encoding %d texts took %.2f s", yamls[y], N, enc_s);
        free(out);
        vt->destroy(inst);
        sbi_opts_destroy(&o);
    }
    free(texts);
    free(a);
    free(b);
}

/* Malformed UTF-8 is accepted: a bad byte is one non-word, non-space character, so
 * "ab\xffcd" has the word terms of "ab cd"; truncated sequences at the end do not read past
 * the string (the ASan build checks). */
Test(tfidf, malformed_utf8)
{
    sb_opts *o;
    void *inst = make_fitted("char_ngram: [1, 3]", "train", &o);
    const char *texts[] = { "ab\xff"
                            "cd",
                            "\xc3", "x\xe2\x80", "\xf0\x9f\x98", "\xc0\xaf\xed\xa0\x80 ok" };
    float *out = malloc(5 * 4096 * sizeof *out);
    sb_error err = { 0 };
    cr_assert_eq(vt->encode_text(inst, texts, 5, out, &err), SB_OK, "%s", err.msg);
    vt->destroy(inst);
    sbi_opts_destroy(&o);

    inst = make_fitted("{}", "train", &o);
    const char *pair[] = { "ab\xff"
                           "cd",
                           "ab cd" };
    float *two = malloc(2 * 4096 * sizeof *two);
    cr_assert_eq(vt->encode_text(inst, pair, 2, two, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(memcmp(two, two + 4096, 4096 * sizeof *two), 0);
    size_t nonzero = 0;
    for (size_t j = 0; j < 4096; j++)
        nonzero += two[j] != 0.0f;
    cr_expect_geq(nonzero, 2, "ab, cd and 'ab cd' give %zu features", nonzero);
    free(two);
    free(out);
    vt->destroy(inst);
    sbi_opts_destroy(&o);
}
