/* core/lib/ssl/forward.c — one utterance through an SSL encoder: input normalisation, the
 * conv feature extractor, the feature projection, the positional convolution, and the
 * post-LN or pre-LN transformer layers, handing each Hugging Face hidden state to the
 * caller as soon as it exists. Scratch buffers live in the model and grow to the longest
 * utterance; nothing is allocated per frame or per layer. */
#include "ssl_internal.h"

#include <cblas.h>
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
    free(w->gate);
    free(w->rel);
    free(w->bucket);
    memset(w, 0, sizeof *w);
}

/* Make the scratch hold n samples (T frames). Buffers grow only. */
static sb_status work_reserve(sb_ssl_model *m, size_t n, size_t T, sb_error *err)
{
    sbi_ssl_work *w = &m->work;
    const sb_ssl_config *c = &m->cfg;
    if (n <= w->cap_samples)
        return SB_OK;
    sbi_ssl_work_free(w);
    const size_t H = (size_t)c->hidden_size, FF = (size_t)c->intermediate_size;
    const size_t nh = (size_t)c->n_heads;
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
    w->col =
        malloc(T * (size_t)c->pos_conv_kernel * (H / (size_t)c->pos_conv_groups) * sizeof *w->col);
    w->att = malloc(T * T * sizeof *w->att);
    const int wavlm = c->family == SB_SSL_WAVLM;
    w->gate = wavlm ? malloc(nh * T * sizeof *w->gate) : NULL;
    w->rel = wavlm ? malloc(nh * (2 * T - 1) * sizeof *w->rel) : NULL;
    w->bucket = wavlm ? malloc((2 * T - 1) * sizeof *w->bucket) : NULL;
    if (!w->wav || !w->ca || !w->cb || !w->x || !w->y || !w->p || !w->qkv || !w->ffn || !w->col ||
        !w->att || (wavlm && (!w->gate || !w->rel || !w->bucket))) {
        sbi_ssl_work_free(w);
        return sb_error_set(err, SB_ERR_NOMEM, m->dir,
                            "out of memory for the buffers of a %zu-sample utterance "
                            "(attention needs T^2 floats, T = %zu frames); cut long audio "
                            "with the encoder's max_seconds option",
                            n, T);
    }
    w->cap_samples = n;
    w->cap_frames = T;
    w->size_a = a;
    w->size_b = b;
    return SB_OK;
}

/* ---- element-wise work on the pool ---------------------------------------------------- */

typedef struct ew_job {
    float *out;
    const float *inp, *w, *b;
    int T, C;
    float eps;
} ew_job;

static void gelu_task(void *ctx, size_t b, size_t e)
{
    const ew_job *j = ctx;
    sbi_ssl_gelu_forward(j->out + b, e - b);
}

static void layernorm_task(void *ctx, size_t b, size_t e)
{
    const ew_job *j = ctx;
    const size_t C = (size_t)j->C;
    sbi_ssl_layernorm_forward(j->out + b * C, j->inp + b * C, j->w, j->b, (int)(e - b), j->C,
                              j->eps);
}

static void channelnorm_task(void *ctx, size_t b, size_t e)
{
    const ew_job *j = ctx;
    sbi_ssl_channelnorm_range(j->out, j->w, j->b, j->T, j->C, (int)b, (int)e, j->eps);
}

static void add_task(void *ctx, size_t b, size_t e)
{
    const ew_job *j = ctx;
    for (size_t i = b; i < e; i++)
        j->out[i] += j->inp[i];
}

static void gelu(sb_ssl_model *m, float *x, size_t n)
{
    ew_job j = { .out = x };
    sbi_ssl_parallel(m->pool, n, 4096, gelu_task, &j);
}

static void layernorm(sb_ssl_model *m, float *out, const float *inp, const float *w, const float *b,
                      int T, int C, float eps)
{
    ew_job j = { out, inp, w, b, T, C, eps };
    sbi_ssl_parallel(m->pool, (size_t)T, 8, layernorm_task, &j);
}

static void channelnorm(sb_ssl_model *m, float *x, const float *w, const float *b, int T, int C)
{
    ew_job j = { x, NULL, w, b, T, C, 1e-5f };
    sbi_ssl_parallel(m->pool, (size_t)C, 64, channelnorm_task, &j);
}

/* out += inp over n floats. */
static void add(sb_ssl_model *m, float *out, const float *inp, size_t n)
{
    ew_job j = { .out = out, .inp = inp };
    sbi_ssl_parallel(m->pool, n, 16384, add_task, &j);
}

/* The pool follows the OpenBLAS thread count the host set (the thread budget). */
static void pool_sync(sb_ssl_model *m)
{
    int n = openblas_get_num_threads();
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

sb_status sb_ssl_forward(sb_ssl_model *m, const float *audio, size_t n, int normalize, int last,
                         sb_ssl_hidden_fn fn, void *user, sb_error *err)
{
    const sb_ssl_config *c = &m->cfg;
    const int H = c->hidden_size, N = c->n_layers, FF = c->intermediate_size, nh = c->n_heads;
    if (last < 0 || last > N)
        last = N;
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
    sb_status st = work_reserve(m, n, T, err);
    if (st)
        return st;
    sbi_ssl_work *w = &m->work;
    const sbi_ssl_weights *W = &m->w;
    pool_sync(m);
    const int Ti = (int)T;

    /* Input. */
    const float *in = audio;
    if (normalize < 0 ? c->normalize : normalize) {
        normalize_wave(w->wav, audio, n);
        in = w->wav;
    }

    /* Conv feature extractor: time-major (T_l, C_l), ping-pong between ca and cb. */
    int Tin = (int)n, Cin = 1;
    float *cur = NULL;
    for (int l = 0; l < c->n_conv; l++) {
        float *out = l % 2 == 0 ? w->ca : w->cb;
        const int OC = c->conv_dim[l], K = c->conv_kernel[l], S = c->conv_stride[l];
        const int Tout = (Tin - K) / S + 1;
        sbi_ssl_conv1d_forward(out, in, W->conv_w[l], W->conv_b[l], Tin, Cin, OC, K, S);
        if (c->conv_layer_norm)
            layernorm(m, out, out, W->conv_nw[l], W->conv_nb[l], Tout, OC, 1e-5f);
        else if (l == 0)
            channelnorm(m, out, W->conv_nw[0], W->conv_nb[0], Tout, OC);
        gelu(m, out, (size_t)Tout * OC);
        in = cur = out;
        Tin = Tout;
        Cin = OC;
    }

    /* Feature projection: h = Linear(LN(feat)), into x. */
    if (W->fp_ln_w)
        layernorm(m, cur, cur, W->fp_ln_w, W->fp_ln_b, Ti, Cin, c->layer_norm_eps);
    sb_nn_linear_forward(w->x, cur, W->fp_w, W->fp_b, Ti, Cin, H);

    /* Positional convolution, added once: x = h + pos(h). */
    if (c->family == SB_SSL_DATA2VEC) {
        const float *src = w->x;
        float *dst = w->p;
        for (int l = 0; l < c->pos_conv_layers; l++) {
            sbi_ssl_posconv_forward(dst, w->col, src, W->pos_w[l], W->pos_b[l], Ti, H,
                                    c->pos_conv_groups, c->pos_conv_kernel);
            layernorm(m, dst, dst, NULL, NULL, Ti, H, 1e-5f);
            gelu(m, dst, (size_t)T * H);
            src = dst;
            dst = dst == w->p ? w->y : w->p;
        }
        add(m, w->x, src, T * (size_t)H);
    } else {
        sbi_ssl_posconv_forward(w->p, w->col, w->x, W->pos_w[0], W->pos_b[0], Ti, H,
                                c->pos_conv_groups, c->pos_conv_kernel);
        gelu(m, w->p, (size_t)T * H);
        add(m, w->x, w->p, T * (size_t)H);
    }
    if (!c->pre_ln)
        layernorm(m, w->x, w->x, W->enc_ln_w, W->enc_ln_b, Ti, H, c->layer_norm_eps);
    if (N == 0 && c->pre_ln) {
        layernorm(m, w->y, w->x, W->enc_ln_w, W->enc_ln_b, Ti, H, c->layer_norm_eps);
        return fn(user, 0, w->y, T, H, err);
    }
    if ((st = fn(user, 0, w->x, T, H, err)))
        return st;

    /* WavLM: the bucketed relative-position table of layer 0, rel[h][j - i + T - 1]. */
    if (c->family == SB_SSL_WAVLM) {
        for (long r = -(long)(T - 1); r <= (long)(T - 1); r++)
            w->bucket[r + (long)T - 1] =
                sbi_ssl_wavlm_bucket(r, c->num_buckets, c->max_bucket_distance);
        for (int h = 0; h < nh; h++)
            for (size_t r = 0; r < 2 * T - 1; r++)
                w->rel[(size_t)h * (2 * T - 1) + r] = W->rel_embed[(size_t)w->bucket[r] * nh + h];
    }

    const size_t TH = T * (size_t)H;
    for (int l = 0; l < last; l++) {
        const sbi_ssl_layer *L = &W->layers[l];
        const float *ain = w->x; /* the attention module's input */
        if (c->pre_ln) {
            layernorm(m, w->y, w->x, L->ln1_w, L->ln1_b, Ti, H, c->layer_norm_eps);
            ain = w->y;
        }
        sb_nn_linear_forward(w->qkv, ain, L->wqkv, L->bqkv, Ti, H, 3 * H);
        const float *gate = NULL;
        if (c->family == SB_SSL_WAVLM) {
            sbi_ssl_wavlm_gate_forward(w->gate, ain, L->gru_w, L->gru_b, L->gru_c, Ti, H, nh);
            gate = w->gate;
        }
        sbi_ssl_attention_forward(w->p, w->att, w->qkv, gate, gate ? w->rel : NULL, Ti, H, nh,
                                  m->pool);
        sb_nn_linear_forward(w->y, w->p, L->wo, L->bo, Ti, H, H);
        add(m, w->x, w->y, TH);
        const float *fin = w->x;
        if (c->pre_ln) {
            layernorm(m, w->y, w->x, L->ln2_w, L->ln2_b, Ti, H, c->layer_norm_eps);
            fin = w->y;
        } else {
            layernorm(m, w->x, w->x, L->ln1_w, L->ln1_b, Ti, H, c->layer_norm_eps);
        }
        sb_nn_linear_forward(w->ffn, fin, L->w1, L->b1, Ti, H, FF);
        gelu(m, w->ffn, T * (size_t)FF);
        sb_nn_linear_forward(w->p, w->ffn, L->w2, L->b2, Ti, FF, H);
        add(m, w->x, w->p, TH);
        if (!c->pre_ln)
            layernorm(m, w->x, w->x, L->ln2_w, L->ln2_b, Ti, H, c->layer_norm_eps);
        const float *hs = w->x;
        if (c->pre_ln && l == N - 1) {
            layernorm(m, w->y, w->x, W->enc_ln_w, W->enc_ln_b, Ti, H, c->layer_norm_eps);
            hs = w->y;
        }
        if ((st = fn(user, l + 1, hs, T, H, err)))
            return st;
    }
    return SB_OK;
}
