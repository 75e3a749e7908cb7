/* plugins/heads/hierarchical/test_hierarchical.c — the hierarchical head: whole-stage
 * gradients (stage 1, stage 2 transformer and BiGRU, stage 3 co-attention) against finite
 * differences; a dialogue task that only context solves; a fusion task that only both inputs
 * solve; determinism; padding invariance; regression; checkpoints (all, stage1); bad input.
 * hierarchical.c is included so the test reaches the model's internals. */
#include "hierarchical.c"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <unistd.h>

#include "head_testutil.h"
#include "internal.h"

/* ---- the host: head_testutil's ht_host, with seed 7 at the start of every test ------------- */

static void reset_host(void)
{
    ht_reset(7);
}

TestSuite(hierarchical, .init = reset_host);

static hier_head *make_head(const char *yaml, int L, int D, int K)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(hier_options, yaml, "test-hier", &o, &err), SB_OK,
                 "options '%s': %s", yaml, err.msg);
    void *inst = NULL;
    cr_assert_eq(hier_create(&ht_host, o, L, D, K, &inst, &err), SB_OK, "create: %s", err.msg);
    sbi_opts_destroy(&o);
    return inst;
}

/* ---- generated dialogue data --------------------------------------------------------------- */

#define MAX_IN 2

typedef struct dset {
    sb_head_data d;
    sb_head_input *in; /* [MAX_IN], on the heap: d.inputs points to it */
    float *x[MAX_IN];
    int32_t *y, *turn;
    double *value;
    char **dia, **spk, **utt;
    int *code[MAX_IN]; /* the hidden variable each input encodes */
} dset;

static void dset_free(dset *s)
{
    for (int i = 0; i < MAX_IN; i++) {
        free(s->x[i]);
        free(s->code[i]);
    }
    for (size_t r = 0; r < s->d.n; r++) {
        free(s->dia[r]);
        free(s->spk[r]);
        free(s->utt[r]);
    }
    free(s->in);
    free(s->y);
    free(s->turn);
    free(s->value);
    free(s->dia);
    free(s->spk);
    free(s->utt);
    memset(s, 0, sizeof *s);
}

/* n_dia dialogues of lmin..lmax turns; each input i has L x D features whose layer 0 holds
 * code[i] (of n_codes) as a class mean (spread sep) plus unit noise. The caller sets y. */
static dset make_dialogues(int n_inputs, int n_dia, int lmin, int lmax, int L, int D, int n_codes,
                           double sep, int K, uint64_t seed, const char *prefix)
{
    dset s;
    memset(&s, 0, sizeof s);
    sb_rng r, rm;
    sb_rng_seed(&r, seed, 1);
    sb_rng_seed(&rm, 1234, 2); /* the class means are shared by every split */
    size_t n = 0;
    int *lens = malloc((size_t)n_dia * sizeof *lens);
    for (int i = 0; i < n_dia; i++) {
        lens[i] = lmin + (int)sb_rng_below(&r, (uint64_t)(lmax - lmin + 1));
        n += (size_t)lens[i];
    }
    double *mu = malloc(sizeof(double) * (size_t)MAX_IN * n_codes * D);
    for (int i = 0; i < MAX_IN * n_codes * D; i++)
        mu[i] = sep * sb_rng_normal(&rm);
    s.in = calloc(MAX_IN, sizeof *s.in);
    s.y = calloc(n, sizeof *s.y);
    s.turn = calloc(n, sizeof *s.turn);
    s.value = calloc(n, sizeof *s.value);
    s.dia = calloc(n, sizeof *s.dia);
    s.spk = calloc(n, sizeof *s.spk);
    s.utt = calloc(n, sizeof *s.utt);
    for (int i = 0; i < n_inputs; i++) {
        s.x[i] = calloc(n * (size_t)L * D, sizeof(float));
        s.code[i] = calloc(n, sizeof(int));
    }
    size_t row = 0;
    for (int di = 0; di < n_dia; di++)
        for (int t = 0; t < lens[di]; t++, row++) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s_d%d", prefix, di);
            s.dia[row] = strdup(buf);
            snprintf(buf, sizeof buf, "spk%d", t % 2);
            s.spk[row] = strdup(buf);
            snprintf(buf, sizeof buf, "%s_d%d_u%d", prefix, di, t);
            s.utt[row] = strdup(buf);
            s.turn[row] = t;
            s.value[row] = NAN;
            for (int i = 0; i < n_inputs; i++) {
                int c = (int)sb_rng_below(&r, (uint64_t)n_codes);
                s.code[i][row] = c;
                for (int l = 0; l < L; l++)
                    for (int dd = 0; dd < D; dd++) {
                        double v = sb_rng_normal(&r);
                        if (l == 0)
                            v += mu[((size_t)i * n_codes + c) * D + dd];
                        s.x[i][(row * L + l) * D + dd] = (float)v;
                    }
            }
        }
    free(lens);
    free(mu);
    static const char *names[MAX_IN] = { "audio", "text" };
    for (int i = 0; i < n_inputs; i++)
        s.in[i] =
            (sb_head_input){ names[i], i == 0 ? SB_INPUT_AUDIO : SB_INPUT_TEXT, L, D, s.x[i] };
    s.d = (sb_head_data){ .struct_size = sizeof(sb_head_data),
                          .n = n,
                          .n_layers = L,
                          .dim = D,
                          .x = s.x[0],
                          .n_classes = K,
                          .y = s.y,
                          .value = s.value,
                          .utt_id = (const char *const *)s.utt,
                          .dialogue = (const char *const *)s.dia,
                          .turn = s.turn,
                          .speaker = (const char *const *)s.spk,
                          .n_inputs = n_inputs,
                          .inputs = s.in };
    return s;
}

/* label(t) = code of turn t-1 (input 0); the first turn is labelled with its own code, the
 * only utterance-level signal, which stage 1 needs to learn embeddings that keep the code. */
static void label_previous(dset *s)
{
    for (size_t r = 0; r < s->d.n; r++)
        s->y[r] = s->turn[r] == 0 ? s->code[0][r] : s->code[0][r - 1];
}

/* label = 2 * code(input 0) + code(input 1), codes binary. */
static void label_both(dset *s)
{
    for (size_t r = 0; r < s->d.n; r++)
        s->y[r] = 2 * s->code[0][r] + s->code[1][r];
}

static float *predict(hier_head *h, const sb_head_data *d)
{
    sb_error err = { 0 };
    float *p = malloc(d->n * (size_t)h->KO * sizeof(float));
    cr_assert_eq(hier_predict(h, d, p, &err), SB_OK, "predict: %s", err.msg);
    return p;
}

/* Accuracy over the labelled rows from turn min_turn on. */
static double accuracy_from(const float *probs, const sb_head_data *d, int K, int min_turn)
{
    size_t n = 0, ok = 0;
    for (size_t r = 0; r < d->n; r++)
        if (d->y[r] >= 0 && d->turn[r] >= min_turn) {
            n++;
            ok += hd_argmax(probs + r * (size_t)K, K) == d->y[r];
        }
    return n ? (double)ok / (double)n : 0.0;
}

static double accuracy(const float *probs, const sb_head_data *d, int K)
{
    return accuracy_from(probs, d, K, 0);
}

static void train_ok(hier_head *h, const sb_head_data *tr, const sb_head_data *dv)
{
    sb_error err = { 0 };
    cr_assert_eq(hier_train(h, tr, dv, &err), SB_OK, "train: %s %s", err.where, err.msg);
}

/* ---- gradients ------------------------------------------------------------------------------ */

/* Small dims for the finite-difference checks. */
#define GL 2
#define GD 5
#define GK 3

typedef double (*loss_fn)(hier_head *h, void *ctx);

/* Every tensor of `stage` (branch b, or every branch for stage 3), or with stage = -s of
 * stages 1..s (branch b's for s = 2): up to 5 entries each, analytic gradient (already in
 * h->grads) against central differences of `f`. */
static void check_grads(hier_head *h, int stage, int b, loss_fn f, void *ctx, const char *what)
{
    const double eps = 1e-3, atol = 2e-3, rtol = 3e-2;
    double worst = 0.0;
    int checked = 0;
    sb_rng r;
    sb_rng_seed(&r, 99, 3);
    for (int i = 0; i < h->n_tensors; i++) {
        const hier_tensor *t = &h->tensors[i];
        if (stage > 0 && (t->stage != stage || (stage != 3 && t->branch != b)))
            continue;
        if (stage < 0 && (t->stage > -stage || (-stage == 2 && t->branch != b)))
            continue;
        if (t->stage == 1 && t->off == h->br[t->branch].s1_off && !h->learn_layers)
            continue;
        for (int k = 0; k < 5; k++) {
            size_t j = t->off + (size_t)sb_rng_below(&r, t->n);
            float keep = h->params[j];
            h->params[j] = keep + (float)eps;
            double lp = f(h, ctx);
            h->params[j] = keep - (float)eps;
            double lm = f(h, ctx);
            h->params[j] = keep;
            double fd = (lp - lm) / (2 * eps), an = h->grads[j];
            double e = fabs(fd - an);
            if (e > worst)
                worst = e;
            cr_expect_leq(e, atol + rtol * fabs(fd), "%s: %s[%zu]: analytic %.6g, numeric %.6g",
                          what, t->name, j - t->off, an, fd);
            checked++;
        }
    }
    cr_assert_gt(checked, 10, "%s: only %d entries checked", what, checked);
    fprintf(stderr, "%s: %d entries, max |analytic - numeric| %.3g\n", what, checked, worst);
}

typedef struct gctx {
    dset *s;
    split_state st;
    int b, B, T;
} gctx;

static double loss_s1(hier_head *h, void *vc)
{
    gctx *c = vc;
    sb_rng_seed(&h->drop_rng, 5, 5);
    hier_s1_forward(h, c->b, c->s->x[c->b], c->st.lab, (int)c->st.n_lab, 1);
    for (size_t i = 0; i < c->st.n_lab; i++)
        h->w1.yb[i] = c->s->y[c->st.lab[i]];
    return hier_head_loss(h, (int)c->st.n_lab, h->w1.logits, h->w1.probs, h->w1.dlogits,
                          h->w1.losses, h->w1.yb, h->w1.tb, 0);
}

static double loss_ctx(hier_head *h, void *vc)
{
    gctx *c = vc;
    sb_rng_seed(&h->drop_rng, 5, 5);
    if (c->b >= 0)
        hier_s2_forward(h, c->b, c->st.E[c->b], c->B, c->T, 1);
    else
        hier_s3_forward(h, c->st.Cx, c->B, c->T, 1);
    hier_batch_targets(h, c->s->y, NULL, c->B * c->T);
    work2 *w = &h->w2;
    return hier_head_loss(h, c->B * c->T, w->logits, w->probs, w->dlogits, w->losses, w->yb, w->tb,
                          0);
}

/* A built head over a small dialogue set with random parameters and inputs E / Cx. */
static hier_head *grad_setup(const char *yaml, int n_inputs, dset *s, gctx *c)
{
    hier_head *h = make_head(yaml, GL, GD, GK);
    sb_error err = { 0 };
    *s = make_dialogues(n_inputs, 3, 2, 5, GL, GD, GK, 1.0, GK, 3, "g");
    label_previous(s);
    s->y[1] = -1; /* a context row inside a dialogue */
    branch spec[HIER_MAX_BRANCHES];
    int nb;
    cr_assert_eq(spec_from_data(&s->d, spec, &nb, &err), SB_OK);
    memcpy(h->br, spec, (size_t)nb * sizeof *spec);
    h->NB = nb;
    cr_assert_eq(hier_build(h, &err), SB_OK, "%s", err.msg);
    for (int b = 0; b < nb; b++) {
        for (int st = 1; st <= 2; st++)
            hier_init_stage(h, st, b, 0);
        for (size_t i = 0; i < (size_t)GL * GD; i++) {
            h->br[b].mu[i] = 0.1f * (float)(i % 3);
            h->br[b].inv_sd[i] = 1.0f + 0.05f * (float)(i % 4);
        }
    }
    hier_init_stage(h, 3, 0, 0);
    /* layer logits and layer norms away from their initial values */
    sb_rng r;
    sb_rng_seed(&r, 11, 1);
    for (int i = 0; i < h->n_tensors; i++)
        if (h->tensors[i].init == HIER_INIT_ZERO || h->tensors[i].init == HIER_INIT_ONE)
            for (size_t j = 0; j < h->tensors[i].n; j++)
                h->params[h->tensors[i].off + j] += (float)(0.3 * sb_rng_normal(&r));
    for (int k = 0; k < GK; k++)
        h->class_w[k] = 0.5f + 0.4f * (float)k;
    cr_assert_eq(split_prepare(h, &s->d, &c->st, 1, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(hier_work1_reserve(h, 64, &err), SB_OK);
    cr_assert_eq(reserve_plans(h, &c->st.p_all, NULL, &err), SB_OK);
    cr_assert_eq(c->st.p_all.n_batch, 1, "one batch of 3 dialogues");
    c->s = s;
    c->T = hier_batch_layout(h, &c->st.p_all, 0, &c->B);
    cr_assert_gt(c->B * c->T, (int)s->d.n, "the batch has padding");
    sb_rng_seed(&r, 12, 1);
    for (int b = 0; b < nb; b++)
        for (size_t i = 0; i < s->d.n * (size_t)h->C; i++) {
            c->st.E[b][i] = (float)sb_rng_normal(&r);
            c->st.Cx[b][i] = (float)sb_rng_normal(&r);
        }
    return h;
}

/* Stage 2 (of branch b) or stage 3 (b = -1) gradients of the head `yaml` builds over
 * n_inputs inputs, against finite differences. */
static void ctx_gradient(const char *yaml, int n_inputs, int b, int stage, const char *what)
{
    dset s;
    gctx c = { .b = b };
    hier_head *h = grad_setup(yaml, n_inputs, &s, &c);
    work2 *w = &h->w2;
    memset(h->grads, 0, h->n_params * sizeof(float));
    loss_ctx(h, &c);
    hier_head_loss(h, c.B * c.T, w->logits, w->probs, w->dlogits, w->losses, w->yb, w->tb, 1);
    if (stage == 2)
        hier_s2_backward(h, c.b, c.B, c.T, NULL, 0);
    else
        hier_s3_backward(h, c.B, c.T, 0);
    check_grads(h, stage, c.b, loss_ctx, &c, what);
    split_free(&c.st);
    hier_destroy(h);
    dset_free(&s);
}

Test(hierarchical, stage1_gradient)
{
    dset s;
    gctx c = { .b = 0 };
    hier_head *h = grad_setup("d_model: 8\nheads: 2\nffn: 12\nstages: 2", 1, &s, &c);
    memset(h->grads, 0, h->n_params * sizeof(float));
    loss_s1(h, &c);
    hier_head_loss(h, (int)c.st.n_lab, h->w1.logits, h->w1.probs, h->w1.dlogits, h->w1.losses,
                   h->w1.yb, h->w1.tb, 1);
    hier_s1_backward(h, 0, (int)c.st.n_lab);
    check_grads(h, 1, 0, loss_s1, &c, "stage 1");
    split_free(&c.st);
    hier_destroy(h);
    dset_free(&s);
}

Test(hierarchical, stage2_transformer_gradient)
{
    ctx_gradient("d_model: 8\nheads: 2\nffn: 12\nlayers: 2\nspeakers: true\nmax_speakers: 2\n"
                 "stages: 2",
                 1, 0, 2, "stage 2 transformer");
}

Test(hierarchical, stage2_causal_transformer_gradient)
{
    ctx_gradient("d_model: 8\nheads: 2\nffn: 12\nlayers: 1\ncausal: true\nstages: 2", 1, 0, 2,
                 "stage 2 causal transformer");
}

Test(hierarchical, stage2_bigru_gradient)
{
    ctx_gradient("d_model: 8\nheads: 2\ncontext: bigru\nspeakers: true\nstages: 2", 1, 0, 2,
                 "stage 2 bigru");
}

Test(hierarchical, stage3_coattention_gradient)
{
    ctx_gradient("d_model: 8\nheads: 2\nfusion: coattention", 2, -1, 3, "stage 3 coattention");
}

Test(hierarchical, regression_gradient)
{
    dset s;
    gctx c = { .b = 0 };
    /* a classifier's setup turned into a regressor: one output, MSE on `value` */
    hier_head *h = grad_setup("d_model: 8\nheads: 2\nffn: 12\nstages: 2\nloss: mse", 1, &s, &c);
    h->K = 0;
    h->KO = 1;
    hier_work2_free(&h->w2);
    sb_error err = { 0 };
    cr_assert_eq(hier_build(h, &err), SB_OK);
    for (int st = 1; st <= 2; st++)
        hier_init_stage(h, st, 0, 0);
    cr_assert_eq(reserve_plans(h, &c.st.p_all, NULL, &err), SB_OK);
    c.T = hier_batch_layout(h, &c.st.p_all, 0, &c.B);
    for (size_t r = 0; r < s.d.n; r++)
        s.value[r] = s.y[r] >= 0 ? 0.5 * s.y[r] - 0.3 : NAN;
    work2 *w = &h->w2;
    memset(h->grads, 0, h->n_params * sizeof(float));
    sb_rng_seed(&h->drop_rng, 5, 5);
    hier_s2_forward(h, 0, c.st.E[0], c.B, c.T, 1);
    hier_batch_targets(h, NULL, s.value, c.B * c.T);
    double l0 =
        hier_head_loss(h, c.B * c.T, w->logits, w->probs, w->dlogits, w->losses, w->yb, w->tb, 1);
    cr_assert(isfinite(l0) && l0 > 0.0, "mse %g", l0);
    hier_s2_backward(h, 0, c.B, c.T, NULL, 0);
    /* finite differences of the MSE through the whole stage */
    double worst = 0.0;
    for (int i = 0; i < h->n_tensors; i += 3) {
        const hier_tensor *t = &h->tensors[i];
        if (t->stage != 2)
            continue;
        size_t j = t->off + t->n / 2;
        float keep = h->params[j];
        double l[2];
        for (int k = 0; k < 2; k++) {
            h->params[j] = keep + (k ? -1e-3f : 1e-3f);
            sb_rng_seed(&h->drop_rng, 5, 5);
            hier_s2_forward(h, 0, c.st.E[0], c.B, c.T, 1);
            l[k] = sb_nn_mse_forward(w->logits, w->tb, (size_t)(c.B * c.T));
        }
        h->params[j] = keep;
        double fd = (l[0] - l[1]) / 2e-3, e = fabs(fd - h->grads[j]);
        worst = e > worst ? e : worst;
        cr_expect_leq(e, 2e-3 + 3e-2 * fabs(fd), "%s: analytic %g numeric %g", t->name,
                      (double)h->grads[j], fd);
    }
    fprintf(stderr, "stage 2 mse: max |analytic - numeric| %.3g\n", worst);
    split_free(&c.st);
    hier_destroy(h);
    dset_free(&s);
}

/* freeze: false — the loss of a batch through every stage below the one trained, with the
 * stage-1 embeddings and stage-2 outputs recomputed from the features (ctx_loss). */
typedef struct tctx {
    dset *s;
    split_state st;
    int stage, b;
} tctx;

static double loss_tune(hier_head *h, void *vc)
{
    tctx *c = vc;
    sb_rng_seed(&h->drop_rng, 5, 5);
    return ctx_loss(h, c->stage, c->b, &c->s->d, &c->st.p_lab, 0, c->st.E, c->st.Cx, 0);
}

static void tune_gradient(const char *yaml, int n_inputs, int stage, const char *what)
{
    dset s;
    gctx g = { .b = 0 };
    hier_head *h = grad_setup(yaml, n_inputs, &s, &g);
    cr_assert_eq(h->freeze, 0);
    tctx c = { .s = &s, .st = g.st, .stage = stage, .b = n_inputs > 1 ? 1 : 0 };
    memset(h->grads, 0, h->n_params * sizeof(float));
    sb_rng_seed(&h->drop_rng, 5, 5);
    ctx_loss(h, stage, c.b, &s.d, &c.st.p_lab, 0, c.st.E, c.st.Cx, 1);
    check_grads(h, -stage, c.b, loss_tune, &c, what);
    split_free(&g.st);
    hier_destroy(h);
    dset_free(&s);
}

Test(hierarchical, fine_tuning_stage2_gradient_reaches_stage1)
{
    tune_gradient("d_model: 8\nheads: 2\nffn: 12\nspeakers: true\nfreeze: false\nstages: 2", 1, 2,
                  "stage 2 + stage 1 (freeze: false)");
}

Test(hierarchical, fine_tuning_whole_model_gradient)
{
    tune_gradient("d_model: 8\nheads: 2\nffn: 12\nfreeze: false\nfusion: coattention", 2, 3,
                  "stages 3 + 2 + 1, coattention (freeze: false)");
    tune_gradient("d_model: 8\nheads: 2\ncontext: bigru\nfreeze: false\nfusion: concat", 2, 3,
                  "stages 3 + 2 + 1, bigru, concat (freeze: false)");
}

/* ---- learning ------------------------------------------------------------------------------- */

#define NET "d_model: 32\nheads: 2\nffn: 64\nlr: 0.003\ndropout: 0.1\n"
#define SMALL NET "epochs: 150\npatience: 20\n"

Test(hierarchical, context_solves_the_previous_turn_task)
{
    int L = 2, D = 12, K = 4;
    dset tr = make_dialogues(1, 500, 5, 10, L, D, K, 3.0, K, 1, "tr");
    dset dv = make_dialogues(1, 40, 5, 10, L, D, K, 3.0, K, 2, "dv");
    dset te = make_dialogues(1, 60, 5, 10, L, D, K, 3.0, K, 3, "te");
    label_previous(&tr);
    label_previous(&dv);
    label_previous(&te);

    hier_head *h2 = make_head(SMALL "stages: 2", L, D, K);
    train_ok(h2, &tr.d, &dv.d);
    float *p2 = predict(h2, &te.d);
    double acc2 = accuracy_from(p2, &te.d, K, 1);

    hier_head *h1 = make_head(SMALL "stages: 1", L, D, K);
    train_ok(h1, &tr.d, &dv.d);
    float *p1 = predict(h1, &te.d);
    double acc1 = accuracy_from(p1, &te.d, K, 1);
    fprintf(stderr, "previous-turn task: stage 2 (transformer) %.3f, stage 1 (utterance) %.3f\n",
            acc2, acc1);
    cr_expect_geq(acc2, 0.9, "stage 2 accuracy %.3f", acc2);
    cr_expect_leq(acc1, 0.4, "the utterance-level model %.3f should be near chance 0.25", acc1);
    cr_expect_geq(acc2 - acc1, 0.5, "margin %.3f", acc2 - acc1);

    hier_head *hg = make_head(SMALL "stages: 2\ncontext: bigru", L, D, K);
    train_ok(hg, &tr.d, &dv.d);
    float *pg = predict(hg, &te.d);
    double accg = accuracy_from(pg, &te.d, K, 1);
    fprintf(stderr, "previous-turn task: stage 2 (bigru) %.3f\n", accg);
    cr_expect_geq(accg, 0.9, "bigru accuracy %.3f", accg);
    free(p1);
    free(p2);
    free(pg);
    hier_destroy(h1);
    hier_destroy(h2);
    hier_destroy(hg);
    dset_free(&tr);
    dset_free(&dv);
    dset_free(&te);
}

/* Without the turn-0 hint, stage 1 is trained on labels its own utterance says nothing
 * about, and its frozen embeddings lose part of the code; fine-tuning stage 1 with stage 2
 * (freeze: false) learns embeddings that keep it. */
Test(hierarchical, fine_tuning_recovers_what_a_frozen_stage1_loses)
{
    int L = 2, D = 12, K = 4;
    dset tr = make_dialogues(1, 300, 5, 10, L, D, K, 3.0, K, 1, "tr");
    dset dv = make_dialogues(1, 40, 5, 10, L, D, K, 3.0, K, 2, "dv");
    dset te = make_dialogues(1, 60, 5, 10, L, D, K, 3.0, K, 3, "te");
    dset *ss[3] = { &tr, &dv, &te };
    for (int k = 0; k < 3; k++) {
        label_previous(ss[k]);
        for (size_t r = 0; r < ss[k]->d.n; r++)
            if (ss[k]->turn[r] == 0)
                ss[k]->y[r] = -1;
    }
    hier_head *fz = make_head(SMALL "stages: 2", L, D, K);
    train_ok(fz, &tr.d, &dv.d);
    float *pf = predict(fz, &te.d);
    double acc_frozen = accuracy(pf, &te.d, K);
    hier_head *ft = make_head(SMALL "stages: 2\nfreeze: false", L, D, K);
    train_ok(ft, &tr.d, &dv.d);
    float *pt = predict(ft, &te.d);
    double acc_tuned = accuracy(pt, &te.d, K);
    fprintf(stderr, "previous-turn task without the hint: frozen stage 1 %.3f, fine-tuned %.3f\n",
            acc_frozen, acc_tuned);
    cr_expect_geq(acc_tuned, 0.9, "fine-tuned %.3f", acc_tuned);
    cr_expect_gt(acc_tuned, acc_frozen, "fine-tuned %.3f, frozen %.3f", acc_tuned, acc_frozen);
    free(pf);
    free(pt);
    hier_destroy(fz);
    hier_destroy(ft);
    dset_free(&tr);
    dset_free(&dv);
    dset_free(&te);
}

/* Stage-2 accuracy of branch b of a trained fusion head on d. */
static double branch_stage2_accuracy(hier_head *h, int b, const sb_head_data *d)
{
    sb_error err = { 0 };
    split_state ps;
    cr_assert_eq(split_prepare(h, d, &ps, 0, &err), SB_OK);
    cr_assert_eq(reserve_plans(h, &ps.p_all, NULL, &err), SB_OK);
    for (int i = 0; i < h->NB; i++)
        hier_s1_embed(h, i, input_of(d, i).x, ps.all, d->n, ps.E[i]);
    float *out = malloc(d->n * (size_t)h->KO * sizeof(float));
    stage_outputs(h, 2, b, d, ps.all, &ps.p_all, ps.E, NULL, out);
    double acc = accuracy(out, d, h->K);
    free(out);
    split_free(&ps);
    return acc;
}

static void fusion_task(const char *fusion, const char *extra)
{
    int L = 2, D = 8, K = 4;
    dset tr = make_dialogues(2, 120, 3, 8, L, D, 2, 1.5, K, 4, "tr");
    dset dv = make_dialogues(2, 30, 3, 8, L, D, 2, 1.5, K, 5, "dv");
    dset te = make_dialogues(2, 50, 3, 8, L, D, 2, 1.5, K, 6, "te");
    label_both(&tr);
    label_both(&dv);
    label_both(&te);
    char yaml[512];
    snprintf(yaml, sizeof yaml, SMALL "fusion: %s\n%s", fusion, extra);
    hier_head *h = make_head(yaml, L, D, K);
    train_ok(h, &tr.d, &dv.d);
    cr_assert_eq(h->trained_stage, 3);
    float *p = predict(h, &te.d);
    double acc3 = accuracy(p, &te.d, K);
    double acc_a = branch_stage2_accuracy(h, 0, &te.d);
    double acc_t = branch_stage2_accuracy(h, 1, &te.d);
    fprintf(stderr, "fusion (%s%s%s): stage 3 %.3f, audio stage 2 %.3f, text stage 2 %.3f\n",
            fusion, *extra ? ", " : "", extra, acc3, acc_a, acc_t);
    cr_expect_geq(acc3, 0.9, "stage 3 %.3f", acc3);
    cr_expect_leq(acc_a, 0.6, "audio alone %.3f", acc_a);
    cr_expect_leq(acc_t, 0.6, "text alone %.3f", acc_t);
    cr_expect_geq(acc3 - (acc_a > acc_t ? acc_a : acc_t), 0.3);
    free(p);
    hier_destroy(h);
    dset_free(&tr);
    dset_free(&dv);
    dset_free(&te);
}

Test(hierarchical, coattention_fusion_needs_both_inputs)
{
    fusion_task("coattention", "");
}

Test(hierarchical, concat_fusion_needs_both_inputs)
{
    fusion_task("concat", "");
}

Test(hierarchical, fine_tuned_fusion_needs_both_inputs)
{
    fusion_task("coattention", "freeze: false");
}

/* With a model per input (stages: 1) the prediction is the mean of the branches' stage-1
 * probabilities; stages: 2 over two inputs averages the two context models, so rows still
 * sum to 1. */
Test(hierarchical, several_branches_predict_their_mean)
{
    int L = 2, D = 6, K = 4;
    dset tr = make_dialogues(2, 30, 2, 5, L, D, 2, 2.0, K, 1, "tr");
    label_both(&tr);
    sb_error err = { 0 };
    for (int stages = 1; stages <= 2; stages++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, "d_model: 8\nheads: 2\nffn: 12\nepochs: 2\nstages: %d", stages);
        hier_head *h = make_head(yaml, L, D, K);
        train_ok(h, &tr.d, NULL);
        cr_assert_eq(h->trained_stage, stages);
        float *p = predict(h, &tr.d);
        for (size_t r = 0; r < tr.d.n; r++) {
            double sum = 0.0;
            for (int k = 0; k < K; k++)
                sum += p[r * (size_t)K + (size_t)k];
            cr_assert(fabs(sum - 1.0) < 1e-5, "stages %d: row %zu sums to %.7f", stages, r, sum);
        }
        if (stages == 1) {
            split_state ps;
            cr_assert_eq(split_prepare(h, &tr.d, &ps, 0, &err), SB_OK, "%s", err.msg);
            cr_assert_eq(hier_work1_reserve(h, 64, &err), SB_OK);
            size_t nk = tr.d.n * (size_t)K;
            float *o0 = malloc(nk * sizeof(float)), *o1 = malloc(nk * sizeof(float));
            stage_outputs(h, 1, 0, &tr.d, ps.all, NULL, NULL, NULL, o0);
            stage_outputs(h, 1, 1, &tr.d, ps.all, NULL, NULL, NULL, o1);
            for (size_t i = 0; i < nk; i++)
                cr_assert_eq(p[i], (0.0f + o0[i] / 2.0f) + o1[i] / 2.0f, "entry %zu", i);
            free(o0);
            free(o1);
            split_free(&ps);
        }
        free(p);
        hier_destroy(h);
    }
    dset_free(&tr);
}

Test(hierarchical, same_seed_gives_identical_predictions)
{
    int L = 2, D = 8, K = 4;
    dset tr = make_dialogues(2, 40, 3, 7, L, D, 2, 1.5, K, 4, "tr");
    dset dv = make_dialogues(2, 10, 3, 7, L, D, 2, 1.5, K, 5, "dv");
    label_both(&tr);
    label_both(&dv);
    const char *yaml = NET "epochs: 5\nspeakers: true";
    hier_head *a = make_head(yaml, L, D, K), *b = make_head(yaml, L, D, K);
    train_ok(a, &tr.d, &dv.d);
    train_ok(b, &tr.d, &dv.d);
    float *pa = predict(a, &dv.d), *pb = predict(b, &dv.d);
    cr_assert_eq(memcmp(pa, pb, dv.d.n * (size_t)K * sizeof(float)), 0,
                 "two runs with one seed differ");
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0);
    /* another seed gives other parameters (the seed reaches the model) */
    ht_host.seed = 8;
    hier_head *c = make_head(yaml, L, D, K);
    train_ok(c, &tr.d, &dv.d);
    ht_host.seed = 7;
    cr_assert_neq(memcmp(a->params, c->params, a->n_params * sizeof(float)), 0);
    free(pa);
    free(pb);
    hier_destroy(a);
    hier_destroy(b);
    hier_destroy(c);
    dset_free(&tr);
    dset_free(&dv);
}

/* The rows of dialogue `name` in d, in order. */
static size_t rows_of(const dset *s, const char *name, size_t *out)
{
    size_t n = 0;
    for (size_t r = 0; r < s->d.n; r++)
        if (strcmp(s->dia[r], name) == 0)
            out[n++] = r;
    return n;
}

static void padding_invariance(const char *yaml)
{
    int L = 2, D = 8, K = 4;
    dset tr = make_dialogues(2, 30, 3, 9, L, D, 2, 1.5, K, 4, "tr");
    label_both(&tr);
    hier_head *h = make_head(yaml, L, D, K);
    train_ok(h, &tr.d, NULL);
    /* tr_d0 predicted with the whole train split (batched with others, padded to their
     * length), and alone */
    size_t rows[64];
    size_t n0 = rows_of(&tr, "tr_d0", rows);
    float *all = predict(h, &tr.d);
    dset one = tr;
    sb_head_input in1[MAX_IN];
    float *x1[MAX_IN];
    for (int i = 0; i < 2; i++) {
        x1[i] = malloc(n0 * (size_t)L * D * sizeof(float));
        for (size_t k = 0; k < n0; k++)
            memcpy(x1[i] + k * (size_t)L * D, tr.x[i] + rows[k] * (size_t)L * D,
                   (size_t)L * D * sizeof(float));
        in1[i] = tr.in[i];
        in1[i].x = x1[i];
    }
    one.d.n = n0;
    one.d.x = x1[0];
    one.d.inputs = in1;
    one.d.y += rows[0];
    one.d.utt_id += rows[0];
    one.d.dialogue += rows[0];
    one.d.turn += rows[0];
    one.d.speaker += rows[0];
    one.d.value += rows[0];
    float *alone = predict(h, &one.d);
    double worst = 0.0;
    for (size_t k = 0; k < n0; k++)
        for (int j = 0; j < K; j++) {
            double e = fabs(alone[k * K + j] - all[rows[k] * K + j]);
            worst = e > worst ? e : worst;
        }
    fprintf(stderr, "padding invariance: max difference %.3g over %zu turns\n", worst, n0);
    cr_expect_leq(worst, 1e-5, "a dialogue's predictions depend on its batch (%g)", worst);
    for (int i = 0; i < 2; i++)
        free(x1[i]);
    free(all);
    free(alone);
    hier_destroy(h);
    dset_free(&tr);
}

Test(hierarchical, predictions_do_not_depend_on_the_batch)
{
    padding_invariance(NET "epochs: 3\nspeakers: true");
    padding_invariance(NET "epochs: 3\ncontext: bigru\nfusion: concat");
}

Test(hierarchical, regression_learns)
{
    int L = 2, D = 8;
    dset tr = make_dialogues(1, 300, 3, 8, L, D, 4, 3.0, 0, 4, "tr");
    dset dv = make_dialogues(1, 40, 3, 8, L, D, 4, 3.0, 0, 5, "dv");
    dset te = make_dialogues(1, 60, 3, 8, L, D, 4, 3.0, 0, 6, "te");
    dset *ss[3] = { &tr, &dv, &te };
    for (int k = 0; k < 3; k++) {
        ss[k]->d.y = NULL;
        for (size_t r = 0; r < ss[k]->d.n; r++) { /* value: this turn's and the previous
                                                      turn's codes, centred */
            const int *c = ss[k]->code[0];
            ss[k]->value[r] = c[r] - 1.5 + (ss[k]->turn[r] > 0 ? c[r - 1] - 1.5 : 0.0);
        }
    }
    hier_head *h = make_head(SMALL "loss: mse", L, D, 0);
    train_ok(h, &tr.d, &dv.d);
    float *p = predict(h, &te.d);
    double se = 0.0, var = 0.0;
    size_t n = 0;
    for (size_t r = 0; r < te.d.n; r++)
        if (isfinite(te.value[r])) {
            se += (p[r] - te.value[r]) * (p[r] - te.value[r]);
            var += te.value[r] * te.value[r]; /* the codes are centred: mean ~ 0 */
            n++;
        }
    fprintf(stderr, "regression: test mse %.4f, target variance %.4f\n", se / n, var / n);
    cr_expect_lt(se / n, 0.2 * var / n, "mse %.4f vs variance %.4f", se / n, var / n);
    free(p);
    hier_destroy(h);
    dset_free(&tr);
    dset_free(&dv);
    dset_free(&te);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

static char *save_to_file(hier_head *h, const char *tag)
{
    sb_error err = { 0 };
    sb_st_writer *w = sb_st_writer_create();
    cr_assert_eq(hier_save(h, w, &err), SB_OK, "save: %s", err.msg);
    char *path = malloc(256);
    snprintf(path, 256, "/tmp/test_hier_%d_%s.safetensors", (int)getpid(), tag);
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    return path;
}

static sb_status load_file(hier_head *h, const char *path, const char *parts, int new_output,
                           sb_error *err)
{
    sb_st_file *f = NULL;
    cr_assert_eq(sb_st_open(path, &f, err), SB_OK, "%s", err->msg);
    sb_head_init init = { sizeof init, parts, new_output, h->K };
    sb_status st = hier_load(h, f, &init, err);
    sb_st_close(&f);
    return st;
}

Test(hierarchical, save_load_predicts_the_same)
{
    int L = 2, D = 8, K = 4;
    dset tr = make_dialogues(2, 40, 3, 7, L, D, 2, 1.5, K, 4, "tr");
    dset te = make_dialogues(2, 10, 3, 7, L, D, 2, 1.5, K, 6, "te");
    label_both(&tr);
    label_both(&te);
    const char *yaml = NET "epochs: 4\nspeakers: true";
    hier_head *a = make_head(yaml, L, D, K);
    train_ok(a, &tr.d, NULL);
    float *pa = predict(a, &te.d);
    char *path = save_to_file(a, "all");
    hier_head *b = make_head(yaml, L, D, K);
    sb_error err = { 0 };
    cr_assert_eq(load_file(b, path, "all", 0, &err), SB_OK, "load: %s", err.msg);
    float *pb = predict(b, &te.d);
    cr_assert_eq(memcmp(pa, pb, te.d.n * (size_t)K * sizeof(float)), 0,
                 "the loaded head predicts differently");
    /* a config that does not fit the checkpoint: the field is named */
    hier_head *c = make_head(NET "layers: 3", L, D, K);
    sb_error e2 = { 0 };
    cr_assert_eq(load_file(c, path, "all", 0, &e2), SB_ERR_CONFIG);
    cr_assert(strstr(e2.msg, "layers"), "%s", e2.msg);
    hier_head *c2 = make_head("d_model: 16\nheads: 2", L, D, K);
    sb_error e3 = { 0 };
    cr_assert_eq(load_file(c2, path, "all", 0, &e3), SB_ERR_CONFIG);
    cr_assert(strstr(e3.msg, "d_model"), "%s", e3.msg);
    /* a label space of another size without new_output */
    hier_head *c3 = make_head(yaml, L, D, 5);
    sb_error e4 = { 0 };
    cr_assert_eq(load_file(c3, path, "all", 0, &e4), SB_ERR_CONFIG);
    cr_assert(strstr(e4.msg, "n_classes"), "%s", e4.msg);
    unlink(path);
    free(path);
    free(pa);
    free(pb);
    hier_destroy(a);
    hier_destroy(b);
    hier_destroy(c);
    hier_destroy(c2);
    hier_destroy(c3);
    dset_free(&tr);
    dset_free(&te);
}

/* Predictions of a split larger than HIER_EVAL_ROWS after save -> load are bit-identical:
 * stage 1's GEMMs outside training take a fixed number of rows, not as many as the buffers
 * training reserved (here 64 dialogues x 12 turns > 256) hold. */
Test(hierarchical, save_load_predicts_the_same_over_many_rows)
{
    int L = 3, D = 24, K = 2;
    dset tr = make_dialogues(1, 120, 5, 12, L, D, 2, 2.0, K, 41, "tr");
    for (size_t r = 0; r < tr.d.n; r++)
        tr.y[r] = tr.code[0][r];
    const char *yaml = "d_model: 16\nheads: 2\nffn: 16\nepochs: 2\nbatch_dialogues: 64\n"
                       "max_batch_utts: 1024";
    hier_head *a = make_head(yaml, L, D, K);
    train_ok(a, &tr.d, NULL);
    cr_assert_gt(tr.d.n, 2 * HIER_EVAL_ROWS);
    cr_assert_gt(a->w1.cap, HIER_EVAL_ROWS, "training reserved w1 for %d rows", a->w1.cap);
    float *pa = predict(a, &tr.d);
    char *path = save_to_file(a, "many");
    hier_head *b = make_head(yaml, L, D, K);
    sb_error err = { 0 };
    cr_assert_eq(load_file(b, path, "all", 0, &err), SB_OK, "load: %s", err.msg);
    float *pb = predict(b, &tr.d);
    size_t nk = tr.d.n * (size_t)K, differ = 0;
    double worst = 0.0;
    for (size_t i = 0; i < nk; i++)
        if (pa[i] != pb[i]) {
            differ++;
            worst = fmax(worst, fabs((double)pa[i] - pb[i]));
        }
    cr_assert_eq(differ, 0, "%zu of %zu probabilities differ after save -> load (max %.3g)", differ,
                 nk, worst);
    unlink(path);
    free(path);
    free(pa);
    free(pb);
    hier_destroy(a);
    hier_destroy(b);
    dset_free(&tr);
}

/* new_output re-initialises every stage's classifier with the values a fresh model draws
 * (the other tensors' draws are made and dropped) and leaves the other tensors as they are. */
Test(hierarchical, new_output_makes_a_fresh_models_draws)
{
    const char *yamls[] = { "d_model: 8\nheads: 2\nffn: 8\nspeakers: true",
                            "d_model: 8\nheads: 2\ncontext: bigru" };
    for (int y = 0; y < 2; y++) {
        dset s = make_dialogues(2, 3, 2, 4, GL, GD, 2, 1.0, GK, 3, "n");
        hier_head *h = make_head(yamls[y], GL, GD, GK);
        sb_error err = { 0 };
        branch spec[HIER_MAX_BRANCHES];
        int nb;
        cr_assert_eq(spec_from_data(&s.d, spec, &nb, &err), SB_OK);
        memcpy(h->br, spec, (size_t)nb * sizeof *spec);
        h->NB = nb;
        cr_assert_eq(hier_build(h, &err), SB_OK, "%s", err.msg);
        size_t bytes = h->n_params * sizeof(float);
        float *fresh = malloc(bytes), *moved = malloc(bytes);
        for (int st = 1; st <= 3; st++)
            for (int b = 0; b < (st == 3 ? 1 : nb); b++)
                hier_init_stage(h, st, b, 0);
        memcpy(fresh, h->params, bytes);
        for (size_t i = 0; i < h->n_params; i++) /* as if trained */
            h->params[i] += 0.25f;
        memcpy(moved, h->params, bytes);
        for (int st = 1; st <= 3; st++)
            for (int b = 0; b < (st == 3 ? 1 : nb); b++)
                hier_init_stage(h, st, b, 1);
        int outputs = 0;
        for (int i = 0; i < h->n_tensors; i++) {
            const hier_tensor *t = &h->tensors[i];
            const float *want = t->output ? fresh : moved;
            outputs += t->output;
            cr_assert_eq(memcmp(h->params + t->off, want + t->off, t->n * sizeof(float)), 0,
                         "%s: %s is not %s", yamls[y], t->name,
                         t->output ? "the fresh model's" : "left as it was");
        }
        cr_assert_eq(outputs, 2 * (2 * nb + 1), "%d output tensors", outputs);
        free(fresh);
        free(moved);
        hier_destroy(h);
        dset_free(&s);
    }
}

/* A copy of the checkpoint at path without tensor `drop` (its head_config kept). */
static char *copy_without(const char *path, const char *drop, const char *tag)
{
    sb_error err = { 0 };
    sb_st_file *f = NULL;
    cr_assert_eq(sb_st_open(path, &f, &err), SB_OK, "%s", err.msg);
    sb_st_writer *w = sb_st_writer_create();
    for (size_t i = 0; i < sb_st_count(f); i++) {
        const sb_st_tensor *t = sb_st_at(f, i);
        if (strcmp(t->name, drop) == 0)
            continue;
        cr_assert_eq(sb_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err),
                     SB_OK, "%s", err.msg);
    }
    cr_assert_eq(sb_st_writer_meta(w, "head_config", sb_st_metadata(f, "head_config"), &err),
                 SB_OK);
    char *out = malloc(256);
    snprintf(out, 256, "/tmp/test_hier_%d_%s.safetensors", (int)getpid(), tag);
    cr_assert_eq(sb_st_writer_commit(w, out, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    sb_st_close(&f);
    return out;
}

/* A second train on the same instance rebuilds the model for its inputs, and the work
 * buffers with it: one input, then two, predicts exactly as a fresh head trained on the two
 * (the stage-3 buffers were those of one branch: a NULL dereference). */
Test(hierarchical, train_again_with_more_inputs)
{
    int L = 2, D = 6, K = 4;
    dset one = make_dialogues(1, 12, 2, 5, L, D, 2, 1.5, K, 31, "o");
    dset two = make_dialogues(2, 12, 2, 5, L, D, 2, 1.5, K, 32, "t");
    label_previous(&one);
    label_both(&two);
    const char *yaml = "d_model: 8\nheads: 2\nffn: 8\nepochs: 2";
    hier_head *h = make_head(yaml, L, D, K);
    train_ok(h, &one.d, &one.d);
    train_ok(h, &two.d, &two.d);
    cr_assert_eq(h->trained_stage, 3);
    float *p = predict(h, &two.d);
    hier_head *f = make_head(yaml, L, D, K);
    train_ok(f, &two.d, &two.d);
    float *pf = predict(f, &two.d);
    cr_assert_eq(memcmp(p, pf, two.d.n * (size_t)K * sizeof(float)), 0,
                 "trained again, the head predicts unlike a fresh one");
    free(p);
    free(pf);
    hier_destroy(h);
    hier_destroy(f);
    dset_free(&one);
    dset_free(&two);
}

/* load (parts: all) into a trained head replaces its model, work buffers included (they
 * were the trained model's: a heap overflow with a wider input); a load that fails changes
 * nothing; a checkpoint whose first input is not the shape the head was created for is
 * refused. */
Test(hierarchical, load_replaces_the_model_or_changes_nothing)
{
    int L = 2, D = 6, K = 4;
    dset a = make_dialogues(2, 30, 2, 5, L, D, 2, 1.5, K, 41, "m");
    dset wide = make_dialogues(2, 30, 2, 5, L, 4 * D, 2, 1.5, K, 41, "m"); /* same dialogues */
    cr_assert_eq(a.d.n, wide.d.n);
    a.in[1] = wide.in[1]; /* the text input 4 times wider than the audio one */
    cr_assert_gt(a.d.n, HIER_EVAL_ROWS / 4, "the rows of the wider input overflow w1 as it was");
    label_both(&a);
    const char *yaml = "d_model: 8\nheads: 2\nffn: 8\nepochs: 2";
    hier_head *m = make_head(yaml, L, D, K);
    train_ok(m, &a.d, NULL);
    float *pm = predict(m, &a.d);
    char *path = save_to_file(m, "wide");
    char *bad = copy_without(path, "s3.out.b", "wide_bad");

    dset s = make_dialogues(1, 12, 2, 5, L, D, 2, 1.5, K, 42, "s");
    label_previous(&s);
    hier_head *h = make_head(yaml, L, D, K);
    train_ok(h, &s.d, NULL);
    sb_error err = { 0 };
    cr_assert_eq(load_file(h, path, "all", 0, &err), SB_OK, "load: %s", err.msg);
    float *p = predict(h, &a.d);
    cr_assert_eq(memcmp(p, pm, a.d.n * (size_t)K * sizeof(float)), 0,
                 "the loaded model predicts unlike the saved one");
    free(p);
    /* a checkpoint without a tensor: an error naming it, and the instance as it was */
    const void *ckpt = h->ckpt;
    sb_error e2 = { 0 };
    cr_assert_eq(load_file(h, bad, "all", 0, &e2), SB_ERR_CONFIG);
    cr_assert(strstr(e2.msg, "s3.out.b"), "%s", e2.msg);
    cr_assert_eq((const void *)h->ckpt, ckpt, "a failed load replaced the kept checkpoint");
    p = predict(h, &a.d);
    cr_assert_eq(memcmp(p, pm, a.d.n * (size_t)K * sizeof(float)), 0,
                 "a failed load changed the model");
    free(p);
    /* the first input of another shape than create's */
    hier_head *o = make_head(yaml, L, D + 1, K);
    sb_error e3 = { 0 };
    cr_assert_eq(load_file(o, path, "all", 0, &e3), SB_ERR_CONFIG);
    cr_assert(strstr(e3.msg, "audio") && strstr(e3.msg, "created for 2 x 7"), "%s", e3.msg);
    cr_assert_eq(o->built, 0);
    cr_assert_null(o->ckpt);
    unlink(path);
    unlink(bad);
    free(path);
    free(bad);
    free(pm);
    hier_destroy(m);
    hier_destroy(h);
    hier_destroy(o);
    dset_free(&a);
    dset_free(&wide);
    dset_free(&s);
}

Test(hierarchical, stage1_checkpoint_for_fine_tuning)
{
    int L = 2, D = 12, K = 4;
    dset tr = make_dialogues(1, 500, 5, 10, L, D, K, 3.0, K, 1, "tr");
    dset dv = make_dialogues(1, 40, 5, 10, L, D, K, 3.0, K, 2, "dv");
    dset te = make_dialogues(1, 60, 5, 10, L, D, K, 3.0, K, 3, "te");
    label_previous(&tr);
    label_previous(&dv);
    label_previous(&te);
    /* stage 1 trained on the codes themselves (the utterance task), saved */
    for (size_t r = 0; r < tr.d.n; r++)
        tr.y[r] = tr.code[0][r];
    hier_head *a = make_head(SMALL "stages: 1", L, D, K);
    train_ok(a, &tr.d, NULL);
    char *path = save_to_file(a, "s1");
    label_previous(&tr);
    /* a new head takes stage 1, keeps it frozen, and learns the context task on top */
    hier_head *b = make_head(SMALL "stages: 2", L, D, K);
    sb_error err = { 0 };
    cr_assert_eq(load_file(b, path, "stage1", 0, &err), SB_OK, "load: %s", err.msg);
    train_ok(b, &tr.d, &dv.d);
    cr_assert_eq(memcmp(a->params + a->br[0].s1_off, b->params + b->br[0].s1_off,
                        (a->br[0].s1_end - a->br[0].s1_off) * sizeof(float)),
                 0, "stage 1 changed although it was taken frozen");
    float *p = predict(b, &te.d);
    double acc = accuracy(p, &te.d, K);
    fprintf(stderr, "stage 2 over a loaded stage 1: %.3f\n", acc);
    cr_expect_geq(acc, 0.9);
    /* stage1_finetune: stage 1 is first fine-tuned on this data, exactly as a stages: 1 run
     * from the checkpoint would, then kept frozen under stage 2 */
    hier_head *f1 = make_head(SMALL "stages: 1", L, D, K);
    cr_assert_eq(load_file(f1, path, "stage1", 0, &err), SB_OK, "load: %s", err.msg);
    train_ok(f1, &tr.d, &dv.d);
    hier_head *f2 = make_head(SMALL "stages: 2\nstage1_finetune: true", L, D, K);
    cr_assert_eq(load_file(f2, path, "stage1", 0, &err), SB_OK, "load: %s", err.msg);
    train_ok(f2, &tr.d, &dv.d);
    size_t s1_bytes = (a->br[0].s1_end - a->br[0].s1_off) * sizeof(float);
    cr_assert_neq(memcmp(a->params + a->br[0].s1_off, f1->params + f1->br[0].s1_off, s1_bytes), 0,
                  "stage1_finetune did not train the taken stage 1");
    cr_assert_eq(memcmp(f1->params + f1->br[0].s1_off, f2->params + f2->br[0].s1_off, s1_bytes), 0,
                 "the fine-tuned stage 1 is not that of a stages: 1 run, or it moved in stage 2");
    float *pf = predict(f2, &te.d);
    fprintf(stderr, "stage 2 over a fine-tuned loaded stage 1: %.3f\n", accuracy(pf, &te.d, K));
    free(pf);
    hier_destroy(f1);
    hier_destroy(f2);
    /* a branch the checkpoint does not have */
    dset other = make_dialogues(1, 10, 3, 5, L, D, K, 1.5, K, 9, "o");
    label_previous(&other);
    other.in[0].name = "wavlm";
    hier_head *c = make_head(SMALL "stages: 2", L, D, K);
    cr_assert_eq(load_file(c, path, "stage1", 0, &err), SB_OK);
    sb_error e2 = { 0 };
    cr_assert_eq(hier_train(c, &other.d, NULL, &e2), SB_ERR_CONFIG);
    cr_assert(strstr(e2.msg, "wavlm"), "%s", e2.msg);
    /* the same input name with other dims */
    dset wide = make_dialogues(1, 10, 3, 5, L, D + 1, K, 1.5, K, 9, "w");
    label_previous(&wide);
    hier_head *d = make_head(SMALL "stages: 2", L, D + 1, K);
    cr_assert_eq(load_file(d, path, "stage1", 0, &err), SB_OK);
    sb_error e3 = { 0 };
    cr_assert_eq(hier_train(d, &wide.d, NULL, &e3), SB_ERR_CONFIG);
    cr_assert(strstr(e3.msg, "dim"), "%s", e3.msg);
    unlink(path);
    free(path);
    free(p);
    hier_destroy(a);
    hier_destroy(b);
    hier_destroy(c);
    hier_destroy(d);
    dset_free(&tr);
    dset_free(&dv);
    dset_free(&te);
    dset_free(&other);
    dset_free(&wide);
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(hierarchical, bad_input_is_reported)
{
    int L = 2, D = 6, K = 3;
    dset tr = make_dialogues(1, 12, 3, 5, L, D, K, 1.5, K, 1, "tr");
    label_previous(&tr);
    sb_error err = { 0 };

    /* one class */
    for (size_t r = 0; r < tr.d.n; r++)
        tr.y[r] = tr.y[r] >= 0 ? 1 : -1;
    hier_head *h = make_head(NET "epochs: 2", L, D, K);
    cr_assert_eq(hier_train(h, &tr.d, NULL, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "one class"), "%s", err.msg);
    label_previous(&tr);

    /* empty train; no labels */
    sb_head_data empty = tr.d;
    empty.n = 0;
    sb_error e2 = { 0 };
    cr_assert_eq(hier_train(h, &empty, NULL, &e2), SB_ERR_INVALID);
    cr_assert(strstr(e2.msg, "empty"), "%s", e2.msg);
    int32_t *none = malloc(tr.d.n * sizeof *none);
    for (size_t r = 0; r < tr.d.n; r++)
        none[r] = -1;
    sb_head_data unl = tr.d;
    unl.y = none;
    sb_error e3 = { 0 };
    cr_assert_eq(hier_train(h, &unl, NULL, &e3), SB_ERR_INVALID);
    cr_assert(strstr(e3.msg, "no utterance"), "%s", e3.msg);
    free(none);

    /* NaN in a context row's features: named by utterance */
    float keep = tr.x[0][0];
    tr.x[0][0] = NAN;
    sb_error e4 = { 0 };
    cr_assert_eq(hier_train(h, &tr.d, NULL, &e4), SB_ERR_INVALID);
    cr_assert(strstr(e4.where, "tr_d0_u0"), "where '%s': %s", e4.where, e4.msg);
    tr.x[0][0] = keep;

    /* labels outside the classes */
    tr.y[2] = 7;
    sb_error e5 = { 0 };
    cr_assert_eq(hier_train(h, &tr.d, NULL, &e5), SB_ERR_INVALID);
    label_previous(&tr);

    /* stages: 3 with one input */
    hier_head *h3 = make_head(SMALL "stages: 3", L, D, K);
    sb_error e6 = { 0 };
    cr_assert_eq(hier_train(h3, &tr.d, NULL, &e6), SB_ERR_CONFIG);
    cr_assert(strstr(e6.msg, "stages"), "%s", e6.msg);

    /* predict before train */
    float out[64];
    sb_error e7 = { 0 };
    cr_assert_eq(hier_predict(h3, &tr.d, out, &e7), SB_ERR_INVALID);

    /* options that cannot work */
    sb_opts *o = NULL;
    void *inst = NULL;
    sb_error e9 = { 0 };
    cr_assert_eq(sbi_opts_parse(hier_options, "d_model: 30\nheads: 4", "t", &o, &e9), SB_OK);
    cr_assert_eq(hier_create(&ht_host, o, L, D, K, &inst, &e9), SB_ERR_CONFIG);
    cr_assert(strstr(e9.msg, "heads"), "%s", e9.msg);
    sbi_opts_destroy(&o);
    sb_error e10 = { 0 };
    cr_assert_eq(sbi_opts_parse(hier_options, "context: bigru\ncausal: true", "t", &o, &e10),
                 SB_OK);
    cr_assert_eq(hier_create(&ht_host, o, L, D, K, &inst, &e10), SB_ERR_CONFIG);
    sbi_opts_destroy(&o);

    hier_destroy(h);
    hier_destroy(h3);
    dset_free(&tr);
}

Test(hierarchical, dev_set_with_missing_classes_trains_and_warns)
{
    int L = 2, D = 6, K = 4;
    dset tr = make_dialogues(1, 30, 3, 6, L, D, K, 1.5, K, 1, "tr");
    dset dv = make_dialogues(1, 10, 3, 6, L, D, K, 1.5, K, 2, "dv");
    label_previous(&tr);
    label_previous(&dv);
    for (size_t r = 0; r < dv.d.n; r++) /* dev has classes 0 and 1 only */
        if (dv.y[r] >= 2)
            dv.y[r] = dv.y[r] - 2;
    ht_cap.warn[0] = '\0';
    hier_head *h = make_head(NET "epochs: 3", L, D, K);
    train_ok(h, &tr.d, &dv.d);
    cr_assert(strstr(ht_cap.warn, "2 of the 4 classes"), "warning: '%s'", ht_cap.warn);
    hier_destroy(h);
    dset_free(&tr);
    dset_free(&dv);
}
