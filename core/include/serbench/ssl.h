/* serbench/ssl.h — self-supervised speech encoders (wav2vec 2.0, HuBERT, WavLM,
 * data2vec-audio) loaded from Hugging Face checkpoint folders and run in fp32 on OpenBLAS.
 *
 * One implementation covers the four families (../shared/reference/ssl-encoders.md is the
 * specification): a 1-D convolutional feature extractor (group-norm or layer-norm stack),
 * a feature projection, a positional convolution (K=128 grouped with weight norm, or
 * data2vec-audio's 5-layer stack), and a post-LN or pre-LN transformer encoder, with WavLM's
 * gated relative position bias. The forward pass delivers every hidden state with the
 * Hugging Face `output_hidden_states` semantics: N+1 tensors [T, H], index 0 being the
 * encoder input (layer-normed for post-LN models), index N the last layer's output (for
 * pre-LN models, after the final LayerNorm).
 *
 * Threading: sb_ssl_forward runs the whole pass on a pool owned by the model, of
 * openblas_get_num_threads() threads counting the caller (at most 64; the serbench host sets
 * that count to the stage's thread budget with openblas_set_num_threads). Meanwhile OpenBLAS
 * is set to one thread, so each pool thread runs single-threaded GEMMs on its own rows and
 * the budget is not exceeded. That setting is reference-counted across threads: passes of
 * different models that overlap all use the count found by the first, and OpenBLAS gets it
 * back when the last one ends. The count is restored around each hidden-state callback and
 * when sb_ssl_forward returns (unless another pass is still running). Results are
 * reproducible for a given thread count. A model may be used by one thread at a time (it
 * owns the scratch buffers and the pool); open one model per thread to run several at once. */
#ifndef SERBENCH_SSL_H
#define SERBENCH_SSL_H

#include "common.h"
#include "error.h"
#include "hash.h"

SB_BEGIN_DECLS

typedef enum sb_ssl_family {
    SB_SSL_WAV2VEC2 = 1, /* model_type "wav2vec2" */
    SB_SSL_HUBERT = 2,   /* "hubert" */
    SB_SSL_WAVLM = 3,    /* "wavlm" */
    SB_SSL_DATA2VEC = 4  /* "data2vec-audio" */
} sb_ssl_family;

#define SB_SSL_MAX_CONV 16

/* The architecture as read from config.json (missing fields take the Hugging Face config
 * class defaults). Read-only for callers. */
typedef struct sb_ssl_config {
    sb_ssl_family family;
    char model_type[32]; /* config.json's model_type */
    int n_conv;          /* feature-extractor layers (7) */
    int conv_dim[SB_SSL_MAX_CONV], conv_kernel[SB_SSL_MAX_CONV], conv_stride[SB_SSL_MAX_CONV];
    int conv_bias;       /* conv layers have a bias */
    int conv_layer_norm; /* 1: LayerNorm after every conv ("layer"); 0: GroupNorm after the
                            first only ("group") */
    int hidden_size, n_layers, n_heads, intermediate_size;
    int pos_conv_kernel;      /* 128 (weight-normed conv), or data2vec's per-layer kernel (19) */
    int pos_conv_groups;      /* 16 */
    int pos_conv_layers;      /* 1, or data2vec's stack depth (5) */
    int pre_ln;               /* do_stable_layer_norm */
    int feat_proj_layer_norm; /* LayerNorm before the projection (always, except some HuBERTs) */
    float layer_norm_eps;
    int num_buckets, max_bucket_distance; /* WavLM relative position bias */
    int normalize;                        /* default input normalisation (see sb_ssl_forward) */
    const char *normalize_from; /* "preprocessor_config.json" or "feat_extract_norm rule" */
    int receptive_field, hop;   /* samples: 400 and 320 for the standard stack */
} sb_ssl_config;

typedef struct sb_ssl_model sb_ssl_model;

/* Open the checkpoint folder `dir`: config.json (required), model.safetensors or the
 * sharded model.safetensors.index.json with its shards, and preprocessor_config.json when
 * present. Key prefixes "wav2vec2.", "hubert.", "wavlm.", "data2vec_audio." are stripped;
 * keys the encoder does not use (heads, quantiser) are ignored. Every used tensor is
 * checked against the shape the config implies; F16/BF16/F64 tensors are converted to F32;
 * the positional conv's weight norm (weight_g/weight_v or
 * parametrizations.weight.original0/1, or an already folded weight) is folded. Weights end
 * up in one allocation; the files are closed before returning.
 * Errors: SB_ERR_IO (no such folder, no config.json, no weights file), SB_ERR_FORMAT
 * (malformed JSON or safetensors, unknown model_type, an unsupported architecture field,
 * a missing or misshapen tensor — the message names the key, the expected and the found
 * shape), SB_ERR_NOMEM. *out is NULL on failure. */
SB_API sb_status sb_ssl_open(const char *dir, sb_ssl_model **out, sb_error *err);

/* Release a model and its buffers; NULLs *m. NULL or *m == NULL does nothing. */
SB_API void sb_ssl_close(sb_ssl_model **m);

/* The model's architecture; borrowed, valid until sb_ssl_close. */
SB_API const sb_ssl_config *sb_ssl_get_config(const sb_ssl_model *m);

/* Number of weight floats held (the parameter count of the encoder without heads). */
SB_API size_t sb_ssl_n_params(const sb_ssl_model *m);

/* Frames the encoder produces for n samples: the iterated conv-length formula; 0 when n is
 * shorter than the receptive field (400 samples for the standard stack). */
SB_API size_t sb_ssl_n_frames(const sb_ssl_model *m, size_t n);

/* Receives hidden state `index` (0..N) as h [T, H], time-major; h is borrowed for the
 * duration of the call. Return SB_OK to continue, anything else to stop the forward pass
 * with that status. */
typedef sb_status (*sb_ssl_hidden_fn)(void *user, int index, const float *h, size_t T, int H,
                                      sb_error *err);

/* Run the encoder on n mono samples at 16 kHz. normalize: 1 applies
 * x = (x - mean) / sqrt(var + 1e-7) over the utterance first (Hugging Face's feature
 * extractor), 0 uses the samples as given, -1 uses the checkpoint's default
 * (sb_ssl_config.normalize). Hidden states 0..last are handed to fn in order (last < 0 or
 * > N means N); the layers after `last` are not computed. Scratch buffers grow to the
 * longest utterance seen and are reused, so steady-state calls do not allocate.
 * Errors: SB_ERR_AUDIO when n is below the receptive field or a sample is NaN or
 * infinite (the message gives its index), SB_ERR_NOMEM, or whatever fn returned. */
SB_API sb_status sb_ssl_forward(sb_ssl_model *m, const float *audio, size_t n, int normalize,
                                int last, sb_ssl_hidden_fn fn, void *user, sb_error *err);

/* A digest of the weights: XXH3-128 over config.json and every safetensors file of the
 * checkpoint, in a fixed order. When cache_dir is non-NULL the digest is remembered there,
 * keyed by each file's path, size, mtime and inode, so a later call on unchanged files
 * reads no weights. Errors: SB_ERR_IO naming the file. */
SB_API sb_status sb_ssl_weights_digest(const sb_ssl_model *m, const char *cache_dir,
                                       char out[SB_HASH_HEX], sb_error *err);

/* "wav2vec2", "hubert", "wavlm", "data2vec-audio", or "?". */
SB_API const char *sb_ssl_family_name(sb_ssl_family f);

SB_END_DECLS

#endif
