/* core/lib/nn/fit.c — the training loop every head shares (nn_train.h, sb_fit): shuffled
 * mini-batches from one seeded stream, a dev evaluation per epoch, early stopping, and the
 * best epoch's parameters restored. The head supplies the step and the evaluation. */
#include <serbench/nn_train.h>
#include <serbench/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

long sb_fit_steps(const sb_fit_spec *spec)
{
    if (!spec || spec->batch_size == 0 || spec->epochs < 1)
        return 0;
    size_t per_epoch = (spec->n_items + spec->batch_size - 1) / spec->batch_size;
    return (long)per_epoch * (long)spec->epochs;
}

static sb_status check_spec(const sb_fit_spec *s, const char *who, sb_error *err)
{
    if (s->epochs < 1)
        return sb_error_set(err, SB_ERR_INVALID, who, "epochs is %d; need at least 1", s->epochs);
    if (s->patience < 1)
        return sb_error_set(err, SB_ERR_INVALID, who, "patience is %d; need at least 1",
                            s->patience);
    if (s->batch_size < 1)
        return sb_error_set(err, SB_ERR_INVALID, who, "batch size 0; need at least 1 item");
    if (s->n_items < 1)
        return sb_error_set(err, SB_ERR_INVALID, who, "no training items; nothing to fit");
    if (!s->step)
        return sb_error_set(err, SB_ERR_INTERNAL, who, "sb_fit without a step function");
    if (s->n_params > 0 && !s->params)
        return sb_error_set(err, SB_ERR_INTERNAL, who, "sb_fit: %zu parameters but no buffer",
                            s->n_params);
    return SB_OK;
}

sb_status sb_fit(const sb_fit_spec *spec, sb_fit_result *res, sb_error *err)
{
    sb_fit_result local;
    if (!res)
        res = &local;
    *res = (sb_fit_result){ 0, 0, NAN, NAN, NAN, 0 };
    const char *who = spec && spec->who ? spec->who : "sb_fit";
    if (!spec)
        return sb_error_set(err, SB_ERR_INTERNAL, who, "sb_fit without a spec");
    sb_status st = check_spec(spec, who, err);
    if (st != SB_OK)
        return st;

    const sb_host *host = spec->host;
    const int use_dev = spec->has_dev && spec->evaluate;
    const char *metric = spec->metric ? spec->metric : "score";
    size_t n = spec->n_items, bs = spec->batch_size;
    size_t *order = malloc(n * sizeof *order);
    float *best = use_dev && spec->n_params ? malloc(spec->n_params * sizeof *best) : NULL;
    if (!order || (use_dev && spec->n_params && !best)) {
        free(order);
        free(best);
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory for %zu items, %zu parameters",
                            n, spec->n_params);
    }
    for (size_t i = 0; i < n; i++)
        order[i] = spec->items ? spec->items[i] : i;

    /* One stream for the whole fit; each epoch shuffles the previous epoch's order again,
     * so epoch e's order depends only on (seed, stream) and e. */
    sb_rng rng;
    sb_rng_seed(&rng, spec->seed, spec->stream);
    double best_score = -INFINITY;
    int since_best = 0;
    long t = 0;
    for (int epoch = 1; epoch <= spec->epochs; epoch++) {
        sb_rng_shuffle(&rng, order, n);
        double loss_sum = 0.0;
        for (size_t s = 0; s < n; s += bs) {
            size_t B = n - s < bs ? n - s : bs;
            if (host && host->cancelled && host->cancelled(host)) {
                st = sb_error_set(err, SB_ERR_CANCELLED, who,
                                  "training interrupted at epoch %d (after %ld steps)", epoch, t);
                goto out;
            }
            double loss = NAN;
            t++;
            if ((st = spec->step(spec->ctx, order + s, B, t, &loss, err)) != SB_OK)
                goto out;
            res->steps = t;
            if (!isfinite(loss)) {
                st = sb_error_set(err, SB_ERR_INVALID, who,
                                  "the training loss became %g at epoch %d (step %ld); lower "
                                  "the learning rate (lr)",
                                  loss, epoch, t);
                goto out;
            }
            loss_sum += loss * (double)B;
        }
        res->train_loss = loss_sum / (double)n;
        res->epochs_run = epoch;
        if (!use_dev) {
            if (host) {
                host->log(host, SB_LOG_DEBUG, "epoch %d/%d: train loss %.5f", epoch, spec->epochs,
                          res->train_loss);
                host->progress(host, (uint64_t)epoch, (uint64_t)spec->epochs);
            }
            continue;
        }
        double score = NAN, shown = NAN;
        if ((st = spec->evaluate(spec->ctx, &score, &shown, err)) != SB_OK)
            goto out;
        int better = score > best_score; /* strictly: a tie keeps the earlier epoch */
        if (better) {
            best_score = score;
            res->best_epoch = epoch;
            res->best_score = score;
            res->best_shown = shown;
            since_best = 0;
            if (best)
                memcpy(best, spec->params, spec->n_params * sizeof *best);
        } else {
            since_best++;
        }
        if (host) {
            host->log(host, SB_LOG_DEBUG, "epoch %d/%d: train loss %.5f, dev %s %.5f%s", epoch,
                      spec->epochs, res->train_loss, metric, shown, better ? " (best)" : "");
            host->progress(host, (uint64_t)epoch, (uint64_t)spec->epochs);
        }
        if (since_best >= spec->patience)
            break;
    }
    if (res->best_epoch > 0 && best)
        memcpy(spec->params, best, spec->n_params * sizeof *best);
out:
    free(order);
    free(best);
    return st;
}
