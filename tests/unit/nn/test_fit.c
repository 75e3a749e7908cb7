/* tests/unit/nn/test_fit.c — the training loop sb_fit with a scripted model: early stopping
 * at the right epoch, the best epoch's parameters restored bit for bit, the batch order as a
 * function of (seed, stream) only, batches that do not divide the items, an item subset, the
 * no-dev path, a non-finite loss, cancellation, callback errors and a bad spec. */
#include <serbench/serbench.h>

#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a host that counts -------------------------------------------------------------------- */

static struct {
    int debug_lines, progress_calls, cancel_after, cancel_calls;
    uint64_t last_done, last_total;
    char last_debug[512];
} hs;

static void h_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void h_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    if (level != SB_LOG_DEBUG)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs.last_debug, sizeof hs.last_debug, fmt, ap);
    va_end(ap);
    hs.debug_lines++;
}

static void h_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    hs.progress_calls++;
    hs.last_done = done;
    hs.last_total = total;
}

/* Says "cancel" from its (cancel_after+1)-th call on; never when cancel_after < 0. */
static int h_cancelled(const sb_host *h)
{
    (void)h;
    return hs.cancel_after >= 0 && hs.cancel_calls++ >= hs.cancel_after;
}

static const sb_host host = {
    .struct_size = sizeof(sb_host),
    .log = h_log,
    .progress = h_progress,
    .cancelled = h_cancelled,
    .cache_dir = "/tmp",
    .seed = 1,
    .threads = 1,
};

/* ---- a scripted model ---------------------------------------------------------------------- */

#define MAX_IDS 4096
#define MAX_EPOCHS 64
#define NP 5

typedef struct model {
    float params[NP];
    sb_rng noise;        /* each step moves the parameters by noise */
    size_t ids[MAX_IDS]; /* every id the steps saw, in order */
    size_t n_ids;
    size_t batch_n[MAX_IDS]; /* each step's batch size */
    long steps, last_step;   /* steps seen; the `step` argument of the last one */
    long nan_at;             /* return a NaN loss at this step (0: never) */
    long fail_at;            /* return an error at this step (0: never) */
    const double *scores;    /* score of each evaluation */
    int evals;
    float at_eval[MAX_EPOCHS][NP]; /* params at each evaluation */
} model;

static sb_status m_step(void *ctx, const size_t *batch, size_t n, long step, double *loss,
                        sb_error *err)
{
    model *m = ctx;
    m->steps++;
    m->last_step = step;
    m->batch_n[m->steps - 1] = n;
    for (size_t i = 0; i < n && m->n_ids < MAX_IDS; i++)
        m->ids[m->n_ids++] = batch[i];
    if (m->fail_at == step)
        return sb_error_set(err, SB_ERR_IO, "model", "scripted failure at step %ld", step);
    for (int i = 0; i < NP; i++)
        m->params[i] += (float)sb_rng_normal(&m->noise);
    *loss = m->nan_at == step ? NAN : 1.0 / (double)step + (double)n;
    return SB_OK;
}

static sb_status m_eval(void *ctx, double *score, double *shown, sb_error *err)
{
    (void)err;
    model *m = ctx;
    memcpy(m->at_eval[m->evals], m->params, sizeof m->params);
    *score = m->scores[m->evals];
    *shown = -*score;
    m->evals++;
    return SB_OK;
}

static void model_init(model *m)
{
    memset(m, 0, sizeof *m);
    sb_rng_seed(&m->noise, 77, 1);
    memset(&hs, 0, sizeof hs);
    hs.cancel_after = -1;
}

static sb_fit_spec base_spec(model *m, size_t n_items, size_t batch, int epochs)
{
    return (sb_fit_spec){ .who = "head test",
                          .epochs = epochs,
                          .patience = 3,
                          .batch_size = batch,
                          .n_items = n_items,
                          .seed = 5,
                          .stream = 9,
                          .params = m->params,
                          .n_params = NP,
                          .ctx = m,
                          .step = m_step,
                          .evaluate = m_eval,
                          .has_dev = 1,
                          .metric = "ua",
                          .host = &host };
}

/* ---- early stopping and restore ----------------------------------------------------------- */

Test(fit, stops_after_patience_epochs_without_a_strictly_better_score)
{
    /* best at epoch 3; epoch 5 only ties it; patience 3 stops after epoch 6 */
    static const double scores[] = { 0.1, 0.2, 0.5, 0.4, 0.5, 0.3, 0.9, 0.9 };
    model m;
    model_init(&m);
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 10, 4, 8);
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_run, 6);
    cr_assert_eq(m.evals, 6);
    cr_assert_eq(res.best_epoch, 3);
    cr_assert_eq(res.best_score, 0.5);
    cr_assert_eq(res.best_shown, -0.5);
    cr_assert_eq(res.steps, 18, "3 batches x 6 epochs, got %ld", res.steps);
    cr_assert_eq(m.last_step, 18);
    cr_assert_eq(hs.debug_lines, 6);
    cr_assert_eq(hs.progress_calls, 6);
    cr_assert_eq(hs.last_total, 8);
    cr_assert(strstr(hs.last_debug, "epoch 6/8: train loss") && strstr(hs.last_debug, "dev ua"),
              "%s", hs.last_debug);
    /* the restored parameters are those evaluated at epoch 3, bit for bit */
    cr_assert(memcmp(m.params, m.at_eval[2], sizeof m.params) == 0, "best epoch not restored");
    cr_assert(memcmp(m.params, m.at_eval[5], sizeof m.params) != 0, "the last epoch was kept");
}

Test(fit, patience_one_and_a_best_last_epoch)
{
    static const double scores[] = { 0.1, 0.2, 0.3, 0.4 };
    model m;
    model_init(&m);
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 7, 7, 4);
    spec.patience = 1;
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_run, 4);
    cr_assert_eq(res.best_epoch, 4);
    cr_assert(memcmp(m.params, m.at_eval[3], sizeof m.params) == 0);

    static const double down[] = { 0.4, 0.3, 0.2, 0.1 };
    model_init(&m);
    m.scores = down;
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(res.epochs_run, 2, "patience 1 stops at the first worse epoch");
    cr_assert_eq(res.best_epoch, 1);
    cr_assert(memcmp(m.params, m.at_eval[0], sizeof m.params) == 0);
}

/* A dev score that is never finite never becomes the best: nothing is restored. */
Test(fit, nan_scores_are_never_best)
{
    static const double scores[] = { NAN, NAN, NAN };
    model m;
    model_init(&m);
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 4, 2, 3);
    spec.patience = 2;
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(res.best_epoch, 0);
    cr_assert_eq(res.epochs_run, 2);
    cr_assert(memcmp(m.params, m.at_eval[1], sizeof m.params) == 0);
}

Test(fit, without_dev_runs_every_epoch_and_keeps_the_last)
{
    static const double scores[] = { 0.5, 0.1, 0.1, 0.1, 0.1, 0.1 };
    for (int variant = 0; variant < 2; variant++) {
        model m;
        model_init(&m);
        m.scores = scores;
        sb_fit_spec spec = base_spec(&m, 9, 4, 6);
        spec.patience = 1;
        if (variant == 0)
            spec.has_dev = 0;
        else
            spec.evaluate = NULL;
        sb_fit_result res;
        sb_error err = { 0 };
        cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
        cr_assert_eq(res.epochs_run, 6);
        cr_assert_eq(m.evals, 0, "evaluate called without a dev set");
        cr_assert_eq(res.best_epoch, 0);
        cr_assert(isnan(res.best_score));
        cr_assert_eq(res.steps, 18);
        cr_assert_eq(hs.debug_lines, 6);
        cr_assert_null(strstr(hs.last_debug, "dev"), "%s", hs.last_debug);
        /* the last step's parameters are kept: replay the noise */
        sb_rng r;
        sb_rng_seed(&r, 77, 1);
        float want[NP] = { 0 };
        for (long s = 0; s < res.steps; s++)
            for (int i = 0; i < NP; i++)
                want[i] += (float)sb_rng_normal(&r);
        cr_assert(memcmp(m.params, want, sizeof want) == 0);
    }
}

/* ---- the order of the items ---------------------------------------------------------------- */

/* Runs a fit without dev over n items in batches of bs for `epochs`; m records the ids. */
static void run_order(model *m, uint64_t seed, uint64_t stream, size_t n, size_t bs, int epochs,
                      const size_t *items)
{
    model_init(m);
    sb_fit_spec spec = base_spec(m, n, bs, epochs);
    spec.has_dev = 0;
    spec.seed = seed;
    spec.stream = stream;
    spec.items = items;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, NULL, &err), SB_OK, "%s", err.msg);
}

Test(fit, batch_order_is_a_function_of_seed_and_stream)
{
    static model a, b, c, d;
    run_order(&a, 11, 3, 50, 8, 4, NULL);
    run_order(&b, 11, 3, 50, 8, 4, NULL);
    run_order(&c, 12, 3, 50, 8, 4, NULL);
    run_order(&d, 11, 4, 50, 8, 4, NULL);
    cr_assert_eq(a.n_ids, 200);
    cr_assert(memcmp(a.ids, b.ids, a.n_ids * sizeof(size_t)) == 0, "same seed, other order");
    cr_assert(memcmp(a.ids, c.ids, a.n_ids * sizeof(size_t)) != 0, "the seed is not used");
    cr_assert(memcmp(a.ids, d.ids, a.n_ids * sizeof(size_t)) != 0, "the stream is not used");
    /* each epoch is a permutation of 0..49, and epochs differ */
    for (int e = 0; e < 4; e++) {
        int seen[50] = { 0 };
        for (size_t i = 0; i < 50; i++) {
            size_t id = a.ids[(size_t)e * 50 + i];
            cr_assert_lt(id, 50);
            cr_assert_eq(seen[id]++, 0, "epoch %d repeats item %zu", e + 1, id);
        }
    }
    cr_assert(memcmp(a.ids, a.ids + 50, 50 * sizeof(size_t)) != 0, "epochs 1 and 2 in one order");
    /* the documented order: one stream, each epoch reshuffling the previous epoch's order */
    size_t ref[50];
    for (size_t i = 0; i < 50; i++)
        ref[i] = i;
    sb_rng r;
    sb_rng_seed(&r, 11, 3);
    for (int e = 0; e < 4; e++) {
        sb_rng_shuffle(&r, ref, 50);
        cr_assert(memcmp(ref, a.ids + (size_t)e * 50, sizeof ref) == 0, "epoch %d", e + 1);
    }
}

Test(fit, batches_that_do_not_divide_the_items)
{
    static model m;
    run_order(&m, 1, 1, 10, 4, 3, NULL);
    cr_assert_eq(m.steps, 9);
    for (long s = 0; s < m.steps; s++)
        cr_assert_eq(m.batch_n[s], s % 3 == 2 ? 2u : 4u, "step %ld has %zu items", s + 1,
                     m.batch_n[s]);
    sb_fit_spec spec = base_spec(&m, 10, 4, 3);
    cr_assert_eq(sb_fit_steps(&spec), 9);
    spec.batch_size = 10;
    cr_assert_eq(sb_fit_steps(&spec), 3);
    spec.batch_size = 64;
    cr_assert_eq(sb_fit_steps(&spec), 3, "a batch larger than the items is one step");
    spec.batch_size = 1;
    spec.epochs = 7;
    cr_assert_eq(sb_fit_steps(&spec), 70);

    /* train_loss is the item-weighted mean of the last epoch's batch losses */
    model_init(&m);
    spec = base_spec(&m, 10, 4, 1);
    spec.has_dev = 0;
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_OK, "%s", err.msg);
    double want = ((1.0 + 4) * 4 + (0.5 + 4) * 4 + (1.0 / 3 + 2) * 2) / 10.0;
    cr_assert(fabs(res.train_loss - want) < 1e-12, "train loss %.15g, want %.15g", res.train_loss,
              want);
}

Test(fit, items_subset)
{
    static const size_t items[] = { 3, 7, 11, 12, 40, 41, 99 };
    enum { N = sizeof items / sizeof *items };
    static model m;
    run_order(&m, 2, 2, N, 3, 5, items);
    cr_assert_eq(m.n_ids, 5 * N);
    for (int e = 0; e < 5; e++) {
        int seen[N] = { 0 };
        for (size_t i = 0; i < N; i++) {
            size_t id = m.ids[(size_t)e * N + i], k = 0;
            while (k < N && items[k] != id)
                k++;
            cr_assert_lt(k, N, "id %zu is not one of the items", id);
            cr_assert_eq(seen[k]++, 0, "epoch %d repeats id %zu", e + 1, id);
        }
    }
}

/* ---- failures -------------------------------------------------------------------------------- */

Test(fit, non_finite_loss_names_the_epoch)
{
    static model m;
    model_init(&m);
    m.nan_at = 8; /* 3 steps per epoch: epoch 3 */
    static const double scores[] = { 0.1, 0.2, 0.3, 0.4 };
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 9, 3, 4);
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "epoch 3") && strstr(err.msg, "lower the learning rate"), "%s",
              err.msg);
    cr_assert_str_eq(err.where, "head test");
    cr_assert_eq(res.epochs_run, 2);
    cr_assert_eq(res.steps, 8);
    cr_assert_eq(res.best_epoch, 2);
    /* the parameters are left as they are: not restored to epoch 2's */
    cr_assert(memcmp(m.params, m.at_eval[1], sizeof m.params) != 0);
}

Test(fit, cancellation_between_steps)
{
    static model m;
    model_init(&m);
    hs.cancel_after = 5;
    static const double scores[] = { 0.1, 0.2, 0.3, 0.4 };
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 8, 4, 4);
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_ERR_CANCELLED);
    cr_assert_eq(m.steps, 5, "steps after the cancel: %ld", m.steps);
    cr_assert_eq(res.steps, 5);
    cr_assert_eq(res.epochs_run, 2);
    cr_assert(strstr(err.msg, "epoch 3"), "%s", err.msg);

    /* cancelled before anything runs */
    model_init(&m);
    hs.cancel_after = 0;
    m.scores = scores;
    sb_error_clear(&err);
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_ERR_CANCELLED);
    cr_assert_eq(m.steps, 0);
    cr_assert_eq(res.epochs_run, 0);
}

Test(fit, callback_errors_stop_the_fit)
{
    static model m;
    model_init(&m);
    m.fail_at = 2;
    static const double scores[] = { 0.1, 0.2 };
    m.scores = scores;
    sb_fit_spec spec = base_spec(&m, 8, 4, 2);
    sb_fit_result res;
    sb_error err = { 0 };
    cr_assert_eq(sb_fit(&spec, &res, &err), SB_ERR_IO);
    cr_assert(strstr(err.msg, "scripted failure at step 2"), "%s", err.msg);
    cr_assert_eq(res.steps, 1);
}

Test(fit, bad_spec)
{
    static model m;
    model_init(&m);
    sb_fit_spec good = base_spec(&m, 8, 4, 2), s;
    sb_error err = { 0 };
    s = good;
    s.epochs = 0;
    cr_assert_eq(sb_fit(&s, NULL, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "epochs"), "%s", err.msg);
    cr_assert_str_eq(err.where, "head test");
    s = good;
    s.batch_size = 0;
    sb_error_clear(&err);
    cr_assert_eq(sb_fit(&s, NULL, &err), SB_ERR_INVALID);
    cr_assert_eq(sb_fit_steps(&s), 0);
    s = good;
    s.n_items = 0;
    sb_error_clear(&err);
    cr_assert_eq(sb_fit(&s, NULL, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no training items"), "%s", err.msg);
    s = good;
    s.patience = 0;
    sb_error_clear(&err);
    cr_assert_eq(sb_fit(&s, NULL, &err), SB_ERR_INVALID);
    s = good;
    s.step = NULL;
    sb_error_clear(&err);
    cr_assert_eq(sb_fit(&s, NULL, &err), SB_ERR_INTERNAL);
    cr_assert_eq(m.steps, 0);
}
