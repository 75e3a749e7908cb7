/* plugins/heads/mlp/test_mlp.c — the mlp head: its whole gradient (layer-weight softmax,
 * hidden GELU layers, dropout masks) against finite differences of a double-precision forward
 * written here; XOR classes that no linear model separates; bitwise determinism per seed;
 * early stopping restoring the best dev epoch; bad input. mlp.c is included so the test
 * reaches the model's internals. */
#include "mlp.c"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* ---- a host that records the per-epoch log lines -------------------------------------- */

#define MAX_EPOCHS 1000
static struct {
    int n;                  /* epoch lines seen */
    double dev[MAX_EPOCHS]; /* dev metric per epoch, NAN when there is no dev set */
    int best[MAX_EPOCHS];   /* the line says "(best)" */
    char info[1024];        /* last INFO line */
    char warn[1024];        /* last WARN line */
} cap;

static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (level == SB_LOG_INFO)
        snprintf(cap.info, sizeof cap.info, "%s", line);
    if (level == SB_LOG_WARN)
        snprintf(cap.warn, sizeof cap.warn, "%s", line);
    if (level != SB_LOG_DEBUG || strncmp(line, "epoch ", 6) != 0 || cap.n >= MAX_EPOCHS)
        return;
    double dev = NAN;
    const char *d = strstr(line, ", dev ");
    if (d) {
        const char *sp = strchr(d + 6, ' ');
        if (sp)
            dev = strtod(sp + 1, NULL);
    }
    cap.dev[cap.n] = dev;
    cap.best[cap.n] = strstr(line, "(best)") != NULL;
    cap.n++;
}

static void cap_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    (void)done;
    (void)total;
}

static int cap_cancelled(const sb_host *h)
{
    (void)h;
    return 0;
}

static sb_host cap_host = {
    .struct_size = sizeof(sb_host),
    .log = cap_log,
    .progress = cap_progress,
    .cancelled = cap_cancelled,
    .cache_dir = "/tmp",
    .seed = 1,
    .threads = 1,
};

/* ---- helpers -------------------------------------------------------------------------- */

static sb_opts *opts(const char *yaml)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(mlp_options, yaml, "test-mlp", &o, &err), SB_OK, "options '%s': %s",
                 yaml, err.msg);
    return o;
}

typedef struct split {
    sb_head_data d;
    float *x;
    int32_t *y;
} split;

static split alloc_split(size_t n, int L, int D, int K)
{
    split s;
    memset(&s, 0, sizeof s);
    s.x = calloc((n ? n : 1) * (size_t)L * (size_t)D, sizeof(float));
    s.y = calloc(n ? n : 1, sizeof(int32_t));
    s.d.struct_size = sizeof s.d;
    s.d.n = n;
    s.d.n_layers = L;
    s.d.dim = D;
    s.d.x = s.x;
    s.d.n_classes = K;
    s.d.y = s.y;
    return s;
}

/* Gaussian blobs, x [n, L, D]: class means (spread `sep`, from `mseed`) in layer `info`
 * only; every layer has unit noise plus an offset and scale per layer. */
static split make_blobs(size_t n, int L, int D, int K, int info, double sep, uint64_t mseed,
                        uint64_t seed)
{
    split s = alloc_split(n, L, D, K);
    sb_rng r, rm;
    sb_rng_seed(&rm, mseed, 99);
    double *mu = malloc(sizeof(double) * (size_t)K * (size_t)D);
    for (int i = 0; i < K * D; i++)
        mu[i] = sep * sb_rng_normal(&rm);
    sb_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++) {
        int y = (int)sb_rng_below(&r, (uint64_t)K);
        s.y[i] = y;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                double v = sb_rng_normal(&r) * (1.0 + l) + 3.0 * l;
                if (l == info)
                    v += mu[y * D + d];
                s.x[(i * (size_t)L + (size_t)l) * (size_t)D + (size_t)d] = (float)v;
            }
    }
    free(mu);
    return s;
}

/* XOR in 2-D, one layer: x = (±1 + noise, ±1 + noise), class 1 when the signs differ.
 * Every linear classifier of x is right on about half of the points at best, by symmetry. */
static split make_xor(size_t n, double noise, uint64_t seed)
{
    split s = alloc_split(n, 1, 2, 2);
    sb_rng r;
    sb_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) {
        int a = (int)sb_rng_below(&r, 2), b = (int)sb_rng_below(&r, 2);
        s.x[2 * i] = (float)((a ? 1.0 : -1.0) + noise * sb_rng_normal(&r));
        s.x[2 * i + 1] = (float)((b ? 1.0 : -1.0) + noise * sb_rng_normal(&r));
        s.y[i] = a != b;
    }
    return s;
}

static void free_split(split *s)
{
    free(s->x);
    free(s->y);
}

static void *create_ok(const sb_host *host, sb_opts *o, int L, int D, int K)
{
    void *inst = NULL;
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.create(host, o, L, D, K, &inst, &err), SB_OK, "create: %s", err.msg);
    return inst;
}

static void train_ok(void *inst, const sb_head_data *tr, const sb_head_data *dv)
{
    sb_error err = { 0 };
    sb_status st = mlp_vtable.train(inst, tr, dv, &err);
    cr_assert_eq(st, SB_OK, "train: %s", err.msg);
}

static float *predict_ok(void *inst, const sb_head_data *d, int K)
{
    float *p = malloc(sizeof(float) * (d->n ? d->n : 1) * (size_t)K);
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.predict(inst, d, p, &err), SB_OK, "predict: %s", err.msg);
    return p;
}

static double accuracy(const float *probs, const int32_t *y, size_t n, int K)
{
    size_t ok = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0)
            continue;
        m++;
        ok += argmax(probs + i * (size_t)K, K) == y[i];
    }
    return (double)ok / (double)m;
}

static const sb_head_data empty_data = { .struct_size = sizeof(sb_head_data) };

/* ---- gradient vs finite differences ------------------------------------------------------ */

/* The head's training loss for rows zb (already standardised) in double, with all parameters
 * taken from P (laid out as h->params) and the dropout masks of the last forward. */
static double head_loss_d(const mlp_head *h, const double *P, int B)
{
    enum { MAXW = 16 };
    int L = h->L, D = h->D, K = h->K;
    double w[MAXW], cur[MAXW], nxt[MAXW], num = 0.0, den = 0.0;
    double mx = P[0], s = 0.0;
    for (int l = 0; l < L; l++)
        mx = P[l] > mx ? P[l] : mx;
    for (int l = 0; l < L; l++)
        s += (w[l] = h->learn_layers ? exp(P[l] - mx) : 1.0);
    for (int l = 0; l < L; l++)
        w[l] /= s;
    double keep = 1.0 - h->dropout;
    for (int b = 0; b < B; b++) {
        int y = h->yb[b];
        if (y < 0)
            continue;
        for (int d = 0; d < D; d++) {
            cur[d] = 0.0;
            for (int l = 0; l < L; l++)
                cur[d] += w[l] * h->zb[((size_t)b * L + l) * D + d];
        }
        for (int i = 0; i <= h->n_hidden; i++) {
            const layer *ly = &h->layers[i];
            const double *W = P + (ly->W - h->params), *bias = P + (ly->b - h->params);
            for (int o = 0; o < ly->out; o++) {
                double u = bias[o];
                for (int c = 0; c < ly->in; c++)
                    u += W[o * ly->in + c] * cur[c];
                if (i < h->n_hidden) {
                    double g = 0.5 * u * (1.0 + erf(u / sqrt(2.0)));
                    u = ly->mask[(size_t)b * ly->out + o] ? g / keep : 0.0;
                }
                nxt[o] = u;
            }
            memcpy(cur, nxt, sizeof(double) * (size_t)ly->out);
        }
        /* cur = logits */
        double lm = -INFINITY, ls = 0.0;
        for (int k = 0; k < K; k++)
            lm = cur[k] > lm ? cur[k] : lm;
        for (int k = 0; k < K; k++)
            ls += exp(cur[k] - lm);
        double cw = h->class_w[y];
        num += -cw * (cur[y] - lm - log(ls));
        den += cw;
    }
    return num / den;
}

static void check_grad_fd(const char *yaml, int weighted)
{
    enum { L = 3, D = 4, K = 3, B = 6 };
    sb_opts *o = opts(yaml);
    mlp_head *h = create_ok(&cap_host, o, L, D, K);
    split s = make_blobs(B, L, D, K, 1, 1.0, 3, 11);
    s.y[4] = -1; /* a row without target inside the batch */
    size_t rows[B];
    for (int i = 0; i < B; i++)
        rows[i] = (size_t)i;
    sb_error err = { 0 };
    cr_assert_eq(fit_stats(h, &s.d, rows, B, &err), SB_OK);
    for (int k = 0; k < K; k++)
        h->class_w[k] = weighted ? 0.5f + (float)k : 1.0f;
    /* random parameters, larger than the init, so GELU is exercised on both sides of 0 and
     * the layer softmax away from its centre */
    sb_rng r;
    sb_rng_seed(&r, 5, 5);
    for (size_t i = 0; i < h->n_params; i++)
        h->params[i] = (float)sb_rng_normal(&r);
    sb_rng_seed(&h->drop_rng, 17, STREAM_DROPOUT);
    gather(h, &s.d, rows, 0, B);
    loss_and_grad(h, B, 1);

    double *P = malloc(sizeof(double) * h->n_params);
    for (size_t i = 0; i < h->n_params; i++)
        P[i] = h->params[i];
    cr_assert(fabs(head_loss_d(h, P, B) -
                   sb_nn_xent_forward(h->losses, h->probs, h->yb, h->class_w, B, K)) < 1e-4,
              "the double forward disagrees with the head's");
    double max_abs = 0.0;
    size_t worst = 0, dropped = 0;
    for (int i = 0; i < h->n_hidden; i++)
        for (size_t j = 0; j < (size_t)B * (size_t)h->layers[i].out; j++)
            dropped += !h->layers[i].mask[j];
    for (size_t i = 0; i < h->n_params; i++) {
        const double eps = 1e-5;
        double keep = P[i];
        P[i] = keep + eps;
        double lp = head_loss_d(h, P, B);
        P[i] = keep - eps;
        double lm = head_loss_d(h, P, B);
        P[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        double e = fabs(h->grads[i] - fd);
        if (e > max_abs) {
            max_abs = e;
            worst = i;
        }
        cr_assert(e <= 2e-5 + 1e-3 * fabs(fd),
                  "param %zu (%s, weighted=%d): analytic %.8g, finite differences %.8g, "
                  "|err| %.3g",
                  i, yaml, weighted, (double)h->grads[i], fd, e);
    }
    if (!h->learn_layers)
        for (int l = 0; l < L; l++)
            cr_assert_eq(h->da[l], 0.0f);
    cr_log_info("gradient (%s): %zu params, max |analytic - fd| = %.3g at %zu; %zu units "
                "dropped",
                yaml, h->n_params, max_abs, worst, dropped);
    free(P);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
    free_split(&s);
}

Test(mlp_head, gradient_matches_finite_differences)
{
    check_grad_fd("hidden: [5, 3]\ndropout: 0\nbatch_size: 6", 0);
    check_grad_fd("hidden: [5, 3]\ndropout: 0\nbatch_size: 6", 1);
    check_grad_fd("hidden: [7]\ndropout: 0\nlayer_weights: false\nbatch_size: 6", 1);
    /* with dropout the masks of the forward are fixed and the reference applies them too */
    check_grad_fd("hidden: [6, 5, 4, 3]\ndropout: 0.3\nbatch_size: 6", 1);
}

/* ---- learning ---------------------------------------------------------------------------- */

Test(mlp_head, solves_xor_that_a_linear_model_cannot)
{
    split tr = make_xor(800, 0.35, 1);
    split dv = make_xor(200, 0.35, 2);
    split te = make_xor(400, 0.35, 3);
    /* The best linear rule on the test set, searched over directions through the mean:
     * XOR leaves it near chance, which is why the linear head cannot solve this. */
    double best_lin = 0.0;
    for (int a = 0; a < 360; a++) {
        double c = cos(a * M_PI / 180), sn = sin(a * M_PI / 180);
        size_t ok = 0;
        for (size_t i = 0; i < te.d.n; i++)
            ok += ((c * te.x[2 * i] + sn * te.x[2 * i + 1]) > 0) == (te.y[i] == 1);
        double acc = (double)ok / (double)te.d.n;
        best_lin = fmax(best_lin, fmax(acc, 1.0 - acc));
    }
    sb_opts *o = opts("hidden: [32]\nlr: 0.01\nepochs: 60\nbatch_size: 32\npatience: 20");
    cap_host.seed = 1;
    cap.n = 0;
    void *inst = create_ok(&cap_host, o, 1, 2, 2);
    train_ok(inst, &tr.d, &dv.d);
    float *p = predict_ok(inst, &te.d, 2);
    double acc = accuracy(p, te.y, te.d.n, 2);
    cr_log_info("xor: mlp test accuracy %.3f, best linear rule through the centre %.3f (%s)", acc,
                best_lin, cap.info);
    cr_assert_lt(best_lin, 0.65, "the data is not XOR-like: a linear rule gets %.3f", best_lin);
    cr_assert_gt(acc, 0.9, "mlp test accuracy %.3f on XOR", acc);
    for (size_t i = 0; i < te.d.n; i++)
        cr_assert(fabs(p[2 * i] + p[2 * i + 1] - 1.0) < 1e-5, "row %zu does not sum to 1", i);
    cr_assert(strstr(cap.info, "best epoch"), "summary line: %s", cap.info);
    free(p);
    mlp_destroy(inst);
    sbi_opts_destroy(&o);
    free_split(&tr);
    free_split(&dv);
    free_split(&te);
}

Test(mlp_head, learns_blobs_and_finds_the_informative_layer)
{
    enum { L = 3, D = 16, K = 4, INFO = 1 };
    split tr = make_blobs(800, L, D, K, INFO, 2.0, 1, 1);
    split dv = make_blobs(200, L, D, K, INFO, 2.0, 1, 2);
    split te = make_blobs(400, L, D, K, INFO, 2.0, 1, 3);
    sb_opts *o = opts("hidden: [64, 32]\nlr: 0.003\nepochs: 30\nclass_weights: balanced");
    cap_host.seed = 2;
    void *inst = create_ok(&cap_host, o, L, D, K);
    train_ok(inst, &tr.d, &dv.d);
    float *p = predict_ok(inst, &te.d, K);
    double acc = accuracy(p, te.y, te.d.n, K);
    mlp_head *h = inst;
    float w[L];
    layer_weights(h, w);
    cr_log_info("blobs: test accuracy %.3f, layer weights %.3f %.3f %.3f", acc, (double)w[0],
                (double)w[1], (double)w[2]);
    cr_assert_gt(acc, 0.9, "test accuracy %.3f", acc);
    cr_assert_gt(w[INFO], w[0], "informative layer weight %.3f", (double)w[INFO]);
    cr_assert_gt(w[INFO], w[2], "informative layer weight %.3f", (double)w[INFO]);
    free(p);
    mlp_destroy(inst);
    sbi_opts_destroy(&o);
    free_split(&tr);
    free_split(&dv);
    free_split(&te);
}

Test(mlp_head, same_seed_gives_identical_predictions)
{
    enum { L = 3, D = 8, K = 3 };
    split tr = make_blobs(300, L, D, K, 0, 0.7, 4, 5);
    split dv = make_blobs(90, L, D, K, 0, 0.7, 4, 6);
    split te = make_blobs(100, L, D, K, 0, 0.7, 4, 7);
    sb_opts *o = opts("hidden: [16, 8]\nepochs: 8\nbatch_size: 16\nclass_weights: balanced\n"
                      "lr: 0.005\ndropout: 0.2\nclip: 0.5");
    float *p[3], *params[3];
    size_t np = 0;
    const uint64_t seeds[3] = { 42, 42, 43 };
    for (int run = 0; run < 3; run++) {
        const sb_host *host = sbi_test_host(seeds[run], 1);
        mlp_head *inst = create_ok(host, o, L, D, K);
        train_ok(inst, &tr.d, &dv.d);
        p[run] = predict_ok(inst, &te.d, K);
        np = inst->n_params;
        params[run] = malloc(np * sizeof(float));
        memcpy(params[run], inst->params, np * sizeof(float));
        mlp_destroy(inst);
    }
    cr_assert(memcmp(p[0], p[1], sizeof(float) * te.d.n * K) == 0,
              "same seed, different predictions");
    cr_assert(memcmp(params[0], params[1], np * sizeof(float)) == 0,
              "same seed, different parameters");
    cr_assert(memcmp(params[0], params[2], np * sizeof(float)) != 0,
              "different seeds gave identical parameters: the seed is not used");
    cr_assert(memcmp(p[0], p[2], sizeof(float) * te.d.n * K) != 0,
              "different seeds gave identical predictions");
    for (int i = 0; i < 3; i++) {
        free(p[i]);
        free(params[i]);
    }
    sbi_opts_destroy(&o);
    free_split(&tr);
    free_split(&dv);
    free_split(&te);
}

/* Predicting must not apply dropout: two predictions agree, and equal a manual forward
 * without it, even with a high training dropout. */
Test(mlp_head, predict_has_no_dropout)
{
    enum { L = 2, D = 5, K = 3 };
    split tr = make_blobs(120, L, D, K, 1, 1.0, 30, 31);
    sb_opts *o = opts("hidden: [32]\nepochs: 3\ndropout: 0.5");
    mlp_head *h = create_ok(&cap_host, o, L, D, K);
    train_ok(h, &tr.d, &empty_data);
    float *p1 = predict_ok(h, &tr.d, K);
    float *p2 = predict_ok(h, &tr.d, K);
    cr_assert(memcmp(p1, p2, sizeof(float) * tr.d.n * K) == 0, "predict is not deterministic");
    /* the training-mode forward (with dropout) gives other probabilities */
    gather(h, &tr.d, NULL, 0, 8);
    forward(h, 8, 1);
    cr_assert(memcmp(p1, h->probs, sizeof(float) * 8 * K) != 0,
              "dropout 0.5 had no effect in training mode");
    free(p1);
    free(p2);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
    free_split(&tr);
}

/* Dev labels are half wrong, so dev loss falls while the model learns and rises as it grows
 * confident: early stopping must stop `patience` epochs after the best one and restore it. */
Test(mlp_head, early_stopping_restores_the_best_epoch)
{
    enum { L = 2, D = 6, K = 3, PATIENCE = 4 };
    split tr = make_blobs(300, L, D, K, 0, 1.5, 8, 9);
    split dv = make_blobs(120, L, D, K, 0, 1.5, 8, 10);
    for (size_t i = 0; i < dv.d.n; i += 2)
        dv.y[i] = (dv.y[i] + 1) % K;
    sb_opts *o = opts("hidden: [32]\nmetric: loss\npatience: 4\nepochs: 300\nlr: 0.002\n"
                      "weight_decay: 0\ndropout: 0\nwarmup: 0");
    cap_host.seed = 3;
    cap.n = 0;
    void *inst = create_ok(&cap_host, o, L, D, K);
    train_ok(inst, &tr.d, &dv.d);
    cr_assert_gt(cap.n, PATIENCE + 1);
    cr_assert_lt(cap.n, 300, "never stopped early: %d epochs", cap.n);
    int best = -1;
    for (int e = 0; e < cap.n; e++)
        if (cap.best[e])
            best = e;
    cr_assert_eq(cap.n - 1, best + PATIENCE, "stopped after epoch %d, best was %d", cap.n,
                 best + 1);
    float *p = predict_ok(inst, &dv.d, K);
    double loss = 0;
    for (size_t i = 0; i < dv.d.n; i++)
        loss -= log(p[i * K + (size_t)dv.y[i]]);
    loss /= (double)dv.d.n;
    cr_log_info("early stop: %d epochs, best %d, dev loss best %.5f last %.5f restored %.5f", cap.n,
                best + 1, cap.dev[best], cap.dev[cap.n - 1], loss);
    cr_assert(fabs(loss - cap.dev[best]) < 2e-5, "restored dev loss %.6f, best logged %.5f", loss,
              cap.dev[best]);
    free(p);
    mlp_destroy(inst);
    sbi_opts_destroy(&o);
    free_split(&tr);
    free_split(&dv);
}

/* The schedule spans every step of every epoch, and warmup and clipping reach the steps:
 * each changes the trained parameters. (Moving distance is no test: warmup + cosine has the
 * same mean rate as cosine alone.) */
Test(mlp_head, warmup_and_clip_change_the_steps)
{
    enum { L = 1, D = 4, K = 2 };
    split tr = make_blobs(100, L, D, K, 0, 1.0, 40, 41);
    sb_opts *o0 = opts("epochs: 10\nbatch_size: 32\nwarmup: 0.05");
    mlp_head *h0 = create_ok(&cap_host, o0, L, D, K);
    long warmup, total;
    schedule_steps(h0, 100, &warmup, &total);
    cr_assert_eq(total, 40, "4 batches x 10 epochs, got %ld", total);
    cr_assert_eq(warmup, 2, "0.05 x 40, got %ld", warmup);
    mlp_destroy(h0);
    sbi_opts_destroy(&o0);

    const char *cfg[3] = { "hidden: [8]\nepochs: 10\nbatch_size: 32\nwarmup: 0\nclip: 0",
                           "hidden: [8]\nepochs: 10\nbatch_size: 32\nwarmup: 0.5\nclip: 0",
                           "hidden: [8]\nepochs: 10\nbatch_size: 32\nwarmup: 0\nclip: 0.01" };
    float *params[3];
    size_t np = 0;
    for (int c = 0; c < 3; c++) {
        sb_opts *o = opts(cfg[c]);
        mlp_head *h = create_ok(&cap_host, o, L, D, K);
        train_ok(h, &tr.d, &empty_data);
        np = h->n_params;
        params[c] = malloc(np * sizeof(float));
        memcpy(params[c], h->params, np * sizeof(float));
        mlp_destroy(h);
        sbi_opts_destroy(&o);
    }
    cr_assert(memcmp(params[0], params[1], np * sizeof(float)) != 0, "warmup had no effect");
    cr_assert(memcmp(params[0], params[2], np * sizeof(float)) != 0, "clipping had no effect");
    cr_assert(strstr(cap.info, "40 of 40 steps clipped"), "clip 0.01 clips every step: %s",
              cap.info);
    for (int c = 0; c < 3; c++)
        free(params[c]);
    free_split(&tr);
}

/* ---- bad input ---------------------------------------------------------------------------- */

Test(mlp_head, bad_options_and_class_counts)
{
    sb_opts *o = opts("");
    void *inst = (void *)0x1;
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.create(&cap_host, o, 2, 4, 1, &inst, &err), SB_ERR_INVALID);
    cr_assert_null(inst);
    cr_assert(strstr(err.msg, "at least 2 classes"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.create(&cap_host, o, 2, 4, 0, &inst, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "regression"), "%s", err.msg);
    sbi_opts_destroy(&o);

    const char *bad[] = { "hidden: [0]", "hidden: [64, x]", "hidden: [1.5]", "hidden: all",
                          "hidden: [100000]" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = opts(bad[i]);
        sb_error_clear(&err);
        inst = (void *)0x1;
        cr_assert_eq(mlp_vtable.create(&cap_host, o, 2, 4, 3, &inst, &err), SB_ERR_INVALID,
                     "%s accepted", bad[i]);
        cr_assert_null(inst);
        cr_assert(strstr(err.msg, "hidden: item 1") || strstr(err.msg, "hidden: item 2"), "%s: %s",
                  bad[i], err.msg);
        cr_assert(strstr(err.msg, "integer from 1 to"), "%s: %s", bad[i], err.msg);
        sbi_opts_destroy(&o);
    }
    /* more than 4 layers is refused by the option table itself */
    sb_opts *o5 = NULL;
    sb_error_clear(&err);
    cr_assert_neq(sbi_opts_parse(mlp_options, "hidden: [8, 8, 8, 8, 8]", "test-mlp", &o5, &err),
                  SB_OK, "5 hidden layers accepted");
    cr_log_info("5 layers: %s", err.msg);
    sbi_opts_destroy(&o5);
}

Test(mlp_head, bad_data)
{
    enum { L = 2, D = 4, K = 3 };
    sb_opts *o = opts("epochs: 2\nhidden: [8]");
    void *inst = create_ok(&cap_host, o, L, D, K);
    split s = make_blobs(10, L, D, K, 0, 1.0, 20, 21);
    float probs[30];
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.predict(inst, &s.d, probs, &err), SB_ERR_INVALID,
                 "predict before train");
    cr_assert(strstr(err.msg, "before train"), "%s", err.msg);

    /* an empty train split, and one whose rows have no label */
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &empty_data, &empty_data, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a label (0 rows)"), "%s", err.msg);
    for (size_t i = 0; i < s.d.n; i++)
        s.y[i] = -1;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &empty_data, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a label (10 rows)"), "%s", err.msg);
    for (size_t i = 0; i < s.d.n; i++)
        s.y[i] = (int32_t)(i % K);

    /* a label outside the classes, named by utterance */
    const char *ids[10] = { "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9" };
    s.d.utt_id = ids;
    s.y[3] = 7;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &empty_data, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "label 7 is outside the 3 classes"), "%s", err.msg);
    cr_assert(strstr(err.where, "u3"), "where: %s", err.where);
    s.y[3] = 1;

    /* NaN features in train and in dev, named by utterance */
    s.x[3 * L * D + 5] = NAN;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &empty_data, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "train feature 1 of layer 1 is not finite"), "%s", err.msg);
    cr_assert(strstr(err.where, "u3"), "where: %s", err.where);
    split ok = make_blobs(10, L, D, K, 0, 1.0, 20, 22);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &ok.d, &s.d, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "dev feature"), "%s", err.msg);
    s.x[3 * L * D + 5] = 0;

    /* a NaN in an unlabelled row is never read */
    s.y[4] = -1;
    s.x[4 * L * D] = NAN;
    train_ok(inst, &s.d, &empty_data);

    /* a dev set with classes missing: trains, early-stopping on the classes it has */
    split dv = make_blobs(12, L, D, K, 0, 1.0, 20, 23);
    for (size_t i = 0; i < dv.d.n; i++)
        dv.y[i] = 0;
    cap.n = 0;
    train_ok(inst, &ok.d, &dv.d);
    cr_assert_eq(cap.n, 2, "%d epochs logged", cap.n);
    cr_assert(!isnan(cap.dev[0]), "no dev metric with classes missing");

    /* a dev set without labels: a warning, all epochs */
    for (size_t i = 0; i < dv.d.n; i++)
        dv.y[i] = -1;
    cap.warn[0] = 0;
    train_ok(inst, &ok.d, &dv.d);
    cr_assert(strstr(cap.warn, "none with a label"), "warning: %s", cap.warn);

    /* features of another shape */
    ok.d.dim = 5;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.predict(inst, &ok.d, probs, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "2 layers x 5 dims"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &ok.d, &empty_data, &err), SB_ERR_INVALID);
    cr_assert_eq(mlp_vtable.predict(inst, &empty_data, probs, &err), SB_OK, "n = 0");
    mlp_destroy(inst);
    mlp_destroy(NULL);
    sbi_opts_destroy(&o);
    free_split(&s);
    free_split(&ok);
    free_split(&dv);
}

Test(mlp_head, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_HEAD);
    cr_assert_str_eq(p->name, "mlp");
    cr_assert_eq(p->abi_minor, SB_ABI_MINOR);
    cr_assert_eq(p->struct_size, sizeof(sb_plugin));
    cr_assert_eq(p->vtable, &mlp_vtable);
    sb_opts *o = opts(""); /* every default validates */
    cr_assert_eq(sb_opts_int(o, "epochs"), 50);
    cr_assert_eq(sb_opts_float(o, "dropout"), 0.1);
    cr_assert_eq(sb_opts_list_len(o, "hidden"), 1);
    cr_assert_str_eq(sb_opts_list_item(o, "hidden", 0), "256");
    cr_assert_str_eq(sb_opts_str(o, "metric"), "ua");
    mlp_head *h = create_ok(&cap_host, o, 3, 10, 4);
    /* a (3) + W1 (256,10) + b1 (256) + Wc (4,256) + bc (4) */
    cr_assert_eq(h->n_params, 3 + 2560 + 256 + 1024 + 4);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
}
