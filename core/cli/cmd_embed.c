/* core/cli/cmd_embed.c — `serbench embed`: every hidden state of one audio file through an
 * SSL encoder checkpoint (wav2vec2, HuBERT, WavLM, data2vec-audio), written as F32 tensors
 * hidden_states.0 .. hidden_states.N, each [T, H], to a safetensors file that numpy /
 * Python safetensors can read. The parity tests compare this against PyTorch. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void embed_usage(FILE *f)
{
    fprintf(f, "usage: serbench embed --checkpoint DIR [--normalize auto|on|off] "
               "[--threads N] --out FILE.safetensors AUDIO\n"
               "  Writes hidden_states.0..N (F32 [T, H], Hugging Face output_hidden_states\n"
               "  semantics) of AUDIO (any libsndfile format, resampled to 16 kHz mono).\n"
               "  --normalize auto follows preprocessor_config.json, else the\n"
               "  feat_extract_norm rule (docs/encoders.md).\n");
}

typedef struct embed_sink {
    sb_st_writer *w;
} embed_sink;

static sb_status add_hidden(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    embed_sink *s = user;
    char name[64];
    snprintf(name, sizeof name, "hidden_states.%d", index);
    const int64_t shape[2] = { (int64_t)T, H };
    return sb_st_writer_add(s->w, name, SB_DT_F32, 2, shape, h, err);
}

int cmd_embed(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *audio = NULL, *norm = "auto";
    long threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            embed_usage(stdout);
            return EXIT_OK;
        }
        if (!strcmp(s, "--checkpoint") || !strcmp(s, "--out") || !strcmp(s, "--normalize") ||
            !strcmp(s, "--threads")) {
            if (!val) {
                fprintf(stderr, "serbench: error: %s needs a value\n", s);
                embed_usage(stderr);
                return EXIT_USAGE;
            }
            if (!strcmp(s, "--checkpoint"))
                ckpt = val;
            else if (!strcmp(s, "--out"))
                out = val;
            else if (!strcmp(s, "--normalize"))
                norm = val;
            else {
                char *end = NULL;
                errno = 0;
                threads = strtol(val, &end, 10);
                if (!*val || *end || errno || threads < 1 || threads > 1024) {
                    fprintf(stderr, "serbench: error: --threads expects 1..1024, got '%s'\n", val);
                    return EXIT_USAGE;
                }
            }
            i++;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "serbench: error: unknown option '%s'\n", s);
            embed_usage(stderr);
            return EXIT_USAGE;
        } else if (!audio) {
            audio = s;
        } else {
            fprintf(stderr, "serbench: error: one audio file per call (got '%s' and '%s')\n", audio,
                    s);
            return EXIT_USAGE;
        }
    }
    int normalize;
    if (!strcmp(norm, "auto"))
        normalize = -1;
    else if (!strcmp(norm, "on"))
        normalize = 1;
    else if (!strcmp(norm, "off"))
        normalize = 0;
    else {
        fprintf(stderr, "serbench: error: --normalize is auto, on or off, not '%s'\n", norm);
        return EXIT_USAGE;
    }
    if (!ckpt || !out || !audio) {
        fprintf(stderr, "serbench: error: embed needs --checkpoint, --out and an audio file\n");
        embed_usage(stderr);
        return EXIT_USAGE;
    }
    if (threads == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = ncpu > 0 ? ncpu : 1;
    }
    openblas_set_num_threads((int)threads);

    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    float *x = NULL;
    size_t n = 0;
    embed_sink sink = { sb_st_writer_create() };
    sb_status st = sink.w ? SB_OK : sb_error_set(&err, SB_ERR_NOMEM, NULL, "out of memory");
    if (!st)
        st = sb_ssl_open(ckpt, &m, &err);
    if (!st)
        st = sb_audio_load(audio, 0, -1, -1, 16000, &x, &n, &err);
    if (!st) {
        st = sb_ssl_forward(m, x, n, normalize, -1, add_hidden, &sink, &err);
        if (st && !err.where[0])
            snprintf(err.where, sizeof err.where, "%s", audio);
    }
    if (!st) {
        const sb_ssl_config *c = sb_ssl_get_config(m);
        const int on = normalize < 0 ? c->normalize : normalize;
        char buf[32];
        snprintf(buf, sizeof buf, "%d", c->n_layers);
        st = sb_st_writer_meta(sink.w, "model_type", c->model_type, &err);
        if (!st)
            st = sb_st_writer_meta(sink.w, "num_hidden_layers", buf, &err);
        if (!st)
            st = sb_st_writer_meta(sink.w, "normalize", on ? "on" : "off", &err);
        if (!st)
            st = sb_st_writer_meta(sink.w, "checkpoint", ckpt, &err);
    }
    if (!st)
        st = sb_st_writer_commit(sink.w, out, &err);
    sb_st_writer_destroy(&sink.w);
    sb_free(x);
    sb_ssl_close(&m);
    return st ? cli_fail(&err) : EXIT_OK;
}
