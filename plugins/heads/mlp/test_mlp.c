/* plugins/heads/mlp/test_mlp.c — the mlp head: its whole gradient (layer-weight softmax,
 * hidden GELU layers, dropout masks) against finite differences of a double-precision forward
 * written here; XOR classes that no linear model separates; bitwise determinism per seed;
 * early stopping restoring the best dev epoch; bad input. mlp.c is included so the test
 * reaches the model's internals. */
#include "mlp.c"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "head_testutil.h"
#include "internal.h"

/* ---- helpers (the shared harness is head_testutil.c) ------------------------------------ */

typedef ht_split split;

static sb_opts *opts(const char *yaml)
{
    return ht_opts(mlp_options, yaml);
}

static void *create_ok(const sb_host *host, sb_opts *o, int L, int D, int K)
{
    return ht_create(&mlp_vtable, host, o, L, D, K);
}

static void train_ok(void *inst, const sb_head_data *tr, const sb_head_data *dv)
{
    ht_train(&mlp_vtable, inst, tr, dv);
}

static float *predict_ok(void *inst, const sb_head_data *d, int width)
{
    return ht_predict(&mlp_vtable, inst, d, width);
}

/* XOR in 2-D, one layer: x = (±1 + noise, ±1 + noise), class 1 when the signs differ.
 * Every linear classifier of x is right on about half of the points at best, by symmetry. */
static split make_xor(size_t n, double noise, uint64_t seed)
{
    split s = ht_alloc_split(n, 1, 2, 2);
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
        s += (w[l] = h->o.learn_layers ? exp(P[l] - mx) : 1.0);
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
    mlp_head *h = create_ok(&ht_host, o, L, D, K);
    split s = ht_make_blobs(B, L, D, K, 1, 1.0, 3, 11);
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
    if (!h->o.learn_layers)
        for (int l = 0; l < L; l++)
            cr_assert_eq(h->da[l], 0.0f);
    cr_log_info("gradient (%s): %zu params, max |analytic - fd| = %.3g at %zu; %zu units "
                "dropped",
                yaml, h->n_params, max_abs, worst, dropped);
    free(P);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
    ht_free_split(&s);
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
    ht_reset(1);
    void *inst = create_ok(&ht_host, o, 1, 2, 2);
    train_ok(inst, &tr.d, &dv.d);
    float *p = predict_ok(inst, &te.d, 2);
    double acc = ht_accuracy(p, te.y, te.d.n, 2);
    cr_log_info("xor: mlp test accuracy %.3f, best linear rule through the centre %.3f (%s)", acc,
                best_lin, ht_cap.info);
    cr_assert_lt(best_lin, 0.65, "the data is not XOR-like: a linear rule gets %.3f", best_lin);
    cr_assert_gt(acc, 0.9, "mlp test accuracy %.3f on XOR", acc);
    for (size_t i = 0; i < te.d.n; i++)
        cr_assert(fabs(p[2 * i] + p[2 * i + 1] - 1.0) < 1e-5, "row %zu does not sum to 1", i);
    cr_assert(strstr(ht_cap.info, "best epoch"), "summary line: %s", ht_cap.info);
    free(p);
    mlp_destroy(inst);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

Test(mlp_head, learns_blobs_and_finds_the_informative_layer)
{
    enum { L = 3, D = 16, K = 4, INFO = 1 };
    split tr = ht_make_blobs(800, L, D, K, INFO, 2.0, 1, 1);
    split dv = ht_make_blobs(200, L, D, K, INFO, 2.0, 1, 2);
    split te = ht_make_blobs(400, L, D, K, INFO, 2.0, 1, 3);
    sb_opts *o = opts("hidden: [64, 32]\nlr: 0.003\nepochs: 30\nclass_weights: balanced");
    ht_reset(2);
    void *inst = create_ok(&ht_host, o, L, D, K);
    train_ok(inst, &tr.d, &dv.d);
    float *p = predict_ok(inst, &te.d, K);
    double acc = ht_accuracy(p, te.y, te.d.n, K);
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
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

Test(mlp_head, same_seed_gives_identical_predictions)
{
    enum { L = 3, D = 8, K = 3 };
    split tr = ht_make_blobs(300, L, D, K, 0, 0.7, 4, 5);
    split dv = ht_make_blobs(90, L, D, K, 0, 0.7, 4, 6);
    split te = ht_make_blobs(100, L, D, K, 0, 0.7, 4, 7);
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
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

/* Predicting must not apply dropout: two predictions agree, and equal a manual forward
 * without it, even with a high training dropout. */
Test(mlp_head, predict_has_no_dropout)
{
    enum { L = 2, D = 5, K = 3 };
    split tr = ht_make_blobs(120, L, D, K, 1, 1.0, 30, 31);
    sb_opts *o = opts("hidden: [32]\nepochs: 3\ndropout: 0.5");
    mlp_head *h = create_ok(&ht_host, o, L, D, K);
    train_ok(h, &tr.d, &ht_empty);
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
    ht_free_split(&tr);
}

/* Dev labels are half wrong, so dev loss falls while the model learns and rises as it grows
 * confident: early stopping must stop `patience` epochs after the best one and restore it. */
Test(mlp_head, early_stopping_restores_the_best_epoch)
{
    enum { L = 2, D = 6, K = 3, PATIENCE = 4 };
    split tr = ht_make_blobs(300, L, D, K, 0, 1.5, 8, 9);
    split dv = ht_make_blobs(120, L, D, K, 0, 1.5, 8, 10);
    for (size_t i = 0; i < dv.d.n; i += 2)
        dv.y[i] = (dv.y[i] + 1) % K;
    sb_opts *o = opts("hidden: [32]\nmetric: loss\npatience: 4\nepochs: 300\nlr: 0.002\n"
                      "weight_decay: 0\ndropout: 0\nwarmup: 0");
    ht_reset(3);
    void *inst = create_ok(&ht_host, o, L, D, K);
    train_ok(inst, &tr.d, &dv.d);
    cr_assert_gt(ht_cap.n, PATIENCE + 1);
    cr_assert_lt(ht_cap.n, 300, "never stopped early: %d epochs", ht_cap.n);
    int best = -1;
    for (int e = 0; e < ht_cap.n; e++)
        if (ht_cap.best[e])
            best = e;
    cr_assert_eq(ht_cap.n - 1, best + PATIENCE, "stopped after epoch %d, best was %d", ht_cap.n,
                 best + 1);
    float *p = predict_ok(inst, &dv.d, K);
    double loss = 0;
    for (size_t i = 0; i < dv.d.n; i++)
        loss -= log(p[i * K + (size_t)dv.y[i]]);
    loss /= (double)dv.d.n;
    cr_log_info("early stop: %d epochs, best %d, dev loss best %.5f last %.5f restored %.5f",
                ht_cap.n, best + 1, ht_cap.dev[best], ht_cap.dev[ht_cap.n - 1], loss);
    cr_assert(fabs(loss - ht_cap.dev[best]) < 2e-5, "restored dev loss %.6f, best logged %.5f",
              loss, ht_cap.dev[best]);
    free(p);
    mlp_destroy(inst);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
}

/* The schedule spans every step of every epoch, and warmup and clipping reach the steps:
 * each changes the trained parameters. (Moving distance is no test: warmup + cosine has the
 * same mean rate as cosine alone.) */
Test(mlp_head, warmup_and_clip_change_the_steps)
{
    enum { L = 1, D = 4, K = 2 };
    split tr = ht_make_blobs(100, L, D, K, 0, 1.0, 40, 41);
    sb_opts *o0 = opts("epochs: 10\nbatch_size: 32\nwarmup: 0.05");
    mlp_head *h0 = create_ok(&ht_host, o0, L, D, K);
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
        mlp_head *h = create_ok(&ht_host, o, L, D, K);
        train_ok(h, &tr.d, &ht_empty);
        np = h->n_params;
        params[c] = malloc(np * sizeof(float));
        memcpy(params[c], h->params, np * sizeof(float));
        mlp_destroy(h);
        sbi_opts_destroy(&o);
    }
    cr_assert(memcmp(params[0], params[1], np * sizeof(float)) != 0, "warmup had no effect");
    cr_assert(memcmp(params[0], params[2], np * sizeof(float)) != 0, "clipping had no effect");
    cr_assert(strstr(ht_cap.info, "40 of 40 steps clipped"), "clip 0.01 clips every step: %s",
              ht_cap.info);
    for (int c = 0; c < 3; c++)
        free(params[c]);
    ht_free_split(&tr);
}

/* ---- bad input ---------------------------------------------------------------------------- */

Test(mlp_head, bad_options_and_class_counts)
{
    sb_opts *o = opts("");
    void *inst = (void *)0x1;
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.create(&ht_host, o, 2, 4, 1, &inst, &err), SB_ERR_INVALID);
    cr_assert_null(inst);
    cr_assert(strstr(err.msg, "at least 2 classes") && strstr(err.msg, "0 for a regression"), "%s",
              err.msg);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.create(&ht_host, o, 2, 4, -2, &inst, &err), SB_ERR_INVALID);
    cr_assert_null(inst);
    sbi_opts_destroy(&o);

    const char *bad[] = { "hidden: [0]", "hidden: [64, x]", "hidden: [1.5]", "hidden: all",
                          "hidden: [100000]" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = opts(bad[i]);
        sb_error_clear(&err);
        inst = (void *)0x1;
        cr_assert_eq(mlp_vtable.create(&ht_host, o, 2, 4, 3, &inst, &err), SB_ERR_INVALID,
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
    void *inst = create_ok(&ht_host, o, L, D, K);
    split s = ht_make_blobs(10, L, D, K, 0, 1.0, 20, 21);
    float probs[30];
    sb_error err = { 0 };
    cr_assert_eq(mlp_vtable.predict(inst, &s.d, probs, &err), SB_ERR_INVALID,
                 "predict before train");
    cr_assert(strstr(err.msg, "before train"), "%s", err.msg);

    /* an empty train split, and one whose rows have no label */
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &ht_empty, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a label (0 rows)"), "%s", err.msg);
    for (size_t i = 0; i < s.d.n; i++)
        s.y[i] = -1;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a label (10 rows)"), "%s", err.msg);
    for (size_t i = 0; i < s.d.n; i++)
        s.y[i] = (int32_t)(i % K);

    /* a label outside the classes, named by utterance */
    const char *ids[10] = { "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9" };
    s.d.utt_id = ids;
    s.y[3] = 7;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "label 7 is outside the 3 classes"), "%s", err.msg);
    cr_assert(strstr(err.where, "u3"), "where: %s", err.where);
    s.y[3] = 1;

    /* NaN features in train and in dev, named by utterance */
    s.x[3 * L * D + 5] = NAN;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "train feature 1 of layer 1 is not finite"), "%s", err.msg);
    cr_assert(strstr(err.where, "u3"), "where: %s", err.where);
    split ok = ht_make_blobs(10, L, D, K, 0, 1.0, 20, 22);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &ok.d, &s.d, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "dev feature"), "%s", err.msg);
    s.x[3 * L * D + 5] = 0;

    /* a NaN in an unlabelled row is never read */
    s.y[4] = -1;
    s.x[4 * L * D] = NAN;
    train_ok(inst, &s.d, &ht_empty);

    /* a dev set with classes missing: trains, early-stopping on the classes it has */
    split dv = ht_make_blobs(12, L, D, K, 0, 1.0, 20, 23);
    for (size_t i = 0; i < dv.d.n; i++)
        dv.y[i] = 0;
    ht_reset(ht_host.seed);
    train_ok(inst, &ok.d, &dv.d);
    cr_assert_eq(ht_cap.n, 2, "%d epochs logged", ht_cap.n);
    cr_assert(!isnan(ht_cap.dev[0]), "no dev metric with classes missing");

    /* a dev set without labels: a warning, all epochs */
    for (size_t i = 0; i < dv.d.n; i++)
        dv.y[i] = -1;
    ht_cap.warn[0] = 0;
    train_ok(inst, &ok.d, &dv.d);
    cr_assert(strstr(ht_cap.warn, "none with a label"), "warning: %s", ht_cap.warn);

    /* features of another shape */
    ok.d.dim = 5;
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.predict(inst, &ok.d, probs, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "2 layers x 5 dims"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(mlp_vtable.train(inst, &ok.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert_eq(mlp_vtable.predict(inst, &ht_empty, probs, &err), SB_OK, "n = 0");
    mlp_destroy(inst);
    mlp_destroy(NULL);
    sbi_opts_destroy(&o);
    ht_free_split(&s);
    ht_free_split(&ok);
    ht_free_split(&dv);
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
    mlp_head *h = create_ok(&ht_host, o, 3, 10, 4);
    /* a (3) + W1 (256,10) + b1 (256) + Wc (4,256) + bc (4) */
    cr_assert_eq(h->n_params, 3 + 2560 + 256 + 1024 + 4);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
}

/* ---- regression ---------------------------------------------------------------------------- */

/* f(z) = 2|z0| - 1 + sin(2 z1): the mlp gets the test MAE well below the target's spread and
 * well below what the linear head's model (fitted here by least squares) can reach. */
Test(mlp_head, regression_learns_a_nonlinear_function)
{
    enum { L = 2, D = 4, INFO = 0 };
    split tr = ht_make_regression(1500, L, D, INFO, 1, 0.05, 1);
    split dv = ht_make_regression(300, L, D, INFO, 1, 0.05, 2);
    split te = ht_make_regression(500, L, D, INFO, 1, 0.05, 3);
    double sd = ht_value_sd(&te);
    /* the best affine function of the informative layer, by least squares on train, in
     * double: the normal equations of [z0, z1, 1] (the other features are pure noise) */
    double A[3][4] = { { 0 } };
    for (size_t i = 0; i < tr.d.n; i++) {
        const float *x = tr.x + i * L * D + INFO * D;
        double f[3] = { x[0], x[1], 1.0 };
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++)
                A[r][c] += f[r] * f[c];
            A[r][3] += f[r] * tr.value[i];
        }
    }
    for (int c = 0; c < 3; c++) /* Gauss-Jordan; the matrix is well conditioned */
        for (int r = 0; r < 3; r++)
            if (r != c) {
                double q = A[r][c] / A[c][c];
                for (int k = 0; k < 4; k++)
                    A[r][k] -= q * A[c][k];
            }
    double lin_mae = 0.0;
    for (size_t i = 0; i < te.d.n; i++) {
        const float *x = te.x + i * L * D + INFO * D;
        double pred = A[0][3] / A[0][0] * x[0] + A[1][3] / A[1][1] * x[1] + A[2][3] / A[2][2];
        lin_mae += fabs(pred - te.value[i]);
    }
    lin_mae /= (double)te.d.n;

    sb_opts *o = opts("hidden: [64]\nlr: 0.003\nepochs: 80\ndropout: 0\npatience: 15");
    ht_reset(6);
    mlp_head *h = create_ok(&ht_host, o, L, D, 0);
    train_ok(h, &tr.d, &dv.d);
    float *p = predict_ok(h, &te.d, 1);
    double mae = ht_mae(p, te.value, te.d.n);
    cr_log_info("nonlinear regression: mlp test MAE %.4f, best affine %.4f, target sd %.3f (%s)",
                mae, lin_mae, sd, ht_cap.info);
    cr_assert_lt(mae, 0.25 * sd, "MAE %.4f vs sd %.3f", mae, sd);
    cr_assert_lt(mae, 0.5 * lin_mae, "mlp MAE %.4f vs best affine %.4f", mae, lin_mae);
    cr_assert(strstr(ht_cap.info, "dev mae"), "%s", ht_cap.info);
    free(p);
    mlp_destroy(h);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

/* ---- checkpoints, inputs, cancellation ---------------------------------------------------- */

Test(mlp_head, checkpoint_round_trip_is_bit_identical)
{
    ht_test_checkpoint_round_trip(&mlp_vtable, mlp_options, "hidden: [16, 8]\nepochs: 5");
}

Test(mlp_head, fine_tunes_from_a_checkpoint_with_a_new_output_layer)
{
    ht_test_fine_tune(&mlp_vtable, mlp_options, "hidden: [32]\nepochs: 20\nlr: 0.003");
}

Test(mlp_head, checkpoints_that_do_not_fit_are_errors)
{
    ht_test_checkpoint_errors(&mlp_vtable, mlp_options, "hidden: [8]\nepochs: 2");
    /* other hidden widths: named with both lists */
    enum { L = 2, D = 5, K = 3 };
    split tr = ht_make_blobs(40, L, D, K, 0, 1.0, 1, 1);
    sb_opts *o8 = opts("hidden: [8]\nepochs: 2"), *o16 = opts("hidden: [8, 4]\nepochs: 2");
    void *a = create_ok(&ht_host, o8, L, D, K), *b = create_ok(&ht_host, o16, L, D, K);
    train_ok(a, &tr.d, &ht_empty);
    char path[512];
    snprintf(path, sizeof path, "%s", ht_tmp_path("mlp-hidden"));
    ht_save(&mlp_vtable, a, path);
    sb_error err = { 0 };
    cr_assert_eq(ht_load(&mlp_vtable, b, path, "all", 1, K, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "hidden is [8] in the checkpoint but [8,4] here"), "%s", err.msg);
    /* the tensors are named per layer */
    sb_st_file *f = NULL;
    cr_assert_eq(sb_st_open(path, &f, &err), SB_OK);
    const sb_st_tensor *t = sb_st_find(f, "hidden.0.W");
    cr_assert(t && t->ndim == 2 && t->shape[0] == 8 && t->shape[1] == D);
    cr_assert_not_null(sb_st_find(f, "hidden.0.b"));
    cr_assert_str_eq(sb_st_metadata(f, "head_config"),
                     "{\"n_layers\":2,\"dim\":5,\"n_classes\":3,\"hidden\":[8]}");
    sb_st_close(&f);
    unlink(path);
    mlp_destroy(a);
    mlp_destroy(b);
    sbi_opts_destroy(&o8);
    sbi_opts_destroy(&o16);
    ht_free_split(&tr);
}

Test(mlp_head, reads_one_input)
{
    ht_test_inputs(&mlp_vtable, mlp_options, "hidden: [8]\nepochs: 2", "mlp");
}

Test(mlp_head, dev_score_is_the_chosen_metric)
{
    ht_test_dev_metric(&mlp_vtable, mlp_options, "lr: 0.01");
}

Test(mlp_head, cancellation)
{
    ht_test_cancel(&mlp_vtable, mlp_options, "hidden: [8]\nepochs: 50\nbatch_size: 8");
}

/* With a learning rate too small to move anything, a fine-tuned model's hidden layer is the
 * checkpoint's: train started from it rather than from a fresh draw. */
Test(mlp_head, fine_tuning_starts_from_the_loaded_hidden_layers)
{
    enum { L = 2, D = 5 };
    split tr4 = ht_make_blobs(80, L, D, 4, 0, 1.5, 1, 1);
    split tr3 = ht_make_blobs(60, L, D, 3, 0, 1.5, 2, 2);
    sb_opts *oa = opts("hidden: [16]\nepochs: 5"), *ob = opts("hidden: [16]\nepochs: 2\nlr: 1e-9");
    ht_reset(4);
    void *a = create_ok(&ht_host, oa, L, D, 4), *b = create_ok(&ht_host, ob, L, D, 3);
    train_ok(a, &tr4.d, &ht_empty);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s", ht_tmp_path("mlp-ft-a"));
    snprintf(pb, sizeof pb, "%s", ht_tmp_path("mlp-ft-b"));
    ht_save(&mlp_vtable, a, pa);
    sb_error err = { 0 };
    cr_assert_eq(ht_load(&mlp_vtable, b, pa, "all", 1, 4, &err), SB_OK, "%s", err.msg);
    train_ok(b, &tr3.d, &ht_empty);
    ht_save(&mlp_vtable, b, pb);
    sb_st_file *fa = NULL, *fb = NULL;
    cr_assert_eq(sb_st_open(pa, &fa, &err), SB_OK);
    cr_assert_eq(sb_st_open(pb, &fb, &err), SB_OK);
    const char *names[3] = { "hidden.0.W", "hidden.0.b", "layer_logits" };
    for (int i = 0; i < 3; i++) {
        const sb_st_tensor *ta = sb_st_find(fa, names[i]), *tb = sb_st_find(fb, names[i]);
        cr_assert(ta && tb && ta->numel == tb->numel);
        float *xa = malloc(ta->nbytes), *xb = malloc(tb->nbytes); /* data may be unaligned */
        cr_assert_eq(sb_st_to_f32(ta, xa, &err), SB_OK);
        cr_assert_eq(sb_st_to_f32(tb, xb, &err), SB_OK);
        double worst = 0.0;
        for (int64_t k = 0; k < ta->numel; k++)
            worst = fmax(worst, fabs((double)xa[k] - xb[k]));
        free(xa);
        free(xb);
        cr_assert_lt(worst, 1e-6, "%s moved by %g: not started from the checkpoint", names[i],
                     worst);
    }
    sb_st_close(&fa);
    sb_st_close(&fb);
    unlink(pa);
    unlink(pb);
    mlp_destroy(a);
    mlp_destroy(b);
    sbi_opts_destroy(&oa);
    sbi_opts_destroy(&ob);
    ht_free_split(&tr4);
    ht_free_split(&tr3);
}
