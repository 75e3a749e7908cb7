/* tests/unit/nn/bench_nn.c — times a forward + backward of the training library's sequence
 * layers on one BLAS thread: the self-attention block (projections included) and the bare
 * attention at T=30, C=256, 4 heads, and a GRU / BiGRU at T=30, C=H=256, for one sequence
 * and for a batch of 32. Run: build/tests/unit/nn/bench_nn [reps] (or meson test
 * --benchmark nn_train_bench). Prints the median and the fastest repetition. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <serbench/serbench.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *rand_buf(size_t n, sb_rng *r, float scale)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_nn: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * (2.0 * sb_rng_uniform(r) - 1.0));
    return x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*step_fn)(void *ctx);

static void report(const char *name, step_fn f, void *ctx, int reps)
{
    double *t = malloc((size_t)reps * sizeof *t);
    for (int i = 0; i < 5; i++) /* warm caches and BLAS buffers */
        f(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        f(ctx);
        t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("%-44s median %8.3f ms   min %8.3f ms   (%d reps)\n", name, t[reps / 2], t[0], reps);
    free(t);
}

/* ---- attention ------------------------------------------------------------------------- */

typedef struct mha_bench {
    int B, T, C, NH;
    float *x, *out, *acts, *scratch, *dout, *dx, *params, *grads;
    sb_nn_mha_weights w;
    sb_nn_mha_grads g;
} mha_bench;

static void mha_step(void *p)
{
    mha_bench *m = p;
    const size_t n = (size_t)m->B * m->T * m->C;
    sb_nn_mha_forward(m->out, m->acts, m->x, m->x, NULL, NULL, &m->w, m->B, m->T, m->T, m->C, m->C,
                      m->C, m->NH, 0);
    memset(m->dx, 0, n * sizeof *m->dx);
    sb_nn_mha_backward(m->dx, m->dx, &m->g, m->scratch, m->dout, m->acts, m->x, m->x, NULL, &m->w,
                       m->B, m->T, m->T, m->C, m->C, m->C, m->NH);
}

static void attn_step(void *p)
{
    mha_bench *m = p;
    const size_t n = (size_t)m->B * m->T * m->C;
    /* q, k, v: three slices of the block's activations buffer */
    float *q = m->acts, *k = q + n, *v = k + n, *att = v + n;
    float *dq = m->scratch, *dk = dq + n, *dv = dk + n, *tmp = dv + n;
    sb_nn_attention_forward(m->out, att, q, k, v, NULL, NULL, m->B, m->T, m->T, m->C, m->NH, 0);
    memset(dq, 0, 3 * n * sizeof *dq);
    sb_nn_attention_backward(dq, dk, dv, tmp, m->dout, att, q, k, v, m->B, m->T, m->T, m->C, m->NH);
}

static void bench_attention(int B, int T, int C, int NH, int reps, sb_rng *r)
{
    mha_bench m = { .B = B, .T = T, .C = C, .NH = NH };
    const size_t n = (size_t)B * T * C, nw = (size_t)C * C;
    m.x = rand_buf(n, r, 1.0f);
    m.dout = rand_buf(n, r, 1.0f);
    m.out = rand_buf(n, r, 1.0f);
    m.dx = rand_buf(n, r, 1.0f);
    size_t na = sb_nn_mha_acts_size(B, T, T, C, NH), ns = sb_nn_mha_scratch_size(B, T, T, C);
    na = na > 3 * n + (size_t)B * NH * T * T ? na : 3 * n + (size_t)B * NH * T * T;
    ns = ns > 3 * n + (size_t)T * T ? ns : 3 * n + (size_t)T * T;
    m.acts = rand_buf(na, r, 1.0f);
    m.scratch = rand_buf(ns, r, 1.0f);
    m.params = rand_buf(4 * nw + 4 * (size_t)C, r, 0.06f);
    m.grads = rand_buf(4 * nw + 4 * (size_t)C, r, 0.0f);
    const float *P = m.params;
    float *G = m.grads;
    m.w = (sb_nn_mha_weights){ P,          P + 4 * nw,         P + nw,     P + 4 * nw + C,
                               P + 2 * nw, P + 4 * nw + 2 * C, P + 3 * nw, P + 4 * nw + 3 * C };
    m.g = (sb_nn_mha_grads){ G,          G + 4 * nw,         G + nw,     G + 4 * nw + C,
                             G + 2 * nw, G + 4 * nw + 2 * C, G + 3 * nw, G + 4 * nw + 3 * C };
    char name[96];
    snprintf(name, sizeof name, "self-attention block B=%d T=%d C=%d NH=%d", B, T, C, NH);
    report(name, mha_step, &m, reps);
    snprintf(name, sizeof name, "  attention alone (no projections)");
    report(name, attn_step, &m, reps);
    free(m.x), free(m.dout), free(m.out), free(m.dx), free(m.acts), free(m.scratch);
    free(m.params), free(m.grads);
}

/* ---- GRU ------------------------------------------------------------------------------- */

typedef struct gru_bench {
    int B, T, C, H;
    float *x, *out, *acts, *scratch, *dout, *dx, *params, *grads;
    sb_nn_gru_weights wf, wb;
    sb_nn_gru_grads gf, gb;
} gru_bench;

static void gru_step(void *p)
{
    gru_bench *g = p;
    sb_nn_gru_forward(g->out, g->acts, g->scratch, g->x, NULL, NULL, &g->wf, g->B, g->T, g->C, g->H,
                      0);
    memset(g->dx, 0, (size_t)g->B * g->T * g->C * sizeof *g->dx);
    sb_nn_gru_backward(g->dx, NULL, &g->gf, g->scratch, g->dout, g->acts, g->x, NULL, &g->wf, g->B,
                       g->T, g->C, g->H, 0);
}

static void bigru_step(void *p)
{
    gru_bench *g = p;
    sb_nn_bigru_forward(g->out, g->acts, g->scratch, g->x, NULL, &g->wf, &g->wb, g->B, g->T, g->C,
                        g->H);
    memset(g->dx, 0, (size_t)g->B * g->T * g->C * sizeof *g->dx);
    sb_nn_bigru_backward(g->dx, &g->gf, &g->gb, g->scratch, g->dout, g->acts, g->x, NULL, &g->wf,
                         &g->wb, g->B, g->T, g->C, g->H);
}

static void bench_gru(int B, int T, int C, int H, int reps, sb_rng *r)
{
    gru_bench g = { .B = B, .T = T, .C = C, .H = H };
    const size_t per = (size_t)3 * H * C + (size_t)3 * H * H + 6 * (size_t)H;
    g.x = rand_buf((size_t)B * T * C, r, 1.0f);
    g.dx = rand_buf((size_t)B * T * C, r, 1.0f);
    g.out = rand_buf((size_t)B * T * 2 * H, r, 1.0f);
    g.dout = rand_buf((size_t)B * T * 2 * H, r, 1.0f);
    g.acts = rand_buf(2 * sb_nn_gru_acts_size(B, T, H), r, 1.0f);
    g.scratch = rand_buf(sb_nn_gru_scratch_size(B, T, H), r, 1.0f);
    g.params = rand_buf(2 * per, r, 0.06f);
    g.grads = rand_buf(2 * per, r, 0.0f);
    for (int d = 0; d < 2; d++) {
        const float *P = g.params + d * per;
        float *G = g.grads + d * per;
        const size_t a = (size_t)3 * H * C, b = a + (size_t)3 * H * H;
        sb_nn_gru_weights w = { P, P + a, P + b, P + b + 3 * H };
        sb_nn_gru_grads gg = { G, G + a, G + b, G + b + 3 * H };
        if (d == 0)
            g.wf = w, g.gf = gg;
        else
            g.wb = w, g.gb = gg;
    }
    char name[96];
    snprintf(name, sizeof name, "GRU B=%d T=%d C=%d H=%d", B, T, C, H);
    report(name, gru_step, &g, reps);
    snprintf(name, sizeof name, "  BiGRU (2H=%d out)", 2 * H);
    report(name, bigru_step, &g, reps);
    free(g.x), free(g.dx), free(g.out), free(g.dout), free(g.acts), free(g.scratch);
    free(g.params), free(g.grads);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    if (reps < 1) {
        fprintf(stderr, "usage: bench_nn [repetitions >= 1]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    sb_rng r;
    sb_rng_seed(&r, 1, 0);
    printf("forward + backward, 1 BLAS thread (%s)\n", openblas_get_config());
    bench_attention(1, 30, 256, 4, reps, &r);
    bench_gru(1, 30, 256, 256, reps, &r);
    bench_attention(32, 30, 256, 4, reps / 10 > 0 ? reps / 10 : 1, &r);
    bench_gru(32, 30, 256, 256, reps / 10 > 0 ? reps / 10 : 1, &r);
    return 0;
}
