/* plugins/heads/linear/test_linear.c — the linear head: its gradient (layer-weight softmax
 * Jacobian included) against finite differences of a double-precision forward written here,
 * learning on Gaussian blobs where one of three layers is informative, bitwise determinism,
 * early stopping restoring the best dev epoch, rows without labels ignored, and errors.
 * linear.c is included so the test reaches the model's internals. */
#include "linear.c"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>

#include "head_testutil.h"
#include "internal.h"

/* ---- helpers (the shared harness is head_testutil.c) ------------------------------------ */

typedef ht_split split;

static sb_opts *opts(const char *yaml)
{
    return ht_opts(linear_options, yaml);
}

static void *create_ok(const sb_host *host, sb_opts *o, int L, int D, int K)
{
    return ht_create(&linear_vtable, host, o, L, D, K);
}

static void train_ok(void *inst, const sb_head_data *tr, const sb_head_data *dv)
{
    ht_train(&linear_vtable, inst, tr, dv);
}

static float *predict_ok(void *inst, const sb_head_data *d, int width)
{
    return ht_predict(&linear_vtable, inst, d, width);
}

/* ---- gradient vs finite differences ------------------------------------------------------ */

/* The head's loss for rows zb (B,L,D) (already standardised) in double. */
static double head_loss_d(const linear_head *h, const double *a, const double *W,
                          const double *bias, int B)
{
    int L = h->L, D = h->D, K = h->K;
    double w[16], zbar[64], logit[16], num = 0.0, den = 0.0;
    double mx = a[0], s = 0.0;
    for (int l = 0; l < L; l++)
        mx = a[l] > mx ? a[l] : mx;
    for (int l = 0; l < L; l++)
        s += (w[l] = h->o.learn_layers ? exp(a[l] - mx) : 1.0);
    for (int l = 0; l < L; l++)
        w[l] /= s;
    for (int b = 0; b < B; b++) {
        int y = h->yb[b];
        if (y < 0)
            continue;
        for (int d = 0; d < D; d++) {
            zbar[d] = 0.0;
            for (int l = 0; l < L; l++)
                zbar[d] += w[l] * h->zb[((size_t)b * L + l) * D + d];
        }
        double lm = -INFINITY, ls = 0.0;
        for (int k = 0; k < K; k++) {
            logit[k] = bias[k];
            for (int d = 0; d < D; d++)
                logit[k] += W[k * D + d] * zbar[d];
            lm = logit[k] > lm ? logit[k] : lm;
        }
        for (int k = 0; k < K; k++)
            ls += exp(logit[k] - lm);
        double cw = h->class_w[y];
        num += -cw * (logit[y] - lm - log(ls));
        den += cw;
    }
    return num / den;
}

static void check_grad_fd(int learn_layers, int weighted)
{
    enum { L = 4, D = 5, K = 3, B = 6 };
    char yaml[128];
    snprintf(yaml, sizeof yaml, "layer_weights: %s\nbatch_size: %d",
             learn_layers ? "true" : "false", B);
    sb_opts *o = opts(yaml);
    linear_head *h = create_ok(&ht_host, o, L, D, K);
    const double sep = 1.0;
    const uint64_t mseed = 3;
    split s = ht_make_blobs(B, L, D, K, 2, sep, mseed, 11);
    s.y[4] = -1; /* a row without target inside the batch */
    size_t rows[B];
    for (int i = 0; i < B; i++)
        rows[i] = (size_t)i;
    sb_error err = { 0 };
    cr_assert_eq(fit_stats(h, &s.d, rows, B, &err), SB_OK);
    for (int k = 0; k < K; k++)
        h->class_w[k] = weighted ? 0.5f + k : 1.0f;
    /* non-uniform layer logits so the softmax Jacobian is exercised away from its centre */
    sb_rng r;
    sb_rng_seed(&r, 5, 5);
    for (size_t i = 0; i < h->n_params; i++)
        h->params[i] = (float)sb_rng_normal(&r);
    gather(h, &s.d, rows, 0, B);
    loss_and_grad(h, B, 1);

    double a[L], W[K * D], bias[K];
    for (int i = 0; i < L; i++)
        a[i] = h->a[i];
    for (int i = 0; i < K * D; i++)
        W[i] = h->W[i];
    for (int i = 0; i < K; i++)
        bias[i] = h->bias[i];
    double *groups[3] = { a, W, bias };
    const float *got[3] = { h->da, h->dW, h->dbias };
    const int sizes[3] = { L, K * D, K };
    const char *names[3] = { "d(layer logits)", "dW", "dbias" };
    for (int g = 0; g < 3; g++) {
        double max_abs = 0.0;
        int worst = 0;
        for (int i = 0; i < sizes[g]; i++) {
            const double eps = 1e-5;
            double keep = groups[g][i];
            groups[g][i] = keep + eps;
            double lp = head_loss_d(h, a, W, bias, B);
            groups[g][i] = keep - eps;
            double lm = head_loss_d(h, a, W, bias, B);
            groups[g][i] = keep;
            double fd = (lp - lm) / (2 * eps);
            double e = fabs(got[g][i] - fd);
            if (e > max_abs) {
                max_abs = e;
                worst = i;
            }
            cr_assert(e <= 1e-5 + 1e-3 * fabs(fd),
                      "%s[%d] (layer_weights=%d weighted=%d): analytic %.8g, finite "
                      "differences %.8g, |err| %.3g",
                      names[g], i, learn_layers, weighted, (double)got[g][i], fd, e);
        }
        cr_log_info("%s: max |analytic - fd| = %.3g at %d", names[g], max_abs, worst);
        if (g == 0 && !learn_layers)
            for (int i = 0; i < L; i++)
                cr_assert_eq(h->da[i], 0.0f);
    }
    linear_destroy(h);
    sbi_opts_destroy(&o);
    ht_free_split(&s);
}

Test(linear_head, gradient_matches_finite_differences)
{
    check_grad_fd(1, 0);
    check_grad_fd(1, 1);
    check_grad_fd(0, 1);
}

/* ---- learning ---------------------------------------------------------------------------- */

Test(linear_head, learns_blobs_and_finds_the_informative_layer)
{
    enum { L = 3, D = 16, K = 4, INFO = 1 };
    const double sep = 2.0;
    const uint64_t mseed = 1;
    split tr = ht_make_blobs(800, L, D, K, INFO, sep, mseed, 1);
    split dv = ht_make_blobs(200, L, D, K, INFO, sep, mseed, 2);
    split te = ht_make_blobs(400, L, D, K, INFO, sep, mseed, 3);
    sb_opts *o = opts("lr: 0.01\nepochs: 30");
    ht_reset(1);
    void *inst = create_ok(&ht_host, o, L, D, K);
    train_ok(inst, &tr.d, &dv.d);
    float *p = predict_ok(inst, &te.d, K);
    double acc = ht_accuracy(p, te.y, te.d.n, K);
    linear_head *h = inst;
    float w[L];
    layer_weights(h, w);
    cr_log_info("blobs: test accuracy %.3f, layer weights %.3f %.3f %.3f (%s)", acc, w[0], w[1],
                w[2], ht_cap.info);
    cr_assert_gt(acc, 0.9, "test accuracy %.3f", acc);
    cr_assert_gt(w[INFO], 0.6, "weight of the informative layer %.3f (others %.3f, %.3f)", w[INFO],
                 w[0], w[2]);
    for (size_t i = 0; i < te.d.n; i++) {
        double s = 0;
        for (int k = 0; k < K; k++)
            s += p[i * K + k];
        cr_assert(fabs(s - 1.0) < 1e-5, "row %zu sums to %g", i, s);
    }
    cr_assert(strstr(ht_cap.info, "best epoch"), "summary line: %s", ht_cap.info);
    free(p);
    linear_destroy(inst);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

Test(linear_head, same_seed_gives_identical_predictions)
{
    enum { L = 3, D = 8, K = 3 };
    const double sep = 0.7;
    const uint64_t mseed = 4;
    split tr = ht_make_blobs(300, L, D, K, 0, sep, mseed, 5);
    split dv = ht_make_blobs(90, L, D, K, 0, sep, mseed, 6);
    split te = ht_make_blobs(100, L, D, K, 0, sep, mseed, 7);
    sb_opts *o = opts("epochs: 8\nbatch_size: 16\nclass_weights: balanced\nlr: 0.005");
    float *p[3];
    const uint64_t seeds[3] = { 42, 42, 43 };
    for (int run = 0; run < 3; run++) {
        const sb_host *host = sbi_test_host(seeds[run], 1);
        void *inst = create_ok(host, o, L, D, K);
        train_ok(inst, &tr.d, &dv.d);
        p[run] = predict_ok(inst, &te.d, K);
        linear_destroy(inst);
    }
    cr_assert(memcmp(p[0], p[1], sizeof(float) * te.d.n * K) == 0,
              "same seed, different predictions");
    cr_assert(memcmp(p[0], p[2], sizeof(float) * te.d.n * K) != 0,
              "different seeds gave identical predictions: the seed is not used");
    for (int i = 0; i < 3; i++)
        free(p[i]);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

/* Dev labels are half wrong, so dev loss falls while the model learns and rises as it grows
 * confident: early stopping must stop `patience` epochs after the best one and restore it. */
Test(linear_head, early_stopping_restores_the_best_epoch)
{
    enum { L = 2, D = 6, K = 3, PATIENCE = 4 };
    const double sep = 1.5;
    const uint64_t mseed = 8;
    split tr = ht_make_blobs(300, L, D, K, 0, sep, mseed, 9);
    split dv = ht_make_blobs(120, L, D, K, 0, sep, mseed, 10);
    for (size_t i = 0; i < dv.d.n; i += 2)
        dv.y[i] = (dv.y[i] + 1) % K;
    sb_opts *o = opts("metric: loss\npatience: 4\nepochs: 300\nlr: 0.002\nweight_decay: 0");
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
    cr_assert_gt(ht_cap.dev[ht_cap.n - 1], ht_cap.dev[best],
                 "last dev loss %.5f not worse than best %.5f", ht_cap.dev[ht_cap.n - 1],
                 ht_cap.dev[best]);
    /* the restored model's dev loss is the best epoch's, not the last one's */
    float *p = predict_ok(inst, &dv.d, K);
    double loss = 0;
    for (size_t i = 0; i < dv.d.n; i++)
        loss -= log(p[i * K + dv.y[i]]);
    loss /= (double)dv.d.n;
    cr_log_info("early stop: %d epochs, best %d, dev loss best %.5f last %.5f restored %.5f",
                ht_cap.n, best + 1, ht_cap.dev[best], ht_cap.dev[ht_cap.n - 1], loss);
    cr_assert(fabs(loss - ht_cap.dev[best]) < 2e-5, "restored dev loss %.6f, best logged %.5f",
              loss, ht_cap.dev[best]);
    free(p);
    linear_destroy(inst);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
}

Test(linear_head, without_dev_trains_every_epoch)
{
    enum { L = 2, D = 4, K = 2 };
    const double sep = 1.0;
    const uint64_t mseed = 12;
    split tr = ht_make_blobs(50, L, D, K, 1, sep, mseed, 13);
    sb_opts *o = opts("epochs: 7\npatience: 1");
    ht_reset(ht_host.seed);
    void *inst = create_ok(&ht_host, o, L, D, K);
    train_ok(inst, &tr.d, &ht_empty);
    cr_assert_eq(ht_cap.n, 7);
    cr_assert(isnan(ht_cap.dev[0]));
    /* a dev split whose rows have no labels behaves the same */
    split dv = ht_make_blobs(10, L, D, K, 1, sep, mseed, 14);
    for (size_t i = 0; i < dv.d.n; i++)
        dv.y[i] = -1;
    ht_reset(ht_host.seed);
    train_ok(inst, &tr.d, &dv.d);
    cr_assert_eq(ht_cap.n, 7);
    linear_destroy(inst);
    sbi_opts_destroy(&o);
    ht_free_split(&tr);
    ht_free_split(&dv);
}

/* Interleaving unlabelled rows (with wild features) must not change anything. */
Test(linear_head, unlabelled_rows_are_ignored)
{
    enum { L = 3, D = 5, K = 3 };
    const double sep = 1.0;
    const uint64_t mseed = 15;
    split a = ht_make_blobs(120, L, D, K, 2, sep, mseed, 16);
    split dv = ht_make_blobs(40, L, D, K, 2, sep, mseed, 17);
    split te = ht_make_blobs(50, L, D, K, 2, sep, mseed, 18);
    /* b = a with an unlabelled row after every second labelled one */
    size_t nb = a.d.n + a.d.n / 2, LD = (size_t)L * D;
    split b = ht_make_blobs(nb, L, D, K, 2, sep, mseed, 19);
    for (size_t i = 0, j = 0; i < a.d.n; i++) {
        memcpy(b.x + j * LD, a.x + i * LD, LD * sizeof(float));
        b.y[j++] = a.y[i];
        if (i % 2 == 1) {
            for (size_t k = 0; k < LD; k++)
                b.x[j * LD + k] = k % 2 ? 1e6f : NAN;
            b.y[j++] = -1;
        }
    }
    sb_opts *o = opts("epochs: 6\nbatch_size: 8");
    const sb_host *host = sbi_test_host(9, 1);
    void *ia = create_ok(host, o, L, D, K);
    train_ok(ia, &a.d, &dv.d);
    float *pa = predict_ok(ia, &te.d, K);
    void *ib = create_ok(host, o, L, D, K);
    train_ok(ib, &b.d, &dv.d);
    float *pb = predict_ok(ib, &te.d, K);
    cr_assert(memcmp(pa, pb, sizeof(float) * te.d.n * K) == 0,
              "unlabelled rows changed the predictions");
    free(pa);
    free(pb);
    linear_destroy(ia);
    linear_destroy(ib);
    sbi_opts_destroy(&o);
    ht_free_split(&a);
    ht_free_split(&b);
    ht_free_split(&dv);
    ht_free_split(&te);
}

/* ---- errors ---------------------------------------------------------------------------- */

Test(linear_head, errors_are_reported)
{
    sb_opts *o = opts("");
    void *inst = (void *)0x1;
    sb_error err = { 0 };
    cr_assert_eq(linear_vtable.create(&ht_host, o, 2, 4, 1, &inst, &err), SB_ERR_INVALID);
    cr_assert_null(inst);
    cr_assert(strstr(err.msg, "at least 2 classes") && strstr(err.msg, "0 for a regression"), "%s",
              err.msg);
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.create(&ht_host, o, 2, 4, -2, &inst, &err), SB_ERR_INVALID);
    cr_assert_null(inst);
    sbi_opts_destroy(&o);

    o = opts("hidden: 64");
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.create(&ht_host, o, 2, 4, 3, &inst, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "hidden") && strstr(err.msg, "mlp"), "%s", err.msg);
    sbi_opts_destroy(&o);

    o = opts("epochs: 2");
    inst = create_ok(&ht_host, o, 2, 4, 3);
    const double sep = 1.0;
    const uint64_t mseed = 20;
    split s = ht_make_blobs(10, 2, 4, 3, 0, sep, mseed, 21);
    float probs[30];
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.predict(inst, &s.d, probs, &err), SB_ERR_INVALID,
                 "predict before train");
    for (size_t i = 0; i < s.d.n; i++)
        s.y[i] = -1;
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a label"), "%s", err.msg);
    s.y[3] = 7; /* outside the 3 classes */
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    s.y[3] = 1;
    s.x[3 * 8 + 5] = INFINITY;
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.train(inst, &s.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "train feature 1 of layer 1 is not finite"), "%s", err.msg);
    /* the same row as a labelled dev row: dev rows feed early stopping, so they are checked
     * too, named by utterance */
    const char *ids[10] = { "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9" };
    s.d.utt_id = ids;
    split ok = ht_make_blobs(10, 2, 4, 3, 0, sep, mseed, 22);
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.train(inst, &ok.d, &s.d, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "dev feature 1 of layer 1 is not finite"), "%s", err.msg);
    cr_assert(strstr(err.where, "u3"), "where: %s", err.where);
    /* unlabelled, the row is never read */
    s.y[3] = -1;
    train_ok(inst, &ok.d, &s.d);
    s.y[3] = 1;
    s.d.utt_id = NULL;
    ht_free_split(&ok);
    s.x[3 * 8 + 5] = 0;
    train_ok(inst, &s.d, &ht_empty);
    s.d.dim = 5;
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.predict(inst, &s.d, probs, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "2 layers x 5 dims"), "%s", err.msg);
    cr_assert_eq(linear_vtable.predict(inst, &ht_empty, probs, &err), SB_OK, "n = 0");
    linear_destroy(inst);
    linear_destroy(NULL);
    sbi_opts_destroy(&o);
    ht_free_split(&s);
}

Test(linear_head, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_HEAD);
    cr_assert_str_eq(p->name, "linear");
    cr_assert_eq(p->abi_minor, SB_ABI_MINOR);
    cr_assert_eq(p->struct_size, sizeof(sb_plugin));
    cr_assert_eq(p->vtable, &linear_vtable);
    sb_opts *o = opts(""); /* every default validates */
    cr_assert_eq(sb_opts_int(o, "epochs"), 50);
    cr_assert_eq(sb_opts_float(o, "lr"), 0.001);
    cr_assert_str_eq(sb_opts_str(o, "metric"), "ua");
    cr_assert(sb_opts_bool(o, "layer_weights") && sb_opts_bool(o, "normalize"));
    sbi_opts_destroy(&o);
}

/* ---- regression ---------------------------------------------------------------------------- */

/* A linear function of one layer's features, with noise 0.1: both losses get the test MAE
 * far below the target's spread, and predict writes one value per row. */
Test(linear_head, regression_learns_a_linear_function)
{
    enum { L = 3, D = 6, INFO = 1 };
    split tr = ht_make_regression(600, L, D, INFO, 0, 0.1, 1);
    split dv = ht_make_regression(150, L, D, INFO, 0, 0.1, 2);
    split te = ht_make_regression(300, L, D, INFO, 0, 0.1, 3);
    /* rows without a target (and with wild features) are context only */
    for (size_t i = 0; i < tr.d.n; i += 10) {
        tr.value[i] = NAN;
        tr.x[i * L * D] = NAN;
    }
    const char *yaml[2] = { "lr: 0.01\nepochs: 60", "lr: 0.01\nepochs: 60\nloss: mse" };
    double sd = ht_value_sd(&te);
    for (int c = 0; c < 2; c++) {
        sb_opts *o = opts(yaml[c]);
        ht_reset(4);
        linear_head *h = create_ok(&ht_host, o, L, D, 0);
        cr_assert(h->regression && h->K == 1);
        train_ok(h, &tr.d, &dv.d);
        float *p = predict_ok(h, &te.d, 1);
        double mae = ht_mae(p, te.value, te.d.n);
        cr_log_info("regression (%s): test MAE %.4f, target sd %.3f (%s)", c ? "mse" : "l1", mae,
                    sd, ht_cap.info);
        cr_assert_lt(mae, 0.15 * sd, "MAE %.4f vs sd %.3f", mae, sd);
        cr_assert(strstr(ht_cap.info, "dev mae"), "%s", ht_cap.info);
        float w[L];
        layer_weights(h, w);
        cr_assert_gt(w[INFO], 0.5, "informative layer weight %.3f", (double)w[INFO]);
        free(p);
        linear_destroy(h);
        sbi_opts_destroy(&o);
    }
    /* an infinite target is an error naming the row */
    const char *ids[3] = { "a", "b", "c" };
    split bad = ht_make_regression(3, L, D, INFO, 0, 0.1, 5);
    bad.d.utt_id = ids;
    bad.value[1] = INFINITY;
    sb_opts *o = opts("epochs: 2");
    void *h = create_ok(&ht_host, o, L, D, 0);
    sb_error err = { 0 };
    cr_assert_eq(linear_vtable.train(h, &bad.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert_str_eq(err.where, "b");
    /* no row with a target */
    for (size_t i = 0; i < 3; i++)
        bad.value[i] = NAN;
    sb_error_clear(&err);
    cr_assert_eq(linear_vtable.train(h, &bad.d, &ht_empty, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no utterance with a target value"), "%s", err.msg);
    linear_destroy(h);
    sbi_opts_destroy(&o);
    ht_free_split(&bad);
    ht_free_split(&tr);
    ht_free_split(&dv);
    ht_free_split(&te);
}

/* ---- checkpoints, inputs, cancellation ---------------------------------------------------- */

Test(linear_head, checkpoint_round_trip_is_bit_identical)
{
    ht_test_checkpoint_round_trip(&linear_vtable, linear_options, "epochs: 5\nlr: 0.01");
}

Test(linear_head, fine_tunes_from_a_checkpoint_with_a_new_output_layer)
{
    ht_test_fine_tune(&linear_vtable, linear_options, "epochs: 20\nlr: 0.01");
}

Test(linear_head, checkpoints_that_do_not_fit_are_errors)
{
    ht_test_checkpoint_errors(&linear_vtable, linear_options, "epochs: 2");
}

Test(linear_head, reads_one_input)
{
    ht_test_inputs(&linear_vtable, linear_options, "epochs: 2", "linear");
}

Test(linear_head, dev_score_is_the_chosen_metric)
{
    ht_test_dev_metric(&linear_vtable, linear_options, "lr: 0.01");
}

Test(linear_head, cancellation)
{
    ht_test_cancel(&linear_vtable, linear_options, "epochs: 50\nbatch_size: 8");
}
