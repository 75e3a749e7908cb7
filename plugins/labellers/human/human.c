/* plugins/labellers/human/human.c — the corpus's own (human) labels as a labeller, so that
 * training on gold labels and on LLM labels go through the same stage. */
#include <serbench/serbench.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const sb_option human_options[] = {
    { .name = "rater",
      .type = SB_OPT_STRING,
      .help = "take one rater's labels (e.g. IEMOCAP's \"E2\" from its C-E2 lines) instead of the "
              "corpus's "
              "majority label; `serbench corpus CONFIG` lists the raters" },
    { .name = "rater_map",
      .type = SB_OPT_MAP,
      .help = "rater's label text -> class name, for rater labels that are not class names "
              "(e.g. {Excited: hap, \"Neutral state\": neu}); unmapped ones are stored as "
              "invalid" },
    { .name = NULL },
};

typedef struct human {
    const sb_host *host;
    const char *rater;
    json_t *map;
} human;

static void human_destroy(void *inst)
{
    human *h = inst;
    if (!h)
        return;
    json_decref(h->map);
    free(h);
}

static sb_status human_create(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err)
{
    human *h = calloc(1, sizeof *h);
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    h->host = host;
    h->rater = sb_opts_str(opts, "rater");
    const char *map = sb_opts_has(opts, "rater_map") ? sb_opts_json(opts, "rater_map") : NULL;
    h->map = map ? json_loads(map, 0, NULL) : NULL;
    *inst = h;
    if (map && !h->rater)
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "rater_map"),
                            "rater_map is only used with rater");
    return SB_OK;
}

/* Class of a rater's label text: a class name (ignoring case), else through the map; -1
 * when neither; -2 when the map names a class the space does not have. */
static int rater_class(const human *h, const sb_corpus *corpus, const char *text)
{
    const int nc = sb_corpus_n_classes(corpus);
    for (int k = 0; k < nc; k++)
        if (strcasecmp(sb_corpus_class(corpus, k), text) == 0)
            return k;
    json_t *v = h->map ? json_object_get(h->map, text) : NULL;
    if (!json_is_string(v))
        return -1;
    for (int k = 0; k < nc; k++)
        if (strcmp(sb_corpus_class(corpus, k), json_string_value(v)) == 0)
            return k;
    return -2;
}

static sb_status rater_label(human *h, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                             sb_label_sink *sink, sb_error *err)
{
    size_t rated = 0, invalid = 0;
    for (size_t k = 0; k < n_todo; k++) {
        const size_t i = todo[k];
        const char *text = NULL;
        for (size_t r = 0; r < sb_corpus_n_ratings(corpus, i) && !text; r++) {
            const char *who = NULL;
            const char *lab = sb_corpus_rating(corpus, i, r, &who);
            if (who && strcmp(who, h->rater) == 0)
                text = lab;
        }
        if (!text)
            continue; /* this rater did not rate the utterance: no label */
        rated++;
        const int c = rater_class(h, corpus, text);
        if (c == -2)
            return sb_error_set(err, SB_ERR_CONFIG, NULL,
                                "rater_map sends '%s' to a name that is not a class of %s", text,
                                sb_corpus_name(corpus));
        char reason[320];
        snprintf(reason, sizeof reason,
                 "rater %s's label '%s' is not a class of %s and rater_map does not name it",
                 h->rater, text, sb_corpus_name(corpus));
        sb_label_result res = { .struct_size = sizeof res,
                                .status = c >= 0 ? SB_LABEL_OK : SB_LABEL_INVALID,
                                .label = c,
                                .confidence = 1.0,
                                .raw = text,
                                .reason = c >= 0 ? NULL : reason };
        invalid += c < 0;
        sb_status st = sb_label_deliver(sink, i, &res);
        if (st != SB_OK)
            return sb_error_set(err, st, sb_corpus_utt(corpus, i)->id, "could not store the label");
    }
    if (rated == 0 && n_todo > 0)
        return sb_error_set(err, SB_ERR_CONFIG, NULL,
                            "rater '%s' rated none of the %zu utterances of %s; `serbench corpus "
                            "CONFIG` lists the raters",
                            h->rater, n_todo, sb_corpus_name(corpus));
    h->host->log(h->host, SB_LOG_INFO, "rater %s: %zu of %zu utterances rated, %zu invalid",
                 h->rater, rated, n_todo, invalid);
    return SB_OK;
}

static sb_status human_label(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                             sb_label_sink *sink, sb_error *err)
{
    human *h = inst;
    if (h->rater)
        return rater_label(h, corpus, todo, n_todo, sink, err);
    size_t unlabelled = 0;
    for (size_t k = 0; k < n_todo; k++) {
        const sb_utt *u = sb_corpus_utt(corpus, todo[k]);
        if (u->label < 0) {
            unlabelled++; /* context-only turns: no label, not a failure */
            continue;
        }
        sb_status st = sb_label_put(sink, todo[k], u->label, 1.0, NULL);
        if (st != SB_OK)
            return sb_error_set(err, st, u->id, "could not store the label");
    }
    if (unlabelled)
        h->host->log(h->host, SB_LOG_DEBUG, "%zu utterances have no gold label", unlabelled);
    return SB_OK;
}

static const sb_labeller_vtable human_vtable = {
    .struct_size = sizeof(sb_labeller_vtable),
    .create = human_create,
    .label = human_label,
    .destroy = human_destroy,
};

static const sb_plugin human_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_LABELLER,
    .name = "human",
    .version = "1.1.0",
    .summary = "the corpus's own gold labels (majority label as the dataset plugin gives it), or "
               "one rater's",
    .options = human_options,
    .vtable = &human_vtable,
};

SB_PLUGIN_DEFINE(human_plugin)
