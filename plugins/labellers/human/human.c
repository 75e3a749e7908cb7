/* plugins/labellers/human/human.c — the corpus's own (human) labels as a labeller, so that
 * training on gold labels and on LLM labels go through the same stage. */
#include <serbench/serbench.h>

#include <stdlib.h>

static const sb_option human_options[] = {
    { .name = NULL },
};

static sb_status human_create(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err)
{
    (void)opts;
    (void)err;
    *inst = (void *)host; /* no state beyond the host */
    return SB_OK;
}

static sb_status human_label(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                             sb_label_sink *sink, sb_error *err)
{
    const sb_host *host = inst;
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
        host->log(host, SB_LOG_DEBUG, "%zu utterances have no gold label", unlabelled);
    return SB_OK;
}

static void human_destroy(void *inst)
{
    (void)inst;
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
    .version = "1.0.0",
    .summary = "the corpus's own gold labels (majority label as the dataset plugin gives it)",
    .options = human_options,
    .vtable = &human_vtable,
};

SB_PLUGIN_DEFINE(human_plugin)
