/* tests/unit/ssl/test_parity.c — every hidden state of the C encoders against PyTorch.
 * Each test builds a random-initialised checkpoint with scripts/ssl-make-checkpoint.py
 * (torchaudio; norms, biases and weight_g perturbed), runs scripts/ssl-reference.py on a
 * generated WAV, runs sb_ssl_forward on the same file and compares layer by layer:
 * max|c - ref| <= 1e-4 * max|ref| per hidden state. Skipped (with the reason) when
 * python3-torchaudio is missing. */
#include <cblas.h>
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "helpers.h"

TestSuite(ssl_parity, .fini = ssl_cleanup);

typedef struct cmp {
    sb_st_file *ref;
    const char *name;
    int seen;
    double worst; /* max over layers of max-abs / max|ref| */
} cmp;

static sb_status compare_layer(void *user, int index, const float *h, size_t T, int H,
                               sb_error *err)
{
    cmp *c = user;
    char key[64];
    snprintf(key, sizeof key, "hidden_states.%d", index);
    const sb_st_tensor *t = sb_st_find(c->ref, key);
    cr_assert_not_null(t, "%s: the reference has no %s", c->name, key);
    cr_assert_eq(t->ndim, 2);
    cr_assert(t->shape[0] == (int64_t)T && t->shape[1] == H,
              "%s %s: reference shape [%lld, %lld], C gives [%zu, %d]", c->name, key,
              (long long)t->shape[0], (long long)t->shape[1], T, H);
    float *ref = malloc(T * (size_t)H * sizeof *ref);
    cr_assert_eq(sb_st_to_f32(t, ref, err), SB_OK);
    double worst = 0, maxref = 0;
    size_t at = 0;
    for (size_t i = 0; i < T * (size_t)H; i++) {
        const double d = fabs((double)h[i] - (double)ref[i]);
        maxref = fabs((double)ref[i]) > maxref ? fabs((double)ref[i]) : maxref;
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    cr_expect_leq(worst, 1e-4 * maxref,
                  "%s %s: max-abs %.3g > 1e-4 x max|ref| %.3g, at frame %zu channel %zu "
                  "(C %g, ref %g)",
                  c->name, key, worst, maxref, at / (size_t)H, at % (size_t)H, (double)h[at],
                  (double)ref[at]);
    const double ratio = maxref > 0 ? worst / maxref : worst;
    c->worst = ratio > c->worst ? ratio : c->worst;
    cr_expect_eq(index, c->seen, "hidden states out of order");
    c->seen++;
    free(ref);
    return SB_OK;
}

/* Build checkpoint `name` with make_args, run both sides on n samples, compare. normalize
 * is passed to sb_ssl_forward (-1 auto); ref_norm to the reference (auto|on|off). */
static void parity(const char *name, const char *make_args, size_t n, int normalize,
                   const char *ref_norm)
{
    if (!ssl_have_torch())
        cr_skip_test("python3-torchaudio is not installed (apt install python3-torchaudio; "
                     "scripts/setup does it)");
    const char *ckpt = ssl_tmp(name);
    char wav[1024], ref[1024];
    snprintf(wav, sizeof wav, "%s.wav", ckpt);
    snprintf(ref, sizeof ref, "%s.ref.safetensors", ckpt);
    cr_assert_eq(ssl_run("/usr/bin/python3 '%s' '%s' %s",
                         ssl_source("scripts/ssl-make-checkpoint.py"), ckpt, make_args),
                 0, "ssl-make-checkpoint.py %s failed", make_args);
    ssl_write_wav(wav, n, (unsigned)strlen(name));
    cr_assert_eq(ssl_run("/usr/bin/python3 '%s' '%s' '%s' '%s' --normalize %s",
                         ssl_source("scripts/ssl-reference.py"), ckpt, wav, ref, ref_norm),
                 0, "ssl-reference.py failed");

    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(ckpt, &m, &err), SB_OK, "%s: %s", err.where, err.msg);
    /* The standard 7-layer stack: 400-sample receptive field, 320-sample hop. */
    cr_expect_eq(sb_ssl_n_frames(m, 399), 0);
    cr_expect_eq(sb_ssl_n_frames(m, 400), 1);
    cr_expect_eq(sb_ssl_n_frames(m, 16000), 49);
    cr_expect_eq(sb_ssl_n_frames(m, 160000), 499);
    static float silence[399];
    cr_expect_eq(sb_ssl_forward(m, silence, 399, -1, -1, compare_layer, NULL, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "shorter than one encoder frame (400 samples, 25.0 ms"), "%s",
              err.msg);
    sb_error_clear(&err);
    float *x = NULL;
    size_t nx = 0;
    cr_assert_eq(sb_audio_load(wav, 0, -1, -1, 16000, &x, &nx, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(nx, n);
    cmp c = { .name = name };
    cr_assert_eq(sb_st_open(ref, &c.ref, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(sb_ssl_forward(m, x, nx, normalize, -1, compare_layer, &c, &err), SB_OK, "%s",
                 err.msg);
    const sb_ssl_config *cfg = sb_ssl_get_config(m);
    cr_expect_eq(c.seen, cfg->n_layers + 1, "%s: %d hidden states, want %d", name, c.seen,
                 cfg->n_layers + 1);
    fprintf(stderr, "parity %-28s worst max-abs/max|ref| %.2e over %d hidden states\n", name,
            c.worst, c.seen);
    sb_st_close(&c.ref);
    sb_free(x);
    sb_ssl_close(&m);
}

Test(ssl_parity, small_wav2vec2_post_ln)
{
    parity("w2v-small-post", "--arch wav2vec2 --seed 1", 40000, -1, "auto");
}

Test(ssl_parity, small_wav2vec2_pre_ln_sharded_prefixed)
{
    parity("w2v-small-pre",
           "--arch wav2vec2 --pre-ln --conv-bias --wn parametrizations "
           "--shards 3 --prefix --seed 2",
           40000, -1, "auto");
}

Test(ssl_parity, small_hubert_f16_normalized)
{
    parity("hubert-small-f16", "--arch hubert --dtype F16 --normalize true --seed 3", 40000, -1,
           "auto");
}

Test(ssl_parity, small_hubert_pre_ln_bf16_folded)
{
    parity("hubert-small-pre", "--arch hubert --pre-ln --dtype BF16 --wn folded --seed 4", 40000, 0,
           "off");
}

Test(ssl_parity, small_wav2vec2_forced_normalize)
{
    parity("w2v-small-norm", "--arch wav2vec2 --normalize false --seed 5", 24000, 1, "on");
}

Test(ssl_parity, small_wavlm_post_ln)
{
    /* 8 s: 399 frames, so relative positions reach the logarithmic buckets and beyond
     * max_bucket_distance's cap (|r| >= 778). */
    parity("wavlm-small-post", "--arch wavlm --seed 6", 128000, -1, "auto");
}

Test(ssl_parity, small_wavlm_pre_ln)
{
    parity("wavlm-small-pre", "--arch wavlm --pre-ln --prefix --seed 7", 40000, -1, "auto");
}

Test(ssl_parity, small_data2vec)
{
    parity("d2v-small", "--arch data2vec-audio --seed 8", 40000, -1, "auto");
}

Test(ssl_parity, base_wav2vec2_post_ln)
{
    parity("w2v-base-post", "--arch wav2vec2 --size base --seed 11", 32000, -1, "auto");
}

Test(ssl_parity, base_wav2vec2_pre_ln)
{
    parity("w2v-base-pre", "--arch wav2vec2 --size base --pre-ln --conv-bias --seed 12", 32000, -1,
           "auto");
}

Test(ssl_parity, base_wavlm_post_ln)
{
    parity("wavlm-base-post", "--arch wavlm --size base --seed 13", 32000, -1, "auto");
}

Test(ssl_parity, base_data2vec)
{
    parity("d2v-base", "--arch data2vec-audio --size base --seed 14", 32000, -1, "auto");
}

/* `serbench embed` end to end: its file against the reference, tensor by tensor. */
Test(ssl_parity, cli_embed_matches_reference)
{
    if (!ssl_have_torch())
        cr_skip_test("python3-torchaudio is not installed");
    const char *exe = getenv("SERBENCH");
    cr_assert_not_null(exe, "SERBENCH is not set (run through meson test)");
    const char *ckpt = ssl_tmp("cli-wavlm");
    char wav[1024], ref[1024], out[1024];
    snprintf(wav, sizeof wav, "%s.wav", ckpt);
    snprintf(ref, sizeof ref, "%s.ref.safetensors", ckpt);
    snprintf(out, sizeof out, "%s.c.safetensors", ckpt);
    cr_assert_eq(ssl_run("/usr/bin/python3 '%s' '%s' --arch wavlm --pre-ln --seed 21",
                         ssl_source("scripts/ssl-make-checkpoint.py"), ckpt),
                 0);
    ssl_write_wav(wav, 30000, 3);
    cr_assert_eq(ssl_run("/usr/bin/python3 '%s' '%s' '%s' '%s' --normalize on",
                         ssl_source("scripts/ssl-reference.py"), ckpt, wav, ref),
                 0);
    cr_assert_eq(ssl_run("'%s' embed --checkpoint '%s' --normalize on --threads 1 --out '%s' '%s'",
                         exe, ckpt, out, wav),
                 0, "serbench embed failed");
    sb_error err = { 0 };
    sb_st_file *a = NULL, *b = NULL;
    cr_assert_eq(sb_st_open(out, &a, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(sb_st_open(ref, &b, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(sb_st_count(a), sb_st_count(b), "%zu vs %zu hidden states", sb_st_count(a),
                 sb_st_count(b));
    cr_expect_str_eq(sb_st_metadata(a, "model_type"), "wavlm");
    cr_expect_str_eq(sb_st_metadata(a, "normalize"), "on");
    for (size_t i = 0; i < sb_st_count(b); i++) {
        const sb_st_tensor *tb = sb_st_at(b, i), *ta = sb_st_find(a, tb->name);
        cr_assert_not_null(ta, "serbench embed wrote no %s", tb->name);
        cr_assert_eq(ta->numel, tb->numel);
        cr_assert_eq(ta->dtype, SB_DT_F32);
        float *x = malloc((size_t)ta->numel * 4), *y = malloc((size_t)tb->numel * 4);
        sb_st_to_f32(ta, x, NULL);
        sb_st_to_f32(tb, y, NULL);
        double worst = 0, maxref = 0;
        for (int64_t j = 0; j < ta->numel; j++) {
            worst = fmax(worst, fabs((double)x[j] - y[j]));
            maxref = fmax(maxref, fabs((double)y[j]));
        }
        cr_expect_leq(worst, 1e-4 * maxref, "%s: max-abs %.3g, max|ref| %.3g", tb->name, worst,
                      maxref);
        free(x);
        free(y);
    }
    sb_st_close(&a);
    sb_st_close(&b);
    /* usage errors exit 2 */
    cr_expect_eq(ssl_run("'%s' embed --checkpoint '%s' '%s' 2>/dev/null", exe, ckpt, wav), 2);
    cr_expect_eq(ssl_run("'%s' embed --checkpoint '%s' --normalize maybe --out '%s' '%s' "
                         "2>/dev/null",
                         exe, ckpt, out, wav),
                 2);
}

/* Results are reproducible for a given thread count (the pool splits each job the same way
 * every time and its threads write disjoint outputs; another thread count splits the
 * GroupNorm sums differently, so across counts the hidden states agree to 1e-5 of their
 * scale rather than bitwise). */
static float *hidden_copy;
static size_t hidden_len;
static int callback_blas_threads; /* OpenBLAS's thread count seen by the callback */

static sb_status keep_all(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    const size_t n = T * (size_t)H;
    callback_blas_threads = openblas_get_num_threads();
    hidden_copy = realloc(hidden_copy, (hidden_len + n) * sizeof *hidden_copy);
    memcpy(hidden_copy + hidden_len, h, n * sizeof *h);
    hidden_len += n;
    return SB_OK;
}

static float *run_all(sb_ssl_model *m, const float *x, size_t n, size_t *len)
{
    sb_error err = { 0 };
    hidden_copy = NULL;
    hidden_len = 0;
    cr_assert_eq(sb_ssl_forward(m, x, n, -1, -1, keep_all, NULL, &err), SB_OK, "%s", err.msg);
    *len = hidden_len;
    return hidden_copy;
}

Test(ssl_parity, reproducible_per_thread_count)
{
    if (!ssl_have_torch())
        cr_skip_test("python3-torchaudio is not installed");
    const char *ckpt = ssl_tmp("threads");
    cr_assert_eq(ssl_run("/usr/bin/python3 '%s' '%s' --arch wavlm --seed 31",
                         ssl_source("scripts/ssl-make-checkpoint.py"), ckpt),
                 0);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(ckpt, &m, &err), SB_OK, "%s", err.msg);
    const size_t n = 48000;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.2 * sin(0.01 * (double)i) + 0.05 * sin(0.37 * (double)i));
    openblas_set_num_threads(1);
    size_t len1, len;
    float *one = run_all(m, x, n, &len1);
    double scale = 0;
    for (size_t i = 0; i < len1; i++)
        scale = fmax(scale, fabs((double)one[i]));
    for (int threads = 1; threads <= 3; threads++) {
        openblas_set_num_threads(threads);
        float *a = run_all(m, x, n, &len), *b = run_all(m, x, n, &len);
        cr_assert_eq(len, len1);
        /* The pass runs OpenBLAS serially on its own pool, but the callback and the caller
         * see the thread count they set. */
        cr_expect_eq(callback_blas_threads, threads);
        cr_expect_eq(openblas_get_num_threads(), threads);
        cr_expect_eq(memcmp(a, b, len * sizeof *a), 0, "two runs at %d threads differ", threads);
        double worst = 0;
        for (size_t i = 0; i < len; i++)
            worst = fmax(worst, fabs((double)a[i] - (double)one[i]));
        cr_expect_leq(worst, 1e-5 * scale, "%d threads vs 1: max-abs %.3g (scale %.3g)", threads,
                      worst, scale);
        free(a);
        free(b);
    }
    free(one);
    free(x);
    sb_ssl_close(&m);
}
