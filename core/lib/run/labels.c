/* core/lib/run/labels.c — the label stage: a labeller plugin labels what the store does
 * not have yet, delivering each label through a sink that stores it at once. */
#include "stage.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The seed labellers get. The label stage is keyed by the labeller's options and the corpus,
 * not by the run's seed: every seed of a sweep trains on the same labels. A labeller that
 * samples (an LLM at temperature > 0) takes its seed from its own options. */
#define SBI_LABELLER_SEED 0u

/* Deliveries are committed in batches of this many rows or this many seconds, whichever
 * comes first (and at the end of the stage, and whenever a plugin writes its cache). */
#define SINK_BATCH_ROWS 256
#define SINK_BATCH_SECONDS 0.05

struct sb_label_sink {
    ctx *c;
    sbi_store *store;
    const char *stage_key;
    const corpus_entry *ce;
    int32_t *labels;
    size_t n_ok, n_invalid, n_fail, n_todo, n_cached;
    double prompt_tokens, completion_tokens, cost;
    int have_cost;
    size_t n_cost_unknown; /* labels whose detail has cost_usd null */
    size_t tx_rows;        /* rows in the open transaction */
    double tx_t0;          /* when it began */
    sbi_progress *prog;
    pthread_mutex_t lock;
    sqlite3_stmt *put, *fail, *unfail;
};

/* Add the usage of one delivered label (its detail JSON) to the stage totals. */
static void add_usage(sb_label_sink *s, const json_t *d)
{
    if (!d)
        return;
    json_t *u = json_object_get(d, "usage");
    s->prompt_tokens += json_number_value(json_object_get(u, "prompt_tokens"));
    s->completion_tokens += json_number_value(json_object_get(u, "completion_tokens"));
    json_t *cost = json_object_get(d, "cost_usd");
    if (json_is_number(cost)) {
        s->cost += json_number_value(cost);
        s->have_cost = 1;
    } else if (cost) {
        s->n_cost_unknown++;
    }
    if (json_is_true(json_object_get(d, "cached")))
        s->n_cached++;
}

static char *dist_json(const double *dist, int n)
{
    json_t *a = json_array();
    for (int k = 0; k < n; k++)
        json_array_append_new(a, json_real(dist[k]));
    char *t = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(a);
    return t;
}

sb_status sb_label_deliver(sb_label_sink *s, size_t utt, const sb_label_result *r)
{
    if (!s || !r || r->struct_size < offsetof(sb_label_result, detail) + sizeof r->detail ||
        utt >= sb_corpus_size(s->ce->c))
        return SB_ERR_INVALID;
    const int nc = sb_corpus_n_classes(s->ce->c);
    const int ok = r->status == SB_LABEL_OK;
    if (ok && (r->label < 0 || r->label >= nc))
        return sb_label_fail(s, utt, "label index outside the label space (plugin bug)");
    if (!ok && r->status != SB_LABEL_INVALID)
        return sb_label_fail(s, utt, "unknown label status (plugin bug)");
    json_t *detail = r->detail ? json_loads(r->detail, 0, NULL) : NULL;
    if (r->detail && !json_is_object(detail)) {
        json_decref(detail);
        return sb_label_fail(s, utt, "label detail is not a JSON object (plugin bug)");
    }
    char *dist = r->dist ? dist_json(r->dist, nc) : NULL;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_get_autocommit(s->store->db)) {
        if (sbi_store_begin(s->store, NULL) == SB_OK) {
            s->tx_rows = 0;
            s->tx_t0 = sbi_now();
        }
    }
    const sb_utt *u = sb_corpus_utt(s->ce->c, utt);
    sqlite3_stmt *q = s->put;
    sqlite3_bind_text(q, 1, s->stage_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, u->id, -1, SQLITE_STATIC);
    if (ok) {
        sqlite3_bind_int(q, 3, r->label);
        sqlite3_bind_text(q, 4, sb_corpus_class(s->ce->c, r->label), -1, SQLITE_STATIC);
    }
    if (r->confidence >= 0 && r->confidence <= 1)
        sqlite3_bind_double(q, 5, r->confidence);
    if (r->raw)
        sqlite3_bind_text(q, 6, r->raw, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, ok ? "ok" : "invalid", -1, SQLITE_STATIC);
    if (!ok)
        sqlite3_bind_text(q, 8, r->reason ? r->reason : "not a class of the label space", -1,
                          SQLITE_TRANSIENT);
    if (dist)
        sqlite3_bind_text(q, 9, dist, -1, SQLITE_TRANSIENT);
    if (r->detail)
        sqlite3_bind_text(q, 10, r->detail, -1, SQLITE_TRANSIENT);
    sb_status st = sbi_store_step_done(s->store, q, NULL);
    sqlite3_clear_bindings(q);
    if (st == SB_OK) {
        sqlite3_bind_text(s->unfail, 1, s->stage_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->unfail, 2, u->id, -1, SQLITE_STATIC);
        st = sbi_store_step_done(s->store, s->unfail, NULL);
    }
    if (st == SB_OK && !sqlite3_get_autocommit(s->store->db) &&
        (++s->tx_rows >= SINK_BATCH_ROWS || sbi_now() - s->tx_t0 >= SINK_BATCH_SECONDS))
        st = sbi_store_commit(s->store, NULL);
    if (st == SB_OK) {
        add_usage(s, detail);
        if (ok) {
            s->labels[utt] = r->label;
            s->n_ok++;
        } else {
            s->n_invalid++;
            if (s->n_invalid <= 20)
                sbi_ui_log(s->c->ui, SB_LOG_WARN, "labels", "utterance %s: invalid answer: %s",
                           u->id, r->reason ? r->reason : "not a class of the label space");
        }
        if (s->prog)
            sbi_progress_update(s->prog, s->n_ok + s->n_invalid + s->n_fail);
    }
    pthread_mutex_unlock(&s->lock);
    free(dist);
    json_decref(detail);
    return st;
}

sb_status sb_label_put(sb_label_sink *s, size_t utt, int32_t label, double confidence,
                       const char *raw)
{
    sb_label_result r = { .struct_size = sizeof r,
                          .status = SB_LABEL_OK,
                          .label = label,
                          .confidence = confidence,
                          .raw = raw };
    return sb_label_deliver(s, utt, &r);
}

sb_status sb_label_fail(sb_label_sink *s, size_t utt, const char *reason)
{
    if (!s || utt >= sb_corpus_size(s->ce->c))
        return SB_ERR_INVALID;
    pthread_mutex_lock(&s->lock);
    const sb_utt *u = sb_corpus_utt(s->ce->c, utt);
    sqlite3_bind_text(s->fail, 1, s->stage_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->fail, 2, u->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->fail, 3, reason ? reason : "unknown", -1, SQLITE_TRANSIENT);
    sb_status st = sbi_store_step_done(s->store, s->fail, NULL);
    s->n_fail++;
    if (s->prog)
        sbi_progress_update(s->prog, s->n_ok + s->n_invalid + s->n_fail);
    if (s->n_fail <= 20)
        sbi_ui_log(s->c->ui, SB_LOG_WARN, "labels", "utterance %s: %s", u->id,
                   reason ? reason : "unknown");
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* serbench label --plan: what the labeller would do, printed to stdout; nothing is sent. */
static sb_status plan_labels(ctx *c, const sbi_instance *in, const corpus_entry *ce,
                             const char *desc, const size_t *todo, size_t nt, size_t have,
                             sb_error *err)
{
    const sb_labeller_vtable *vt = in->plugin->desc->vtable;
    const int has_plan =
        vt->struct_size >= offsetof(sb_labeller_vtable, plan) + sizeof vt->plan && vt->plan;
    printf("%s: %zu utterances to label, %zu already in the store\n", desc, nt, have);
    if (!has_plan) {
        printf("  labeller %s (plugin %s) sends no requests; it has no plan to show\n", in->name,
               in->plugin->desc->name);
        return SB_OK;
    }
    sb_host host;
    host_priv hp;
    char cache[4096];
    sb_status st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, in, SBI_LABELLER_SEED,
                                 c->threads, cache, sizeof cache, err);
    if (st != SB_OK)
        return st;
    void *inst = NULL;
    char *text = NULL;
    sb_error e = { 0 };
    st = vt->create(&host, in->opts, &inst, &e);
    if (st == SB_OK)
        st = vt->plan(inst, ce->c, todo, nt, &text, &e);
    if (inst)
        vt->destroy(inst);
    if (st != SB_OK) {
        if (!e.code)
            sb_error_set(&e, st, in->name, "labeller %s could not plan", in->plugin->desc->name);
        if (err)
            *err = e;
        free(text);
        return st;
    }
    json_error_t je;
    json_t *p = text ? json_loads(text, 0, &je) : NULL;
    free(text);
    if (!json_is_object(p)) {
        json_decref(p);
        return sb_error_set(err, SB_ERR_PLUGIN, in->name,
                            "labeller %s returned a plan that is not a JSON object (plugin bug)",
                            in->plugin->desc->name);
    }
    json_t *v;
    if ((v = json_object_get(p, "requests")))
        printf("  requests to send:   %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    if ((v = json_object_get(p, "cached")))
        printf("  from the cache:     %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    if ((v = json_object_get(p, "prompt_tokens")))
        printf("  prompt tokens:      ~%.0f (estimate)\n", json_number_value(v));
    if ((v = json_object_get(p, "completion_tokens")))
        printf("  completion tokens:  ~%.0f (at most)\n", json_number_value(v));
    if ((v = json_object_get(p, "cost_usd")) && json_is_number(v))
        printf("  cost:               ~$%.4f (estimate)\n", json_number_value(v));
    else if (v)
        printf("  cost:               unknown (no price for this model in the config)\n");
    size_t i;
    json_t *note;
    json_array_foreach(json_object_get(p, "notes"), i, note)
        printf("  note: %s\n", json_string_value(note) ? json_string_value(note) : "?");
    if ((v = json_object_get(p, "example")) && json_is_string(v))
        printf("  one request, fully rendered:\n%s\n", json_string_value(v));
    json_decref(p);
    fflush(stdout);
    return SB_OK;
}

/* The labels entry of `key` on ce: found, or created and filled from the store. */
static sb_status labels_entry_get(ctx *c, const char *key, corpus_entry *ce, labels_entry **out,
                                  int *created, sb_error *err)
{
    *created = 0;
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i]->key, key) == 0) {
            *out = c->labels[i];
            return SB_OK;
        }
    const size_t n = sb_corpus_size(ce->c);
    labels_entry **nl = realloc(c->labels, (c->n_labels + 1) * sizeof *nl);
    if (!nl)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    c->labels = nl;
    labels_entry *le = calloc(1, sizeof *le);
    if (le) {
        le->labels = malloc((n + 1) * sizeof *le->labels);
        le->answered = calloc(n + 1, 1);
    }
    if (!le || !le->labels || !le->answered) {
        if (le)
            free(le->labels), free(le->answered);
        free(le);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    snprintf(le->key, sizeof le->key, "%s", key);
    le->ce = ce;
    for (size_t i = 0; i < n; i++)
        le->labels[i] = -1;
    c->labels[c->n_labels++] = le;
    *out = le;
    *created = 1;

    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(
        c->store, "SELECT utt_id, label, status FROM labels WHERE stage_key=?1", &q, err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
        long k = sb_corpus_find(ce->c, (const char *)sqlite3_column_text(q, 0));
        if (k < 0)
            continue;
        const char *status = (const char *)sqlite3_column_text(q, 2);
        if (status && strcmp(status, "invalid") == 0) {
            le->answered[k] = 1; /* a final answer: not asked again */
            continue;
        }
        int lab = sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 1);
        if (lab >= 0 && lab < sb_corpus_n_classes(ce->c)) {
            le->labels[k] = lab;
            le->answered[k] = 1;
        }
    }
    sqlite3_finalize(q);
    return SB_OK;
}

/* Remember that `split` was resolved; 1 if it already was. */
static int split_seen(labels_entry *le, const char *split)
{
    for (size_t i = 0; i < le->n_splits; i++)
        if (strcmp(le->splits[i], split) == 0)
            return 1;
    char **grown = realloc(le->splits, (le->n_splits + 1) * sizeof *grown);
    char *copy = sbi_strdup(split);
    if (!grown || !copy) {
        free(copy);
        if (grown)
            le->splits = grown;
        return 0; /* resolve it again rather than fail */
    }
    le->splits = grown;
    le->splits[le->n_splits++] = copy;
    return 0;
}

/* The completion mark of one split of a label stage. */
static void split_stage_key(const char *key, const char *split, char out[SB_HASH_HEX])
{
    sb_hasher *h = sb_hasher_create();
    sb_hasher_str(h, "labels-split/1");
    sb_hasher_str(h, key);
    sb_hasher_str(h, split);
    sb_hasher_hex(h, out);
    sb_hasher_destroy(&h);
}

static void log_debug_complete(const ctx *c, const char *desc, size_t have, size_t have_invalid)
{
    sbi_ui_log(c->ui, SB_LOG_DEBUG, NULL, "%s: complete in store (%zu labels, %zu invalid)", desc,
               have, have_invalid);
}

static int same_instance(const sbi_instance *a, const sbi_instance *b)
{
    return a && b && json_equal(a->canon, b->canon);
}

/* The splits of the dataset of `ref` that the plan labels with the labeller of `ref` (the same
 * labeller and dataset configuration, in any run of this invocation's shard): a labeller
 * labels those, in one pass, and nothing else (an LLM labeller named for training labels is
 * not paid to label the test split). list[0..return) point into the plan; ref's split first. */
static size_t splits_named(const ctx *c, const sbi_run *r, const sbi_split_ref *ref,
                           const char **list, size_t cap)
{
    const sbi_instance *lab = sbi_run_instance(r, SB_KIND_LABELLER, ref->labels);
    const sbi_instance *ds = sbi_run_instance(r, SB_KIND_DATASET, ref->dataset);
    size_t n = 0;
    list[n++] = ref->split;
    for (size_t i = 0; i < c->plan->n_runs; i++) {
        const sbi_run *q = &c->plan->runs[i];
        if (!sbi_in_shard(q, c->o->shard_i, c->o->shard_n))
            continue;
        for (size_t k = 0; k < 2 + q->n_tests; k++) {
            const sbi_split_ref *x = k == 0 ? &q->train : k == 1 ? &q->dev : &q->tests[k - 2];
            if (!x->dataset || !x->labels || !x->split)
                continue;
            if (!same_instance(sbi_run_instance(q, SB_KIND_LABELLER, x->labels), lab) ||
                !same_instance(sbi_run_instance(q, SB_KIND_DATASET, x->dataset), ds))
                continue;
            int seen = 0;
            for (size_t j = 0; j < n && !seen; j++)
                seen = strcmp(list[j], x->split) == 0;
            if (!seen && n < cap)
                list[n++] = x->split;
        }
    }
    return n;
}

/* The content of every file an option of the labeller names (SB_OPT_PATH: the imported
 * labeller's file, the llm labeller's prompt and system files): its options hold only the
 * path, so without this an edited file would leave its old labels in use. */
static sb_status hash_path_options(ctx *c, const sbi_instance *in, sb_hasher *h, sb_error *err)
{
    const sb_option *o = in->plugin->desc->options;
    for (; o && o->name; o++) {
        if (o->type != SB_OPT_PATH)
            continue;
        const char *path = sb_opts_str(in->opts, o->name);
        if (!path || !*path)
            continue;
        char hex[SB_HASH_HEX];
        sb_error e = { 0 };
        if (sbi_store_file_hash(c->store, path, hex, &e) != SB_OK)
            return sb_error_set(err, SB_ERR_CONFIG, in->where, "labeller %s: option %s: %s",
                                in->name, o->name, e.msg);
        sb_hasher_str(h, o->name);
        sb_hasher_str(h, hex);
    }
    return SB_OK;
}

sb_status sbi_get_labels(ctx *c, const sbi_run *r, const sbi_split_ref *ref, corpus_entry *ce,
                         labels_entry **out, sb_error *err)
{
    const sbi_instance *in = sbi_run_instance(r, SB_KIND_LABELLER, ref->labels);
    char key[SB_HASH_HEX];
    sb_hasher *h = sb_hasher_create();
    char *canon = json_dumps(in->canon, JSON_COMPACT | JSON_SORT_KEYS);
    sb_hasher_str(h, "labels/1");
    sb_hasher_str(h, canon);
    sb_hasher_str(h, ce->key);
    free(canon);
    sb_status hs = hash_path_options(c, in, h, err);
    sb_hasher_hex(h, key);
    sb_hasher_destroy(&h);
    if (hs != SB_OK)
        return hs;

    labels_entry *le = NULL;
    int created = 0;
    sb_status st = labels_entry_get(c, key, ce, &le, &created, err);
    if (st != SB_OK)
        return st;
    *out = le;
    if (created && c->o->label_readonly && c->o->on_labels)
        c->o->on_labels(c->o->on_labels_user, in, ce->c, key, le->labels);
    for (size_t i = 0; i < le->n_splits; i++)
        if (strcmp(le->splits[i], ref->split) == 0)
            return SB_OK; /* resolved with the other splits of this labeller */

    /* Every split the plan names this labeller for, resolved together. */
    enum { MAX_SPLITS = 64 };
    const char *splits[MAX_SPLITS];
    const size_t n_splits = splits_named(c, r, ref, splits, MAX_SPLITS);
    char split_keys[MAX_SPLITS][SB_HASH_HEX];
    char split_list[512] = "";
    int all_complete = 1;
    for (size_t k = 0; k < n_splits; k++) {
        split_stage_key(key, splits[k], split_keys[k]);
        all_complete &= sbi_store_stage_complete(c->store, split_keys[k]);
        size_t used = strlen(split_list);
        snprintf(split_list + used, sizeof split_list - used, "%s%s", k ? "," : "", splits[k]);
        split_seen(le, splits[k]);
    }
    const size_t n = sb_corpus_size(ce->c);
    size_t have = 0, have_invalid = 0, want = 0;
    size_t *todo = malloc((n + 1) * sizeof *todo), nt = 0;
    if (!todo)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *sp = sb_corpus_utt(ce->c, i)->split;
        int named = 0;
        for (size_t k = 0; k < n_splits && !named; k++)
            named = sbi_split_matches(splits[k], sp);
        if (!named || ce->excluded[i] ||
            !sbi_item_in_shard(sb_corpus_utt(ce->c, i)->id, c->o->items_i, c->o->items_n))
            continue;
        want++;
        if (!le->answered[i])
            todo[nt++] = i;
        else if (le->labels[i] >= 0)
            have++;
        else
            have_invalid++;
    }
    char desc[700];
    int len = snprintf(desc, sizeof desc, "labels %s on %s/%s", in->name, sb_corpus_name(ce->c),
                       split_list);
    /* An item shard labels part of each split: it must not mark a split complete, nor
     * leave stage rows that differ between shards (merge would see them as conflicts). */
    const int marks = c->o->items_n <= 0;
    if (!marks && len > 0 && (size_t)len < sizeof desc)
        snprintf(desc + len, sizeof desc - (size_t)len, " (items %d/%d)", c->o->items_i,
                 c->o->items_n);
    if (c->o->label_readonly) {
        free(todo);
        if (!all_complete)
            sbi_ui_log(c->ui, SB_LOG_WARN, NULL,
                       "%s: the store has %zu answers for %zu utterances (the stage is not "
                       "complete; serbench label CONFIG finishes it)",
                       desc, have + have_invalid, want);
        return SB_OK;
    }
    if (all_complete && !c->o->label_plan) {
        log_debug_complete(c, desc, have, have_invalid);
        free(todo);
        return SB_OK;
    }
    if (c->o->label_plan) {
        st = plan_labels(c, in, ce, desc, todo, nt, have + have_invalid, err);
        free(todo);
        return st;
    }
    if (nt == 0) {
        /* Every answer is stored (e.g. merged from item shards): mark the splits complete
         * without creating the labeller, which may need what this machine lacks (a key). */
        free(todo);
        log_debug_complete(c, desc, have, have_invalid);
        char info[160];
        snprintf(info, sizeof info,
                 "{\"labelled\":0,\"invalid\":0,\"failed\":0,\"from_store\":%zu,"
                 "\"labels_key\":\"%s\"}",
                 have + have_invalid, key);
        for (size_t k = 0; marks && st == SB_OK && k < n_splits; k++)
            st = sbi_store_stage_mark(c->store, split_keys[k], "labels", desc, "complete", info,
                                      err);
        return st;
    }
    sb_label_sink sink = {
        .c = c, .store = c->store, .stage_key = key, .ce = ce, .labels = le->labels, .n_todo = nt
    };
    pthread_mutex_init(&sink.lock, NULL);
    sbi_progress prog;
    sbi_progress_start(&prog, c->ui, desc, nt);
    sink.prog = &prog;
    /* The stage row of each split names the key of its label rows (labels.stage_key). */
    char running_info[128];
    snprintf(running_info, sizeof running_info, "{\"labels_key\":\"%s\"}", key);
    for (size_t k = 0; marks && st == SB_OK && k < n_splits; k++)
        st = sbi_store_stage_mark(c->store, split_keys[k], "labels", desc, "running", running_info,
                                  err);
    if (st == SB_OK)
        st = sbi_store_prepare(
            c->store,
            "INSERT OR REPLACE INTO labels(stage_key, utt_id, label, label_name, confidence, raw,"
            " status, reason, dist, detail) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            &sink.put, err);
    if (st == SB_OK)
        st = sbi_store_prepare(c->store, "INSERT OR REPLACE INTO item_failures VALUES(?1,?2,?3)",
                               &sink.fail, err);
    if (st == SB_OK)
        st = sbi_store_prepare(c->store,
                               "DELETE FROM item_failures WHERE stage_key=?1 AND utt_id=?2",
                               &sink.unfail, err);
    void *inst = NULL;
    const sb_labeller_vtable *vt = in->plugin->desc->vtable;
    sb_host host;
    host_priv hp;
    char cache[4096];
    if (st == SB_OK)
        st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, in, SBI_LABELLER_SEED,
                           c->threads, cache, sizeof cache, err);
    hp.prog = &prog;
    if (st == SB_OK) {
        sb_error e = { 0 };
        st = vt->create(&host, in->opts, &inst, &e);
        if (st == SB_OK)
            st = vt->label(inst, ce->c, todo, nt, &sink, &e);
        if (inst)
            vt->destroy(inst);
        if (st != SB_OK && err) {
            if (!e.code)
                sb_error_set(&e, st, in->name, "labeller %s failed", in->plugin->desc->name);
            *err = e;
        }
    }
    if (!sqlite3_get_autocommit(c->store->db)) {
        sb_error cerr = { 0 };
        sb_status cst = sbi_store_commit(c->store, &cerr);
        if (cst != SB_OK && st == SB_OK) {
            st = cst;
            if (err)
                *err = cerr;
        }
    }
    sqlite3_finalize(sink.put);
    sqlite3_finalize(sink.fail);
    sqlite3_finalize(sink.unfail);
    pthread_mutex_destroy(&sink.lock);
    free(todo);
    c->item_failures += sink.n_fail;
    if (st != SB_OK)
        return st;
    char summary[400];
    len = snprintf(summary, sizeof summary,
                   "%zu labelled, %zu invalid, %zu failed, %zu from the store", sink.n_ok,
                   sink.n_invalid, sink.n_fail, have + have_invalid);
    if (sink.prompt_tokens > 0 || sink.completion_tokens > 0)
        len += snprintf(summary + len, sizeof summary - (size_t)len,
                        "; %.0f prompt + %.0f completion tokens", sink.prompt_tokens,
                        sink.completion_tokens);
    if (sink.have_cost)
        len += snprintf(summary + len, sizeof summary - (size_t)len, ", $%.4f%s", sink.cost,
                        sink.n_cost_unknown ? " (partial)" : "");
    if (sink.n_cost_unknown)
        len += snprintf(summary + len, sizeof summary - (size_t)len,
                        ", cost unknown for %zu (no price for the model)", sink.n_cost_unknown);
    if (sink.n_cached)
        snprintf(summary + len, sizeof summary - (size_t)len,
                 "; %zu answers from the response cache", sink.n_cached);
    sbi_progress_finish(&prog, summary);
    if (sink.n_invalid)
        sbi_ui_log(c->ui, SB_LOG_WARN, NULL,
                   "%s: %zu answers were not a class of the label space; they are stored as "
                   "invalid (serbench export labels shows them) and are not used as targets",
                   desc, sink.n_invalid);
    json_t *info =
        json_pack("{s:I, s:I, s:I, s:f, s:f, s:I}", "labelled", (json_int_t)sink.n_ok, "invalid",
                  (json_int_t)sink.n_invalid, "failed", (json_int_t)sink.n_fail, "prompt_tokens",
                  sink.prompt_tokens, "completion_tokens", sink.completion_tokens,
                  "from_response_cache", (json_int_t)sink.n_cached);
    if (info)
        json_object_set_new(info, "labels_key", json_string(key));
    if (info && sink.have_cost)
        json_object_set_new(info, "cost_usd", json_real(sink.cost));
    if (info && sink.n_cost_unknown)
        json_object_set_new(info, "cost_unknown", json_integer((json_int_t)sink.n_cost_unknown));
    char *info_text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    for (size_t k = 0; marks && st == SB_OK && k < n_splits; k++)
        st = sbi_store_stage_mark(c->store, split_keys[k], "labels", desc,
                                  sink.n_fail == 0 ? "complete" : "running", info_text, err);
    free(info_text);
    return st;
}
