/* centroid.c — a complete serbench head plugin, built out of tree against the installed
 * SDK: nearest class centroid on standardised, layer-averaged pooled features.
 * Copy this folder to start your own plugin; docs/plugins.md walks through it. */
#include <serbench/serbench.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The option table: the host validates config blocks against it, fills defaults, and
 * prints `serbench plugins centroid` from it. */
static const sb_option centroid_options[] = {
    { .name = "distance",
      .type = SB_OPT_ENUM,
      .def = "euclidean",
      .choices = "euclidean|cosine",
      .help = "distance between an utterance and a class centroid" },
    { .name = "temperature",
      .type = SB_OPT_FLOAT,
      .def = "1.0",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1e-3,
      .max = 1e3,
      .help = "softmax temperature turning distances into probabilities" },
    { .name = NULL },
};

typedef struct centroid {
    const sb_host *host;
    int cosine;
    double temperature;
    int n_layers, dim, n_classes;
    float *mean, *sd; /* [dim] train statistics for standardisation */
    float *centroids; /* [n_classes, dim] */
} centroid;

static sb_status c_create(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                          int n_classes, void **inst, sb_error *err)
{
    if (n_classes < 2)
        return sb_error_set(err, SB_ERR_INVALID, "centroid", "needs at least 2 classes, got %d",
                            n_classes);
    centroid *c = calloc(1, sizeof *c);
    if (!c)
        return sb_error_set(err, SB_ERR_NOMEM, "centroid", "out of memory");
    c->host = host;
    c->cosine = strcmp(sb_opts_str(opts, "distance"), "cosine") == 0;
    c->temperature = sb_opts_float(opts, "temperature");
    c->n_layers = n_layers;
    c->dim = dim;
    c->n_classes = n_classes;
    c->mean = calloc((size_t)dim, sizeof(float));
    c->sd = calloc((size_t)dim, sizeof(float));
    c->centroids = calloc((size_t)n_classes * (size_t)dim, sizeof(float));
    *inst = c; /* from here on the host calls destroy, even if we fail */
    if (!c->mean || !c->sd || !c->centroids)
        return sb_error_set(err, SB_ERR_NOMEM, "centroid", "out of memory");
    return SB_OK;
}

/* Layer-averaged, standardised features of row i into out[dim]. */
static void features(const centroid *c, const sb_head_data *d, size_t i, float *out)
{
    const float *x = d->x + i * (size_t)d->n_layers * (size_t)d->dim;
    for (int k = 0; k < c->dim; k++) {
        double s = 0;
        for (int l = 0; l < c->n_layers; l++)
            s += x[(size_t)l * (size_t)c->dim + (size_t)k];
        out[k] = (float)((s / c->n_layers - c->mean[k]) / c->sd[k]);
    }
}

static sb_status c_train(void *inst, const sb_head_data *tr, const sb_head_data *dev, sb_error *err)
{
    (void)dev; /* nothing to tune */
    centroid *c = inst;
    int D = c->dim, K = c->n_classes;
    /* Standardisation statistics on the layer average. */
    double *s = calloc((size_t)D, sizeof *s), *s2 = calloc((size_t)D, sizeof *s2);
    size_t *count = calloc((size_t)K, sizeof *count);
    float *f = malloc((size_t)D * sizeof *f);
    if (!s || !s2 || !count || !f) {
        free(s);
        free(s2);
        free(count);
        free(f);
        return sb_error_set(err, SB_ERR_NOMEM, "centroid", "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < tr->n; i++) {
        if (tr->y[i] < 0)
            continue;
        const float *x = tr->x + i * (size_t)tr->n_layers * (size_t)D;
        for (int k = 0; k < D; k++) {
            double v = 0;
            for (int l = 0; l < c->n_layers; l++)
                v += x[(size_t)l * (size_t)D + (size_t)k];
            v /= c->n_layers;
            s[k] += v;
            s2[k] += v * v;
        }
        n++;
    }
    for (int k = 0; k < D; k++) {
        double m = n ? s[k] / (double)n : 0, var = n ? s2[k] / (double)n - m * m : 1;
        c->mean[k] = (float)m;
        c->sd[k] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
    for (size_t i = 0; i < tr->n; i++) {
        if (tr->y[i] < 0)
            continue;
        features(c, tr, i, f);
        for (int k = 0; k < D; k++)
            c->centroids[(size_t)tr->y[i] * (size_t)D + (size_t)k] += f[k];
        count[tr->y[i]]++;
    }
    for (int j = 0; j < K; j++)
        for (int k = 0; k < D; k++)
            c->centroids[(size_t)j * (size_t)D + (size_t)k] /= count[j] ? (float)count[j] : 1.0f;
    c->host->log(c->host, SB_LOG_INFO, "centroids of %d classes from %zu utterances", K, n);
    free(s);
    free(s2);
    free(count);
    free(f);
    return SB_OK;
}

static sb_status c_predict(void *inst, const sb_head_data *d, float *probs, sb_error *err)
{
    centroid *c = inst;
    int D = c->dim, K = c->n_classes;
    float *f = malloc((size_t)D * sizeof *f);
    double *score = malloc((size_t)K * sizeof *score);
    if (!f || !score) {
        free(f);
        free(score);
        return sb_error_set(err, SB_ERR_NOMEM, "centroid", "out of memory");
    }
    for (size_t i = 0; i < d->n; i++) {
        features(c, d, i, f);
        double best = -INFINITY;
        for (int j = 0; j < K; j++) {
            const float *m = c->centroids + (size_t)j * (size_t)D;
            double dot = 0, nf = 0, nm = 0, dist = 0;
            for (int k = 0; k < D; k++) {
                dot += (double)f[k] * m[k];
                nf += (double)f[k] * f[k];
                nm += (double)m[k] * m[k];
                dist += ((double)f[k] - m[k]) * ((double)f[k] - m[k]);
            }
            score[j] = c->cosine ? dot / (sqrt(nf * nm) + 1e-12) : -sqrt(dist / D);
            score[j] /= c->temperature;
            best = score[j] > best ? score[j] : best;
        }
        double z = 0;
        for (int j = 0; j < K; j++)
            z += exp(score[j] - best);
        for (int j = 0; j < K; j++)
            probs[i * (size_t)K + (size_t)j] = (float)(exp(score[j] - best) / z);
    }
    free(f);
    free(score);
    return SB_OK;
}

static void c_destroy(void *inst)
{
    centroid *c = inst;
    if (!c)
        return;
    free(c->mean);
    free(c->sd);
    free(c->centroids);
    free(c);
}

static const sb_head_vtable centroid_vtable = {
    .struct_size = sizeof(sb_head_vtable),
    .create = c_create,
    .train = c_train,
    .predict = c_predict,
    .destroy = c_destroy,
};

static const sb_plugin centroid_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_HEAD,
    .name = "centroid",
    .version = "1.0.0",
    .summary = "nearest class centroid on standardised layer-averaged features (template)",
    .options = centroid_options,
    .vtable = &centroid_vtable,
};

/* The one exported symbol: serbench_plugin_v1, returning the descriptor. */
SB_PLUGIN_DEFINE(centroid_plugin)
