/* core/lib/ssl/kernels.c — the numeric kernels of the SSL encoders: strided and grouped
 * 1-D convolutions as GEMMs over time-major activations, LayerNorm, per-channel GroupNorm,
 * exact GELU, WavLM's bucketed and gated relative position bias, and multi-head attention.
 * Each fast kernel has a loop reference (_ref) beside it for the tests.
 *
 * Shapes: T frames, C / OC input / output channels, K kernel taps, S stride, H model width,
 * G groups, nh heads of d = H / nh. */
#include "ssl_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill_rows(float *out, const float *bias, int rows, int cols, int ld)
{
    for (int r = 0; r < rows; r++) {
        float *out_r = out + (size_t)r * ld;
        if (bias)
            memcpy(out_r, bias, (size_t)cols * sizeof *out_r);
        else
            memset(out_r, 0, (size_t)cols * sizeof *out_r);
    }
}

/* ---- convolutions ---------------------------------------------------------------------- */

/* w is (OC, C, K); packed is (OC, K, C). */
void sbi_ssl_conv_pack(float *packed, const float *w, int OC, int C, int K)
{
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K; k++)
                packed[((size_t)o * K + k) * C + c] = w[((size_t)o * C + c) * K + k];
}

/* inp is (Tin, C), wpacked is (OC, K, C), out is (Tout, OC). The im2col row of output t is
 * the K*C contiguous floats from inp[t*S]; BLAS needs lda >= columns, so the taps are taken
 * S at a time: view k0 has rows inp[t*S + k0], lda = S*C, min(S, K-k0)*C columns. */
void sbi_ssl_conv1d_forward(float *out, const float *inp, const float *wpacked, const float *bias,
                            int Tin, int C, int OC, int K, int S)
{
    const int Tout = (Tin - K) / S + 1;
    if (Tin < K || Tout <= 0)
        return;
    if (bias)
        fill_rows(out, bias, Tout, OC, OC);
    for (int k0 = 0; k0 < K; k0 += S) {
        const int nt = K - k0 < S ? K - k0 : S;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tout, OC, nt * C, 1.0f,
                    inp + (size_t)k0 * C, S * C, wpacked + (size_t)k0 * C, K * C,
                    bias || k0 > 0 ? 1.0f : 0.0f, out, OC);
    }
}

void sbi_ssl_conv1d_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                                int Tin, int C, int OC, int K, int S)
{
    const int Tout = (Tin - K) / S + 1;
    for (int t = 0; Tin >= K && t < Tout; t++)
        for (int o = 0; o < OC; o++) {
            float acc = bias ? bias[o] : 0.0f;
            for (int c = 0; c < C; c++)
                for (int k = 0; k < K; k++)
                    acc += w[((size_t)o * C + c) * K + k] * inp[((size_t)t * S + k) * C + c];
            out[(size_t)t * OC + o] = acc;
        }
}

/* inp, out (T, H); wpacked (H, K, Hg) with Hg = H/G. The im2col row of output t for group
 * g is the K input rows t-K/2 .. t+K-1-K/2 (zeros outside) restricted to the group's
 * columns, K*Hg floats, and out[t, g] = that row · W_g^T. Consecutive rows of a full im2col
 * overlap in all but one tap, so instead col holds rows of P taps, row u starting at input
 * row t0 + u - K/2: the P-tap slice c of output t's im2col row is col row t - t0 + cP, and
 * for each slice the rows t0..t1 form a plain (t1-t0, P*Hg) view with lda = P*Hg. The group
 * is then ceil(K/P) GEMMs over one buffer K/P times smaller than the im2col (about 1 MB for
 * 250 rows at base size, so it stays in L2). */
size_t sbi_ssl_posconv_col_width(int H, int G, int K)
{
    return (size_t)(K < SBI_SSL_POS_TAPS ? K : SBI_SSL_POS_TAPS) * (size_t)(H / G);
}

void sbi_ssl_posconv_rows(float *out, float *col, const float *inp, const float *wpacked,
                          const float *bias, int T, int H, int G, int K, int t0, int t1)
{
    const int Hg = H / G, pad = K / 2, rows = t1 - t0;
    const int P = K < SBI_SSL_POS_TAPS ? K : SBI_SSL_POS_TAPS, n_slices = (K + P - 1) / P;
    const int U = rows + (n_slices - 1) * P; /* col rows used */
    const size_t ld = (size_t)P * Hg, wrow = (size_t)K * Hg;
    if (rows <= 0)
        return;
    float *out_t0 = out + (size_t)t0 * H;
    fill_rows(out_t0, bias, rows, H, H);
    for (int g = 0; g < G; g++) {
        for (int u = 0; u < U; u++) {
            float *col_u = col + (size_t)u * ld;
            for (int q = 0; q < P; q++) {
                const int src = t0 + u - pad + q;
                if (src < 0 || src >= T)
                    memset(col_u + (size_t)q * Hg, 0, (size_t)Hg * sizeof *col_u);
                else
                    memcpy(col_u + (size_t)q * Hg, inp + (size_t)src * H + (size_t)g * Hg,
                           (size_t)Hg * sizeof *col_u);
            }
        }
        const float *w_g = wpacked + (size_t)g * Hg * wrow;
        for (int sl = 0; sl < n_slices; sl++) {
            const int taps = K - sl * P < P ? K - sl * P : P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, Hg, taps * Hg, 1.0f,
                        col + (size_t)sl * P * ld, (int)ld, w_g + (size_t)sl * P * Hg, (int)wrow,
                        1.0f, out_t0 + (size_t)g * Hg, H);
        }
    }
}

void sbi_ssl_posconv_forward(float *out, float *col, const float *inp, const float *wpacked,
                             const float *bias, int T, int H, int G, int K)
{
    sbi_ssl_posconv_rows(out, col, inp, wpacked, bias, T, H, G, K, 0, T);
}

void sbi_ssl_posconv_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                                 int T, int H, int G, int K)
{
    const int Hg = H / G, pad = K / 2;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < H; o++) {
            const int g = o / Hg;
            float acc = bias[o];
            for (int i = 0; i < Hg; i++)
                for (int k = 0; k < K; k++) {
                    const int src = t + k - pad;
                    if (src >= 0 && src < T)
                        acc += w[((size_t)o * Hg + i) * K + k] * inp[(size_t)src * H + g * Hg + i];
                }
            out[(size_t)t * H + o] = acc;
        }
}

/* ---- norms and activation -------------------------------------------------------------- */

void sbi_ssl_layernorm_forward_ref(float *out, const float *inp, const float *weight,
                                   const float *bias, int T, int C, float eps)
{
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *y = out + (size_t)t * C;
        double sum = 0.0;
        for (int c = 0; c < C; c++)
            sum += x[c];
        const double mean = sum / C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) {
            const double d = x[c] - mean;
            ss += d * d;
        }
        const float rstd = (float)(1.0 / sqrt(ss / C + (double)eps));
        const float m = (float)mean;
        for (int c = 0; c < C; c++) {
            const float v = (x[c] - m) * rstd;
            y[c] = weight ? v * weight[c] + bias[c] : v;
        }
    }
}

/* x (T, C): channel c normalised by its mean and biased variance over the T rows. The
 * statistics accumulate row by row in blocks of channels, so memory is read in order. */
void sbi_ssl_channelnorm_range(float *x, const float *weight, const float *bias, int T, int C,
                               int c_begin, int c_end, float eps)
{
    enum { BLK = 256 };
    double sum[BLK], ss[BLK];
    float mean[BLK], scale[BLK];
    for (int c0 = c_begin; c0 < c_end; c0 += BLK) {
        const int nc = c_end - c0 < BLK ? c_end - c0 : BLK;
        memset(sum, 0, sizeof sum);
        memset(ss, 0, sizeof ss);
        for (int t = 0; t < T; t++) {
            const float *x_t = x + (size_t)t * C + c0;
            for (int c = 0; c < nc; c++)
                sum[c] += x_t[c];
        }
        for (int c = 0; c < nc; c++)
            mean[c] = (float)(sum[c] / T);
        for (int t = 0; t < T; t++) {
            const float *x_t = x + (size_t)t * C + c0;
            for (int c = 0; c < nc; c++) {
                const double d = (double)x_t[c] - (double)mean[c];
                ss[c] += d * d;
            }
        }
        for (int c = 0; c < nc; c++)
            scale[c] = (float)(1.0 / sqrt(ss[c] / T + (double)eps)) * weight[c0 + c];
        for (int t = 0; t < T; t++) {
            float *x_t = x + (size_t)t * C + c0;
            for (int c = 0; c < nc; c++)
                x_t[c] = (x_t[c] - mean[c]) * scale[c] + bias[c0 + c];
        }
    }
}

void sbi_ssl_channelnorm_forward(float *x, const float *weight, const float *bias, int T, int C,
                                 float eps)
{
    sbi_ssl_channelnorm_range(x, weight, bias, T, C, 0, C, eps);
}

/* ---- vector helpers -------------------------------------------------------------------
 * GCC/Clang vector extensions of VL = 16 lanes: the compiler lowers them to whatever the
 * target has (4 x SSE2 by default, 2 x AVX2, 1 x AVX-512). On x86-64 the hot loops below are
 * also compiled for AVX2 and AVX-512 and picked at load time (target_clones): every lane
 * runs the same IEEE operations in the same order whatever the width, and floating-point
 * contraction is off (C11 mode in GCC, the pragma in Clang), so all clones give bitwise the
 * same results. (The clones are static behind plain wrappers: Clang 14 names an exported
 * clone set's dispatcher differently from the function.) The branch-free exp serves the softmax and
 * GELU; libm's scalar calls would cost ~10 % of a base-model forward pass. Vectors pass by pointer:
 * 64-byte vector arguments would change the calling convention between clones. */

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define SB_WIDE __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define SB_WIDE
#endif

enum { VL = 16 };
typedef float vf __attribute__((vector_size(4 * VL)));
typedef int32_t vi __attribute__((vector_size(4 * VL)));
typedef double vd __attribute__((vector_size(8 * VL)));

/* A vector of VL copies of a (vector-scalar arithmetic broadcasts the scalar). */
#define SB_SPLAT(a) ((vf){ 0 } + (a))

/* *y = exp(*y) for y <= 0 (Cephes expf polynomial after n = round(y / ln 2) reduction),
 * relative error ~3e-8; y below -87 gives exp(-87) (~1.6e-38) instead of a denormal. */
static inline void vexp_nonpos(vf *yp)
{
    vf y = *yp;
    const vi lo = y < -87.0f;
    y = (vf)(((vi)y & ~lo) | ((vi)SB_SPLAT(-87.0f) & lo));
    vf nf = y * 1.44269504088896341f - 0.5f;
    const vi n = __builtin_convertvector(nf, vi); /* truncation: round half down */
    nf = __builtin_convertvector(n, vf);
    const vf r = (y - nf * 0.693145751953125f) - nf * 1.428606765330187e-06f;
    vf p = SB_SPLAT(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    *yp = p * (vf)((n + 127) << 23);
}

/* *v = GELU(*v) = 0.5 v (1 + erf(v / sqrt 2)) with erf from Abramowitz & Stegun 7.1.26
 * (|error| <= 1.5e-7 in erf, so <= 1e-7 |x| in GELU; tested against erff). */
static inline void vgelu(vf *vp)
{
    const vf v = *vp;
    const vi sign = (vi)v & INT32_MIN;
    const vf a = (vf)((vi)v ^ sign) * 0.70710678118654752f;
    const vf t = 1.0f / (1.0f + 0.3275911f * a);
    vf q = SB_SPLAT(1.061405429f);
    q = q * t - 1.453152027f;
    q = q * t + 1.421413741f;
    q = q * t - 0.284496736f;
    q = q * t + 0.254829592f;
    vf e = -a * a;
    vexp_nonpos(&e);
    const vf erfa = 1.0f - q * t * e;
    *vp = 0.5f * v * (1.0f + (vf)((vi)erfa ^ sign));
}

SB_WIDE static void gelu_wide(float *x, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        vgelu(&v);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) { /* tail through the same formula, zero-padded */
        vf v = SB_SPLAT(0.0f);
        memcpy(&v, x + i, (n - i) * sizeof *x);
        vgelu(&v);
        memcpy(x + i, &v, (n - i) * sizeof *x);
    }
}

void sbi_ssl_gelu_forward(float *x, size_t n)
{
    gelu_wide(x, n);
}

void sbi_ssl_gelu_forward_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

/* LayerNorm rows with the sums in double lanes (each lane sums every VL-th channel, then
 * the lanes are added in order), so it reads each row three times at vector width. */
SB_WIDE static void layernorm_wide(float *out, const float *inp, const float *weight,
                                   const float *bias, int T, int C, float eps)
{
    const int nv = C / VL * VL;
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *y = out + (size_t)t * C;
        vd acc = { 0 };
        for (int c = 0; c < nv; c += VL) {
            vf v;
            memcpy(&v, x + c, sizeof v);
            acc += __builtin_convertvector(v, vd);
        }
        double sum = 0.0;
        for (int i = 0; i < VL; i++)
            sum += acc[i];
        for (int c = nv; c < C; c++)
            sum += x[c];
        const double mean = sum / C;
        acc = (vd){ 0 };
        for (int c = 0; c < nv; c += VL) {
            vf v;
            memcpy(&v, x + c, sizeof v);
            const vd d = __builtin_convertvector(v, vd) - mean;
            acc += d * d;
        }
        double ss = 0.0;
        for (int i = 0; i < VL; i++)
            ss += acc[i];
        for (int c = nv; c < C; c++)
            ss += (x[c] - mean) * (x[c] - mean);
        const float rstd = (float)(1.0 / sqrt(ss / C + (double)eps));
        const float m = (float)mean;
        for (int c = 0; c < nv; c += VL) {
            vf v;
            memcpy(&v, x + c, sizeof v);
            v = (v - m) * rstd;
            if (weight) {
                vf w, b;
                memcpy(&w, weight + c, sizeof w);
                memcpy(&b, bias + c, sizeof b);
                v = v * w + b;
            }
            memcpy(y + c, &v, sizeof v);
        }
        for (int c = nv; c < C; c++) {
            const float v = (x[c] - m) * rstd;
            y[c] = weight ? v * weight[c] + bias[c] : v;
        }
    }
}

void sbi_ssl_layernorm_forward(float *out, const float *inp, const float *weight, const float *bias,
                               int T, int C, float eps)
{
    layernorm_wide(out, inp, weight, bias, T, C, eps);
}

/* ---- layer 0 of the feature extractor, direct ------------------------------------------
 * C = 1, K = 10, S = 5 at every checkpoint size: as a GEMM its inner dimension would be 5
 * taps per view, so OpenBLAS would stream the (Tout, OC) output twice at a few FLOPs per
 * float. Here each output row is built in registers, 2 VL channels at a time, from the K
 * samples it sees; the group-norm statistics are taken from the same registers. */

SB_WIDE static void conv0_wide(float *out, double *stats, const float *inp, const float *wt,
                               const float *bias, int OC, int K, int S, int t0, int t1)
{
    enum { NV = 2, B = NV * VL }; /* channels per register block */
    double *sum = stats, *sumsq = stats ? stats + OC : NULL;
    for (int t = t0; t < t1; t++) {
        const float *x_t = inp + (size_t)t * S;
        float *out_t = out + (size_t)t * OC;
        int o = 0;
        for (; o + B <= OC; o += B) {
            vf acc[NV];
            for (int i = 0; i < NV; i++) {
                if (bias)
                    memcpy(&acc[i], bias + o + VL * i, sizeof acc[i]);
                else
                    acc[i] = SB_SPLAT(0.0f);
            }
            for (int k = 0; k < K; k++) {
                const float xk = x_t[k];
                const float *w_k = wt + (size_t)k * OC + o;
                for (int i = 0; i < NV; i++) {
                    vf wv;
                    memcpy(&wv, w_k + VL * i, sizeof wv);
                    acc[i] += wv * xk;
                }
            }
            memcpy(out_t + o, acc, sizeof acc);
            if (stats)
                for (int i = 0; i < NV; i++) {
                    const vd a = __builtin_convertvector(acc[i], vd);
                    vd s1, s2;
                    memcpy(&s1, sum + o + VL * i, sizeof s1);
                    memcpy(&s2, sumsq + o + VL * i, sizeof s2);
                    s1 += a;
                    s2 += a * a;
                    memcpy(sum + o + VL * i, &s1, sizeof s1);
                    memcpy(sumsq + o + VL * i, &s2, sizeof s2);
                }
        }
        for (; o < OC; o++) { /* channels past the last block */
            float acc = bias ? bias[o] : 0.0f;
            for (int k = 0; k < K; k++)
                acc += wt[(size_t)k * OC + o] * x_t[k];
            out_t[o] = acc;
            if (stats) {
                sum[o] += acc;
                sumsq[o] += (double)acc * acc;
            }
        }
    }
}

void sbi_ssl_conv0_forward(float *out, double *stats, const float *inp, const float *wt,
                           const float *bias, int OC, int K, int S, int t0, int t1)
{
    conv0_wide(out, stats, inp, wt, bias, OC, K, S, t0, t1);
}

void sbi_ssl_channelnorm_stats(float *mean, float *scale, const double *stats, int n_stats,
                               const float *weight, int T, int C, float eps)
{
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int k = 0; k < n_stats; k++) {
            s1 += stats[(size_t)k * 2 * C + c];
            s2 += stats[(size_t)k * 2 * C + C + c];
        }
        const double m = s1 / T;
        double var = s2 / T - m * m;
        var = var > 0.0 ? var : 0.0;
        mean[c] = (float)m;
        scale[c] = (float)(1.0 / sqrt(var + (double)eps)) * weight[c];
    }
}

SB_WIDE static void channelnorm_gelu_wide(float *x, const float *mean, const float *scale,
                                          const float *bias, int rows, int C)
{
    for (int t = 0; t < rows; t++) {
        float *x_t = x + (size_t)t * C;
        int c = 0;
        for (; c + VL <= C; c += VL) {
            vf v, m, sc, b;
            memcpy(&v, x_t + c, sizeof v);
            memcpy(&m, mean + c, sizeof m);
            memcpy(&sc, scale + c, sizeof sc);
            memcpy(&b, bias + c, sizeof b);
            v = (v - m) * sc + b;
            vgelu(&v);
            memcpy(x_t + c, &v, sizeof v);
        }
        if (c < C) {
            vf v = SB_SPLAT(0.0f);
            for (int i = 0; c + i < C; i++)
                v[i] = (x_t[c + i] - mean[c + i]) * scale[c + i] + bias[c + i];
            vgelu(&v);
            for (int i = 0; c + i < C; i++)
                x_t[c + i] = v[i];
        }
    }
}

void sbi_ssl_channelnorm_gelu(float *x, const float *mean, const float *scale, const float *bias,
                              int rows, int C)
{
    channelnorm_gelu_wide(x, mean, scale, bias, rows, C);
}

/* ---- WavLM relative position bias ------------------------------------------------------ */

/* HF WavLMAttention._relative_positions_bucket, in float as torch computes it. */
int sbi_ssl_wavlm_bucket(long r, int num_buckets, int max_distance)
{
    const int nb = num_buckets / 2, max_exact = nb / 2;
    int b = r > 0 ? nb : 0;
    const long a = r < 0 ? -r : r;
    if (a < max_exact)
        return b + (int)a;
    float v = logf((float)a / (float)max_exact);
    v = v / (float)log((double)max_distance / (double)max_exact);
    v = v * (float)(nb - max_exact);
    long large = (long)((float)max_exact + v);
    if (large > nb - 1)
        large = nb - 1;
    return b + (int)large;
}

void sbi_ssl_wavlm_gate_rows(float *gate, const float *inp, const float *gw, const float *gb,
                             const float *gconst, int T, int H, int nh, int t0, int t1)
{
    const int d = H / nh;
    for (int t = t0; t < t1; t++)
        for (int h = 0; h < nh; h++) {
            const float *u = inp + (size_t)t * H + (size_t)h * d;
            float z[8];
            for (int j = 0; j < 8; j++) {
                float acc = gb[j];
                for (int c = 0; c < d; c++)
                    acc += gw[j * d + c] * u[c];
                z[j] = acc;
            }
            const float a = 1.0f / (1.0f + expf(-(z[0] + z[1] + z[2] + z[3])));
            const float b = 1.0f / (1.0f + expf(-(z[4] + z[5] + z[6] + z[7])));
            gate[(size_t)h * T + t] = a * (b * gconst[h] - 1.0f) + 2.0f;
        }
}

void sbi_ssl_wavlm_gate_forward(float *gate, const float *inp, const float *gw, const float *gb,
                                const float *gconst, int T, int H, int nh)
{
    sbi_ssl_wavlm_gate_rows(gate, inp, gw, gb, gconst, T, H, nh, 0, T);
}

/* ---- attention ------------------------------------------------------------------------- */

/* In place over one row, with the vector exp; every pass runs on whole vectors. */
SB_WIDE static void softmax_row(float *s, int n)
{
    const int nv = n / VL * VL;
    vf vmx = SB_SPLAT(-INFINITY);
    for (int j = 0; j < nv; j += VL) {
        vf v;
        memcpy(&v, s + j, sizeof v);
        const vi gt = v > vmx;
        vmx = (vf)(((vi)v & gt) | ((vi)vmx & ~gt));
    }
    float mx = -INFINITY;
    for (int i = 0; i < VL; i++)
        mx = vmx[i] > mx ? vmx[i] : mx;
    for (int j = nv; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    vf acc = SB_SPLAT(0.0f);
    for (int j = 0; j < nv; j += VL) {
        vf v;
        memcpy(&v, s + j, sizeof v);
        v -= mx;
        vexp_nonpos(&v);
        acc += v;
        memcpy(s + j, &v, sizeof v);
    }
    if (nv < n) { /* the tail; lanes past n are left out of the sum */
        vf v = SB_SPLAT(0.0f);
        memcpy(&v, s + nv, (size_t)(n - nv) * sizeof *s);
        v -= mx;
        vexp_nonpos(&v);
        for (int i = n - nv; i < VL; i++)
            v[i] = 0.0f;
        memcpy(s + nv, &v, (size_t)(n - nv) * sizeof *s);
        acc += v;
    }
    float sum = 0.0f;
    for (int i = 0; i < VL; i++)
        sum += acc[i];
    const float inv = 1.0f / sum;
    for (int j = 0; j < nv; j += VL) {
        vf v;
        memcpy(&v, s + j, sizeof v);
        v *= inv;
        memcpy(s + j, &v, sizeof v);
    }
    for (int j = nv; j < n; j++)
        s[j] *= inv;
}

/* The same with libm's expf, for the reference attention. */
static void softmax_row_ref(float *s, int n)
{
    float mx = -INFINITY;
    for (int j = 0; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    for (int j = 0; j < n; j++)
        s[j] /= sum;
}

typedef struct attention_job {
    float *out, *att;
    const float *qkv, *gate, *rel;
    int T, H, nh, blocks; /* blocks: row blocks of SBI_SSL_ATT_ROWS per head */
} attention_job;

/* Work items [b, e) = (head, row block) pairs, on pool thread `thread` with its own scores
 * buffer: S = Q_rows K^T / sqrt d (+ WavLM bias), softmax by row, out_rows = S V. */
static void attention_items(void *ctx, int thread, size_t b, size_t e)
{
    const attention_job *j = ctx;
    const int T = j->T, H = j->H, d = H / j->nh, ld = 3 * H;
    const int R = T < SBI_SSL_ATT_ROWS ? T : SBI_SSL_ATT_ROWS;
    const float scale = 1.0f / sqrtf((float)d);
    float *att = j->att + (size_t)thread * R * T;
    for (size_t item = b; item < e; item++) {
        const int h = (int)(item / (size_t)j->blocks), i0 = (int)(item % (size_t)j->blocks) * R;
        const int rows = T - i0 < R ? T - i0 : R;
        const float *q = j->qkv + (size_t)i0 * ld + (size_t)h * d;
        const float *k = j->qkv + H + (size_t)h * d, *v = j->qkv + 2 * (size_t)H + (size_t)h * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, d, scale, q, ld, k, ld, 0.0f,
                    att, T);
        for (int i = 0; i < rows; i++) {
            float *att_i = att + (size_t)i * T;
            if (j->gate && j->rel) {
                const float g = j->gate[(size_t)h * T + i0 + i];
                /* rel[j - i + T - 1] for query row i0 + i */
                const float *rel_i = j->rel + (size_t)h * (2 * T - 1) + (T - 1 - (i0 + i));
                for (int c = 0; c < T; c++)
                    att_i[c] += g * rel_i[c];
            }
            softmax_row(att_i, T);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, T, 1.0f, att, T, v, ld,
                    0.0f, j->out + (size_t)i0 * H + (size_t)h * d, H);
    }
}

/* qkv (T, 3H), out (T, H); gate (nh, T), rel (nh, 2T-1) or NULL; att (threads, R, T). */
void sbi_ssl_attention_forward(float *out, float *att, const float *qkv, const float *gate,
                               const float *rel, int T, int H, int nh, sbi_ssl_pool *pool)
{
    const int R = T < SBI_SSL_ATT_ROWS ? T : SBI_SSL_ATT_ROWS;
    attention_job j = { out, att, qkv, gate, rel, T, H, nh, (T + R - 1) / R };
    if (pool)
        sbi_ssl_blas_serial();
    sbi_ssl_parallel(pool, (size_t)nh * j.blocks, 1, attention_items, &j);
    if (pool)
        sbi_ssl_blas_restore();
}

void sbi_ssl_attention_forward_ref(float *out, const float *qkv, const float *gate,
                                   const float *rel, int T, int H, int nh)
{
    const int d = H / nh;
    float *s = malloc((size_t)T * sizeof *s);
    if (!s)
        return;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < T; i++) {
            const float *q = qkv + (size_t)i * 3 * H + (size_t)h * d;
            for (int j = 0; j < T; j++) {
                const float *k = qkv + (size_t)j * 3 * H + H + (size_t)h * d;
                float dot = 0.0f;
                for (int c = 0; c < d; c++)
                    dot += q[c] * k[c];
                s[j] = dot / sqrtf((float)d);
                if (gate && rel)
                    s[j] +=
                        gate[(size_t)h * T + i] * rel[(size_t)h * (2 * T - 1) + (j - i + T - 1)];
            }
            softmax_row_ref(s, T);
            for (int c = 0; c < d; c++) {
                float acc = 0.0f;
                for (int j = 0; j < T; j++)
                    acc += s[j] * qkv[(size_t)j * 3 * H + 2 * H + (size_t)h * d + c];
                out[(size_t)i * H + (size_t)h * d + c] = acc;
            }
        }
    free(s);
}
