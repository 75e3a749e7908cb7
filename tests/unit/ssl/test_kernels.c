/* tests/unit/ssl/test_kernels.c — each fast SSL kernel against its loop reference on
 * awkward shapes (one frame, odd T, K not a multiple of S, even and odd positional kernels),
 * the pool-parallel paths (attention by head and row block, positional conv and the direct
 * layer-0 conv by rows) at 1 to 3 threads, and WavLM's bucket function against the
 * reference's worked examples. */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ssl_internal.h"

static float *randv(size_t n, uint32_t seed)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((double)(seed >> 8) / 16777216.0 - 0.5) * 2.0f;
    }
    return x;
}

/* max |a-b| <= atol + rtol * max|b|; reports the worst element. */
static void expect_close(const float *a, const float *b, size_t n, double rtol, const char *what)
{
    double worst = 0, ref = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        ref = fabs((double)b[i]) > ref ? fabs((double)b[i]) : ref;
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    cr_expect_leq(worst, 1e-6 + rtol * ref, "%s: max-abs %.3g (max|ref| %.3g) at %zu: %g vs %g",
                  what, worst, ref, at, n ? (double)a[at] : 0.0, n ? (double)b[at] : 0.0);
}

static void check_conv(int Tin, int C, int OC, int K, int S, int with_bias)
{
    const int Tout = (Tin - K) / S + 1;
    float *x = randv((size_t)Tin * C, 1), *w = randv((size_t)OC * C * K, 2),
          *b = randv((size_t)OC, 3);
    float *wp = malloc((size_t)OC * C * K * sizeof *wp);
    float *got = malloc((size_t)Tout * OC * sizeof *got), *want = malloc((size_t)Tout * OC * 4);
    sbi_ssl_conv_pack(wp, w, OC, C, K);
    sbi_ssl_conv1d_forward(got, x, wp, with_bias ? b : NULL, Tin, C, OC, K, S);
    sbi_ssl_conv1d_forward_ref(want, x, w, with_bias ? b : NULL, Tin, C, OC, K, S);
    char what[96];
    snprintf(what, sizeof what, "conv Tin=%d C=%d OC=%d K=%d S=%d", Tin, C, OC, K, S);
    expect_close(got, want, (size_t)Tout * OC, 1e-5, what);
    free(x), free(w), free(b), free(wp), free(got), free(want);
}

Test(ssl_kernels, conv1d_matches_reference)
{
    check_conv(10, 1, 8, 10, 5, 1);   /* one output frame, layer-0 shape */
    check_conv(403, 1, 16, 10, 5, 0); /* K = 2S */
    check_conv(31, 7, 5, 3, 2, 1);    /* K not a multiple of S */
    check_conv(33, 16, 12, 2, 2, 0);  /* K == S: a single zero-copy view */
    check_conv(17, 3, 4, 5, 1, 1);    /* stride 1 */
    check_conv(9, 6, 3, 4, 3, 1);
}

/* The direct layer-0 kernel against the loop reference, rows in two uneven pieces, and its
 * GroupNorm statistics, norm and GELU against the two-pass channel norm and libm's erff. */
static void check_conv0(int Tin, int OC, int K, int S, int with_bias)
{
    const int Tout = (Tin - K) / S + 1, cut = Tout / 3;
    float *x = randv((size_t)Tin, 31), *w = randv((size_t)OC * K, 32), *b = randv((size_t)OC, 33);
    float *gw = randv((size_t)OC, 34), *gb = randv((size_t)OC, 35);
    for (int i = 0; i < Tin; i++)
        x[i] = 0.3f + x[i]; /* a DC offset, so the means are not ~0 */
    float *wt = malloc((size_t)K * OC * 4), *got = malloc((size_t)Tout * OC * 4),
          *want = malloc((size_t)Tout * OC * 4);
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < K; k++)
            wt[k * OC + o] = w[o * K + k];
    double *stats = calloc(2 * 2 * (size_t)OC, sizeof *stats); /* two threads' partial sums */
    sbi_ssl_conv0_forward(got, stats, x, wt, with_bias ? b : NULL, OC, K, S, 0, cut);
    sbi_ssl_conv0_forward(got, stats + 2 * OC, x, wt, with_bias ? b : NULL, OC, K, S, cut, Tout);
    sbi_ssl_conv1d_forward_ref(want, x, w, with_bias ? b : NULL, Tin, 1, OC, K, S);
    /* Same operations in the same order as the reference (no FMA contraction in C11). */
    cr_expect_eq(memcmp(got, want, (size_t)Tout * OC * 4), 0,
                 "conv0 Tin=%d OC=%d K=%d S=%d: direct kernel differs from the reference", Tin, OC,
                 K, S);
    float *mean = malloc((size_t)OC * 4), *scale = malloc((size_t)OC * 4);
    sbi_ssl_channelnorm_stats(mean, scale, stats, 2, gw, Tout, OC, 1e-5f);
    sbi_ssl_channelnorm_gelu(got, mean, scale, gb, Tout, OC);
    sbi_ssl_channelnorm_forward(want, gw, gb, Tout, OC, 1e-5f);
    sbi_ssl_gelu_forward_ref(want, (size_t)Tout * OC);
    char what[96];
    snprintf(what, sizeof what, "conv0+norm+gelu Tin=%d OC=%d K=%d S=%d", Tin, OC, K, S);
    expect_close(got, want, (size_t)Tout * OC, 2e-6, what);
    free(x), free(w), free(b), free(gw), free(gb), free(wt), free(got), free(want), free(stats),
        free(mean), free(scale);
}

Test(ssl_kernels, conv0_direct_matches_reference)
{
    check_conv0(16000, 512, 10, 5, 0); /* base shape, 1 s */
    check_conv0(4003, 20, 10, 5, 1);   /* channels past the last block of 16 */
    check_conv0(25, 3, 10, 5, 1);      /* fewer channels than one block */
    check_conv0(12, 16, 3, 2, 0);
}

static void check_posconv(int T, int H, int G, int K)
{
    const int Hg = H / G;
    float *x = randv((size_t)T * H, 4), *w = randv((size_t)H * Hg * K, 5), *b = randv((size_t)H, 6);
    float *wp = malloc((size_t)H * Hg * K * sizeof *wp),
          *col = malloc((T + K) * sbi_ssl_posconv_col_width(H, G, K) * 4);
    float *got = malloc((size_t)T * H * 4), *want = malloc((size_t)T * H * 4);
    sbi_ssl_conv_pack(wp, w, H, Hg, K);
    sbi_ssl_posconv_forward(got, col, x, wp, b, T, H, G, K);
    sbi_ssl_posconv_forward_ref(want, x, w, b, T, H, G, K);
    char what[96];
    snprintf(what, sizeof what, "posconv T=%d H=%d G=%d K=%d", T, H, G, K);
    expect_close(got, want, (size_t)T * H, 1e-5, what);
    free(x), free(w), free(b), free(wp), free(col), free(got), free(want);
}

/* Output rows computed in uneven pieces equal the one-piece result bitwise: no output row
 * depends on how the rows are split over threads. */
static void check_posconv_rows(int T, int H, int G, int K)
{
    const int Hg = H / G;
    float *x = randv((size_t)T * H, 14), *w = randv((size_t)H * Hg * K, 15),
          *b = randv((size_t)H, 16);
    const size_t width = sbi_ssl_posconv_col_width(H, G, K);
    float *wp = malloc((size_t)H * Hg * K * sizeof *wp), *col = malloc((T + 4 * K) * width * 4);
    float *whole = malloc((size_t)T * H * 4), *pieces = malloc((size_t)T * H * 4);
    float *want = malloc((size_t)T * H * 4);
    sbi_ssl_conv_pack(wp, w, H, Hg, K);
    sbi_ssl_posconv_forward(whole, col, x, wp, b, T, H, G, K);
    const int cuts[] = { 0, T / 3, T / 3 + 1, T - 2 > 0 ? T - 2 : T, T };
    for (int i = 0; i + 1 < 5; i++) {
        const int t0 = cuts[i] < T ? cuts[i] : T, t1 = cuts[i + 1] < T ? cuts[i + 1] : T;
        sbi_ssl_posconv_rows(pieces, col + (t0 + (size_t)i * K) * width, x, wp, b, T, H, G, K, t0,
                             t1);
    }
    sbi_ssl_posconv_forward_ref(want, x, w, b, T, H, G, K);
    cr_expect_eq(memcmp(whole, pieces, (size_t)T * H * 4), 0,
                 "posconv rows T=%d H=%d G=%d K=%d: pieces differ from one piece", T, H, G, K);
    char what[96];
    snprintf(what, sizeof what, "posconv rows T=%d H=%d G=%d K=%d", T, H, G, K);
    expect_close(pieces, want, (size_t)T * H, 1e-5, what);
    free(x), free(w), free(b), free(wp), free(col), free(whole), free(pieces), free(want);
}

Test(ssl_kernels, posconv_rows_split)
{
    check_posconv_rows(40, 12, 3, 16);
    check_posconv_rows(9, 8, 2, 5);
    check_posconv_rows(3, 8, 1, 4);
    check_posconv_rows(60, 8, 2, 40);  /* three tap slices, the last short */
    check_posconv_rows(33, 12, 3, 19); /* data2vec's K: 16 + 3 taps */
}

Test(ssl_kernels, posconv_matches_reference)
{
    check_posconv(1, 8, 2, 16);  /* one frame: only the centre tap sees data */
    check_posconv(7, 12, 4, 16); /* T < K */
    check_posconv(41, 12, 3, 8);
    check_posconv(23, 16, 4, 5); /* odd K (data2vec) */
    check_posconv(50, 8, 1, 3);
    check_posconv(30, 8, 2, 128); /* base K, T < K: eight tap slices, mostly padding */
    check_posconv(200, 16, 4, 128);
    check_posconv(45, 12, 3, 19);
}

/* Even K: PyTorch pads K/2 on both sides and HF SamePad drops the last output. Check the
 * kernel against that literal recipe for one channel. */
Test(ssl_kernels, posconv_even_kernel_is_samepad)
{
    const int T = 9, K = 4, pad = K / 2;
    float x[9], w[4] = { 0.5f, -1.0f, 2.0f, 0.25f }, b[1] = { 0.1f }, wp[4], col[(9 + 4) * 4],
                got[9];
    for (int t = 0; t < T; t++)
        x[t] = (float)(t * t % 7) - 3.0f;
    sbi_ssl_conv_pack(wp, w, 1, 1, K);
    sbi_ssl_posconv_forward(got, col, x, wp, b, T, 1, 1, K);
    float padded[9 + 4] = { 0 };
    memcpy(padded + pad, x, sizeof x);
    for (int t = 0; t < T; t++) { /* outputs 0..T (T+1 of them) minus the last */
        float acc = b[0];
        for (int k = 0; k < K; k++)
            acc += w[k] * padded[t + k];
        cr_expect_float_eq(got[t], acc, 1e-6, "t=%d: %g vs %g", t, (double)got[t], (double)acc);
    }
}

Test(ssl_kernels, norms)
{
    const int T = 13, C = 300; /* C spans two channel blocks */
    float *x = randv((size_t)T * C, 7), *w = randv(768, 8), *b = randv(768, 9); /* up to C 768 */
    float *y = malloc((size_t)T * C * 4);
    for (size_t i = 0; i < (size_t)T * C; i++)
        x[i] = 3.0f + 2.0f * x[i];
    /* LayerNorm row: mean 0, variance 1 before the affine; no-affine variant. */
    sbi_ssl_layernorm_forward(y, x, NULL, NULL, T, C, 1e-5f);
    for (int t = 0; t < T; t++) {
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++)
            s += y[t * C + c], ss += (double)y[t * C + c] * y[t * C + c];
        cr_expect_leq(fabs(s / C), 1e-5, "row %d mean %g", t, s / C);
        cr_expect_leq(fabs(ss / C - 1.0), 1e-4, "row %d var %g", t, ss / C);
    }
    float *y2 = malloc((size_t)T * C * 4);
    sbi_ssl_layernorm_forward(y2, x, w, b, T, C, 1e-5f);
    for (int i = 0; i < T * C; i++)
        cr_assert_float_eq(y2[i], y[i] * w[i % C] + b[i % C], 1e-5, "affine at %d", i);
    /* The vector LayerNorm against the scalar one, in place too, for widths with and
     * without a tail and below one vector. */
    const int widths[] = { C, 768, 5, 16 };
    for (int k = 0; k < 4; k++) {
        const int Ck = widths[k], Tk = T * C / Ck;
        sbi_ssl_layernorm_forward_ref(y, x, w, b, Tk, Ck, 1e-5f);
        memcpy(y2, x, (size_t)Tk * Ck * 4);
        sbi_ssl_layernorm_forward(y2, y2, w, b, Tk, Ck, 1e-5f);
        char what[64];
        snprintf(what, sizeof what, "layernorm C=%d", Ck);
        expect_close(y2, y, (size_t)Tk * Ck, 1e-6, what);
    }
    /* Channel norm: the per-channel statistics over time, against a direct computation. */
    memcpy(y, x, (size_t)T * C * 4);
    sbi_ssl_channelnorm_forward(y, w, b, T, C, 1e-5f);
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (int t = 0; t < T; t++)
            m += x[t * C + c];
        m /= T;
        for (int t = 0; t < T; t++)
            v += (x[t * C + c] - m) * (x[t * C + c] - m);
        v /= T;
        for (int t = 0; t < T; t++) {
            double want = (x[t * C + c] - m) / sqrt(v + 1e-5) * w[c] + b[c];
            cr_assert_leq(fabs(y[t * C + c] - want), 1e-5, "channel %d t %d: %g vs %g", c, t,
                          (double)y[t * C + c], want);
        }
    }
    float g[4] = { -3.0f, 0.0f, 1.0f, 0.5f };
    sbi_ssl_gelu_forward(g, 3); /* a tail shorter than one vector */
    sbi_ssl_gelu_forward(g + 3, 1);
    cr_expect_float_eq(g[0], -0.00404969f, 3e-7); /* erf to 1.5e-7: GELU to 0.5|x| 1.5e-7 */
    cr_expect_float_eq(g[1], 0.0f, 0.0);
    cr_expect_float_eq(g[2], 0.84134475f, 2e-7);
    cr_expect_float_eq(g[3], 0.34573123f, 2e-7);
    free(x), free(w), free(b), free(y), free(y2);
}

/* The vectorised GELU against libm's erff over [-12, 12] plus extremes: |err| <= 2e-7 |x|
 * + 1e-7 (erf to 1.5e-7 absolute). */
Test(ssl_kernels, gelu_matches_erff)
{
    const size_t n = 240003;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    a[0] = b[0] = -1e30f;
    a[1] = b[1] = 1e30f;
    a[2] = b[2] = -0.0f;
    sbi_ssl_gelu_forward(a, n);
    sbi_ssl_gelu_forward_ref(b, n);
    for (size_t i = 0; i < n; i++) {
        const double x = i == 0   ? -1e30
                         : i == 1 ? 1e30
                                  : -12.0 + 24.0 * (double)i / (double)(n - 1);
        const double tol = 2e-7 * fabs(i < 2 ? 12.0 : x) + 1e-7;
        cr_assert(fabs((double)a[i] - (double)b[i]) <= (i < 2 ? 0 : tol) || (i < 2 && a[i] == b[i]),
                  "gelu(%g): %.9g vs erff %.9g", x, (double)a[i], (double)b[i]);
    }
    free(a);
    free(b);
}

Test(ssl_kernels, wavlm_buckets_match_reference_examples)
{
    cr_expect_eq(sbi_ssl_wavlm_bucket(0, 320, 800), 0);
    cr_expect_eq(sbi_ssl_wavlm_bucket(1, 320, 800), 161);
    cr_expect_eq(sbi_ssl_wavlm_bucket(-1, 320, 800), 1);
    cr_expect_eq(sbi_ssl_wavlm_bucket(80, 320, 800), 240);
    cr_expect_eq(sbi_ssl_wavlm_bucket(777, 320, 800), 318);
    cr_expect_eq(sbi_ssl_wavlm_bucket(778, 320, 800), 319);
    cr_expect_eq(sbi_ssl_wavlm_bucket(100000, 320, 800), 319);
    cr_expect_eq(sbi_ssl_wavlm_bucket(-800, 320, 800), 159);
    cr_expect_eq(sbi_ssl_wavlm_bucket(-79, 320, 800), 79);
}

static void check_attention(int T, int H, int nh, int wavlm, sbi_ssl_pool *pool)
{
    float *qkv = randv((size_t)T * 3 * H, 11), *gate = NULL, *rel = NULL;
    for (size_t i = 0; i < (size_t)T * 3 * H; i++)
        qkv[i] *= 3.0f; /* peaky softmax */
    if (wavlm) {
        gate = randv((size_t)nh * T, 12);
        rel = randv((size_t)nh * (2 * T - 1), 13);
        for (size_t i = 0; i < (size_t)nh * T; i++)
            gate[i] += 1.5f;
    }
    const size_t scratch = sbi_ssl_attention_scratch((size_t)T, sbi_ssl_pool_size(pool));
    float *att = malloc(scratch * 4), *got = malloc((size_t)T * H * 4),
          *again = malloc((size_t)T * H * 4), *want = malloc((size_t)T * H * 4);
    sbi_ssl_attention_forward(got, att, qkv, gate, rel, T, H, nh, pool);
    sbi_ssl_attention_forward(again, att, qkv, gate, rel, T, H, nh, pool);
    sbi_ssl_attention_forward_ref(want, qkv, gate, rel, T, H, nh);
    char what[96];
    snprintf(what, sizeof what, "attention T=%d H=%d nh=%d wavlm=%d threads=%d", T, H, nh, wavlm,
             sbi_ssl_pool_size(pool));
    expect_close(got, want, (size_t)T * H, 1e-5, what);
    cr_expect_eq(memcmp(got, again, (size_t)T * H * 4), 0, "%s: two runs differ", what);
    free(qkv), free(gate), free(rel), free(att), free(got), free(again), free(want);
}

Test(ssl_kernels, attention_matches_reference)
{
    for (int threads = 1; threads <= 3; threads++) {
        sbi_ssl_pool *pool = sbi_ssl_pool_create(threads);
        cr_assert_eq(sbi_ssl_pool_size(pool), threads);
        openblas_set_num_threads(threads);
        check_attention(1, 8, 2, 0, pool);
        check_attention(1, 8, 2, 1, pool);
        check_attention(37, 24, 3, 0, pool);
        check_attention(37, 24, 3, 1, pool);
        check_attention(64, 32, 4, 1, pool);
        /* several row blocks per head, the last one short */
        check_attention(SBI_SSL_ATT_ROWS * 2 + 5, 16, 2, 1, pool);
        check_attention(SBI_SSL_ATT_ROWS + 1, 24, 3, 0, pool);
        /* the kernel serialises OpenBLAS only while it runs */
        cr_expect_eq(openblas_get_num_threads(), threads);
        sbi_ssl_pool_destroy(&pool);
        cr_expect_null(pool);
    }
}

/* Nested and overlapping serial sections: every one sees the host's count as the budget,
 * and only the last one out restores it. */
static void *blas_hammer(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 2000; i++) {
        if (sbi_ssl_blas_serial() != 3 || openblas_get_num_threads() != 1)
            (*bad)++;
        sbi_ssl_blas_restore();
    }
    return NULL;
}

Test(ssl_kernels, blas_serial_sections)
{
    openblas_set_num_threads(3);
    cr_expect_eq(sbi_ssl_blas_serial(), 3);
    cr_expect_eq(openblas_get_num_threads(), 1);
    cr_expect_eq(sbi_ssl_blas_serial(), 3, "a nested section must not take 1 for the budget");
    sbi_ssl_blas_restore();
    cr_expect_eq(openblas_get_num_threads(), 1, "restored while a section was still open");
    sbi_ssl_blas_restore();
    cr_expect_eq(openblas_get_num_threads(), 3);
    pthread_t th[4];
    int bad[4] = { 0 };
    for (int k = 0; k < 4; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, blas_hammer, &bad[k]), 0);
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        cr_expect_eq(bad[k], 0, "thread %d saw a wrong budget or count %d times", k, bad[k]);
    }
    cr_expect_eq(openblas_get_num_threads(), 3);
}

Test(ssl_kernels, wavlm_gate)
{
    const int T = 3, H = 8, nh = 2, d = 4;
    float *x = randv((size_t)T * H, 21), *gw = randv(8 * d, 22), *gb = randv(8, 23);
    float c[2] = { 0.7f, 1.3f }, gate[6];
    sbi_ssl_wavlm_gate_forward(gate, x, gw, gb, c, T, H, nh);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            double z[8];
            for (int j = 0; j < 8; j++) {
                z[j] = gb[j];
                for (int k = 0; k < d; k++)
                    z[j] += (double)gw[j * d + k] * x[t * H + h * d + k];
            }
            double a = 1 / (1 + exp(-(z[0] + z[1] + z[2] + z[3])));
            double b = 1 / (1 + exp(-(z[4] + z[5] + z[6] + z[7])));
            double want = a * (b * c[h] - 1) + 2;
            cr_expect_leq(fabs(gate[h * T + t] - want), 1e-6, "t %d h %d: %g vs %g", t, h,
                          (double)gate[h * T + t], want);
        }
    free(x), free(gw), free(gb);
}
