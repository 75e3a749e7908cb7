/* core/lib/run/plan.c — config → resolved runs (plan.h). */
#include "plan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "opts.h"
#include "progress.h"
#include "report.h"
#include "util.h"

static const char *const top_keys[] = { "include",  "plugin_path", "results",    "threads",
                                        "name",     "description", "datasets",   "labellers",
                                        "encoders", "heads",       "experiment", "sweep",
                                        "seeds",    "report",      "label_maps", "slurm",
                                        NULL };
static const char *const experiment_keys[] = { "train",   "dev",    "test", "encoder", "head",
                                               "metrics", "target", "init", NULL };
static const char *const init_keys[] = { "from", "parts", "new_output", NULL };
static const char *const split_keys[] = { "dataset", "split", "labels", "name", "label_map", NULL };
static const char *const slurm_keys[] = { "item_shards",   "run_shards", "partition", "time",
                                          "cpus_per_task", "mem",        "extra",     "stages",
                                          "serbench",      NULL };
static const char *const slurm_stages[] = { "items", "runs", NULL };
static const char *const reserved_inst[] = { "plugin", NULL };
static const char *const reserved_dataset[] = { "plugin", "on_missing_audio", NULL };

static const char *block_of(sb_kind k)
{
    switch (k) {
    case SB_KIND_DATASET: return "datasets";
    case SB_KIND_LABELLER: return "labellers";
    case SB_KIND_ENCODER: return "encoders";
    case SB_KIND_HEAD: return "heads";
    }
    return "?";
}

static const char *loc(const sbi_node *n, char *buf, size_t size)
{
    return n ? sbi_loc_str(n->loc, buf, size) : "";
}

/* Reject keys of MAP `m` not in `allowed`, with a suggestion. */
static sb_status check_keys(const sbi_node *m, const char *const *allowed, const char *what,
                            sb_error *err)
{
    char w[600];
    for (size_t i = 0; m && m->kind == SBI_MAP && i < m->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, m->keys[i]) == 0;
        if (ok)
            continue;
        const char *best = sbi_did_you_mean(m->keys[i], allowed);
        char hint[128] = "";
        if (best)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(m->key_locs[i], w, sizeof w),
                            "unknown key '%s' in %s%s", m->keys[i], what, hint);
    }
    return SB_OK;
}

static const char *scalar(const sbi_node *m, const char *key)
{
    const sbi_node *n = sbi_node_get(m, key);
    return n && n->kind == SBI_SCALAR ? n->text : NULL;
}

static sb_status want_scalar(const sbi_node *m, const char *key, const char *what, sb_error *err)
{
    const sbi_node *n = sbi_node_get(m, key);
    char w[600];
    if (n && n->kind != SBI_SCALAR && n->kind != SBI_NULL)
        return sb_error_set(err, SB_ERR_CONFIG, loc(n, w, sizeof w), "%s.%s must be a name", what,
                            key);
    return SB_OK;
}

/* ---- instances --------------------------------------------------------------------- */

static void instance_free(sbi_instance *in)
{
    free(in->name);
    sbi_opts_destroy(&in->opts);
    json_decref(in->canon);
    memset(in, 0, sizeof *in);
}

/* Resolve instance `name` of `kind` in `root`: a block under datasets:/... or, failing that,
 * a plugin of that name with defaults. `ref` is the referring node (for messages). */
static sb_status resolve_instance(sbi_plan *p, const sbi_node *root, sb_kind kind, const char *name,
                                  const sbi_node *ref, sbi_instance *out, sb_error *err)
{
    char w[600];
    memset(out, 0, sizeof *out);
    const sbi_node *blocks = sbi_node_get(root, block_of(kind));
    const sbi_node *block = blocks ? sbi_node_get(blocks, name) : NULL;
    const char *plugin_name = name;
    if (block) {
        if (block->kind != SBI_MAP && block->kind != SBI_NULL)
            return sb_error_set(err, SB_ERR_CONFIG, loc(block, w, sizeof w),
                                "%s.%s must be a mapping (plugin: NAME and its options)",
                                block_of(kind), name);
        const sbi_node *pn = block->kind == SBI_MAP ? sbi_node_get(block, "plugin") : NULL;
        if (pn && pn->kind != SBI_SCALAR)
            return sb_error_set(err, SB_ERR_CONFIG, loc(pn, w, sizeof w),
                                "'plugin' must be a plugin name");
        if (pn)
            plugin_name = pn->text;
        loc(block, out->where, sizeof out->where);
    } else {
        snprintf(out->where, sizeof out->where, "(defaults)");
    }
    sb_error e = { 0 };
    const sbi_plugin *pl = NULL;
    if (sbi_registry_get(p->reg, plugin_name, kind, &pl, &e) != SB_OK) {
        if (!block && ref) {
            /* Neither defined nor installed: say both, with a suggestion among defined names. */
            const char *cands[128];
            size_t nc = 0;
            for (size_t i = 0; blocks && blocks->kind == SBI_MAP && i < blocks->n && nc < 127; i++)
                cands[nc++] = blocks->keys[i];
            cands[nc] = NULL;
            const char *best = sbi_did_you_mean(name, cands);
            char hint[160] = "";
            if (best)
                snprintf(hint, sizeof hint, " Did you mean '%s'?", best);
            return sb_error_set(err, SB_ERR_CONFIG, loc(ref, w, sizeof w),
                                "'%s' is neither defined under %s: nor an installed %s plugin "
                                "(%s).%s",
                                name, block_of(kind), sb_kind_name(kind), e.msg, hint);
        }
        if (block) {
            const sbi_node *pn = sbi_node_get(block, "plugin");
            if (pn)
                loc(pn, w, sizeof w);
            else
                loc(block, w, sizeof w);
            if (e.code == SB_ERR_PLUGIN && e.where[0] == '/')
                return sb_error_set(err, e.code, w, "[%s] %s", e.where, e.msg);
            return sb_error_set(err, e.code, w, "%s", e.msg);
        }
        if (err)
            *err = e;
        return e.code;
    }
    sb_status st = sbi_opts_validate(pl->desc->options, pl->desc->name, block,
                                     kind == SB_KIND_DATASET ? reserved_dataset : reserved_inst,
                                     &out->opts, err);
    if (st != SB_OK)
        return st;
    if (kind == SB_KIND_DATASET) {
        const sbi_node *oma =
            block && block->kind == SBI_MAP ? sbi_node_get(block, "on_missing_audio") : NULL;
        if (oma && (oma->kind != SBI_SCALAR ||
                    (strcmp(oma->text, "error") != 0 && strcmp(oma->text, "skip") != 0))) {
            sbi_opts_destroy(&out->opts);
            return sb_error_set(err, SB_ERR_CONFIG, loc(oma, w, sizeof w),
                                "on_missing_audio must be 'error' (stop and list the utterances) "
                                "or 'skip' (leave them out and count them)");
        }
        out->skip_missing_audio = oma && strcmp(oma->text, "skip") == 0;
    }
    out->name = strdup(name);
    out->kind = kind;
    out->plugin = pl;
    out->canon = json_pack("{s:s, s:s, s:O}", "plugin", pl->desc->name, "version",
                           pl->desc->version, "options", sbi_opts_values(out->opts));
    if (out->canon && kind == SB_KIND_DATASET)
        json_object_set_new(out->canon, "on_missing_audio",
                            json_string(out->skip_missing_audio ? "skip" : "error"));
    if (!out->name || !out->canon) {
        instance_free(out);
        return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory");
    }
    char *text = json_dumps(out->canon, JSON_COMPACT | JSON_SORT_KEYS);
    sb_hash_hex(text, strlen(text), out->key);
    free(text);
    return SB_OK;
}

static sb_status use_instance(sbi_plan *p, const sbi_node *root, sbi_run *r, sb_kind kind,
                              const char *name, const sbi_node *ref, sb_error *err)
{
    if (sbi_run_instance(r, kind, name))
        return SB_OK;
    sbi_instance *in = realloc(r->inst, (r->n_inst + 1) * sizeof *in);
    if (!in)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    r->inst = in;
    sb_status st = resolve_instance(p, root, kind, name, ref, &r->inst[r->n_inst], err);
    if (st == SB_OK)
        r->n_inst++;
    return st;
}

const sbi_instance *sbi_run_instance(const sbi_run *r, sb_kind kind, const char *name)
{
    for (size_t i = 0; i < r->n_inst; i++)
        if (r->inst[i].kind == kind && strcmp(r->inst[i].name, name) == 0)
            return &r->inst[i];
    return NULL;
}

/* ---- one run ----------------------------------------------------------------------- */

static void split_free(sbi_split_ref *s)
{
    free(s->label_map);
    json_decref(s->map);
    free(s->name);
    free(s->dataset);
    free(s->split);
    free(s->labels);
}

static void run_free(sbi_run *r)
{
    json_decref(r->config);
    json_decref(r->sweep_values);
    split_free(&r->train);
    split_free(&r->dev);
    for (size_t i = 0; i < r->n_tests; i++)
        split_free(&r->tests[i]);
    free(r->tests);
    free(r->encoder);
    for (size_t i = 0; i < r->n_encoders; i++)
        free(r->encoders[i]);
    free(r->encoders);
    free(r->init_from);
    free(r->init_parts);
    free(r->head);
    for (size_t i = 0; i < r->n_metrics; i++)
        free(r->metrics[i]);
    free(r->metrics);
    for (size_t i = 0; i < r->n_inst; i++)
        instance_free(&r->inst[i]);
    free(r->inst);
}

static sb_status read_split(sbi_plan *p, const sbi_node *root, sbi_run *r, const sbi_node *n,
                            const char *what, const char *def_dataset, const char *def_split,
                            const char *def_labels, sbi_split_ref *out, sb_error *err)
{
    char w[600];
    if (n->kind != SBI_MAP)
        return sb_error_set(
            err, SB_ERR_CONFIG, loc(n, w, sizeof w),
            "%s must be a mapping like {dataset: NAME, split: train, labels: human}", what);
    sb_status st = check_keys(n, split_keys, what, err);
    for (const char *const *k = split_keys; st == SB_OK && *k; k++)
        st = want_scalar(n, *k, what, err);
    if (st != SB_OK)
        return st;
    const char *ds = scalar(n, "dataset");
    if (!ds)
        ds = def_dataset;
    if (!ds)
        return sb_error_set(err, SB_ERR_CONFIG, loc(n, w, sizeof w), "%s needs 'dataset'", what);
    const char *sp = scalar(n, "split");
    const char *lb = scalar(n, "labels");
    out->dataset = strdup(ds);
    out->split = strdup(sp ? sp : def_split);
    out->labels = strdup(lb ? lb : def_labels);
    const char *nm = scalar(n, "name");
    out->name = nm ? strdup(nm) : NULL;
    const char *lm = scalar(n, "label_map");
    if (lm) {
        const sbi_node *maps = sbi_node_get(root, "label_maps");
        const sbi_node *m = maps ? sbi_node_get(maps, lm) : NULL;
        if (!m) {
            const char *cands[64];
            size_t nc = 0;
            for (size_t i = 0; maps && maps->kind == SBI_MAP && i < maps->n && nc < 63; i++)
                cands[nc++] = maps->keys[i];
            cands[nc] = NULL;
            const char *best = sbi_did_you_mean(lm, cands);
            char hint[160] = "";
            if (best)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            return sb_error_set(err, SB_ERR_CONFIG, loc(sbi_node_get(n, "label_map"), w, sizeof w),
                                "no label map '%s' under label_maps:%s", lm, hint);
        }
        out->label_map = strdup(lm);
        out->map = sbi_node_to_json(m);
    }
    if (!out->dataset || !out->split || !out->labels)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    const sbi_node *dref = sbi_node_get(n, "dataset");
    st = use_instance(p, root, r, SB_KIND_DATASET, out->dataset, dref ? dref : n, err);
    if (st == SB_OK) {
        const sbi_node *lref = sbi_node_get(n, "labels");
        st = use_instance(p, root, r, SB_KIND_LABELLER, out->labels, lref ? lref : n, err);
    }
    return st;
}

static json_t *split_json(const sbi_split_ref *s)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "dataset", s->dataset, "split", s->split, "labels", s->labels);
    if (s->name)
        json_object_set_new(j, "name", json_string(s->name));
    if (s->label_map)
        json_object_set_new(j, "label_map",
                            json_pack("{s:s, s:O}", "name", s->label_map, "map", s->map));
    return j;
}

/* experiment.encoder: NAME or [NAME, ...] — each encoder's pooled output is one head input. */
static sb_status read_encoders(sbi_plan *p, const sbi_node *root, sbi_run *r, const sbi_node *exp,
                               sb_error *err)
{
    char w[600];
    const sbi_node *n = sbi_node_get(exp, "encoder");
    size_t ne = n && n->kind == SBI_SEQ ? n->n : 1;
    if (!n || (n->kind != SBI_SCALAR && n->kind != SBI_SEQ) || ne == 0)
        return sb_error_set(err, SB_ERR_CONFIG, n ? loc(n, w, sizeof w) : loc(exp, w, sizeof w),
                            "experiment needs 'encoder: NAME' (or a list of names, one head "
                            "input each: [wavlm, tfidf])");
    if (ne > 8)
        return sb_error_set(err, SB_ERR_CONFIG, loc(n, w, sizeof w),
                            "experiment.encoder lists %zu encoders; a head takes at most 8 inputs",
                            ne);
    r->encoders = calloc(ne, sizeof *r->encoders);
    if (!r->encoders)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < ne; i++) {
        const sbi_node *it = n->kind == SBI_SEQ ? n->items[i] : n;
        if (it->kind != SBI_SCALAR)
            return sb_error_set(err, SB_ERR_CONFIG, loc(it, w, sizeof w),
                                "experiment.encoder lists encoder names; this item is not one");
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->encoders[k], it->text) == 0)
                return sb_error_set(err, SB_ERR_CONFIG, loc(it, w, sizeof w),
                                    "experiment.encoder lists '%s' twice", it->text);
        sb_status st = use_instance(p, root, r, SB_KIND_ENCODER, it->text, it, err);
        if (st != SB_OK)
            return st;
        r->encoders[i] = strdup(it->text);
        r->n_encoders = i + 1;
        if (!r->encoders[i])
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    r->encoder = strdup(r->encoders[0]);
    return r->encoder ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
}

/* experiment.target: label|value, and experiment.init: {from, parts, new_output}. */
static sb_status read_target_init(sbi_run *r, const sbi_node *exp, sb_error *err)
{
    char w[600];
    const sbi_node *t = sbi_node_get(exp, "target");
    if (t) {
        if (t->kind != SBI_SCALAR || (strcmp(t->text, "label") && strcmp(t->text, "value")))
            return sb_error_set(err, SB_ERR_CONFIG, loc(t, w, sizeof w),
                                "experiment.target is 'label' (classes, the default) or 'value' "
                                "(regression on the corpus's continuous values, e.g. CMU-MOSI "
                                "sentiment)");
        r->regression = strcmp(t->text, "value") == 0;
    }
    const sbi_instance *lab = sbi_run_instance(r, SB_KIND_LABELLER, r->train.labels);
    if (r->regression && lab && strcmp(lab->plugin->desc->name, "human") != 0)
        return sb_error_set(err, SB_ERR_CONFIG, t ? loc(t, w, sizeof w) : "experiment",
                            "experiment.target: value trains on the corpus's own values; "
                            "experiment.train.labels is '%s' (a labeller that gives classes): use "
                            "a labeller of the human plugin, or target: label",
                            r->train.labels);
    r->init_new_output = -1;
    const sbi_node *in = sbi_node_get(exp, "init");
    if (!in || in->kind == SBI_NULL)
        return SB_OK;
    if (in->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, loc(in, w, sizeof w),
                            "experiment.init is a mapping: {from: CHECKPOINT.safetensors | "
                            "run:RUN_ID, parts: all, new_output: auto}");
    sb_status st = check_keys(in, init_keys, "experiment.init", err);
    if (st != SB_OK)
        return st;
    const sbi_node *f = sbi_node_get(in, "from");
    if (!f || f->kind != SBI_SCALAR || !*f->text)
        return sb_error_set(err, SB_ERR_CONFIG, loc(f ? f : in, w, sizeof w),
                            "experiment.init needs 'from:', a checkpoint file or run:RUN_ID "
                            "(a run of this results store; see serbench report --format json)");
    if (strncmp(f->text, "run:", 4) == 0) {
        size_t len = strlen(f->text + 4);
        int hex = len >= 8 && len < SB_HASH_HEX;
        for (size_t i = 0; hex && i < len; i++)
            hex = isxdigit((unsigned char)f->text[4 + i]) != 0;
        if (!hex)
            return sb_error_set(err, SB_ERR_CONFIG, loc(f, w, sizeof w),
                                "experiment.init.from '%s': after 'run:' give a run id or a "
                                "prefix of at least 8 of its hex digits",
                                f->text);
        r->init_from = strdup(f->text);
    } else {
        char *dir = f->loc.line > 0 && f->loc.file ? sbi_path_dirname(f->loc.file) : NULL;
        char *path = sbi_path_join(dir, f->text);
        free(dir);
        char *real = path ? realpath(path, NULL) : NULL;
        r->init_from = real ? real : path;
        if (real)
            free(path);
    }
    const sbi_node *pa = sbi_node_get(in, "parts");
    if (pa && (pa->kind != SBI_SCALAR || !*pa->text))
        return sb_error_set(err, SB_ERR_CONFIG, loc(pa, w, sizeof w),
                            "experiment.init.parts names the parameters to take: 'all' or a part "
                            "the head documents (the hierarchical head's 'stage1')");
    r->init_parts = strdup(pa ? pa->text : "all");
    const sbi_node *no = sbi_node_get(in, "new_output");
    if (no) {
        const char *v = no->kind == SBI_SCALAR ? no->text : "";
        r->init_new_output = strcmp(v, "auto") == 0                            ? -1
                             : strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ? 1
                             : strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ? 0
                                                                               : -2;
        if (r->init_new_output == -2)
            return sb_error_set(err, SB_ERR_CONFIG, loc(no, w, sizeof w),
                                "experiment.init.new_output is auto (a new output layer when the "
                                "label spaces differ), yes or no");
    }
    return r->init_from && r->init_parts ? SB_OK
                                         : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
}

static sb_status resolve_run(sbi_plan *p, const sbi_node *root, size_t index, sbi_run *r,
                             sb_error *err)
{
    char w[600];
    memset(r, 0, sizeof *r);
    r->index = index;
    const sbi_node *exp = sbi_node_get(root, "experiment");
    if (!exp || exp->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, exp ? loc(exp, w, sizeof w) : p->config_path,
                            "the config needs an 'experiment:' mapping with train, test, encoder "
                            "and head (see configs/demo.yaml)");
    sb_status st = check_keys(exp, experiment_keys, "experiment", err);
    if (st != SB_OK)
        return st;
    const sbi_node *seed = sbi_node_get(root, "seed");
    json_t *sj = seed ? sbi_scalar_to_json(seed) : NULL;
    if (seed && !json_is_integer(sj)) {
        json_decref(sj);
        return sb_error_set(err, SB_ERR_CONFIG, loc(seed, w, sizeof w), "seed must be an integer");
    }
    r->seed = sj ? (int64_t)json_integer_value(sj) : 1;
    json_decref(sj);

    const sbi_node *tr = sbi_node_get(exp, "train");
    if (!tr)
        return sb_error_set(
            err, SB_ERR_CONFIG, loc(exp, w, sizeof w),
            "experiment needs 'train: {dataset: NAME, split: train, labels: human}'");
    st = read_split(p, root, r, tr, "experiment.train", NULL, "train", "human", &r->train, err);
    if (st != SB_OK)
        return st;
    if (r->train.label_map)
        return sb_error_set(err, SB_ERR_CONFIG, loc(sbi_node_get(tr, "label_map"), w, sizeof w),
                            "experiment.train takes no label_map: the training corpus defines "
                            "the label space (maps belong on dev and test sets)");
    const sbi_node *dv = sbi_node_get(exp, "dev");
    if (dv && dv->kind != SBI_NULL) {
        r->has_dev = 1;
        st = read_split(p, root, r, dv, "experiment.dev", r->train.dataset, "dev", r->train.labels,
                        &r->dev, err);
        if (st != SB_OK)
            return st;
    }
    const sbi_node *te = sbi_node_get(exp, "test");
    if (!te || te->kind == SBI_NULL)
        return sb_error_set(err, SB_ERR_CONFIG, loc(exp, w, sizeof w),
                            "experiment needs 'test:' (a mapping or a list of them)");
    size_t nt = te->kind == SBI_SEQ ? te->n : 1;
    if (nt == 0)
        return sb_error_set(err, SB_ERR_CONFIG, loc(te, w, sizeof w), "experiment.test is empty");
    r->tests = calloc(nt, sizeof *r->tests);
    if (!r->tests)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < nt; i++) {
        const sbi_node *t = te->kind == SBI_SEQ ? te->items[i] : te;
        st = read_split(p, root, r, t, "experiment.test", r->train.dataset, "test", "human",
                        &r->tests[i], err);
        r->n_tests = i + 1;
        if (st != SB_OK)
            return st;
        if (!r->tests[i].name)
            r->tests[i].name = sbi_asprintf("%s/%s", r->tests[i].dataset, r->tests[i].split);
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->tests[k].name, r->tests[i].name) == 0)
                return sb_error_set(err, SB_ERR_CONFIG, loc(t, w, sizeof w),
                                    "two test sets are named '%s'; give one a 'name:'",
                                    r->tests[i].name);
    }
    const sbi_node *hn = sbi_node_get(exp, "head");
    if (!hn || hn->kind != SBI_SCALAR)
        return sb_error_set(err, SB_ERR_CONFIG, hn ? loc(hn, w, sizeof w) : loc(exp, w, sizeof w),
                            "experiment needs 'head: NAME'");
    if ((st = use_instance(p, root, r, SB_KIND_HEAD, hn->text, hn, err)) != SB_OK)
        return st;
    r->head = strdup(hn->text);
    if ((st = read_encoders(p, root, r, exp, err)) != SB_OK)
        return st;
    if ((st = read_target_init(r, exp, err)) != SB_OK)
        return st;
    const sbi_node *ms = sbi_node_get(exp, "metrics");
    const char *const *known = r->regression ? sb_metrics_regress_names() : sb_metrics_names();
    static const char *const cls_defaults[] = { "wa", "ua", "macro_f1", "weighted_f1", NULL };
    static const char *const reg_defaults[] = { "mae",     "corr", "acc2_non0", "acc2_has0",
                                                "f1_non0", "acc7", NULL };
    const char *const *defaults = r->regression ? reg_defaults : cls_defaults;
    size_t nd = 0;
    while (defaults[nd])
        nd++;
    size_t nm = ms ? (ms->kind == SBI_SEQ ? ms->n : 1) : nd;
    r->metrics = calloc(nm ? nm : 1, sizeof *r->metrics);
    if (!r->metrics)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < nm; i++) {
        const sbi_node *m = ms ? (ms->kind == SBI_SEQ ? ms->items[i] : ms) : NULL;
        const char *name = m ? (m->kind == SBI_SCALAR ? m->text : NULL) : defaults[i];
        int ok = 0;
        for (const char *const *k = known; name && *k && !ok; k++)
            ok = strcmp(*k, name) == 0;
        if (!ok) {
            const char *best = name ? sbi_did_you_mean(name, known) : NULL;
            char hint[128] = "";
            if (best)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            return sb_error_set(err, SB_ERR_CONFIG, loc(m, w, sizeof w), "unknown metric '%s'%s%s",
                                name ? name : "?", hint,
                                r->regression ? "; experiment.target: value is scored with mae, "
                                                "corr, acc2_has0, f1_has0, acc2_non0, f1_non0, "
                                                "acc7, acc5"
                                              : "");
        }
        r->metrics[i] = strdup(name);
        r->n_metrics = i + 1;
    }

    /* The canonical resolved config: only what this run uses. */
    json_t *cfg = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "train", split_json(&r->train));
    if (r->has_dev)
        json_object_set_new(e, "dev", split_json(&r->dev));
    json_t *tests = json_array();
    for (size_t i = 0; i < r->n_tests; i++)
        json_array_append_new(tests, split_json(&r->tests[i]));
    json_object_set_new(e, "test", tests);
    if (r->n_encoders == 1) {
        json_object_set_new(e, "encoder", json_string(r->encoder));
    } else {
        json_t *ej = json_array();
        for (size_t i = 0; i < r->n_encoders; i++)
            json_array_append_new(ej, json_string(r->encoders[i]));
        json_object_set_new(e, "encoder", ej);
    }
    /* Only what differs from the defaults, so run ids of older configs stay as they were. */
    if (r->regression)
        json_object_set_new(e, "target", json_string("value"));
    if (r->init_from)
        json_object_set_new(e, "init",
                            json_pack("{s:s, s:s, s:s}", "from", r->init_from, "parts",
                                      r->init_parts, "new_output",
                                      r->init_new_output < 0   ? "auto"
                                      : r->init_new_output > 0 ? "yes"
                                                               : "no"));
    json_object_set_new(e, "head", json_string(r->head));
    json_t *mj = json_array();
    for (size_t i = 0; i < r->n_metrics; i++)
        json_array_append_new(mj, json_string(r->metrics[i]));
    json_object_set_new(e, "metrics", mj);
    json_object_set_new(cfg, "experiment", e);
    for (sb_kind k = SB_KIND_DATASET; k <= SB_KIND_HEAD; k++) {
        json_t *b = json_object();
        for (size_t i = 0; i < r->n_inst; i++)
            if (r->inst[i].kind == k)
                json_object_set(b, r->inst[i].name, r->inst[i].canon);
        json_object_set_new(cfg, block_of(k), b);
    }
    json_object_set_new(cfg, "serbench_run", json_integer(1));
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        json_decref(cfg);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    sb_hash_hex(text, strlen(text), r->group_id);
    free(text);
    json_object_set_new(cfg, "seed", json_integer(r->seed));
    text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    sb_hash_hex(text, strlen(text), r->run_id);
    free(text);
    r->config = cfg;

    r->sweep_values = json_object();
    for (char **k = p->sweep_keys; k && *k; k++) {
        const sbi_node *v = sbi_node_path(root, *k);
        json_object_set_new(r->sweep_values, *k, v ? sbi_node_to_json(v) : json_null());
    }
    return SB_OK;
}

/* ---- the plan ---------------------------------------------------------------------- */

void sbi_plan_destroy(sbi_plan **pp)
{
    if (!pp || !*pp)
        return;
    sbi_plan *p = *pp;
    for (size_t i = 0; i < p->n_runs; i++)
        run_free(&p->runs[i]);
    free(p->runs);
    for (char **k = p->sweep_keys; k && *k; k++)
        free(*k);
    free(p->sweep_keys);
    sbi_node_free(&p->root);
    sbi_registry_destroy(&p->reg);
    json_decref(p->report);
    free(p->slurm.partition);
    free(p->slurm.time);
    free(p->slurm.mem);
    for (char **l = p->slurm.extra; l && *l; l++)
        free(*l);
    free(p->slurm.extra);
    free(p->slurm.serbench);
    for (char **w = p->warnings; w && *w; w++)
        free(*w);
    free(p->warnings);
    free(p->results_dir);
    free(p->config_path);
    free(p);
    *pp = NULL;
}

/* ---- the slurm: block ----------------------------------------------------------------- */

static sb_status slurm_int(const sbi_node *b, const char *key, int lo, int hi, int *out,
                           sb_error *err)
{
    const sbi_node *n = sbi_node_get(b, key);
    if (!n)
        return SB_OK;
    json_t *v = sbi_scalar_to_json(n);
    const int good = n->kind == SBI_SCALAR && json_is_integer(v) && json_integer_value(v) >= lo &&
                     json_integer_value(v) <= hi;
    if (good)
        *out = (int)json_integer_value(v);
    json_decref(v);
    char w[600];
    if (!good)
        return sb_error_set(err, SB_ERR_CONFIG, loc(n, w, sizeof w),
                            "slurm.%s must be an integer from %d to %d", key, lo, hi);
    return SB_OK;
}

/* A scalar of the block that must match `ok` (one character class per sbatch option, so a
 * typo fails here and not in a job script). */
static sb_status slurm_str(const sbi_node *b, const char *key, int (*ok)(const char *),
                           const char *expect, char **out, sb_error *err)
{
    const sbi_node *n = sbi_node_get(b, key);
    if (!n)
        return SB_OK;
    char w[600];
    if (n->kind != SBI_SCALAR || !*n->text || !ok(n->text))
        return sb_error_set(err, SB_ERR_CONFIG, loc(n, w, sizeof w), "slurm.%s must be %s", key,
                            expect);
    if (!(*out = strdup(n->text)))
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    return SB_OK;
}

static int is_partition(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,-") ==
           strlen(s);
}

/* sbatch --time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or UNLIMITED/INFINITE. */
static int is_time(const char *s)
{
    if (!strcmp(s, "UNLIMITED") || !strcmp(s, "INFINITE"))
        return 1;
    const char *dash = strchr(s, '-');
    int groups = 0;
    const char *q = s;
    if (dash) {
        if (dash == s || strspn(s, "0123456789") != (size_t)(dash - s))
            return 0;
        q = dash + 1;
    }
    for (;;) {
        size_t d = strspn(q, "0123456789");
        if (d == 0)
            return 0;
        groups++;
        q += d;
        if (!*q)
            break;
        if (*q++ != ':')
            return 0;
    }
    return groups <= 3;
}

/* sbatch --mem: a number with an optional K, M, G or T suffix. */
static int is_mem(const char *s)
{
    size_t d = strspn(s, "0123456789");
    return d > 0 && (!s[d] || (strchr("KMGTkmgt", s[d]) && !s[d + 1]));
}

static int is_path(const char *s)
{
    return !strchr(s, '\n');
}

static sb_status check_slurm(sbi_plan *p, sb_error *err)
{
    sbi_slurm *sl = &p->slurm;
    sl->item_shards = 1;
    sl->run_shards = 1;
    sl->cpus_per_task = p->threads > 0 ? p->threads : 1;
    sl->stage_items = sl->stage_runs = 1;
    const sbi_node *b = sbi_node_get(p->root, "slurm");
    char w[600];
    if (!b || b->kind == SBI_NULL)
        return SB_OK;
    if (b->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, loc(b, w, sizeof w),
                            "slurm: must be a mapping (item_shards, run_shards, partition, ...)");
    sb_status st = check_keys(b, slurm_keys, "slurm:", err);
    if (st == SB_OK)
        st = slurm_int(b, "item_shards", 1, 100000, &sl->item_shards, err);
    if (st == SB_OK)
        st = slurm_int(b, "run_shards", 1, 100000, &sl->run_shards, err);
    if (st == SB_OK)
        st = slurm_int(b, "cpus_per_task", 1, 1024, &sl->cpus_per_task, err);
    if (st == SB_OK)
        st = slurm_str(b, "partition", is_partition,
                       "a partition name (letters, digits, _ . - and commas)", &sl->partition, err);
    if (st == SB_OK)
        st = slurm_str(b, "time", is_time,
                       "a time limit like 90, 4:00:00 or 1-12:00 (minutes, H:M:S, D-H:M)",
                       &sl->time, err);
    if (st == SB_OK)
        st = slurm_str(b, "mem", is_mem, "a memory size like 4000, 8G or 512M", &sl->mem, err);
    char *exe = NULL;
    if (st == SB_OK)
        st = slurm_str(b, "serbench", is_path, "the path of the serbench executable", &exe, err);
    if (exe) {
        /* Relative to the config file, like results: and plugin_path:. */
        const sbi_node *n = sbi_node_get(b, "serbench");
        char *dir = sbi_path_dirname(n->loc.file ? n->loc.file : ".");
        sl->serbench = dir ? sbi_path_join(dir, exe) : NULL;
        free(dir);
        free(exe);
        if (!sl->serbench)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    if (st != SB_OK)
        return st;
    const sbi_node *ex = sbi_node_get(b, "extra");
    if (ex && ex->kind != SBI_NULL) {
        if (ex->kind != SBI_SEQ)
            return sb_error_set(err, SB_ERR_CONFIG, loc(ex, w, sizeof w),
                                "slurm.extra must be a list of lines, like [\"#SBATCH "
                                "--account=x\", \"module load openblas\"]");
        if (!(sl->extra = calloc(ex->n + 1, sizeof *sl->extra)))
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        for (size_t i = 0; i < ex->n; i++) {
            const sbi_node *l = ex->items[i];
            if (l->kind != SBI_SCALAR || strchr(l->text, '\n'))
                return sb_error_set(err, SB_ERR_CONFIG, loc(l, w, sizeof w),
                                    "slurm.extra[%zu] must be one line of text (quote lines "
                                    "that start with #)",
                                    i);
            if (!(sl->extra[i] = strdup(l->text)))
                return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
    }
    const sbi_node *sg = sbi_node_get(b, "stages");
    if (sg && sg->kind != SBI_NULL) {
        const int seq = sg->kind == SBI_SEQ;
        const size_t n = seq ? sg->n : 1;
        if ((!seq && sg->kind != SBI_SCALAR) || n == 0)
            return sb_error_set(err, SB_ERR_CONFIG, loc(sg, w, sizeof w),
                                "slurm.stages must list items, runs or both");
        sl->stage_items = sl->stage_runs = 0;
        for (size_t i = 0; i < n; i++) {
            const sbi_node *s = seq ? sg->items[i] : sg;
            const char *t = s->kind == SBI_SCALAR ? s->text : "";
            int *flag = !strcmp(t, "items")  ? &sl->stage_items
                        : !strcmp(t, "runs") ? &sl->stage_runs
                                             : NULL;
            if (!flag) {
                const char *best = sbi_did_you_mean(t, slurm_stages);
                char hint[64] = "";
                if (best)
                    snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
                return sb_error_set(err, SB_ERR_CONFIG, loc(s, w, sizeof w),
                                    "unknown stage '%s' in slurm.stages: items (labels and "
                                    "features) or runs%s",
                                    t, hint);
            }
            if (*flag)
                return sb_error_set(err, SB_ERR_CONFIG, loc(s, w, sizeof w),
                                    "slurm.stages lists '%s' twice", t);
            *flag = 1;
        }
    }
    return SB_OK;
}

static sb_status check_top(sbi_plan *p, sb_error *err)
{
    char w[600];
    const sbi_node *root = p->root;
    /* Each run's `seed:` is set from `seeds:` at expansion (sweep.c), so a written one would
     * be replaced without notice. Plans are only loaded from user configs; resolved run
     * configs live in the store as JSON and never come back through here. */
    for (size_t si = 0; root->kind == SBI_MAP && si < root->n; si++) {
        if (strcmp(root->keys[si], "seed") != 0)
            continue;
        const sbi_node *sv = root->items[si];
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(root->key_locs[si], w, sizeof w),
                            "a top-level 'seed' is not read: runs take their seeds from "
                            "'seeds'; write seeds: [%s]",
                            sv->kind == SBI_SCALAR && *sv->text ? sv->text : "N");
    }
    sb_status st = check_keys(root, top_keys, "the config's top level", err);
    if (st != SB_OK)
        return st;
    for (sb_kind k = SB_KIND_DATASET; k <= SB_KIND_HEAD; k++) {
        const sbi_node *b = sbi_node_get(root, block_of(k));
        if (b && b->kind != SBI_MAP && b->kind != SBI_NULL)
            return sb_error_set(err, SB_ERR_CONFIG, loc(b, w, sizeof w),
                                "%s: must map instance names to plugin blocks", block_of(k));
    }
    const sbi_node *maps = sbi_node_get(root, "label_maps");
    if (maps && maps->kind != SBI_NULL) {
        if (maps->kind != SBI_MAP)
            return sb_error_set(err, SB_ERR_CONFIG, loc(maps, w, sizeof w),
                                "label_maps: must map names to {source_class: target_class}");
        for (size_t i = 0; i < maps->n; i++) {
            const sbi_node *m = maps->items[i];
            if (m->kind != SBI_MAP || m->n == 0)
                return sb_error_set(err, SB_ERR_CONFIG, loc(m, w, sizeof w),
                                    "label_maps.%s must be a non-empty mapping like "
                                    "{joy: hap, anger: ang}",
                                    maps->keys[i]);
            for (size_t k = 0; k < m->n; k++)
                if (m->items[k]->kind != SBI_SCALAR)
                    return sb_error_set(err, SB_ERR_CONFIG, loc(m->items[k], w, sizeof w),
                                        "label_maps.%s.%s must be one class name", maps->keys[i],
                                        m->keys[k]);
        }
    }
    const sbi_node *rep = sbi_node_get(root, "report");
    if (rep && rep->kind != SBI_NULL) {
        /* Its keys are checked against the runs once they are resolved (sbi_report_check). */
        if (rep->kind != SBI_MAP)
            return sb_error_set(err, SB_ERR_CONFIG, loc(rep, w, sizeof w),
                                "report: must be a mapping (title, tables, ...)");
        p->report = sbi_node_to_json(rep);
    }
    const sbi_node *th = sbi_node_get(root, "threads");
    if (th) {
        json_t *v = sbi_scalar_to_json(th);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1024) {
            json_decref(v);
            return sb_error_set(err, SB_ERR_CONFIG, loc(th, w, sizeof w),
                                "threads must be an integer from 1 to 1024");
        }
        p->threads = (int)json_integer_value(v);
        json_decref(v);
    }
    sb_status sst = check_slurm(p, err);
    if (sst != SB_OK)
        return sst;
    const sbi_node *res = sbi_node_get(root, "results");
    if (res) {
        if (res->kind != SBI_SCALAR || !*res->text)
            return sb_error_set(err, SB_ERR_CONFIG, loc(res, w, sizeof w),
                                "results must be a folder path");
        char *dir = sbi_path_dirname(res->loc.file ? res->loc.file : ".");
        p->results_dir = sbi_path_join(dir, res->text);
        free(dir);
    }
    return SB_OK;
}

static sb_status plugin_dirs(const sbi_node *root, char ***dirs, size_t *n, sb_error *err)
{
    char w[600];
    *dirs = NULL;
    *n = 0;
    const sbi_node *pp = sbi_node_get(root, "plugin_path");
    if (!pp || pp->kind == SBI_NULL)
        return SB_OK;
    size_t cnt = pp->kind == SBI_SEQ ? pp->n : 1;
    char **d = calloc(cnt + 1, sizeof *d);
    if (!d)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        const sbi_node *it = pp->kind == SBI_SEQ ? pp->items[i] : pp;
        if (it->kind != SBI_SCALAR) {
            for (size_t k = 0; k < i; k++)
                free(d[k]);
            free(d);
            return sb_error_set(err, SB_ERR_CONFIG, loc(it, w, sizeof w),
                                "plugin_path must be a folder or a list of folders");
        }
        char *base = sbi_path_dirname(it->loc.file ? it->loc.file : ".");
        d[i] = sbi_path_join(base, it->text);
        free(base);
    }
    *dirs = d;
    *n = cnt;
    return SB_OK;
}

/* "heads.linear.lr=1e-3, seed 1": a sweep point as written (so 1e-3 and 0.001 stay apart). */
static char *point_text(const sbi_plan *p, const sbi_node *root, int64_t seed)
{
    sbi_buf b = { 0 };
    for (char **k = p->sweep_keys; k && *k; k++) {
        const sbi_node *v = sbi_node_path(root, *k);
        char *t = NULL;
        if (v && v->kind != SBI_SCALAR) {
            json_t *j = sbi_node_to_json(v);
            t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(j);
        }
        sbi_buf_printf(&b, "%s=%s, ", *k, v && v->kind == SBI_SCALAR ? v->text : t ? t : "null");
        free(t);
    }
    sbi_buf_printf(&b, "seed %lld", (long long)seed);
    return b.s;
}

typedef struct id_pos {
    const char *id;
    size_t pos;
} id_pos;

static int cmp_id_pos(const void *a, const void *b)
{
    const id_pos *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Keep the first run of each run id, in expansion order, and number the kept runs 0, 1, …
 * (so --dry-run, --shard, report rows and the config id all see one list). Sweep values
 * that resolve alike (1e-3 and 0.001), or a swept key no run uses, give the same run; it
 * would be trained again and counted as another seed. One warning names an example pair.
 * `roots` are the expanded configs of p->runs, in the same order. */
static sb_status drop_duplicates(sbi_plan *p, const sbi_node *const *roots, sb_error *err)
{
    size_t n = p->n_runs;
    if (n < 2)
        return SB_OK;
    id_pos *v = malloc(n * sizeof *v);
    size_t *first = malloc(n * sizeof *first); /* first[i]: the kept run i repeats, or i */
    if (!v || !first) {
        free(v);
        free(first);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (id_pos){ p->runs[i].run_id, i };
    qsort(v, n, sizeof *v, cmp_id_pos);
    for (size_t k = 0; k < n; k++)
        first[v[k].pos] =
            k > 0 && strcmp(v[k].id, v[k - 1].id) == 0 ? first[v[k - 1].pos] : v[k].pos;
    free(v);
    size_t kept = 0, dup = n;
    int64_t dup_seed = 0;
    for (size_t i = 0; i < n; i++) {
        if (first[i] != i) { /* runs[i] is still run i: swaps only touch slots up to i */
            if (dup == n) {
                dup = i;
                dup_seed = p->runs[i].seed;
            }
            continue;
        }
        if (kept != i) {
            sbi_run tmp = p->runs[kept];
            p->runs[kept] = p->runs[i];
            p->runs[i] = tmp; /* the slot holds a dropped run, freed below */
        }
        p->runs[kept].index = kept;
        kept++;
    }
    sb_status st = SB_OK;
    if (dup < n) {
        /* The example comes from the expanded configs, which keep expansion positions. */
        char *a = point_text(p, roots[dup], dup_seed);
        char *b = point_text(p, roots[first[dup]], dup_seed);
        char *msg = sbi_asprintf(
            "%s: %zu of %zu runs %s the same run as an earlier one (the same resolved config "
            "and seed) and %s left out, e.g. '%s' is the run of '%s'; sweep values that read "
            "alike (1e-3 and 0.001), or a swept key the run does not use, give the same run",
            p->config_path, n - kept, n, n - kept == 1 ? "is" : "are", n - kept == 1 ? "is" : "are",
            a ? a : "?", b ? b : "?");
        free(a);
        free(b);
        p->warnings = calloc(2, sizeof *p->warnings);
        if (!msg || !p->warnings) {
            free(msg);
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        } else {
            p->warnings[0] = msg;
            sbi_ui ui;
            sbi_ui_init(&ui, 0, 0);
            sbi_ui_log(&ui, SB_LOG_WARN, NULL, "%s", msg);
        }
    }
    for (size_t i = kept; i < n; i++) /* the dropped runs, swapped past the kept ones */
        run_free(&p->runs[i]);
    p->n_runs = kept;
    free(first);
    return st;
}

sb_status sbi_plan_load(const char *config_path, const char *const *overrides, size_t n_overrides,
                        const char *builtin_dirs, sbi_plan **out, sb_error *err)
{
    *out = NULL;
    sbi_plan *p = calloc(1, sizeof *p);
    if (!p || !(p->config_path = strdup(config_path))) {
        free(p);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    sb_status st = SB_OK;
    p->root = sbi_config_load(config_path, overrides, n_overrides, err);
    if (!p->root)
        st = err && err->code ? err->code : SB_ERR_CONFIG;
    if (st == SB_OK)
        st = check_top(p, err);
    char **dirs = NULL;
    size_t nd = 0;
    if (st == SB_OK)
        st = plugin_dirs(p->root, &dirs, &nd, err);
    if (st == SB_OK)
        st = sbi_registry_create(builtin_dirs, (const char *const *)dirs, nd, &p->reg, err);
    for (size_t i = 0; i < nd; i++)
        free(dirs[i]);
    free(dirs);
    if (st == SB_OK) {
        const char **keys = sbi_config_sweep_keys(p->root);
        size_t nk = 0;
        while (keys && keys[nk])
            nk++;
        p->sweep_keys = calloc(nk + 1, sizeof *p->sweep_keys);
        for (size_t i = 0; p->sweep_keys && i < nk; i++)
            p->sweep_keys[i] = strdup(keys[i]);
        free(keys);
        if (!p->sweep_keys)
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    sbi_node **roots = NULL;
    size_t nr = 0;
    if (st == SB_OK)
        st = sbi_config_expand(p->root, &roots, &nr, err);
    if (st == SB_OK && !(p->runs = calloc(nr ? nr : 1, sizeof *p->runs)))
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < nr && st == SB_OK; i++) {
        st = resolve_run(p, roots[i], i, &p->runs[i], err);
        p->n_runs = i + 1;
    }
    if (st == SB_OK)
        st = drop_duplicates(p, (const sbi_node *const *)roots, err);
    for (size_t i = 0; i < nr; i++)
        sbi_node_free(&roots[i]);
    free(roots);
    if (st == SB_OK)
        st = sbi_report_check(p, err);
    if (st != SB_OK) {
        sbi_plan_destroy(&p);
        return st;
    }
    *out = p;
    return SB_OK;
}

sb_status sbi_plan_validate_all(sbi_plan *p, sb_error *err)
{
    for (sb_kind k = SB_KIND_DATASET; k <= SB_KIND_HEAD; k++) {
        const sbi_node *b = sbi_node_get(p->root, block_of(k));
        for (size_t i = 0; b && b->kind == SBI_MAP && i < b->n; i++) {
            sbi_instance in;
            sb_status st = resolve_instance(p, p->root, k, b->keys[i], NULL, &in, err);
            if (st != SB_OK)
                return st;
            instance_free(&in);
        }
    }
    return SB_OK;
}

char *sbi_run_label(const sbi_plan *p, const sbi_run *r)
{
    sbi_buf b = { 0 };
    if (p->sweep_keys && p->sweep_keys[0]) {
        const char *k;
        json_t *v;
        int first = 1;
        json_object_foreach(r->sweep_values, k, v)
        {
            char *t = json_is_string(v) ? strdup(json_string_value(v))
                                        : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            const char *dot = strrchr(k, '.');
            sbi_buf_printf(&b, "%s%s=%s", first ? "" : ", ", dot ? dot + 1 : k, t ? t : "?");
            free(t);
            first = 0;
        }
    } else {
        sbi_buf_printf(&b, "%s + %s (%s labels)", r->encoder, r->head, r->train.labels);
    }
    return b.s ? b.s : strdup("");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

sb_status sbi_plan_config_id(const sbi_plan *p, char out[SB_HASH_HEX], sb_error *err)
{
    const char **ids = malloc((p->n_runs + 1) * sizeof *ids);
    sb_hasher *h = sb_hasher_create();
    if (!ids || !h) {
        free(ids);
        sb_hasher_destroy(&h);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < p->n_runs; i++)
        ids[i] = p->runs[i].run_id;
    qsort(ids, p->n_runs, sizeof *ids, cmp_str);
    sb_hasher_str(h, "config-id/1");
    for (size_t i = 0; i < p->n_runs; i++)
        sb_hasher_str(h, ids[i]);
    sb_hasher_hex(h, out);
    sb_hasher_destroy(&h);
    free(ids);
    return SB_OK;
}
