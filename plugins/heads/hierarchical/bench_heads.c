/* plugins/heads/hierarchical/bench_heads.c — times the built head plugins (dlopen'ed and
 * driven through their vtables, as the host does) on generated data of benchmark size:
 *   linear       N utterances x L layers x D pooled features, E epochs, no dev set;
 *   hierarchical MELD-sized dialogues with an audio (L x D) and a text (LT x D) input, a few
 *                epochs per stage, seconds per epoch of each stage.
 * Run by scripts/bench-heads, which prints the machine's load average beside the numbers.
 * Usage: bench_heads LINEAR.so HIERARCHICAL.so [N L D E DIALOGUES LT EPOCHS_PER_STAGE] */
#include <serbench/serbench.h>

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a host that timestamps each stage's closing INFO line -------------------------------- */

#define MAX_MARKS 16
static struct {
    int n;
    double t[MAX_MARKS];
    char line[MAX_MARKS][512];
} marks;

static void b_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void b_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    if (level > SB_LOG_INFO)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (level == SB_LOG_INFO && marks.n < MAX_MARKS && strstr(line, "epochs")) {
        marks.t[marks.n] = now();
        snprintf(marks.line[marks.n], sizeof marks.line[0], "%s", line);
        marks.n++;
    } else {
        fprintf(stderr, "  [log] %s\n", line);
    }
}

static void b_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    (void)done;
    (void)total;
}

static int b_cancelled(const sb_host *h)
{
    (void)h;
    return 0;
}

static sb_host b_host = {
    .struct_size = sizeof(sb_host),
    .log = b_log,
    .progress = b_progress,
    .cancelled = b_cancelled,
    .cache_dir = "/tmp",
    .seed = 1,
    .threads = 2,
};

/* ---- plugins ------------------------------------------------------------------------------- */

static const sb_plugin *open_plugin(const char *path, void **dl)
{
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        fprintf(stderr, "bench_heads: cannot load [%s]: %s\n", path, dlerror());
        return NULL;
    }
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(*dl, SB_PLUGIN_ENTRY_NAME);
    if (!entry) {
        fprintf(stderr, "bench_heads: no entry point [%s] in [%s]\n", SB_PLUGIN_ENTRY_NAME, path);
        dlclose(*dl);
        return NULL;
    }
    const sb_plugin *p = entry();
    if (p->kind != SB_KIND_HEAD) {
        fprintf(stderr, "bench_heads: [%s] is not a head\n", path);
        dlclose(*dl);
        return NULL;
    }
    return p;
}

static void *create(const sb_plugin *p, const char *yaml, int L, int D, int K)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    void *inst = NULL;
    const sb_head_vtable *vt = p->vtable;
    if (sbi_opts_parse(p->options, yaml, p->name, &o, &err) != SB_OK ||
        vt->create(&b_host, o, L, D, K, &inst, &err) != SB_OK) {
        fprintf(stderr, "bench_heads: %s: %s %s\n", p->name, err.where, err.msg);
        sbi_opts_destroy(&o);
        return NULL;
    }
    sbi_opts_destroy(&o);
    return inst;
}

/* Features with a class signal (class mean in layer 0 and a few dims) plus noise. */
static float *make_x(size_t n, int L, int D, const int32_t *y, uint64_t seed)
{
    float *x = malloc(n * (size_t)L * (size_t)D * sizeof(float));
    if (!x)
        return NULL;
    sb_rng r;
    sb_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++)
                x[(i * (size_t)L + (size_t)l) * (size_t)D + (size_t)d] =
                    (float)(sb_rng_normal(&r) + (l == 0 && d < 16 && y[i] == d % 4 ? 1.0 : 0.0));
    return x;
}

static int bench_linear(const char *path, size_t n, int L, int D, int epochs)
{
    void *dl;
    const sb_plugin *p = open_plugin(path, &dl);
    if (!p)
        return 1;
    const sb_head_vtable *vt = p->vtable;
    int K = 4;
    int32_t *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)(i % 4);
    float *x = make_x(n, L, D, y, 3);
    if (!x || !y) {
        fprintf(stderr, "bench_heads: out of memory for %zu x %d x %d\n", n, L, D);
        return 1;
    }
    char yaml[128];
    snprintf(yaml, sizeof yaml, "epochs: %d\npatience: %d", epochs, epochs);
    void *inst = create(p, yaml, L, D, K);
    if (!inst)
        return 1;
    sb_head_input in = { "features", SB_INPUT_AUDIO, L, D, x };
    sb_head_data tr = { .struct_size = sizeof tr,
                        .n = n,
                        .n_layers = L,
                        .dim = D,
                        .x = x,
                        .n_classes = K,
                        .y = y,
                        .n_inputs = 1,
                        .inputs = &in };
    sb_head_data dv = { .struct_size = sizeof dv,
                        .n_layers = L,
                        .dim = D,
                        .n_classes = K,
                        .n_inputs = 1,
                        .inputs = &in };
    sb_error err = { 0 };
    double t0 = now();
    sb_status st = vt->train(inst, &tr, &dv, &err);
    double t1 = now();
    if (st != SB_OK) {
        fprintf(stderr, "bench_heads: linear train: %s\n", err.msg);
        return 1;
    }
    printf("linear: %zu utterances x %d layers x %d dims, %d epochs (no dev): %.2f s "
           "(%.3f s/epoch)\n",
           n, L, D, epochs, t1 - t0, (t1 - t0) / epochs);
    vt->destroy(inst);
    free(x);
    free(y);
    dlclose(dl);
    return 0;
}

static int bench_hier(const char *path, int n_dia, size_t n, int L, int LT, int D, int epochs)
{
    void *dl;
    const sb_plugin *p = open_plugin(path, &dl);
    if (!p)
        return 1;
    const sb_head_vtable *vt = p->vtable;
    int K = 7; /* MELD's emotions */
    int32_t *y = malloc(n * sizeof *y), *turn = malloc(n * sizeof *turn);
    char **dia = malloc(n * sizeof *dia), **spk = malloc(n * sizeof *spk);
    char **utt = malloc(n * sizeof *utt);
    if (!y || !turn || !dia || !spk || !utt)
        return 1;
    /* dialogues of 2..18 turns, n in all (MELD: ~1,000 dialogues, ~10,000 utterances) */
    sb_rng r;
    sb_rng_seed(&r, 5, 1);
    size_t row = 0;
    for (int d = 0; d < n_dia && row < n; d++) {
        size_t len = d == n_dia - 1 ? n - row : 2 + (size_t)sb_rng_below(&r, 17);
        if (row + len > n)
            len = n - row;
        for (size_t t = 0; t < len; t++, row++) {
            char buf[64];
            snprintf(buf, sizeof buf, "dia%d", d);
            dia[row] = strdup(buf);
            snprintf(buf, sizeof buf, "spk%d", (int)sb_rng_below(&r, 3));
            spk[row] = strdup(buf);
            snprintf(buf, sizeof buf, "dia%d_utt%zu", d, t);
            utt[row] = strdup(buf);
            turn[row] = (int32_t)t;
            y[row] = (int32_t)sb_rng_below(&r, (uint64_t)K);
        }
    }
    n = row;
    float *xa = make_x(n, L, D, y, 7), *xt = make_x(n, LT, D, y, 8);
    if (!xa || !xt) {
        fprintf(stderr, "bench_heads: out of memory\n");
        return 1;
    }
    sb_head_input in[2] = { { "audio", SB_INPUT_AUDIO, L, D, xa },
                            { "text", SB_INPUT_TEXT, LT, D, xt } };
    sb_head_data tr = { .struct_size = sizeof tr,
                        .n = n,
                        .n_layers = L,
                        .dim = D,
                        .x = xa,
                        .n_classes = K,
                        .y = y,
                        .utt_id = (const char *const *)utt,
                        .dialogue = (const char *const *)dia,
                        .turn = turn,
                        .speaker = (const char *const *)spk,
                        .n_inputs = 2,
                        .inputs = in };
    sb_head_data dv = { .struct_size = sizeof dv,
                        .n_layers = L,
                        .dim = D,
                        .n_classes = K,
                        .n_inputs = 2,
                        .inputs = in };
    char yaml[256];
    snprintf(yaml, sizeof yaml, "epochs: %d\npatience: %d\nlayers: 2\nspeakers: true", epochs,
             epochs);
    void *inst = create(p, yaml, L, D, K);
    if (!inst)
        return 1;
    sb_error err = { 0 };
    marks.n = 0;
    double t0 = now();
    sb_status st = vt->train(inst, &tr, &dv, &err);
    double t1 = now();
    if (st != SB_OK) {
        fprintf(stderr, "bench_heads: hierarchical train: %s\n", err.msg);
        return 1;
    }
    printf("hierarchical: %d dialogues, %zu utterances, audio %d x %d + text %d x %d, d_model 256, "
           "2 context layers, %d epochs per stage (no dev): %.2f s in all\n",
           n_dia, n, L, D, LT, D, epochs, t1 - t0);
    double prev = t0;
    for (int i = 0; i < marks.n; i++) {
        printf("  %.2f s (%.3f s/epoch): %s\n", marks.t[i] - prev, (marks.t[i] - prev) / epochs,
               marks.line[i]);
        prev = marks.t[i];
    }
    float *probs = malloc(n * (size_t)K * sizeof(float));
    double t2 = now();
    st = vt->predict(inst, &tr, probs, &err);
    printf("  predict over all %zu utterances: %.2f s%s\n", n, now() - t2,
           st == SB_OK ? "" : " (failed)");
    free(probs);
    vt->destroy(inst);
    for (size_t i = 0; i < n; i++) {
        free(dia[i]);
        free(spk[i]);
        free(utt[i]);
    }
    free(dia);
    free(spk);
    free(utt);
    free(y);
    free(turn);
    free(xa);
    free(xt);
    dlclose(dl);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_heads LINEAR.so HIERARCHICAL.so [N L D EPOCHS DIALOGUES LT "
                        "EPOCHS_PER_STAGE]\n");
        return 2;
    }
    size_t n = argc > 3 ? strtoul(argv[3], NULL, 10) : 10000;
    int L = argc > 4 ? atoi(argv[4]) : 13, D = argc > 5 ? atoi(argv[5]) : 768;
    int epochs = argc > 6 ? atoi(argv[6]) : 30, n_dia = argc > 7 ? atoi(argv[7]) : 1000;
    int LT = argc > 8 ? atoi(argv[8]) : 1, ep_stage = argc > 9 ? atoi(argv[9]) : 2;
    if (bench_linear(argv[1], n, L, D, epochs))
        return 1;
    fflush(stdout);
    return bench_hier(argv[2], n_dia, n, L, LT, D, ep_stage);
}
