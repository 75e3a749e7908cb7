/* core/lib/ssl/ssl_internal.h — (internal) kernels of the SSL encoders and the model
 * object shared by load.c and forward.c. Kernels are plain functions after llm.c:
 * outputs, then scratch, then inputs, then weights, then dimensions; activations are
 * time-major [T, C]. Each fast kernel has a loop reference beside it (the _ref suffix) that
 * the unit tests compare it against. */
#ifndef SBI_SSL_INTERNAL_H
#define SBI_SSL_INTERNAL_H

#include <serbench/ssl.h>

typedef struct sbi_ssl_pool sbi_ssl_pool; /* pool.c */

/* ---- kernels (kernels.c) --------------------------------------------------------------- */

/* Repack a PyTorch conv weight w (OC, C, K) into (OC, K, C) so one output row is the GEMM
 * row for an im2col patch laid out tap by tap (time-major input). */
void sbi_ssl_conv_pack(float *packed, const float *w, int OC, int C, int K);

/* Strided 1-D convolution, no padding. inp is (Tin, C), out is (Tout, OC) with
 * Tout = (Tin - K) / S + 1 >= 1; weight is packed (OC, K, C), bias (OC) or NULL. Runs as
 * ceil(K/S) GEMMs over strided views of inp (no copy). */
void sbi_ssl_conv1d_forward(float *out, const float *inp, const float *wpacked, const float *bias,
                            int Tin, int C, int OC, int K, int S);
/* The same with loops over the PyTorch layout w (OC, C, K). */
void sbi_ssl_conv1d_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                                int Tin, int C, int OC, int K, int S);

/* Grouped "same" convolution along time: out[t] = bias + sum_k W_k x[t + k - K/2], zero
 * outside [0, T) (for even K this is PyTorch's padding K/2 followed by dropping the last
 * frame, HF's SamePad). inp and out are (T, H), weight packed (H, K, H/G), bias (H). The
 * im2col is built SBI_SSL_POS_TAPS taps at a time (kernels.c): col is scratch of (T + K)
 * rows of sbi_ssl_posconv_col_width(H, G, K) floats. */
enum { SBI_SSL_POS_TAPS = 16 };
size_t sbi_ssl_posconv_col_width(int H, int G, int K);
void sbi_ssl_posconv_forward(float *out, float *col, const float *inp, const float *wpacked,
                             const float *bias, int T, int H, int G, int K);
/* The same for output rows [t0, t1) only (all of inp is read); col holds t1 - t0 + K rows
 * of sbi_ssl_posconv_col_width floats. Disjoint row ranges with disjoint col may run on
 * different threads. */
void sbi_ssl_posconv_rows(float *out, float *col, const float *inp, const float *wpacked,
                          const float *bias, int T, int H, int G, int K, int t0, int t1);
/* Loops over the PyTorch layout w (H, H/G, K). */
void sbi_ssl_posconv_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                                 int T, int H, int G, int K);

/* Layer 0 of the feature extractor computed directly (C = 1; see kernels.c for why not a
 * GEMM): rows [t0, t1) of out (Tout, OC) from the samples inp, out[t][o] = bias[o] +
 * sum_k wt[k][o] inp[t S + k]; wt is the weight transposed to (K, OC), bias (OC) or NULL.
 * With stats non-NULL (2 OC doubles), adds the channels' sums over those rows to
 * stats[0, OC) and their sums of squares to stats[OC, 2 OC). */
void sbi_ssl_conv0_forward(float *out, double *stats, const float *inp, const float *wt,
                           const float *bias, int OC, int K, int S, int t0, int t1);
/* Per-channel GroupNorm parameters from n_stats partial stats blocks (each 2C doubles as
 * above, summed in order) over T rows: mean (C) and scale = weight / sqrt(var + eps) (C). */
void sbi_ssl_channelnorm_stats(float *mean, float *scale, const double *stats, int n_stats,
                               const float *weight, int T, int C, float eps);
/* x (rows, C) in place: GELU((x - mean) * scale + bias), per channel. */
void sbi_ssl_channelnorm_gelu(float *x, const float *mean, const float *scale, const float *bias,
                              int rows, int C);

/* LayerNorm over the channels of each row: inp, out (T, C) (may alias), weight and bias (C)
 * or both NULL for no affine; biased variance. */
void sbi_ssl_layernorm_forward(float *out, const float *inp, const float *weight, const float *bias,
                               int T, int C, float eps);
/* The same with scalar loops. */
void sbi_ssl_layernorm_forward_ref(float *out, const float *inp, const float *weight,
                                   const float *bias, int T, int C, float eps);
/* GroupNorm with one channel per group: each channel normalised over time. x (T, C) in
 * place; weight, bias (C). */
void sbi_ssl_channelnorm_forward(float *x, const float *weight, const float *bias, int T, int C,
                                 float eps);
/* The same for channels [c0, c1) only. */
void sbi_ssl_channelnorm_range(float *x, const float *weight, const float *bias, int T, int C,
                               int c0, int c1, float eps);
/* GELU 0.5 x (1 + erf(x / sqrt 2)) in place over n values: vectorised, erf to 1.5e-7
 * absolute; the _ref version calls libm's erff. */
void sbi_ssl_gelu_forward(float *x, size_t n);
void sbi_ssl_gelu_forward_ref(float *x, size_t n);

/* WavLM relative-position bucket of r = key index - query index. */
int sbi_ssl_wavlm_bucket(long r, int num_buckets, int max_distance);
/* gate (nh, T): per head and query row, a (b c_h - 1) + 2 with a, b the sigmoids of the
 * sums of the first and last four outputs of gw (8, d) u + gb, u = inp row restricted to
 * the head's columns. inp (T, H). */
void sbi_ssl_wavlm_gate_forward(float *gate, const float *inp, const float *gw, const float *gb,
                                const float *gconst, int T, int H, int nh);
/* The same for rows [t0, t1) only. */
void sbi_ssl_wavlm_gate_rows(float *gate, const float *inp, const float *gw, const float *gb,
                             const float *gconst, int T, int H, int nh, int t0, int t1);

/* Multi-head self-attention core: qkv (T, 3H) holds Q | K | V, heads are contiguous column
 * blocks of d = H/nh. out (T, H) = concat_h softmax(Q_h K_h^T / sqrt d + B_h) V_h, where
 * B_h[i][j] = gate[h][i] * rel[h][j - i + T - 1] when gate and rel are non-NULL (WavLM;
 * gate (nh, T), rel (nh, 2T-1)), else 0. The (head, block of SBI_SSL_ATT_ROWS query rows)
 * items are split over the pool's threads, each running single-threaded GEMMs (OpenBLAS is
 * set to one thread meanwhile when pool is non-NULL) into its own part of att, scratch of
 * sbi_ssl_attention_scratch(T, pool threads) floats. */
enum { SBI_SSL_ATT_ROWS = 128 };
static inline size_t sbi_ssl_attention_scratch(size_t T, int threads)
{
    return (size_t)threads * (T < SBI_SSL_ATT_ROWS ? T : SBI_SSL_ATT_ROWS) * T;
}
void sbi_ssl_attention_forward(float *out, float *att, const float *qkv, const float *gate,
                               const float *rel, int T, int H, int nh, sbi_ssl_pool *pool);
void sbi_ssl_attention_forward_ref(float *out, const float *qkv, const float *gate,
                                   const float *rel, int T, int H, int nh);

/* ---- fork-join pool (pool.c) -------------------------------------------------------------- */

/* Process items [begin, end) as pool thread `thread` (0 = the caller). */
typedef void (*sbi_ssl_task)(void *ctx, int thread, size_t begin, size_t end);
/* A pool of n threads counting the caller (n - 1 workers); NULL when n < 2 or on failure
 * (then everything runs in the caller). */
sbi_ssl_pool *sbi_ssl_pool_create(int n);
/* Threads counting the caller: 1 for NULL. */
int sbi_ssl_pool_size(const sbi_ssl_pool *p);
void sbi_ssl_pool_destroy(sbi_ssl_pool **p);
/* Split [0, items) into one contiguous range per thread, in multiples of grain (thread k
 * gets the k-th range; the split depends only on the pool size), and wait for all. p may
 * be NULL. Tasks must write disjoint outputs and call BLAS only while it is serial. */
void sbi_ssl_parallel(sbi_ssl_pool *p, size_t items, size_t grain, sbi_ssl_task fn, void *ctx);
/* Set OpenBLAS to one thread and return the count the host had set (the thread budget);
 * each call is paired with a sbi_ssl_blas_restore, which puts that count back when the
 * last overlapping user (any thread) is done. Pool threads each run single-threaded GEMMs,
 * so OpenBLAS's own workers, which spin for a while after every threaded GEMM, never
 * compete with them. */
int sbi_ssl_blas_serial(void);
void sbi_ssl_blas_restore(void);

/* ---- the model (load.c, forward.c) ----------------------------------------------------- */

typedef struct sbi_ssl_layer {
    const float *wqkv, *bqkv; /* (3H, H), (3H): q | k | v rows */
    const float *wo, *bo;     /* (H, H), (H) */
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *w1, *b1, *w2, *b2;     /* (FF, H), (FF), (H, FF), (H) */
    const float *gru_w, *gru_b, *gru_c; /* WavLM: (8, d), (8), (nh) */
} sbi_ssl_layer;

typedef struct sbi_ssl_weights {
    const float *conv_w[SB_SSL_MAX_CONV];                             /* packed (OC, K, C) */
    const float *conv_b[SB_SSL_MAX_CONV];                             /* or NULL */
    const float *conv_nw[SB_SSL_MAX_CONV], *conv_nb[SB_SSL_MAX_CONV]; /* or NULL */
    const float *fp_ln_w, *fp_ln_b;   /* or NULL (feat_proj_layer_norm false) */
    const float *fp_w, *fp_b;         /* (H, C_last), (H) */
    const float *pos_w[8], *pos_b[8]; /* packed (H, K, H/G), (H) per pos-conv layer */
    const float *enc_ln_w, *enc_ln_b;
    const float *rel_embed; /* WavLM (num_buckets, nh) */
    sbi_ssl_layer *layers;  /* [n_layers] */
} sbi_ssl_weights;

/* Scratch sized for the longest utterance seen (grown, never shrunk). */
typedef struct sbi_ssl_work {
    size_t cap_samples, cap_frames;
    float *wav;        /* [cap_samples] normalised copy */
    float *ca, *cb;    /* conv ping-pong, [max T_l * C_l] each */
    float *x, *y, *p;  /* (T, H) */
    float *qkv;        /* (T, 3H) */
    float *ffn;        /* (T, FF) */
    float *col;        /* pos-conv im2col, T + threads K rows (sbi_ssl_posconv_col_width) */
    float *att;        /* attention scores, sbi_ssl_attention_scratch(T, threads) */
    float *w0t;        /* conv layer 0 weight transposed, (K0, C0) */
    float *cn;         /* GroupNorm of conv layer 0: mean | scale, 2 C0 */
    double *stats;     /* its per-thread partial sums, (threads, 2, C0) */
    int threads;       /* pool threads the buffers are sized for */
    float *gate, *rel; /* WavLM (nh, T), (nh, 2T-1) */
    int *bucket;       /* WavLM [2T-1] */
    size_t size_a, size_b;
} sbi_ssl_work;

struct sb_ssl_model {
    sb_ssl_config cfg;
    char *dir;
    char **files; /* weight files, sorted; n_files */
    size_t n_files;
    float *blob; /* the one allocation of weights */
    size_t n_params;
    sbi_ssl_weights w;
    sbi_ssl_work work;
    sbi_ssl_pool *pool; /* sized by openblas_get_num_threads() at the last forward */
    int pool_threads;
};

/* Frame count after conv layer l (0-based) for n samples, or 0 when too short. */
size_t sbi_ssl_conv_len(const sb_ssl_config *c, size_t n, int l);
void sbi_ssl_work_free(sbi_ssl_work *w);

#endif
