/* core/lib/ssl/forward.c — one utterance through an SSL encoder: input normalisation, the
 * conv feature extractor, the feature projection, the positional convolution, and the
 * post-LN or pre-LN transformer layers, handing each Hugging Face hidden state to the
 * caller as soon as it exists. Scratch buffers live in the model and grow to the longest
 * utterance; nothing is allocated per frame or per layer.
 *
 * Threading: the whole pass runs on the model's pool, sized by the OpenBLAS thread count
 * the host set (the thread budget), with OpenBLAS itself at one thread. Everything but
 * attention and the GroupNorm statistics is row-local, so each stage is one pool job over
 * blocks of rows in which every thread runs its GEMMs and the element-wise work that
 * follows them on its own rows while they are in cache: a transformer layer is three jobs
 * (LN + QKV, attention by head, out-projection + residual + LN + FFN + residual + LN). */
#include "ssl_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/nn.h>

void sbi_ssl_work_free(sbi_ssl_work *w)
{
    free(w->wav);
    free(w->ca);
    free(w->cb);
    free(w->x);
    free(w->y);
    free(w->p);
    free(w->qkv);
    free(w->ffn);
    free(w->col);
    free(w->att);
    free(w->w0t);
    free(w->cn);
    free(w->stats);
    free(w->gate);
    free(w->rel);
    free(w->bucket);
    memset(w, 0, sizeof *w);
}

/* Make the scratch hold n samples (T frames) for a pool of `threads`. Buffers grow only. */
static sb_status work_reserve(sb_ssl_model *m, size_t n, size_t T, int threads, sb_error *err)
{
    sbi_ssl_work *w = &m->work;
    const sb_ssl_config *c = &m->cfg;
    if (n <= w->cap_samples && threads <= w->threads)
        return SB_OK;
    if (w->cap_samples > n)
        n = w->cap_samples, T = w->cap_frames; /* growing the thread count only */
    if (w->threads > threads)
        threads = w->threads;
    sbi_ssl_work_free(w);
    const size_t H = (size_t)c->hidden_size, FF = (size_t)c->intermediate_size;
    const size_t nh = (size_t)c->n_heads, C0 = (size_t)c->conv_dim[0];
    size_t a = 1, b = 1;
    for (int l = 0; l < c->n_conv; l++) {
        const size_t sz = sbi_ssl_conv_len(c, n, l) * (size_t)c->conv_dim[l];
        if (l % 2 == 0)
            a = sz > a ? sz : a;
        else
            b = sz > b ? sz : b;
    }
    const size_t xh =
        T * (H > (size_t)c->conv_dim[c->n_conv - 1] ? H : (size_t)c->conv_dim[c->n_conv - 1]);
    w->wav = malloc(n * sizeof *w->wav);
    w->ca = malloc(a * sizeof *w->ca);
    w->cb = malloc(b * sizeof *w->cb);
    w->x = malloc(xh * sizeof *w->x);
    w->y = malloc(xh * sizeof *w->y);
    w->p = malloc(xh * sizeof *w->p);
    w->qkv = malloc(3 * T * H * sizeof *w->qkv);
    w->ffn = malloc(T * FF * sizeof *w->ffn);
    const size_t pos_rows = T + (size_t)threads * c->pos_conv_kernel; /* see pos_task */
    w->col = malloc(pos_rows *
                    sbi_ssl_posconv_col_width((int)H, c->pos_conv_groups, c->pos_conv_kernel) *
                    sizeof *w->col);
    w->att = malloc(sbi_ssl_attention_scratch(T, threads) * sizeof *w->att);
    w->w0t = malloc((size_t)c->conv_kernel[0] * C0 * sizeof *w->w0t);
    w->cn = malloc(2 * C0 * sizeof *w->cn);
    w->stats = malloc((size_t)threads * 2 * C0 * sizeof *w->stats);
    const int wavlm = c->family == SB_SSL_WAVLM;
    w->gate = wavlm ? malloc(nh * T * sizeof *w->gate) : NULL;
    w->rel = wavlm ? malloc(nh * (2 * T - 1) * sizeof *w->rel) : NULL;
    w->bucket = wavlm ? malloc((2 * T - 1) * sizeof *w->bucket) : NULL;
    if (!w->wav || !w->ca || !w->cb || !w->x || !w->y || !w->p || !w->qkv || !w->ffn || !w->col ||
        !w->att || !w->w0t || !w->cn || !w->stats ||
        (wavlm && (!w->gate || !w->rel || !w->bucket))) {
        sbi_ssl_work_free(w);
        return sb_error_set(err, SB_ERR_NOMEM, m->dir,
                            "out of memory for the buffers of a %zu-sample utterance "
                            "(attention needs T^2 floats, T = %zu frames); cut long audio "
                            "with the encoder's max_seconds option",
                            n, T);
    }
    w->cap_samples = n;
    w->cap_frames = T;
    w->threads = threads;
    w->size_a = a;
    w->size_b = b;
    return SB_OK;
}

/* ---- pool jobs ---------------------------------------------------------------------------
 * Each job covers rows [b, e) of one stage; see the file comment. */

typedef struct job {
    const sb_ssl_config *c;
    const sbi_ssl_weights *W;
    sbi_ssl_work *w;
    const sbi_ssl_layer *L;
    int T, H;
    /* conv layer l: in (Tin, Cin) -> out (Tout, OC) */
    int l, Cin, OC;
    const float *in;
    float *out;
    /* transformer: h the hidden state (T, H), o and t two more (T, H) buffers */
    float *h, *o, *t;
    int last_layer;      /* pre-LN: this layer's output goes through the final LN into t */
    const float *src;    /* positional conv input */
    int pos_l, pos_last; /* positional conv layer, and whether it is the last one */
} job;

static void layernorm_rows(float *out, const float *inp, const float *wt, const float *bias,
                           size_t b, size_t e, int C, float eps)
{
    sbi_ssl_layernorm_forward(out + b * C, inp + b * C, wt, bias, (int)(e - b), C, eps);
}

/* Conv layer l on output rows [b, e): a GEMM over the rows' strided view of the input (or
 * the direct layer-0 kernel), then LayerNorm (layer-norm stacks) and GELU, except layer 0
 * of a group-norm stack, whose statistics are summed per thread into w->stats and whose
 * norm and GELU wait for every row (cn_task). */
static void conv_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    const sb_ssl_config *c = j->c;
    const int l = j->l, OC = j->OC, K = c->conv_kernel[l], S = c->conv_stride[l];
    float *out_b = j->out + b * OC;
    const int group0 = l == 0 && !c->conv_layer_norm;
    if (l == 0) {
        sbi_ssl_conv0_forward(j->out, group0 ? j->w->stats + (size_t)thread * 2 * OC : NULL, j->in,
                              j->w->w0t, j->W->conv_b[0], OC, K, S, (int)b, (int)e);
    } else {
        const int Tin = (int)(e - b - 1) * S + K;
        sbi_ssl_conv1d_forward(out_b, j->in + b * S * j->Cin, j->W->conv_w[l], j->W->conv_b[l], Tin,
                               j->Cin, OC, K, S);
    }
    if (group0)
        return;
    if (c->conv_layer_norm)
        layernorm_rows(j->out, j->out, j->W->conv_nw[l], j->W->conv_nb[l], b, e, OC, 1e-5f);
    sbi_ssl_gelu_forward(out_b, (e - b) * OC);
}

static void cn_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    const int C = j->OC;
    sbi_ssl_channelnorm_gelu(j->out + b * C, j->w->cn, j->w->cn + C, j->W->conv_nb[0], (int)(e - b),
                             C);
}

/* Feature projection h = Linear(LN(feat)) on rows [b, e); feat is j->out (T, Cin). */
static void fp_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    const int C = j->Cin;
    if (j->W->fp_ln_w)
        layernorm_rows(j->out, j->out, j->W->fp_ln_w, j->W->fp_ln_b, b, e, C, j->c->layer_norm_eps);
    sb_nn_linear_forward(j->h + b * j->H, j->out + b * C, j->W->fp_w, j->W->fp_b, (int)(e - b), C,
                         j->H);
}

/* Positional conv layer pos_l from src into out on rows [b, e). wav2vec2 / HuBERT / WavLM:
 * out = h + GELU(conv(h)); data2vec: out = GELU(LN(conv(src))), plus h at the last layer.
 * Then, post-LN, the encoder LayerNorm. out never aliases src or h, which other threads
 * read around their rows. */
static void pos_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    const sb_ssl_config *c = j->c;
    const int H = j->H, K = c->pos_conv_kernel, G = c->pos_conv_groups;
    float *out_b = j->out + b * H;
    /* this thread's e - b + K col rows start at row b + thread K, so they end where the
     * next thread's start, at e + (thread + 1) K */
    float *col = j->w->col + (b + (size_t)thread * K) * sbi_ssl_posconv_col_width(H, G, K);
    sbi_ssl_posconv_rows(j->out, col, j->src, j->W->pos_w[j->pos_l], j->W->pos_b[j->pos_l], j->T, H,
                         G, K, (int)b, (int)e);
    if (c->family == SB_SSL_DATA2VEC)
        layernorm_rows(j->out, j->out, NULL, NULL, b, e, H, 1e-5f);
    sbi_ssl_gelu_forward(out_b, (e - b) * H);
    if (!j->pos_last)
        return;
    const float *h_b = j->h + b * H;
    for (size_t i = 0; i < (e - b) * H; i++)
        out_b[i] += h_b[i];
    if (!c->pre_ln)
        layernorm_rows(j->out, j->out, j->W->enc_ln_w, j->W->enc_ln_b, b, e, H, c->layer_norm_eps);
}

/* The attention block's row-local part: (pre-LN: t = LN1(h)), qkv = Linear(t or h), and
 * WavLM's gate from the same input. */
static void qkv_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    const sb_ssl_config *c = j->c;
    const sbi_ssl_layer *L = j->L;
    const int H = j->H, rows = (int)(e - b);
    const float *ain = j->h;
    if (c->pre_ln) {
        layernorm_rows(j->t, j->h, L->ln1_w, L->ln1_b, b, e, H, c->layer_norm_eps);
        ain = j->t;
    }
    sb_nn_linear_forward(j->w->qkv + b * 3 * H, ain + b * H, L->wqkv, L->bqkv, rows, H, 3 * H);
    if (c->family == SB_SSL_WAVLM)
        sbi_ssl_wavlm_gate_rows(j->w->gate, ain, L->gru_w, L->gru_b, L->gru_c, j->T, H, c->n_heads,
                                (int)b, (int)e);
}

static void add_rows(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] += inp[i];
}

/* The rest of a layer on rows [b, e), o holding the attention output: h += Linear_o(o);
 * post-LN h = LN1(h); h += FFN(h or, pre-LN, LN2(h)); post-LN h = LN2(h); for the last
 * pre-LN layer t = LN_final(h). */
static void ffn_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    const sb_ssl_config *c = j->c;
    const sbi_ssl_layer *L = j->L;
    const int H = j->H, FF = c->intermediate_size, rows = (int)(e - b);
    const float eps = c->layer_norm_eps;
    float *h_b = j->h + b * H, *o_b = j->o + b * H, *t_b = j->t + b * H;
    float *ffn_b = j->w->ffn + b * FF;
    sb_nn_linear_forward(t_b, o_b, L->wo, L->bo, rows, H, H);
    add_rows(h_b, t_b, (size_t)rows * H);
    const float *fin = h_b;
    if (c->pre_ln) {
        layernorm_rows(j->t, j->h, L->ln2_w, L->ln2_b, b, e, H, eps);
        fin = t_b;
    } else {
        layernorm_rows(j->h, j->h, L->ln1_w, L->ln1_b, b, e, H, eps);
    }
    sb_nn_linear_forward(ffn_b, fin, L->w1, L->b1, rows, H, FF);
    sbi_ssl_gelu_forward(ffn_b, (size_t)rows * FF);
    sb_nn_linear_forward(o_b, ffn_b, L->w2, L->b2, rows, FF, H);
    add_rows(h_b, o_b, (size_t)rows * H);
    if (!c->pre_ln)
        layernorm_rows(j->h, j->h, L->ln2_w, L->ln2_b, b, e, H, eps);
    else if (j->last_layer)
        layernorm_rows(j->t, j->h, j->W->enc_ln_w, j->W->enc_ln_b, b, e, H, eps);
}

static void final_ln_task(void *ctx, int thread, size_t b, size_t e)
{
    const job *j = ctx;
    (void)thread;
    layernorm_rows(j->t, j->h, j->W->enc_ln_w, j->W->enc_ln_b, b, e, j->H, j->c->layer_norm_eps);
}

/* Rows per piece of a job: a multiple of the GEMM kernels' row blocking. */
enum { ROW_GRAIN = 16 };

/* The pool follows the thread budget. */
static void pool_sync(sb_ssl_model *m, int n)
{
    n = n < 1 ? 1 : n > 64 ? 64 : n;
    if (n == m->pool_threads)
        return;
    sbi_ssl_pool_destroy(&m->pool);
    m->pool = sbi_ssl_pool_create(n);
    m->pool_threads = n;
}

/* HF Wav2Vec2FeatureExtractor: (x - mean) / sqrt(var + 1e-7), population variance. */
static void normalize_wave(float *out, const float *x, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    const double mean = sum / (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    const double inv = 1.0 / sqrt(ss / (double)n + 1e-7);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((x[i] - mean) * inv);
}

/* Hand hidden state `index` to the caller with OpenBLAS back at the host's thread count
 * (unless another model's pass is running at the same time). */
static sb_status emit(sb_ssl_hidden_fn fn, void *user, int index, const float *h, size_t T, int H,
                      sb_error *err)
{
    sbi_ssl_blas_restore();
    const sb_status st = fn(user, index, h, T, H, err);
    sbi_ssl_blas_serial();
    return st;
}

/* The pass itself; OpenBLAS is serial throughout. */
static sb_status forward(sb_ssl_model *m, const float *audio, size_t n, int normalize, int last,
                         sb_ssl_hidden_fn fn, void *user, sb_error *err)
{
    const sb_ssl_config *c = &m->cfg;
    const int H = c->hidden_size, N = c->n_layers, nh = c->n_heads;
    const size_t T = sb_ssl_n_frames(m, n);
    const int threads = sbi_ssl_pool_size(m->pool);
    sb_status st = work_reserve(m, n, T, threads, err);
    if (st)
        return st;
    sbi_ssl_work *w = &m->work;
    const sbi_ssl_weights *W = &m->w;
    sbi_ssl_pool *pool = m->pool;
    const int Ti = (int)T;
    job j = { .c = c, .W = W, .w = w, .T = Ti, .H = H };

    /* Input. */
    const float *in = audio;
    if (normalize < 0 ? c->normalize : normalize) {
        normalize_wave(w->wav, audio, n);
        in = w->wav;
    }

    /* Conv feature extractor: time-major (T_l, C_l), ping-pong between ca and cb. */
    const int C0 = c->conv_dim[0], K0 = c->conv_kernel[0];
    for (int o = 0; o < C0; o++)
        for (int k = 0; k < K0; k++)
            w->w0t[(size_t)k * C0 + o] = W->conv_w[0][(size_t)o * K0 + k];
    int Tin = (int)n, Cin = 1;
    for (int l = 0; l < c->n_conv; l++) {
        const int OC = c->conv_dim[l];
        const int Tout = (Tin - c->conv_kernel[l]) / c->conv_stride[l] + 1;
        j.l = l, j.Cin = Cin, j.OC = OC, j.in = in, j.out = l % 2 == 0 ? w->ca : w->cb;
        if (l == 0 && !c->conv_layer_norm)
            memset(w->stats, 0, (size_t)threads * 2 * OC * sizeof *w->stats);
        sbi_ssl_parallel(pool, (size_t)Tout, 64, conv_task, &j);
        if (l == 0 && !c->conv_layer_norm) {
            sbi_ssl_channelnorm_stats(w->cn, w->cn + OC, w->stats, threads, W->conv_nw[0], Tout, OC,
                                      1e-5f);
            sbi_ssl_parallel(pool, (size_t)Tout, 64, cn_task, &j);
        }
        in = j.out;
        Tin = Tout;
        Cin = OC;
    }

    /* Feature projection into x. */
    j.Cin = Cin, j.h = w->x;
    sbi_ssl_parallel(pool, T, ROW_GRAIN, fp_task, &j);

    /* Positional convolution, added once: h = x + pos(x), then the encoder LN (post-LN).
     * The result lands in a buffer other than x; h follows it. */
    float *h = w->x, *bufs[2] = { w->p, w->y };
    j.src = h;
    for (int l = 0; l < c->pos_conv_layers; l++) {
        j.pos_l = l, j.pos_last = l == c->pos_conv_layers - 1;
        j.out = bufs[l % 2];
        sbi_ssl_parallel(pool, T, ROW_GRAIN, pos_task, &j);
        j.src = j.out;
    }
    if (c->pos_conv_layers > 0)
        h = j.out;
    float *o = h == w->x ? w->p : w->x; /* o and t: the two buffers h is not in */
    float *t = h != w->y && o != w->y ? w->y : w->p;
    j.h = h, j.o = o, j.t = t;
    if (N == 0 && c->pre_ln) {
        sbi_ssl_parallel(pool, T, ROW_GRAIN, final_ln_task, &j);
        return emit(fn, user, 0, t, T, H, err);
    }
    if ((st = emit(fn, user, 0, h, T, H, err)))
        return st;

    /* WavLM: the bucketed relative-position table of layer 0, rel[h][j - i + T - 1]. */
    if (c->family == SB_SSL_WAVLM) {
        for (long r = -(long)(T - 1); r <= (long)(T - 1); r++)
            w->bucket[r + (long)T - 1] =
                sbi_ssl_wavlm_bucket(r, c->num_buckets, c->max_bucket_distance);
        for (int hd = 0; hd < nh; hd++)
            for (size_t r = 0; r < 2 * T - 1; r++)
                w->rel[(size_t)hd * (2 * T - 1) + r] = W->rel_embed[(size_t)w->bucket[r] * nh + hd];
    }

    for (int l = 0; l < last; l++) {
        j.L = &W->layers[l];
        j.last_layer = l == N - 1;
        sbi_ssl_parallel(pool, T, ROW_GRAIN, qkv_task, &j);
        const float *gate = c->family == SB_SSL_WAVLM ? w->gate : NULL;
        sbi_ssl_attention_forward(o, w->att, w->qkv, gate, gate ? w->rel : NULL, Ti, H, nh, pool);
        sbi_ssl_parallel(pool, T, ROW_GRAIN, ffn_task, &j);
        const float *hs = c->pre_ln && l == N - 1 ? t : h;
        if ((st = emit(fn, user, l + 1, hs, T, H, err)))
            return st;
    }
    return SB_OK;
}

sb_status sb_ssl_forward(sb_ssl_model *m, const float *audio, size_t n, int normalize, int last,
                         sb_ssl_hidden_fn fn, void *user, sb_error *err)
{
    const sb_ssl_config *c = &m->cfg;
    if (last < 0 || last > c->n_layers)
        last = c->n_layers;
    const size_t T = sb_ssl_n_frames(m, n);
    if (T == 0)
        return sb_error_set(err, SB_ERR_AUDIO, NULL,
                            "audio of %zu samples is shorter than one encoder frame (%d samples, "
                            "%.1f ms at 16 kHz)",
                            n, c->receptive_field, c->receptive_field / 16.0);
    if (T > (size_t)1 << 24)
        return sb_error_set(err, SB_ERR_AUDIO, NULL,
                            "audio of %zu samples is too long for one pass; cut it", n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(audio[i]))
            return sb_error_set(err, SB_ERR_AUDIO, NULL,
                                "sample %zu of %zu is %s; the audio is damaged", i, n,
                                isnan(audio[i]) ? "NaN" : "infinite");
    const int blas = sbi_ssl_blas_serial(); /* the host's thread budget */
    pool_sync(m, blas);
    const sb_status st = forward(m, audio, n, normalize, last, fn, user, err);
    sbi_ssl_blas_restore();
    return st;
}
