/* plugins/encoders/wav2vec2/ssl_encoder.c — an SSL encoder as a serbench encoder: open the
 * checkpoint (serbench/ssl.h), check its model_type against the plugin, run each utterance
 * through the network up to the deepest selected layer, and pool every selected hidden
 * state over time (mean, or mean then population standard deviation); optionally keep the
 * selected hidden states themselves for the host's frame output. */
#include "ssl_encoder.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const sb_option ssl_encoder_options[] = {
    { "checkpoint", SB_OPT_PATH, NULL, SB_OPT_REQUIRED, 0, 0, NULL,
      "Hugging Face checkpoint folder: config.json + model.safetensors (or its sharded index)." },
    { "layers", SB_OPT_LIST, "all", SB_OPT_HAS_MIN, 1, 0, NULL,
      "Hidden states to pool: all (0..N, 0 = the encoder input), or a list of indices." },
    { "pool", SB_OPT_ENUM, "mean", 0, 0, 0, "mean|mean+std",
      "Statistics over frames: the mean, or the mean then the population standard deviation." },
    { "normalize", SB_OPT_ENUM, "auto", 0, 0, 0, "auto|on|off",
      "Zero-mean unit-variance input; auto follows preprocessor_config.json, else the "
      "feat_extract_norm rule." },
    { "max_seconds", SB_OPT_FLOAT, "0", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Encode at most this many seconds from the start of each utterance (logged when it "
      "cuts); 0 = no limit." },
    { "frames", SB_OPT_ENUM, "off", 0, 0, 0, "off|f16|f32",
      "Also store the selected hidden states frame by frame ([layers, T, H] per utterance), "
      "as float16 or float32; off keeps only the pooled vectors." },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

typedef struct ssl_enc {
    const sb_host *host;
    sb_ssl_model *m;
    int H, n_sel, last;
    int *slot; /* [N+1]: output slot of hidden state i, or -1 */
    int with_std;
    int normalize; /* -1 auto */
    size_t max_samples;
    float *out;     /* the caller's buffer during encode */
    int frame_bits; /* 0 = no frames, else 16 or 32 (how the host stores them) */
    float *fr;      /* [n_sel, T, H] hidden states of the last encode */
    size_t fr_cap;  /* floats */
    size_t T;       /* frames of the last encode; 0 = none yet */
    unsigned long truncated;
    char digest[SB_HASH_HEX];
} ssl_enc;

void ssl_encoder_destroy(void *inst)
{
    ssl_enc *e = inst;
    if (!e)
        return;
    if (e->truncated && e->host)
        e->host->log(e->host, SB_LOG_INFO, "%lu utterances were cut to max_seconds", e->truncated);
    sb_ssl_close(&e->m);
    free(e->slot);
    free(e->fr);
    free(e);
}

sb_status ssl_encoder_create(sb_ssl_family family, const char *plugin, const sb_host *host,
                             const sb_opts *opts, void **inst, sb_error *err)
{
    *inst = NULL;
    ssl_enc *e = calloc(1, sizeof *e);
    if (!e)
        return sb_error_set(err, SB_ERR_NOMEM, plugin, "out of memory");
    e->host = host;
    const char *ckpt = sb_opts_str(opts, "checkpoint");
    sb_status st = sb_ssl_open(ckpt, &e->m, err);
    if (st) {
        ssl_encoder_destroy(e);
        return st;
    }
    const sb_ssl_config *c = sb_ssl_get_config(e->m);
    if (c->family != family) {
        st =
            sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "checkpoint"),
                         "checkpoint %s is a %s model (config.json model_type), not %s; use "
                         "the '%s' encoder plugin for it",
                         ckpt, c->model_type, sb_ssl_family_name(family),
                         c->family == SB_SSL_DATA2VEC ? "data2vec" : sb_ssl_family_name(c->family));
        ssl_encoder_destroy(e);
        return st;
    }
    const int N = c->n_layers;
    e->H = c->hidden_size;
    e->slot = malloc((size_t)(N + 1) * sizeof *e->slot);
    if (!e->slot) {
        ssl_encoder_destroy(e);
        return sb_error_set(err, SB_ERR_NOMEM, plugin, "out of memory");
    }
    for (int i = 0; i <= N; i++)
        e->slot[i] = -1;
    const size_t nl = sb_opts_list_len(opts, "layers");
    if (nl == 1 && !strcmp(sb_opts_list_item(opts, "layers", 0), "all")) {
        for (int i = 0; i <= N; i++)
            e->slot[i] = i;
        e->n_sel = N + 1;
    } else {
        /* Slots follow the list order, so `layers: [12, 6]` gives 12 first. */
        for (size_t k = 0; k < nl; k++) {
            const char *s = sb_opts_list_item(opts, "layers", k);
            char *end = NULL;
            errno = 0;
            long v = strtol(s, &end, 10);
            if (!*s || *end || errno || v < 0 || v > N || e->slot[v] >= 0) {
                st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "layers"),
                                  "layers item '%s' must be %s an index from 0 to %d (this "
                                  "checkpoint has %d hidden states: the encoder input and %d "
                                  "layers), or the whole value 'all'",
                                  s, v >= 0 && v <= N && end && !*end ? "a distinct" : "", N, N + 1,
                                  N);
                ssl_encoder_destroy(e);
                return st;
            }
            e->slot[v] = (int)k;
        }
        e->n_sel = (int)nl;
    }
    for (int i = 0; i <= N; i++)
        if (e->slot[i] >= 0)
            e->last = i;
    const char *pool = sb_opts_str(opts, "pool");
    e->with_std = pool && !strcmp(pool, "mean+std");
    const char *norm = sb_opts_str(opts, "normalize");
    e->normalize = !norm || !strcmp(norm, "auto") ? -1 : !strcmp(norm, "on");
    const char *frames = sb_opts_str(opts, "frames");
    e->frame_bits = !frames || !strcmp(frames, "off") ? 0 : !strcmp(frames, "f16") ? 16 : 32;
    const double ms = sb_opts_float(opts, "max_seconds");
    e->max_samples = ms > 0 ? (size_t)(ms * 16000.0) : 0;
    if (e->max_samples && e->max_samples < (size_t)c->receptive_field) {
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "max_seconds"),
                          "max_seconds %g keeps fewer than the %d samples of one frame", ms,
                          c->receptive_field);
        ssl_encoder_destroy(e);
        return st;
    }
    host->log(host, SB_LOG_INFO,
              "%s: %s, %d layers, H %d, %.1f M weights; normalize %s (%s); pooling %d hidden "
              "states%s",
              ckpt, c->model_type, N, c->hidden_size, sb_ssl_n_params(e->m) * 1e-6,
              (e->normalize < 0 ? c->normalize : e->normalize) ? "on" : "off",
              e->normalize < 0 ? c->normalize_from : "option", e->n_sel,
              e->frame_bits == 16   ? "; frames kept (f16)"
              : e->frame_bits == 32 ? "; frames kept (f32)"
                                    : "");
    *inst = e;
    return SB_OK;
}

sb_status ssl_encoder_info(void *inst, sb_encoder_info *info, sb_error *err)
{
    const ssl_enc *e = inst;
    info->sample_rate = 16000;
    info->n_layers = e->n_sel;
    info->dim = e->with_std ? 2 * e->H : e->H;
    /* A host built against ABI 1.0 passes a struct without the frame fields. */
    if (info->struct_size >= offsetof(sb_encoder_info, frame_bits) + sizeof info->frame_bits) {
        info->frame_dim = e->frame_bits ? e->H : 0;
        info->frame_bits = e->frame_bits;
    }
    return SB_OK;
}

sb_status ssl_encoder_frames(void *inst, const float **out, size_t *T, sb_error *err)
{
    const ssl_enc *e = inst;
    if (!e->frame_bits || !e->T)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            e->frame_bits ? "frames asked before any successful encode"
                                          : "frames asked of an encoder with frames: off");
    *out = e->fr;
    *T = e->T;
    return SB_OK;
}

sb_status ssl_encoder_fingerprint(void *inst, char out[128], sb_error *err)
{
    ssl_enc *e = inst;
    if (!e->digest[0]) {
        sb_status st = sb_ssl_weights_digest(e->m, e->host->cache_dir, e->digest, err);
        if (st)
            return st;
    }
    snprintf(out, 128, "weights:%s", e->digest);
    return SB_OK;
}

/* Pool hidden state h (T, H) into its slot: mean, then the population std, in double; with
 * frames on, also copy h into its slot of e->fr [n_sel, T, H] (grown, never shrunk). */
static sb_status pool_layer(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    ssl_enc *e = user;
    const int k = e->slot[index];
    if (k < 0)
        return SB_OK;
    if (e->frame_bits) {
        const size_t need = (size_t)e->n_sel * T * (size_t)H;
        if (need > e->fr_cap) {
            float *p = realloc(e->fr, need * sizeof *p);
            if (!p)
                return sb_error_set(err, SB_ERR_NOMEM, NULL,
                                    "out of memory for %zu frames of %d layers", T, e->n_sel);
            e->fr = p;
            e->fr_cap = need;
        }
        memcpy(e->fr + (size_t)k * T * (size_t)H, h, T * (size_t)H * sizeof *h);
        e->T = T;
    }
    const size_t dim = (size_t)(e->with_std ? 2 * H : H);
    float *out = e->out + (size_t)k * dim;
    for (int c = 0; c < H; c++) {
        double sum = 0.0;
        for (size_t t = 0; t < T; t++)
            sum += h[t * (size_t)H + c];
        const double mu = sum / (double)T;
        out[c] = (float)mu;
        if (e->with_std) {
            double ss = 0.0;
            for (size_t t = 0; t < T; t++) {
                const double d = h[t * (size_t)H + c] - mu;
                ss += d * d;
            }
            out[H + c] = (float)sqrt(ss / (double)T);
        }
    }
    return SB_OK;
}

sb_status ssl_encoder_encode(void *inst, const float *audio, size_t n, float *out, sb_error *err)
{
    ssl_enc *e = inst;
    if (e->max_samples && n > e->max_samples) {
        if (e->truncated++ < 5)
            e->host->log(e->host, SB_LOG_WARN, "utterance of %.2f s cut to max_seconds = %.2f s%s",
                         n / 16000.0, e->max_samples / 16000.0,
                         e->truncated == 5 ? " (further cuts are counted, not logged)" : "");
        n = e->max_samples;
    }
    e->out = out;
    e->T = 0;
    sb_status st = sb_ssl_forward(e->m, audio, n, e->normalize, e->last, pool_layer, e, err);
    e->out = NULL;
    if (st != SB_OK)
        e->T = 0;
    return st;
}
