/* plugins/encoders/fbank/bench_fbank.c — one-thread throughput of the fbank plugin with
 * its default options (80 mels, 25/10 ms, mean+std), through its descriptor as the host
 * calls it. Audio is loaded first and not timed. scripts/bench-fbank runs this.
 *
 *     bench_fbank [--repeat R] FILE.wav ...                                            */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifndef SB_FBANK_PLUGIN
#error "build with -DSB_FBANK_PLUGIN=path/to/fbank.so"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const sb_error *err)
{
    char buf[2200];
    fprintf(stderr, "bench_fbank: %s\n", sb_error_format(err, buf, sizeof buf));
    return 1;
}

int main(int argc, char **argv)
{
    int repeat = 5, first = 1;
    if (argc > 2 && strcmp(argv[1], "--repeat") == 0) {
        repeat = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || repeat < 1) {
        fprintf(stderr, "usage: bench_fbank [--repeat R] FILE.wav ...\n");
        return 2;
    }
    void *h = dlopen(SB_FBANK_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "bench_fbank: dlopen [%s]: %s\n", SB_FBANK_PLUGIN, dlerror());
        return 1;
    }
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(h, SB_PLUGIN_ENTRY_NAME);
    if (!entry) {
        fprintf(stderr, "bench_fbank: no [%s] in [%s]\n", SB_PLUGIN_ENTRY_NAME, SB_FBANK_PLUGIN);
        return 1;
    }
    const sb_plugin *desc = entry();
    const sb_encoder_vtable *vt = desc->vtable;
    sb_error err = { 0 };
    sb_opts *opts = NULL;
    void *inst = NULL;
    if (sbi_opts_parse(desc->options, "{}", "bench", &opts, &err) != SB_OK ||
        vt->create(sbi_test_host(0, 1), opts, &inst, &err) != SB_OK)
        return fail(&err);
    sb_encoder_info info = { .struct_size = sizeof info };
    if (vt->info(inst, &info, &err) != SB_OK)
        return fail(&err);

    /* Load every file at the encoder's rate (untimed). */
    const int nf = argc - first;
    float **audio = calloc((size_t)nf, sizeof *audio);
    size_t *len = calloc((size_t)nf, sizeof *len);
    float *out = malloc((size_t)info.dim * sizeof *out);
    if (!audio || !len || !out) {
        fprintf(stderr, "bench_fbank: out of memory\n");
        return 1;
    }
    double total = 0;
    for (int i = 0; i < nf; i++) {
        if (sb_audio_load(argv[first + i], 0, -1, -1, info.sample_rate, &audio[i], &len[i], &err) !=
            SB_OK)
            return fail(&err);
        total += (double)len[i] / info.sample_rate;
    }

    /* Best of `repeat` passes over all files: the least disturbed by other processes. */
    double best = 1e30, checksum = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now();
        for (int i = 0; i < nf; i++) {
            if (vt->encode(inst, audio[i], len[i], out, &err) != SB_OK)
                return fail(&err);
            checksum += out[0];
        }
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    printf("fbank: %.1f s audio in %.2f s = %.0f\u00d7 real time (1 thread)\n", total, best,
           total / best);
    printf("serbench_seconds=%.6f audio_seconds=%.3f files=%d checksum=%.3f\n", best, total, nf,
           checksum / repeat);

    for (int i = 0; i < nf; i++)
        sb_free(audio[i]);
    free(audio);
    free(len);
    free(out);
    vt->destroy(inst);
    sbi_opts_destroy(&opts);
    dlclose(h);
    return 0;
}
