/* core/lib/ssl/load.c — opening a Hugging Face checkpoint folder: config.json (the
 * architecture, with the HF config-class defaults), preprocessor_config.json (the input
 * normalisation default), and the weights (model.safetensors or its sharded index) checked
 * tensor by tensor against the shapes the config implies, converted to F32, repacked for
 * the GEMM kernels and copied into one allocation. */
#include "ssl_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <serbench/safetensors.h>

#include "util.h"

const char *sb_ssl_family_name(sb_ssl_family f)
{
    switch (f) {
    case SB_SSL_WAV2VEC2: return "wav2vec2";
    case SB_SSL_HUBERT: return "hubert";
    case SB_SSL_WAVLM: return "wavlm";
    case SB_SSL_DATA2VEC: return "data2vec-audio";
    }
    return "?";
}

/* ---- config.json ----------------------------------------------------------------------- */

static sb_status get_int(json_t *root, const char *path, const char *key, int def, int min, int max,
                         int *out, sb_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return SB_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "'%s' must be an integer in [%d, %d]; the checkpoint's config is "
                            "damaged or not a speech encoder's",
                            key, min, max);
    *out = (int)json_integer_value(v);
    return SB_OK;
}

static sb_status get_bool(json_t *root, const char *path, const char *key, int def, int *out,
                          sb_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return SB_OK;
    }
    if (!json_is_boolean(v))
        return sb_error_set(err, SB_ERR_FORMAT, path, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return SB_OK;
}

static sb_status get_int_array(json_t *root, const char *path, const char *key, const int *def,
                               int *out, int *n, sb_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (*n == 0)
            *n = 7;
        for (int i = 0; i < *n; i++)
            out[i] = def[i < 7 ? i : 6];
        return SB_OK;
    }
    size_t len = json_is_array(v) ? json_array_size(v) : 0;
    if (len == 0 || len > SB_SSL_MAX_CONV || (*n && (int)len != *n))
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "'%s' must be a list of 1..%d integers, as long as the other conv_* "
                            "lists",
                            key, SB_SSL_MAX_CONV);
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 65536)
            return sb_error_set(err, SB_ERR_FORMAT, path, "'%s'[%zu] must be a positive integer",
                                key, i);
        out[i] = (int)json_integer_value(e);
    }
    *n = (int)len;
    return SB_OK;
}

static sb_status expect_string(json_t *root, const char *path, const char *key, const char *def,
                               const char *allowed, char *out, size_t cap, sb_error *err)
{
    json_t *v = json_object_get(root, key);
    const char *s = def;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return sb_error_set(err, SB_ERR_FORMAT, path, "'%s' must be a string", key);
        s = json_string_value(v);
    }
    /* allowed is "a|b|c" */
    const char *p = allowed;
    size_t len = strlen(s);
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, s, n) == 0) {
            if (out)
                snprintf(out, cap, "%s", s);
            return SB_OK;
        }
        p = bar ? bar + 1 : NULL;
    }
    return sb_error_set(err, SB_ERR_FORMAT, path,
                        "'%s' is \"%s\"; serbench's SSL encoders support only %s", key, s, allowed);
}

static sb_status parse_config(const char *dir, sb_ssl_config *c, sb_error *err)
{
    char *path = sbi_path_join(dir, "config.json");
    if (!path)
        return sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    if (!sbi_is_file(path)) {
        sb_status st = sb_error_set(err, SB_ERR_IO, dir,
                                    "no config.json in the checkpoint folder; point `checkpoint` "
                                    "at a Hugging Face model folder (config.json + "
                                    "model.safetensors)");
        free(path);
        return st;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    sb_status st = SB_OK;
    if (!root || !json_is_object(root)) {
        st = sb_error_set(err, SB_ERR_FORMAT, path, "line %d: %s", je.line,
                          root ? "not a JSON object" : je.text);
        goto done;
    }
    json_t *mt = json_object_get(root, "model_type");
    const char *type = json_is_string(mt) ? json_string_value(mt) : NULL;
    if (!type) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "no \"model_type\"; expected one of wav2vec2, hubert, wavlm, "
                          "data2vec-audio");
        goto done;
    }
    if (!strcmp(type, "wav2vec2"))
        c->family = SB_SSL_WAV2VEC2;
    else if (!strcmp(type, "hubert"))
        c->family = SB_SSL_HUBERT;
    else if (!strcmp(type, "wavlm"))
        c->family = SB_SSL_WAVLM;
    else if (!strcmp(type, "data2vec-audio"))
        c->family = SB_SSL_DATA2VEC;
    else {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "unknown model_type \"%s\"; serbench's SSL encoders read wav2vec2, "
                          "hubert, wavlm and data2vec-audio checkpoints",
                          type);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", type);
    const int d2v = c->family == SB_SSL_DATA2VEC;

    static const int def_dim[7] = { 512, 512, 512, 512, 512, 512, 512 };
    static const int def_kernel[7] = { 10, 3, 3, 3, 3, 2, 2 };
    static const int def_stride[7] = { 5, 2, 2, 2, 2, 2, 2 };
    char norm[16] = "layer";
    int bn = 0, adapter = 0;
    c->n_conv = 0;
    if ((st = get_int_array(root, path, "conv_dim", def_dim, c->conv_dim, &c->n_conv, err)) ||
        (st = get_int_array(root, path, "conv_kernel", def_kernel, c->conv_kernel, &c->n_conv,
                            err)) ||
        (st = get_int_array(root, path, "conv_stride", def_stride, c->conv_stride, &c->n_conv,
                            err)) ||
        (st = get_bool(root, path, "conv_bias", 0, &c->conv_bias, err)) ||
        (!d2v && (st = expect_string(root, path, "feat_extract_norm", "group", "group|layer", norm,
                                     sizeof norm, err))) ||
        (st = expect_string(root, path, "feat_extract_activation", "gelu", "gelu", NULL, 0, err)) ||
        (st = expect_string(root, path, "hidden_act", "gelu", "gelu", NULL, 0, err)) ||
        (st = get_int(root, path, "hidden_size", 768, 1, 1 << 16, &c->hidden_size, err)) ||
        (st = get_int(root, path, "num_hidden_layers", 12, 0, 1024, &c->n_layers, err)) ||
        (st = get_int(root, path, "num_attention_heads", 12, 1, 1024, &c->n_heads, err)) ||
        (st = get_int(root, path, "intermediate_size", 3072, 1, 1 << 18, &c->intermediate_size,
                      err)) ||
        (st = get_int(root, path, "num_conv_pos_embedding_groups", 16, 1, 1 << 16,
                      &c->pos_conv_groups, err)) ||
        (st = get_bool(root, path, "do_stable_layer_norm", 0, &c->pre_ln, err)) ||
        (st = get_bool(root, path, "feat_proj_layer_norm", 1, &c->feat_proj_layer_norm, err)) ||
        (st = get_bool(root, path, "conv_pos_batch_norm", 0, &bn, err)) ||
        (st = get_bool(root, path, "add_adapter", 0, &adapter, err)) ||
        (st = get_int(root, path, "num_buckets", 320, 2, 1 << 16, &c->num_buckets, err)) ||
        (st = get_int(root, path, "max_bucket_distance", 800, 1, 1 << 24, &c->max_bucket_distance,
                      err)))
        goto done;
    if (d2v) {
        c->pre_ln = 0;
        c->conv_layer_norm = 1;
        if ((st = get_int(root, path, "num_conv_pos_embeddings", 5, 1, 8, &c->pos_conv_layers,
                          err)) ||
            (st = get_int(root, path, "conv_pos_kernel_size", 19, 1, 4096, &c->pos_conv_kernel,
                          err)))
            goto done;
    } else {
        c->conv_layer_norm = !strcmp(norm, "layer");
        c->pos_conv_layers = 1;
        if ((st = get_int(root, path, "num_conv_pos_embeddings", 128, 1, 4096, &c->pos_conv_kernel,
                          err)))
            goto done;
    }
    if (c->family != SB_SSL_HUBERT)
        c->feat_proj_layer_norm = 1;
    json_t *eps = json_object_get(root, "layer_norm_eps");
    c->layer_norm_eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-5f;
    if (bn || adapter) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "%s is true; serbench's SSL encoders do not implement it",
                          bn ? "conv_pos_batch_norm" : "add_adapter");
        goto done;
    }
    if (c->hidden_size % c->n_heads || c->hidden_size % c->pos_conv_groups ||
        !(c->layer_norm_eps > 0)) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "hidden_size %d must be divisible by num_attention_heads %d and "
                          "num_conv_pos_embedding_groups %d, and layer_norm_eps positive",
                          c->hidden_size, c->n_heads, c->pos_conv_groups);
        goto done;
    }
    c->receptive_field = 1;
    c->hop = 1;
    for (int l = c->n_conv - 1; l >= 0; l--) {
        c->receptive_field = (c->receptive_field - 1) * c->conv_stride[l] + c->conv_kernel[l];
        c->hop *= c->conv_stride[l];
    }
    c->normalize = c->conv_layer_norm;
    c->normalize_from = "feat_extract_norm rule";
done:
    json_decref(root);
    free(path);
    return st;
}

/* preprocessor_config.json's do_normalize, when the file exists. */
static sb_status parse_preprocessor(const char *dir, sb_ssl_config *c, sb_error *err)
{
    char *path = sbi_path_join(dir, "preprocessor_config.json");
    if (!path)
        return sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    sb_status st = SB_OK;
    if (sbi_is_file(path)) {
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root || !json_is_object(root))
            st = sb_error_set(err, SB_ERR_FORMAT, path, "line %d: %s", je.line,
                              root ? "not a JSON object" : je.text);
        else {
            json_t *sr = json_object_get(root, "sampling_rate");
            if (json_is_integer(sr) && json_integer_value(sr) != 16000)
                st = sb_error_set(err, SB_ERR_FORMAT, path,
                                  "sampling_rate is %lld; serbench's SSL encoders run at 16000 Hz",
                                  (long long)json_integer_value(sr));
            json_t *dn = json_object_get(root, "do_normalize");
            if (json_is_boolean(dn)) {
                c->normalize = json_is_true(dn);
                c->normalize_from = "preprocessor_config.json";
            }
        }
        json_decref(root);
    }
    free(path);
    return st;
}

size_t sbi_ssl_conv_len(const sb_ssl_config *c, size_t n, int l)
{
    for (int i = 0; i <= l && i < c->n_conv; i++) {
        if (n < (size_t)c->conv_kernel[i])
            return 0;
        n = (n - (size_t)c->conv_kernel[i]) / (size_t)c->conv_stride[i] + 1;
    }
    return n;
}

/* ---- the weights ----------------------------------------------------------------------- */

typedef struct named {
    const char *name; /* prefix stripped */
    const sb_st_tensor *t;
    const char *file;
} named;

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

enum { PLAIN, CONV, POSCONV };

/* One destination in the blob: a tensor (or, for POSCONV, a weight-normed pair). */
typedef struct spec {
    char name[160];
    int ndim;
    int64_t shape[3];
    int kind;     /* PLAIN: copy; CONV: (OC, C, K) → (OC, K, C); POSCONV: fold + pack */
    int optional; /* absent → *dst stays NULL */
    size_t off;   /* into the blob, in floats */
    const float **dst;
} spec;

typedef struct loader {
    const char *dir;
    sb_st_file *files[256];
    size_t n_files;
    named *index;
    size_t n_index;
    spec *specs;
    size_t n_specs, cap_specs;
    size_t total; /* floats */
} loader;

static sb_status add_spec(loader *L, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                          int kind, int optional, const float **dst, size_t off, sb_error *err)
{
    if (L->n_specs == L->cap_specs) {
        size_t cap = L->cap_specs ? 2 * L->cap_specs : 256;
        spec *p = realloc(L->specs, cap * sizeof *p);
        if (!p)
            return sb_error_set(err, SB_ERR_NOMEM, L->dir, "out of memory");
        L->specs = p;
        L->cap_specs = cap;
    }
    spec *s = &L->specs[L->n_specs++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    s->shape[0] = d0, s->shape[1] = d1, s->shape[2] = d2;
    s->kind = kind;
    s->optional = optional;
    s->dst = dst;
    s->off = off;
    return SB_OK;
}

static size_t numel(const spec *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->shape[i];
    return n;
}

/* A tensor at the end of the blob. */
static sb_status add(loader *L, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                     int kind, int optional, const float **dst, sb_error *err)
{
    sb_status st = add_spec(L, name, ndim, d0, d1, d2, kind, optional, dst, L->total, err);
    if (st == SB_OK)
        L->total += numel(&L->specs[L->n_specs - 1]);
    return st;
}

/* The spec list the config implies, with the blob layout. */
static sb_status plan_weights(loader *L, sb_ssl_model *m, sb_error *err)
{
    const sb_ssl_config *c = &m->cfg;
    sbi_ssl_weights *w = &m->w;
    const int64_t H = c->hidden_size, FF = c->intermediate_size, Hg = H / c->pos_conv_groups;
    char n[160];
    sb_status st = SB_OK;
    int cin = 1;
    for (int l = 0; l < c->n_conv && !st; l++) {
        const int oc = c->conv_dim[l];
        snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.conv.weight", l);
        st = add(L, n, 3, oc, cin, c->conv_kernel[l], CONV, 0, &w->conv_w[l], err);
        if (!st && c->conv_bias) {
            snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.conv.bias", l);
            st = add(L, n, 1, oc, 0, 0, PLAIN, 1, &w->conv_b[l], err);
        }
        if (!st && (c->conv_layer_norm || l == 0)) {
            snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.layer_norm.weight", l);
            st = add(L, n, 1, oc, 0, 0, PLAIN, 0, &w->conv_nw[l], err);
            snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.layer_norm.bias", l);
            if (!st)
                st = add(L, n, 1, oc, 0, 0, PLAIN, 0, &w->conv_nb[l], err);
        }
        cin = oc;
    }
    if (!st && c->feat_proj_layer_norm) {
        st = add(L, "feature_projection.layer_norm.weight", 1, cin, 0, 0, PLAIN, 0, &w->fp_ln_w,
                 err);
        if (!st)
            st = add(L, "feature_projection.layer_norm.bias", 1, cin, 0, 0, PLAIN, 0, &w->fp_ln_b,
                     err);
    }
    if (!st)
        st = add(L, "feature_projection.projection.weight", 2, H, cin, 0, PLAIN, 0, &w->fp_w, err);
    if (!st)
        st = add(L, "feature_projection.projection.bias", 1, H, 0, 0, PLAIN, 0, &w->fp_b, err);
    if (c->family == SB_SSL_DATA2VEC) {
        for (int l = 0; l < c->pos_conv_layers && !st; l++) {
            snprintf(n, sizeof n, "encoder.pos_conv_embed.layers.%d.conv.weight", l);
            st = add(L, n, 3, H, Hg, c->pos_conv_kernel, CONV, 0, &w->pos_w[l], err);
            snprintf(n, sizeof n, "encoder.pos_conv_embed.layers.%d.conv.bias", l);
            if (!st)
                st = add(L, n, 1, H, 0, 0, PLAIN, 0, &w->pos_b[l], err);
        }
    } else if (!st) {
        st = add(L, "encoder.pos_conv_embed.conv.weight", 3, H, Hg, c->pos_conv_kernel, POSCONV, 0,
                 &w->pos_w[0], err);
        if (!st)
            st =
                add(L, "encoder.pos_conv_embed.conv.bias", 1, H, 0, 0, PLAIN, 0, &w->pos_b[0], err);
    }
    if (!st)
        st = add(L, "encoder.layer_norm.weight", 1, H, 0, 0, PLAIN, 0, &w->enc_ln_w, err);
    if (!st)
        st = add(L, "encoder.layer_norm.bias", 1, H, 0, 0, PLAIN, 0, &w->enc_ln_b, err);
    if (!st && c->family == SB_SSL_WAVLM)
        st = add(L, "encoder.layers.0.attention.rel_attn_embed.weight", 2, c->num_buckets,
                 c->n_heads, 0, PLAIN, 0, &w->rel_embed, err);
    static const char *qkv[3] = { "q_proj", "k_proj", "v_proj" };
    for (int l = 0; l < c->n_layers && !st; l++) {
        sbi_ssl_layer *ly = &w->layers[l];
        char p[64];
        snprintf(p, sizeof p, "encoder.layers.%d.", l);
        /* q, k, v weights stacked into one (3H, H) block, and their biases into (3H). */
        const size_t wqkv = L->total, bqkv = wqkv + 3 * (size_t)(H * H);
        for (int j = 0; j < 3 && !st; j++) {
            snprintf(n, sizeof n, "%sattention.%s.weight", p, qkv[j]);
            st = add_spec(L, n, 2, H, H, 0, PLAIN, 0, j == 0 ? &ly->wqkv : NULL,
                          wqkv + (size_t)j * (size_t)(H * H), err);
            snprintf(n, sizeof n, "%sattention.%s.bias", p, qkv[j]);
            if (!st)
                st = add_spec(L, n, 1, H, 0, 0, PLAIN, 0, j == 0 ? &ly->bqkv : NULL,
                              bqkv + (size_t)j * (size_t)H, err);
        }
        L->total = bqkv + 3 * (size_t)H;
#define ADD(suffix, nd, a, b, dst)                                                                 \
    if (!st) {                                                                                     \
        snprintf(n, sizeof n, "%s%s", p, suffix);                                                  \
        st = add(L, n, nd, a, b, 0, PLAIN, 0, dst, err);                                           \
    }
        ADD("attention.out_proj.weight", 2, H, H, &ly->wo)
        ADD("attention.out_proj.bias", 1, H, 0, &ly->bo)
        ADD("layer_norm.weight", 1, H, 0, &ly->ln1_w)
        ADD("layer_norm.bias", 1, H, 0, &ly->ln1_b)
        ADD("feed_forward.intermediate_dense.weight", 2, FF, H, &ly->w1)
        ADD("feed_forward.intermediate_dense.bias", 1, FF, 0, &ly->b1)
        ADD("feed_forward.output_dense.weight", 2, H, FF, &ly->w2)
        ADD("feed_forward.output_dense.bias", 1, H, 0, &ly->b2)
        ADD("final_layer_norm.weight", 1, H, 0, &ly->ln2_w)
        ADD("final_layer_norm.bias", 1, H, 0, &ly->ln2_b)
        if (c->family == SB_SSL_WAVLM) {
            ADD("attention.gru_rel_pos_linear.weight", 2, 8, H / c->n_heads, &ly->gru_w)
            ADD("attention.gru_rel_pos_linear.bias", 1, 8, 0, &ly->gru_b)
            if (!st) {
                snprintf(n, sizeof n, "%sattention.gru_rel_pos_const", p);
                st = add(L, n, 1, c->n_heads, 0, 0, PLAIN, 0, &ly->gru_c, err);
                /* stored [1, nh, 1, 1]: checked as such in check_shape */
            }
        }
#undef ADD
    }
    return st;
}

static const char *const prefixes[] = { "wav2vec2.", "hubert.", "wavlm.", "data2vec_audio." };

static sb_status index_add_file(loader *L, const char *rel, sb_error *err)
{
    if (L->n_files == sizeof L->files / sizeof L->files[0])
        return sb_error_set(err, SB_ERR_FORMAT, L->dir, "more than %zu weight shards",
                            sizeof L->files / sizeof L->files[0]);
    char *path = sbi_path_join(L->dir, rel);
    if (!path)
        return sb_error_set(err, SB_ERR_NOMEM, L->dir, "out of memory");
    sb_st_file *f = NULL;
    sb_status st = sb_st_open(path, &f, err);
    free(path);
    if (st != SB_OK)
        return st;
    L->files[L->n_files++] = f;
    size_t n = sb_st_count(f);
    named *p = realloc(L->index, (L->n_index + n + 1) * sizeof *p);
    if (!p)
        return sb_error_set(err, SB_ERR_NOMEM, L->dir, "out of memory");
    L->index = p;
    for (size_t i = 0; i < n; i++) {
        const sb_st_tensor *t = sb_st_at(f, i);
        const char *name = t->name;
        for (size_t j = 0; j < sizeof prefixes / sizeof prefixes[0]; j++)
            if (!strncmp(name, prefixes[j], strlen(prefixes[j]))) {
                name += strlen(prefixes[j]);
                break;
            }
        L->index[L->n_index++] = (named){ name, t, rel };
    }
    return SB_OK;
}

/* The weight files of dir, relative names sorted (one, or the shards of the index). */
static sb_status list_weight_files(const char *dir, char ***out, size_t *n_out, sb_error *err)
{
    *out = NULL;
    *n_out = 0;
    char *single = sbi_path_join(dir, "model.safetensors");
    char *idx = sbi_path_join(dir, "model.safetensors.index.json");
    char *bin = sbi_path_join(dir, "pytorch_model.bin");
    sb_status st = SB_OK;
    char **files = NULL;
    size_t n = 0;
    if (!single || !idx || !bin) {
        st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    } else if (sbi_is_file(single)) {
        files = calloc(1, sizeof *files);
        if (files && (files[0] = sbi_strdup("model.safetensors")))
            n = 1;
        else
            st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    } else if (sbi_is_file(idx)) {
        json_error_t je;
        json_t *root = json_load_file(idx, 0, &je);
        json_t *map = root ? json_object_get(root, "weight_map") : NULL;
        if (!json_is_object(map)) {
            st = sb_error_set(err, SB_ERR_FORMAT, idx, "%s",
                              root ? "no \"weight_map\" object" : je.text);
        } else {
            files = calloc(json_object_size(map) + 1, sizeof *files);
            const char *key;
            json_t *v;
            json_object_foreach(map, key, v)
            {
                if (st || !files)
                    break;
                const char *f = json_string_value(v);
                if (!f || strchr(f, '/') || !strcmp(f, "..") || !*f) {
                    st = sb_error_set(err, SB_ERR_FORMAT, idx,
                                      "weight_map[\"%s\"] must name a file in the folder", key);
                    break;
                }
                int seen = 0;
                for (size_t i = 0; i < n && !seen; i++)
                    seen = !strcmp(files[i], f);
                if (!seen && !(files[n++] = sbi_strdup(f)))
                    st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
            }
            if (!files)
                st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
            else if (!st && n == 0)
                st = sb_error_set(err, SB_ERR_FORMAT, idx, "weight_map is empty");
        }
        json_decref(root);
    } else if (sbi_is_file(bin)) {
        st = sb_error_set(err, SB_ERR_IO, dir,
                          "the checkpoint has only pytorch_model.bin; convert it once with "
                          "scripts/ssl-convert-checkpoint.py %s (writes model.safetensors)",
                          dir);
    } else {
        st = sb_error_set(err, SB_ERR_IO, dir,
                          "no model.safetensors or model.safetensors.index.json in the "
                          "checkpoint folder");
    }
    /* sort for a fixed digest order */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(files[j - 1], files[j]) > 0; j--) {
            char *t = files[j];
            files[j] = files[j - 1];
            files[j - 1] = t;
        }
    if (st) {
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        free(files);
    } else {
        *out = files;
        *n_out = n;
    }
    free(single);
    free(idx);
    free(bin);
    return st;
}

static const named *find(const loader *L, const char *name)
{
    named key = { name, NULL, NULL };
    return bsearch(&key, L->index, L->n_index, sizeof *L->index, cmp_named);
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

/* Shape check: found t against the spec. gru_rel_pos_const is stored [1, nh, 1, 1]. */
static sb_status check_shape(const loader *L, const spec *s, const named *e, int ndim,
                             const int64_t *want, sb_error *err)
{
    const sb_st_tensor *t = e->t;
    int ok;
    int64_t w4[4] = { 1, want[0], 1, 1 };
    if (strstr(s->name, "gru_rel_pos_const")) {
        ok = t->ndim == 4;
        for (int i = 0; ok && i < 4; i++)
            ok = t->shape[i] == w4[i];
        want = w4;
        ndim = 4;
    } else {
        ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++)
            ok = t->shape[i] == want[i];
    }
    char ws[96], fs[96];
    if (!ok) {
        fmt_shape(ws, sizeof ws, ndim, want);
        fmt_shape(fs, sizeof fs, t->ndim, t->shape);
        char where[512];
        snprintf(where, sizeof where, "%s/%s", L->dir, e->file);
        return sb_error_set(err, SB_ERR_FORMAT, where,
                            "tensor '%s' has shape %s; the config.json in the folder implies %s",
                            t->name, fs, ws);
    }
    if (t->dtype != SB_DT_F32 && t->dtype != SB_DT_F16 && t->dtype != SB_DT_BF16 &&
        t->dtype != SB_DT_F64) {
        char where[512];
        snprintf(where, sizeof where, "%s/%s", L->dir, e->file);
        return sb_error_set(err, SB_ERR_FORMAT, where,
                            "tensor '%s' has dtype %s; serbench reads F32, F16, BF16 and F64 "
                            "weights",
                            t->name, sb_dtype_name(t->dtype));
    }
    return SB_OK;
}

static sb_status missing(const loader *L, const sb_ssl_model *m, const char *name, int ndim,
                         const int64_t *shape, sb_error *err)
{
    char ws[96];
    fmt_shape(ws, sizeof ws, ndim, shape);
    return sb_error_set(err, SB_ERR_FORMAT, L->dir,
                        "no tensor '%s' (expected shape %s) in the checkpoint's weights, which a "
                        "%s model with this config.json needs; the files are incomplete or "
                        "belong to another architecture",
                        name, ws, m->cfg.model_type);
}

/* Release the file pages of a tensor once copied (they are a read-only file mapping, so
 * this only drops them from the resident set), so loading peaks near one copy of the
 * weights rather than two. */
static void drop_pages(const void *data, size_t n)
{
    const long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0)
        return;
    const uintptr_t b = ((uintptr_t)data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    const uintptr_t e = ((uintptr_t)data + n) & ~((uintptr_t)pg - 1);
    if (e > b)
        (void)madvise((void *)b, e - b, MADV_DONTNEED);
}

/* Convert e's tensor to F32 into out. */
static sb_status read_f32(const loader *L, const named *e, float *out, sb_error *err)
{
    sb_error local = { 0 };
    sb_status st = sb_st_to_f32(e->t, out, &local);
    drop_pages(e->t->data, e->t->nbytes);
    if (st != SB_OK) {
        char where[512];
        snprintf(where, sizeof where, "%s/%s", L->dir, e->file);
        return sb_error_set(err, SB_ERR_FORMAT, where, "tensor '%s': %s", e->t->name, local.msg);
    }
    return SB_OK;
}

/* Weight norm over dim 2: W[o,i,k] = g[k] v[o,i,k] / ||v[:,:,k]||, then packed. */
static sb_status load_posconv(loader *L, sb_ssl_model *m, const spec *s, float *tmp, float *tmp2,
                              sb_error *err)
{
    static const char *const names[][2] = {
        { "weight_g", "weight_v" },
        { "parametrizations.weight.original0", "parametrizations.weight.original1" },
    };
    const int64_t OC = s->shape[0], C = s->shape[1], K = s->shape[2];
    const size_t n = numel(s);
    char base[160], gname[200], vname[200];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(s->name) - strlen("weight")), s->name);
    const named *g = NULL, *v = NULL;
    for (size_t i = 0; i < 2 && !(g && v); i++) {
        snprintf(gname, sizeof gname, "%s%s", base, names[i][0]);
        snprintf(vname, sizeof vname, "%s%s", base, names[i][1]);
        g = find(L, gname);
        v = find(L, vname);
    }
    sb_status st;
    if (g && v) {
        const int64_t gshape[3] = { 1, 1, K };
        if ((st = check_shape(L, s, g, 3, gshape, err)) ||
            (st = check_shape(L, s, v, 3, s->shape, err)) || (st = read_f32(L, g, tmp2, err)) ||
            (st = read_f32(L, v, tmp, err)))
            return st;
        for (int64_t k = 0; k < K; k++) {
            double ss = 0.0;
            for (int64_t j = 0; j < OC * C; j++)
                ss += (double)tmp[j * K + k] * tmp[j * K + k];
            const double scale = ss > 0 ? tmp2[k] / sqrt(ss) : 0.0;
            for (int64_t j = 0; j < OC * C; j++)
                tmp[j * K + k] = (float)(tmp[j * K + k] * scale);
        }
    } else {
        const named *e = find(L, s->name);
        if (!e) {
            snprintf(vname, sizeof vname, "%sweight_g/weight_v", base);
            return missing(L, m, vname, 3, s->shape, err);
        }
        if ((st = check_shape(L, s, e, 3, s->shape, err)) || (st = read_f32(L, e, tmp, err)))
            return st;
    }
    (void)n;
    sbi_ssl_conv_pack(m->blob + s->off, tmp, (int)OC, (int)C, (int)K);
    return SB_OK;
}

static sb_status load_weights(loader *L, sb_ssl_model *m, sb_error *err)
{
    size_t max_n = 1;
    for (size_t i = 0; i < L->n_specs; i++)
        max_n = numel(&L->specs[i]) > max_n ? numel(&L->specs[i]) : max_n;
    m->blob = malloc(L->total * sizeof *m->blob);
    float *tmp = malloc(max_n * sizeof *tmp), *tmp2 = malloc(max_n * sizeof *tmp2);
    sb_status st = SB_OK;
    if (!m->blob || !tmp || !tmp2)
        st = sb_error_set(err, SB_ERR_NOMEM, L->dir, "out of memory for %zu weights (%.0f MB)",
                          L->total, L->total * 4e-6);
    m->n_params = L->total;
    for (size_t i = 0; i < L->n_specs && !st; i++) {
        const spec *s = &L->specs[i];
        if (s->kind == POSCONV) {
            st = load_posconv(L, m, s, tmp, tmp2, err);
        } else {
            const named *e = find(L, s->name);
            if (!e) {
                if (s->optional)
                    continue;
                st = missing(L, m, s->name, s->ndim, s->shape, err);
                break;
            }
            if ((st = check_shape(L, s, e, s->ndim, s->shape, err)))
                break;
            if (s->kind == CONV) {
                if (!(st = read_f32(L, e, tmp, err)))
                    sbi_ssl_conv_pack(m->blob + s->off, tmp, (int)s->shape[0], (int)s->shape[1],
                                      (int)s->shape[2]);
            } else {
                st = read_f32(L, e, m->blob + s->off, err);
            }
        }
        if (!st && s->dst)
            *s->dst = m->blob + s->off;
    }
    free(tmp);
    free(tmp2);
    return st;
}

sb_status sb_ssl_open(const char *dir, sb_ssl_model **out, sb_error *err)
{
    *out = NULL;
    if (!dir || !sbi_is_dir(dir))
        return sb_error_set(err, SB_ERR_IO, dir,
                            "checkpoint folder does not exist or is not a folder");
    sb_ssl_model *m = calloc(1, sizeof *m);
    if (!m)
        return sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    loader L;
    memset(&L, 0, sizeof L);
    L.dir = dir;
    sb_status st = SB_OK;
    if (!(m->dir = sbi_strdup(dir)))
        st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    if (!st)
        st = parse_config(dir, &m->cfg, err);
    if (!st)
        st = parse_preprocessor(dir, &m->cfg, err);
    if (!st && m->cfg.n_layers > 0 &&
        !(m->w.layers = calloc((size_t)m->cfg.n_layers, sizeof *m->w.layers)))
        st = sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    if (!st)
        st = list_weight_files(dir, &m->files, &m->n_files, err);
    for (size_t i = 0; !st && i < m->n_files; i++)
        st = index_add_file(&L, m->files[i], err);
    if (!st) {
        qsort(L.index, L.n_index, sizeof *L.index, cmp_named);
        for (size_t i = 1; i < L.n_index && !st; i++)
            if (!strcmp(L.index[i - 1].name, L.index[i].name))
                st = sb_error_set(err, SB_ERR_FORMAT, dir,
                                  "tensors '%s' (in %s) and '%s' (in %s) have the same name "
                                  "once the model prefix is removed",
                                  L.index[i - 1].t->name, L.index[i - 1].file, L.index[i].t->name,
                                  L.index[i].file);
    }
    if (!st)
        st = plan_weights(&L, m, err);
    if (!st)
        st = load_weights(&L, m, err);
    for (size_t i = 0; i < L.n_files; i++)
        sb_st_close(&L.files[i]);
    free(L.index);
    free(L.specs);
    if (st) {
        sb_ssl_close(&m);
        return st;
    }
    *out = m;
    return SB_OK;
}

void sb_ssl_close(sb_ssl_model **pm)
{
    if (!pm || !*pm)
        return;
    sb_ssl_model *m = *pm;
    sbi_ssl_work_free(&m->work);
    sbi_ssl_pool_destroy(&m->pool);
    free(m->blob);
    free(m->w.layers);
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i]);
    free(m->files);
    free(m->dir);
    free(m);
    *pm = NULL;
}

const sb_ssl_config *sb_ssl_get_config(const sb_ssl_model *m)
{
    return &m->cfg;
}

size_t sb_ssl_n_params(const sb_ssl_model *m)
{
    return m->n_params;
}

size_t sb_ssl_n_frames(const sb_ssl_model *m, size_t n)
{
    return sbi_ssl_conv_len(&m->cfg, n, m->cfg.n_conv - 1);
}
