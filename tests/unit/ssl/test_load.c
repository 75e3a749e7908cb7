/* tests/unit/ssl/test_load.c — checkpoint loading and bad input, without PyTorch: a tiny
 * wav2vec2-style checkpoint written here with sb_st_writer, then broken one way at a time
 * (no config.json, unknown model_type, a missing / misshapen / integer tensor, truncated or
 * hostile safetensors, short or non-finite audio). Each must give a clear error naming the
 * culprit, never a crash. Also: the forward pass on the tiny model (frame count, hidden
 * state count, repeatability, early stop) and the weights digest and its cache. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <serbench/serbench.h>

#include "helpers.h"

TestSuite(ssl_load, .fini = ssl_cleanup);

/* Tiny architecture: 2 conv layers (K 10/5, K 3/2: receptive field 20... see config),
 * H 8, 1 layer, 2 heads, FF 16, pos conv K 4 in 2 groups. */
#define TINY_CONFIG                                                                                \
    "{\"model_type\": \"%s\", \"conv_dim\": [4, 6], \"conv_kernel\": [10, 3], "                    \
    "\"conv_stride\": [5, 2], \"feat_extract_norm\": \"group\", \"hidden_size\": 8, "              \
    "\"num_hidden_layers\": %d, \"num_attention_heads\": 2, \"intermediate_size\": 16, "           \
    "\"num_conv_pos_embeddings\": 4, \"num_conv_pos_embedding_groups\": 2}"

typedef struct tens {
    const char *name;
    int ndim;
    int64_t shape[3];
} tens;

static const tens tiny_global[] = {
    { "feature_extractor.conv_layers.0.conv.weight", 3, { 4, 1, 10 } },
    { "feature_extractor.conv_layers.0.layer_norm.weight", 1, { 4 } },
    { "feature_extractor.conv_layers.0.layer_norm.bias", 1, { 4 } },
    { "feature_extractor.conv_layers.1.conv.weight", 3, { 6, 4, 3 } },
    { "feature_projection.layer_norm.weight", 1, { 6 } },
    { "feature_projection.layer_norm.bias", 1, { 6 } },
    { "feature_projection.projection.weight", 2, { 8, 6 } },
    { "feature_projection.projection.bias", 1, { 8 } },
    { "encoder.pos_conv_embed.conv.weight_g", 3, { 1, 1, 4 } },
    { "encoder.pos_conv_embed.conv.weight_v", 3, { 8, 4, 4 } },
    { "encoder.pos_conv_embed.conv.bias", 1, { 8 } },
    { "encoder.layer_norm.weight", 1, { 8 } },
    { "encoder.layer_norm.bias", 1, { 8 } },
};
static const tens tiny_layer[] = {
    { "attention.q_proj.weight", 2, { 8, 8 } },
    { "attention.q_proj.bias", 1, { 8 } },
    { "attention.k_proj.weight", 2, { 8, 8 } },
    { "attention.k_proj.bias", 1, { 8 } },
    { "attention.v_proj.weight", 2, { 8, 8 } },
    { "attention.v_proj.bias", 1, { 8 } },
    { "attention.out_proj.weight", 2, { 8, 8 } },
    { "attention.out_proj.bias", 1, { 8 } },
    { "layer_norm.weight", 1, { 8 } },
    { "layer_norm.bias", 1, { 8 } },
    { "feed_forward.intermediate_dense.weight", 2, { 16, 8 } },
    { "feed_forward.intermediate_dense.bias", 1, { 16 } },
    { "feed_forward.output_dense.weight", 2, { 8, 16 } },
    { "feed_forward.output_dense.bias", 1, { 8 } },
    { "final_layer_norm.weight", 1, { 8 } },
    { "final_layer_norm.bias", 1, { 8 } },
};

/* Write a tiny checkpoint into tmp/name. skip: a tensor name left out; reshape: a tensor
 * written with its first dimension + 1; as_int: a tensor stored as I32. */
static const char *make_tiny(const char *name, const char *model_type, int layers, const char *skip,
                             const char *reshape, const char *as_int)
{
    const char *dir = ssl_tmp(name);
    static char dirbuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    mkdir(dirbuf, 0755);
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dirbuf);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, TINY_CONFIG, model_type, layers);
    fclose(f);
    sb_st_writer *w = sb_st_writer_create();
    float buf[512];
    int32_t ibuf[512];
    uint32_t s = 99;
    for (int i = 0; i < 512; i++) {
        s = s * 1664525u + 1013904223u;
        buf[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
        ibuf[i] = (int32_t)i;
    }
    const int n_global = sizeof tiny_global / sizeof tiny_global[0];
    const int n_layer = sizeof tiny_layer / sizeof tiny_layer[0];
    for (int i = 0; i < n_global + layers * n_layer; i++) {
        const tens *t = i < n_global ? &tiny_global[i] : &tiny_layer[(i - n_global) % n_layer];
        char full[160];
        if (i < n_global)
            snprintf(full, sizeof full, "%s", t->name);
        else
            snprintf(full, sizeof full, "encoder.layers.%d.%s", (i - n_global) / n_layer, t->name);
        if (skip && !strcmp(full, skip))
            continue;
        int64_t shape[3] = { t->shape[0], t->shape[1], t->shape[2] };
        if (reshape && !strcmp(full, reshape))
            shape[0]++;
        sb_error err = { 0 };
        if (as_int && !strcmp(full, as_int))
            cr_assert_eq(sb_st_writer_add(w, full, SB_DT_I32, t->ndim, shape, ibuf, &err), SB_OK);
        else
            cr_assert_eq(sb_st_writer_add(w, full, SB_DT_F32, t->ndim, shape, buf, &err), SB_OK,
                         "%s", err.msg);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dirbuf);
    sb_error err = { 0 };
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    return dirbuf;
}

static void expect_open_error(const char *dir, sb_status code, const char *needle,
                              const char *needle2)
{
    sb_error err = { 0 };
    sb_ssl_model *m = (sb_ssl_model *)&err;
    sb_status st = sb_ssl_open(dir, &m, &err);
    cr_expect_eq(st, code, "%s: status %d (%s: %s)", dir, st, err.where, err.msg);
    cr_expect_null(m);
    char all[2100];
    snprintf(all, sizeof all, "%s: %s", err.where, err.msg);
    cr_expect(strstr(all, needle), "message lacks '%s': %s", needle, all);
    if (needle2)
        cr_expect(strstr(all, needle2), "message lacks '%s': %s", needle2, all);
}

static sb_status count_layers(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    int *n = user;
    for (size_t i = 0; i < T * (size_t)H; i++)
        cr_assert(isfinite(h[i]), "hidden %d not finite at %zu", index, i);
    (*n)++;
    return SB_OK;
}

Test(ssl_load, tiny_model_runs)
{
    const char *dir = make_tiny("tiny", "wav2vec2", 2, NULL, NULL, NULL);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(dir, &m, &err), SB_OK, "%s: %s", err.where, err.msg);
    const sb_ssl_config *c = sb_ssl_get_config(m);
    cr_expect_eq(c->family, SB_SSL_WAV2VEC2);
    cr_expect_eq(c->n_layers, 2);
    cr_expect_eq(c->receptive_field, 20); /* (3-1)*5 + 10 */
    cr_expect_eq(c->hop, 10);
    cr_expect_eq(c->normalize, 0); /* group norm, no preprocessor_config.json */
    cr_expect_str_eq(c->normalize_from, "feat_extract_norm rule");
    /* conv 40+8+72, fp 12+56, pos 136, enc LN 16; per layer qkvo 4*72, LNs 2*16, FFN 144+136 */
    cr_expect_eq(sb_ssl_n_params(m),
                 40 + 8 + 72 + 12 + 56 + 136 + 16 + 2 * (4 * 72 + 16 + 144 + 136 + 16));
    cr_expect_eq(sb_ssl_n_frames(m, 19), 0);
    cr_expect_eq(sb_ssl_n_frames(m, 20), 1);
    cr_expect_eq(sb_ssl_n_frames(m, 1000), 99);
    float x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (float)sin(0.05 * i);
    int n = 0;
    cr_assert_eq(sb_ssl_forward(m, x, 1000, -1, -1, count_layers, &n, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(n, 3);
    n = 0;
    cr_assert_eq(sb_ssl_forward(m, x, 20, -1, 1, count_layers, &n, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(n, 2, "last = 1 computes hidden states 0 and 1 only");
    sb_ssl_close(&m);
    cr_expect_null(m);
    sb_ssl_close(&m);
    sb_ssl_close(NULL);
}

static float saved[3][99 * 8];

static sb_status keep(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    memcpy(saved[index], h, T * (size_t)H * sizeof *h);
    return SB_OK;
}

static sb_status stop_at_one(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    return index == 1 ? sb_error_set(err, SB_ERR_CANCELLED, NULL, "stop") : SB_OK;
}

Test(ssl_load, forward_is_repeatable_across_buffer_growth)
{
    const char *dir = make_tiny("tiny-rep", "hubert", 2, NULL, NULL, NULL);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(dir, &m, &err), SB_OK, "%s", err.msg);
    float x[5000], first[3][99 * 8];
    for (int i = 0; i < 5000; i++)
        x[i] = (float)(0.3 * sin(0.031 * i) + 0.1 * cos(0.7 * i));
    cr_assert_eq(sb_ssl_forward(m, x, 1000, 0, -1, keep, NULL, &err), SB_OK);
    memcpy(first, saved, sizeof first);
    cr_assert_eq(sb_ssl_forward(m, x, 5000, 0, -1, count_layers, &(int){ 0 }, &err), SB_OK);
    cr_assert_eq(sb_ssl_forward(m, x, 1000, 0, -1, keep, NULL, &err), SB_OK);
    cr_expect_eq(memcmp(first, saved, sizeof first), 0, "same input, different output");
    /* normalize on differs from off */
    cr_assert_eq(sb_ssl_forward(m, x, 1000, 1, -1, keep, NULL, &err), SB_OK);
    cr_expect_neq(memcmp(first, saved, sizeof first), 0, "normalize had no effect");
    /* the callback's status stops the pass */
    sb_error_clear(&err);
    cr_expect_eq(sb_ssl_forward(m, x, 1000, 0, -1, stop_at_one, NULL, &err), SB_ERR_CANCELLED);
    sb_ssl_close(&m);
}

Test(ssl_load, bad_audio)
{
    const char *dir = make_tiny("tiny-audio", "wav2vec2", 1, NULL, NULL, NULL);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(dir, &m, &err), SB_OK, "%s", err.msg);
    float x[100] = { 0 };
    int n = 0;
    cr_expect_eq(sb_ssl_forward(m, x, 19, -1, -1, count_layers, &n, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "19 samples is shorter than one encoder frame (20 samples"), "%s",
              err.msg);
    cr_expect_eq(sb_ssl_forward(m, x, 0, -1, -1, count_layers, &n, &err), SB_ERR_AUDIO);
    x[57] = NAN;
    sb_error_clear(&err);
    cr_expect_eq(sb_ssl_forward(m, x, 100, -1, -1, count_layers, &n, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "sample 57 of 100 is NaN"), "%s", err.msg);
    x[57] = 0;
    x[3] = -INFINITY;
    sb_error_clear(&err);
    cr_expect_eq(sb_ssl_forward(m, x, 100, -1, -1, count_layers, &n, &err), SB_ERR_AUDIO);
    cr_expect(strstr(err.msg, "sample 3 of 100 is infinite"), "%s", err.msg);
    cr_expect_eq(n, 0);
    sb_ssl_close(&m);
}

/* A folder whose config.json is fine but that has no weights file. */
Test(ssl_load, no_weights_file)
{
    const char *dir = ssl_tmp("noweights");
    mkdir(dir, 0755);
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"model_type\": \"hubert\"}");
    fclose(f);
    expect_open_error(dir, SB_ERR_IO, "no model.safetensors", NULL);
}

Test(ssl_load, bad_folders)
{
    expect_open_error(ssl_tmp("does-not-exist"), SB_ERR_IO, "does not exist", NULL);
    const char *dir = ssl_tmp("empty");
    mkdir(dir, 0755);
    expect_open_error(dir, SB_ERR_IO, "no config.json", NULL);

    dir = make_tiny("unknown", "whisper", 1, NULL, NULL, NULL);
    expect_open_error(dir, SB_ERR_FORMAT, "unknown model_type \"whisper\"", "config.json");

    /* only a pytorch_model.bin: point at the converter */
    dir = make_tiny("binonly", "wav2vec2", 1, NULL, NULL, NULL);
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/pytorch_model.bin", dir);
    cr_assert_eq(rename(a, b), 0);
    expect_open_error(dir, SB_ERR_IO, "ssl-convert-checkpoint.py", NULL);
    unlink(b);
    expect_open_error(dir, SB_ERR_IO, "no model.safetensors", NULL);

    /* malformed config.json */
    dir = ssl_tmp("badjson");
    mkdir(dir, 0755);
    snprintf(a, sizeof a, "%s/config.json", dir);
    FILE *f = fopen(a, "w");
    fputs("{\"model_type\": \"wav2vec2\",", f);
    fclose(f);
    expect_open_error(dir, SB_ERR_FORMAT, "config.json", "line");
    f = fopen(a, "w");
    fputs("{\"model_type\": \"wav2vec2\", \"feat_extract_norm\": \"batch\"}", f);
    fclose(f);
    expect_open_error(dir, SB_ERR_FORMAT, "feat_extract_norm", "batch");
    f = fopen(a, "w");
    fputs("{\"model_type\": \"wav2vec2\", \"hidden_act\": \"relu\"}", f);
    fclose(f);
    expect_open_error(dir, SB_ERR_FORMAT, "hidden_act", "relu");
}

Test(ssl_load, bad_tensors_are_named)
{
    const char *dir =
        make_tiny("missing", "wav2vec2", 2, "encoder.layers.1.attention.k_proj.bias", NULL, NULL);
    expect_open_error(dir, SB_ERR_FORMAT, "no tensor 'encoder.layers.1.attention.k_proj.bias'",
                      "expected shape [8]");
    dir = make_tiny("misshapen", "wav2vec2", 2, NULL,
                    "encoder.layers.0.feed_forward.intermediate_dense.weight", NULL);
    expect_open_error(dir, SB_ERR_FORMAT,
                      "tensor 'encoder.layers.0.feed_forward.intermediate_dense.weight' has shape "
                      "[17, 8]",
                      "implies [16, 8]");
    dir = make_tiny("wnmissing", "wav2vec2", 1, "encoder.pos_conv_embed.conv.weight_g", NULL, NULL);
    expect_open_error(dir, SB_ERR_FORMAT, "encoder.pos_conv_embed.conv.weight_g/weight_v",
                      "[8, 4, 4]");
    dir = make_tiny("wnshape", "wav2vec2", 1, NULL, "encoder.pos_conv_embed.conv.weight_g", NULL);
    expect_open_error(dir, SB_ERR_FORMAT, "weight_g' has shape [2, 1, 4]", "implies [1, 1, 4]");
    dir = make_tiny("inttensor", "wav2vec2", 1, NULL, NULL, "encoder.layer_norm.bias");
    expect_open_error(dir, SB_ERR_FORMAT, "tensor 'encoder.layer_norm.bias' has dtype I32",
                      "model.safetensors");
    /* a WavLM config over wav2vec2 tensors: the WavLM-only tensors are missing */
    dir = make_tiny("wrongarch", "wavlm", 1, NULL, NULL, NULL);
    expect_open_error(dir, SB_ERR_FORMAT, "rel_attn_embed", "wavlm");
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A safetensors file with header json and `data_len` zero bytes after it; hlen overrides
 * the length field when nonzero. */
static void write_st(const char *path, const char *json, size_t data_len, uint64_t hlen)
{
    size_t jn = strlen(json);
    unsigned char *buf = calloc(1, 8 + jn + data_len);
    uint64_t n = hlen ? hlen : jn;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, json, jn);
    write_bytes(path, buf, 8 + jn + data_len);
    free(buf);
}

Test(ssl_load, hostile_safetensors)
{
    const char *dir = make_tiny("hostile", "wav2vec2", 1, NULL, NULL, NULL);
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    /* truncated: keep the first half of a valid file */
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *all = malloc((size_t)len);
    cr_assert_eq(fread(all, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    write_bytes(p, all, (size_t)len / 2);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    write_bytes(p, all, 5);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    free(all);
    /* header length beyond the file */
    write_st(p, "{}", 0, 4096);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    /* overlapping offsets */
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12, 0);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    /* begin after end */
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    /* unsupported dtype string */
    write_st(p, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, 0);
    expect_open_error(dir, SB_ERR_FORMAT, "model.safetensors", NULL);
    /* a valid file with none of the tensors */
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0);
    expect_open_error(dir, SB_ERR_FORMAT, "no tensor 'feature_extractor.conv_layers.0.conv.weight'",
                      NULL);
}

Test(ssl_load, weights_digest_and_cache)
{
    const char *dir = make_tiny("digest", "wav2vec2", 1, NULL, NULL, NULL);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    cr_assert_eq(sb_ssl_open(dir, &m, &err), SB_OK, "%s", err.msg);
    char d1[SB_HASH_HEX], d2[SB_HASH_HEX], d3[SB_HASH_HEX];
    cr_assert_eq(sb_ssl_weights_digest(m, NULL, d1, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(strlen(d1), 32u);
    const char *cache = ssl_tmp("cache");
    mkdir(cache, 0755);
    cr_assert_eq(sb_ssl_weights_digest(m, cache, d2, &err), SB_OK, "%s", err.msg);
    cr_expect_str_eq(d1, d2);
    /* The cached digest is used: plant a different value in the cache file, see it back. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '^ssl-weights-.*\\.digest$' >/dev/null", cache);
    cr_assert_eq(ssl_run("%s", cmd), 0, "no cache file written");
    cr_assert_eq(ssl_run("for f in '%s'/ssl-weights-*.digest; do printf "
                         "'0123456789abcdef0123456789abcdef' > \"$f\"; done",
                         cache),
                 0);
    cr_assert_eq(sb_ssl_weights_digest(m, cache, d3, &err), SB_OK);
    cr_expect_str_eq(d3, "0123456789abcdef0123456789abcdef");
    sb_ssl_close(&m);
    /* Different weights, different digest. */
    dir = make_tiny("digest2", "wav2vec2", 2, NULL, NULL, NULL);
    cr_assert_eq(sb_ssl_open(dir, &m, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(sb_ssl_weights_digest(m, NULL, d3, &err), SB_OK);
    cr_expect_str_neq(d1, d3);
    sb_ssl_close(&m);
}
