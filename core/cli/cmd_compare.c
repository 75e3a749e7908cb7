/* core/cli/cmd_compare.c — `serbench compare CONFIG RUN_A RUN_B [--test NAME] [--metric M]
 * [--resamples N] [--seed S] [--alpha A] [--json]`: is the difference between two systems
 * significant? A paired bootstrap over the test items both predicted and McNemar per
 * seed-matched pair of runs (serbench/signif.h), from the store (runs nothing). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* One complete run of a side. */
typedef struct run_row {
    char id[SB_HASH_HEX], group[SB_HASH_HEX];
    long long seed;
    json_t *config, *prov; /* owned */
} run_row;

/* RUN_A or RUN_B: a run, or all complete runs of a group. */
typedef struct side {
    char name;       /* 'A' or 'B' */
    const char *arg; /* as given */
    int is_group;
    run_row *runs;
    int n;
    char system[256]; /* "fbank + linear" */
} side;

typedef struct compare_opts {
    const char *test, *metric;
    long resamples;
    uint64_t seed;
    double alpha;
} compare_opts;

static void side_free(side *s)
{
    for (int i = 0; i < s->n; i++) {
        json_decref(s->runs[i].config);
        json_decref(s->runs[i].prov);
    }
    free(s->runs);
    s->runs = NULL;
    s->n = 0;
}

/* ---- arguments ----------------------------------------------------------------------- */

/* Take compare's own flags out of argv (into o); the rest goes to cli_parse. */
static int take_flags(int argc, char **argv, char **rest, int *n_rest, compare_opts *o)
{
    *n_rest = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        int mine =
            i >= 2 && (!strcmp(s, "--test") || !strcmp(s, "--metric") ||
                       !strcmp(s, "--resamples") || !strcmp(s, "--seed") || !strcmp(s, "--alpha"));
        if (!mine) {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "serbench: error: %s needs a value\n", s);
            return EXIT_USAGE;
        }
        i++;
        char *end = NULL;
        errno = 0;
        if (!strcmp(s, "--test")) {
            o->test = v;
        } else if (!strcmp(s, "--metric")) {
            o->metric = v;
        } else if (!strcmp(s, "--resamples")) {
            long r = strtol(v, &end, 10);
            if (!*v || *end || errno || r < 1 || r > 10000000) {
                fprintf(stderr,
                        "serbench: error: --resamples expects an integer from 1 to 10000000, "
                        "got '%s'\n",
                        v);
                return EXIT_USAGE;
            }
            o->resamples = r;
        } else if (!strcmp(s, "--seed")) {
            unsigned long long u = strtoull(v, &end, 10);
            /* at most 2^53: JSON numbers (the --json echo, the report's seed) hold it exactly */
            if (!*v || *end || errno || v[0] == '-' || u > (1ULL << 53)) {
                fprintf(stderr,
                        "serbench: error: --seed expects an integer from 0 to 2^53, got '%s'\n", v);
                return EXIT_USAGE;
            }
            o->seed = (uint64_t)u;
        } else {
            double al = strtod(v, &end);
            if (!*v || *end || errno || !(al > 0.0 && al < 1.0)) {
                fprintf(stderr,
                        "serbench: error: --alpha expects a number between 0 and 1 (exclusive), "
                        "got '%s'\n",
                        v);
                return EXIT_USAGE;
            }
            o->alpha = al;
        }
    }
    return 0;
}

/* ---- resolving RUN_A / RUN_B --------------------------------------------------------- */

/* The distinct values of `column` (run_id or group_id) that start with prefix; up to
 * `max` are copied into out. Returns the count, or -1 on a store error. */
static int matching_ids(sbi_store *store, const char *column, const char *prefix,
                        char out[][SB_HASH_HEX], int max, sb_error *err)
{
    char *sql = sbi_asprintf("SELECT DISTINCT %s FROM runs WHERE substr(%s, 1, ?2) = ?1 "
                             "ORDER BY 1",
                             column, column);
    sqlite3_stmt *q = NULL;
    if (!sql || sbi_store_prepare(store, sql, &q, err) != SB_OK) {
        free(sql);
        return -1;
    }
    free(sql);
    sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, (int)strlen(prefix));
    int n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n < max)
            snprintf(out[n], SB_HASH_HEX, "%s", (const char *)sqlite3_column_text(q, 0));
        n++;
    }
    sqlite3_finalize(q);
    return n;
}

/* "fbank + linear" from a run's resolved config (experiment.encoder may be a list). */
static void describe_system(const json_t *config, char *buf, size_t size)
{
    const json_t *ex = json_object_get(config, "experiment");
    const json_t *enc = json_object_get(ex, "encoder"), *head = json_object_get(ex, "head");
    sbi_buf b = { 0 };
    if (json_is_string(enc)) {
        sbi_buf_puts(&b, json_string_value(enc));
    } else if (json_is_array(enc)) {
        size_t i;
        json_t *e;
        json_array_foreach(enc, i, e)
        {
            if (i)
                sbi_buf_puts(&b, "+");
            sbi_buf_puts(&b, json_is_string(e) ? json_string_value(e) : "?");
        }
    }
    if (json_is_string(head))
        sbi_buf_printf(&b, "%s%s", b.len ? " + " : "", json_string_value(head));
    snprintf(buf, size, "%s", b.s ? b.s : "?");
    sbi_buf_free(&b);
}

/* Resolve s->arg to complete runs (ordered by seed). Exit 2 on an unknown or ambiguous id,
 * a run that is not complete, or a regression run. */
static sb_status resolve_side(sbi_store *store, side *s, int quiet, sb_error *err)
{
    const char *arg = s->arg;
    char where[64];
    snprintf(where, sizeof where, "RUN_%c", s->name);
    size_t len = strlen(arg);
    int hex = len >= 8 && len < SB_HASH_HEX;
    for (size_t i = 0; hex && i < len; i++)
        hex = (arg[i] >= '0' && arg[i] <= '9') || (arg[i] >= 'a' && arg[i] <= 'f');
    if (!hex)
        return sb_error_set(err, SB_ERR_USAGE, where,
                            "'%s' is not a run or group id: give a run id, a group id (all its "
                            "seeds) or a unique prefix of at least 8 lowercase hex digits "
                            "(sqlite3 RESULTS/serbench.db 'SELECT run_id, group_id, seed FROM "
                            "runs')",
                            arg);
    char runs[8][SB_HASH_HEX], groups[8][SB_HASH_HEX];
    int nr = matching_ids(store, "run_id", arg, runs, 8, err);
    int ng = nr < 0 ? -1 : matching_ids(store, "group_id", arg, groups, 8, err);
    if (nr < 0 || ng < 0)
        return err->code;
    if (nr + ng == 0)
        return sb_error_set(err, SB_ERR_NOT_FOUND, where,
                            "no run or group id in %s starts with '%s'", store->db_path, arg);

    /* A prefix of both a run id and a group id is not ambiguous when that group is that one
     * run. */
    if (nr == 1 && ng == 1) {
        sqlite3_stmt *q = NULL;
        if (sbi_store_prepare(store, "SELECT count(*), min(run_id) FROM runs WHERE group_id = ?1",
                              &q, err) != SB_OK)
            return err->code;
        sqlite3_bind_text(q, 1, groups[0], -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 1 &&
            sbi_streq((const char *)sqlite3_column_text(q, 1), runs[0]))
            ng = 0;
        sqlite3_finalize(q);
    }

    /* The runs to load: a run id, or a group id. */
    const char *sql = NULL, *key = NULL;
    if (nr == 1 && ng == 0) {
        sql = "SELECT run_id, group_id, seed, status, error, config, provenance FROM runs "
              "WHERE run_id = ?1";
        key = runs[0];
    } else if (nr == 0 && ng == 1) {
        sql = "SELECT run_id, group_id, seed, status, error, config, provenance FROM runs "
              "WHERE group_id = ?1 ORDER BY seed, run_id";
        key = groups[0];
        s->is_group = 1;
    } else {
        sbi_buf b = { 0 };
        for (int i = 0; i < nr && i < 8; i++)
            sbi_buf_printf(&b, "%srun %s", b.len ? ", " : "", runs[i]);
        for (int i = 0; i < ng && i < 8; i++)
            sbi_buf_printf(&b, "%sgroup %s", b.len ? ", " : "", groups[i]);
        sb_status st = sb_error_set(err, SB_ERR_USAGE, where,
                                    "'%s' is ambiguous: it starts %d run id%s and %d group "
                                    "id%s (%s%s); give more digits",
                                    arg, nr, nr == 1 ? "" : "s", ng, ng == 1 ? "" : "s",
                                    b.s ? b.s : "", nr > 8 || ng > 8 ? ", …" : "");
        sbi_buf_free(&b);
        return st;
    }
    sqlite3_stmt *q = NULL;
    if (sbi_store_prepare(store, sql, &q, err) != SB_OK)
        return err->code;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sb_status st = SB_OK;
    int skipped = 0;
    while (st == SB_OK && sqlite3_step(q) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        const char *status = (const char *)sqlite3_column_text(q, 3);
        if (!status || strcmp(status, "complete") != 0) {
            if (!s->is_group) {
                const char *why = (const char *)sqlite3_column_text(q, 4);
                st = sb_error_set(err, SB_ERR_INVALID, where,
                                  "run %s is %s%s%s; only a complete run has predictions to "
                                  "compare",
                                  id, status ? status : "?", why ? ": " : "", why ? why : "");
            }
            skipped++;
            continue;
        }
        run_row *grown = realloc(s->runs, (size_t)(s->n + 1) * sizeof *grown);
        if (!grown) {
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        s->runs = grown;
        run_row *r = &s->runs[s->n++];
        memset(r, 0, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", id);
        snprintf(r->group, sizeof r->group, "%s", (const char *)sqlite3_column_text(q, 1));
        r->seed = sqlite3_column_int64(q, 2);
        const char *cfg = (const char *)sqlite3_column_text(q, 5);
        const char *prov = (const char *)sqlite3_column_text(q, 6);
        r->config = cfg ? json_loads(cfg, 0, NULL) : NULL;
        r->prov = prov ? json_loads(prov, 0, NULL) : NULL;
        if (!r->config || !r->prov)
            st = sb_error_set(err, SB_ERR_SCHEMA, where,
                              "run %s has no readable config or provenance in %s", id,
                              store->db_path);
        else if (sbi_streq(json_string_value(json_object_get(r->prov, "target")), "value"))
            st = sb_error_set(err, SB_ERR_INVALID, where,
                              "run %s is a regression run (experiment.target: value); compare "
                              "tests classification runs (class predictions)",
                              id);
    }
    sqlite3_finalize(q);
    if (st != SB_OK)
        return st;
    if (s->n == 0)
        return sb_error_set(err, SB_ERR_INVALID, where,
                            "group %s has no complete run (%d not complete)", key, skipped);
    if (skipped && !quiet)
        fprintf(stderr, "serbench: compare: group %s: %d run%s not complete, left out\n", key,
                skipped, skipped == 1 ? "" : "s");
    describe_system(s->runs[0].config, s->system, sizeof s->system);
    return SB_OK;
}

/* ---- one test set -------------------------------------------------------------------- */

/* The classes of test `name` in a run's provenance (its scoring space), or NULL. */
static json_t *test_classes(const run_row *r, const char *name)
{
    json_t *t = json_object_get(json_object_get(r->prov, "tests"), name);
    json_t *c = json_object_get(t, "classes");
    return json_is_array(c) ? c : NULL;
}

/* Does every run of both sides have test `name`, with one and the same scoring space? */
static int common_test(const side *a, const side *b, const char *name)
{
    json_t *classes = test_classes(&a->runs[0], name);
    if (!classes)
        return 0;
    const side *sides[2] = { a, b };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < sides[k]->n; i++)
            if (!test_classes(&sides[k]->runs[i], name))
                return 0;
    return 1;
}

typedef struct test_data {
    size_t n;        /* common items */
    char **utt;      /* [n], sorted as SQLite's BINARY collation (memcmp) */
    int32_t *gold;   /* [n] */
    int32_t *pred_a; /* [seeds_a][n] */
    int32_t *pred_b; /* [seeds_b][n] */
    int K;           /* classes of the scoring space */
    size_t n_a, n_b; /* items predicted by A's and B's first run */
} test_data;

static void test_data_free(test_data *d)
{
    for (size_t i = 0; d->utt && i < d->n; i++)
        free(d->utt[i]);
    free(d->utt);
    free(d->gold);
    free(d->pred_a);
    free(d->pred_b);
    memset(d, 0, sizeof *d);
}

/* The run ids of both sides as a JSON array text (for json_each), and how many distinct. */
static char *run_list(const side *a, const side *b, int *distinct)
{
    json_t *arr = json_array();
    const side *sides[2] = { a, b };
    *distinct = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < sides[k]->n; i++) {
            const char *id = sides[k]->runs[i].id;
            int seen = 0;
            size_t j;
            json_t *v;
            json_array_foreach(arr, j, v)
            {
                seen |= !strcmp(json_string_value(v), id);
            }
            if (!seen) {
                json_array_append_new(arr, json_string(id));
                (*distinct)++;
            }
        }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* One run's predictions of `test` for the common items, into row[n]. */
static sb_status load_preds(sbi_store *store, const run_row *r, const char *test,
                            const test_data *d, int32_t *row, size_t *n_items, sb_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sbi_store_prepare(store,
                          "SELECT utt_id, pred FROM predictions WHERE run_id = ?1 AND test = ?2 "
                          "ORDER BY utt_id",
                          &q, err) != SB_OK)
        return err->code;
    sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, test, -1, SQLITE_STATIC);
    size_t i = 0, seen = 0;
    sb_status st = SB_OK;
    while (st == SB_OK && sqlite3_step(q) == SQLITE_ROW) {
        seen++;
        const char *utt = (const char *)sqlite3_column_text(q, 0);
        while (i < d->n && strcmp(d->utt[i], utt) < 0)
            i++;
        if (i == d->n || strcmp(d->utt[i], utt) != 0)
            continue; /* not predicted by every run */
        if (sqlite3_column_type(q, 1) != SQLITE_INTEGER)
            st = sb_error_set(err, SB_ERR_INVALID, test,
                              "run %s: the prediction for %s is not a class index", r->id, utt);
        else {
            sqlite3_int64 p = sqlite3_column_int64(q, 1);
            if (p < 0 || p >= d->K)
                st = sb_error_set(err, SB_ERR_INVALID, test,
                                  "run %s predicts class %lld for %s, outside the %d classes of "
                                  "the test's scoring space",
                                  r->id, (long long)p, utt, d->K);
            row[i++] = (int32_t)p;
        }
    }
    sqlite3_finalize(q);
    if (n_items)
        *n_items = seen;
    return st;
}

/* Gold labels of the items every run of both sides predicted, and each run's predictions. */
static sb_status load_test(sbi_store *store, const side *a, const side *b, const char *test,
                           test_data *d, sb_error *err)
{
    memset(d, 0, sizeof *d);
    d->K = (int)json_array_size(test_classes(&a->runs[0], test));
    json_t *classes_a = test_classes(&a->runs[0], test);
    for (int i = 0; i < b->n; i++)
        if (!json_equal(classes_a, test_classes(&b->runs[i], test))) {
            char *ca = json_dumps(classes_a, JSON_COMPACT);
            char *cb = json_dumps(test_classes(&b->runs[i], test), JSON_COMPACT);
            sb_status st = sb_error_set(err, SB_ERR_INVALID, test,
                                        "runs of different label spaces: A (run %s) scores this "
                                        "test in %s, B (run %s) in %s",
                                        a->runs[0].id, ca ? ca : "?", b->runs[i].id, cb ? cb : "?");
            free(ca);
            free(cb);
            return st;
        }
    int distinct = 0;
    char *ids = run_list(a, b, &distinct);
    sqlite3_stmt *q = NULL;
    if (!ids || sbi_store_prepare(store,
                                  "SELECT utt_id, min(gold), max(gold) FROM predictions "
                                  "WHERE test = ?1 AND gold IS NOT NULL AND gold >= 0 AND "
                                  "run_id IN (SELECT value FROM json_each(?2)) GROUP BY utt_id "
                                  "HAVING count(DISTINCT run_id) = ?3 ORDER BY utt_id",
                                  &q, err) != SB_OK) {
        free(ids);
        return err->code ? err->code : SB_ERR_NOMEM;
    }
    sqlite3_bind_text(q, 1, test, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, ids, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, distinct);
    size_t cap = 0;
    sb_status st = SB_OK;
    while (st == SB_OK && sqlite3_step(q) == SQLITE_ROW) {
        const char *utt = (const char *)sqlite3_column_text(q, 0);
        sqlite3_int64 g0 = sqlite3_column_int64(q, 1), g1 = sqlite3_column_int64(q, 2);
        if (g0 != g1) {
            st = sb_error_set(err, SB_ERR_INVALID, test,
                              "item %s has gold class %lld in one run and %lld in another: the "
                              "runs score different labels",
                              utt, (long long)g0, (long long)g1);
            break;
        }
        if (g0 >= d->K) {
            st = sb_error_set(err, SB_ERR_INVALID, test,
                              "item %s has gold class %lld, outside the %d classes of the "
                              "test's scoring space",
                              utt, (long long)g0, d->K);
            break;
        }
        if (d->n == cap) {
            cap = cap ? 2 * cap : 256;
            char **u = realloc(d->utt, cap * sizeof *u);
            int32_t *g = u ? realloc(d->gold, cap * sizeof *g) : NULL;
            if (u)
                d->utt = u;
            if (g)
                d->gold = g;
            if (!u || !g) {
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                break;
            }
        }
        d->utt[d->n] = sbi_strdup(utt);
        d->gold[d->n++] = (int32_t)g0;
    }
    sqlite3_finalize(q);
    free(ids);
    if (st != SB_OK)
        return st;
    if (d->n == 0)
        return sb_error_set(err, SB_ERR_INVALID, test,
                            "no common items: no test item was predicted by every run of A "
                            "and of B");
    d->pred_a = malloc((size_t)a->n * d->n * sizeof *d->pred_a);
    d->pred_b = malloc((size_t)b->n * d->n * sizeof *d->pred_b);
    if (!d->pred_a || !d->pred_b)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; st == SB_OK && i < a->n; i++)
        st = load_preds(store, &a->runs[i], test, d, d->pred_a + (size_t)i * d->n,
                        i == 0 ? &d->n_a : NULL, err);
    for (int i = 0; st == SB_OK && i < b->n; i++)
        st = load_preds(store, &b->runs[i], test, d, d->pred_b + (size_t)i * d->n,
                        i == 0 ? &d->n_b : NULL, err);
    return st;
}

/* ---- output -------------------------------------------------------------------------- */

static json_t *side_json(const side *s)
{
    json_t *runs = json_array();
    for (int i = 0; i < s->n; i++)
        json_array_append_new(runs, json_pack("{s:s, s:I}", "run_id", s->runs[i].id, "seed",
                                              (json_int_t)s->runs[i].seed));
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", s->arg, "kind",
                     s->is_group ? "group" : "run", "group_id", s->runs[0].group, "system",
                     s->system, "runs", runs);
}

static void print_side(const side *s)
{
    printf("%c: %s %.*s (%s), %d run%s, seed%s", s->name, s->is_group ? "group" : "run", 12,
           s->is_group ? s->runs[0].group : s->runs[0].id, s->system, s->n, s->n == 1 ? "" : "s",
           s->n == 1 ? "" : "s");
    for (int i = 0; i < s->n; i++)
        printf("%s %lld", i ? "," : "", s->runs[i].seed);
    printf("\n");
}

/* McNemar for each seed-matched pair (one pair when both sides are one run). */
static sb_status mcnemar_pairs(const side *a, const side *b, const test_data *d, json_t *out,
                               sbi_buf *text, sb_error *err)
{
    int single = a->n == 1 && b->n == 1, pairs = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++) {
            if (!single && a->runs[i].seed != b->runs[j].seed)
                continue;
            sb_mcnemar m;
            if (sb_mcnemar_test(d->gold, d->pred_a + (size_t)i * d->n, d->pred_b + (size_t)j * d->n,
                                d->n, &m, err) != SB_OK)
                return err->code;
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "run_a",
                               a->runs[i].id, "run_b", b->runs[j].id, "seed_a",
                               (json_int_t)a->runs[i].seed, "seed_b", (json_int_t)b->runs[j].seed,
                               "n", (json_int_t)m.n, "b", (json_int_t)m.b, "c", (json_int_t)m.c,
                               "statistic", m.statistic, "p_exact", m.p_exact, "p_chi2", m.p_chi2));
            if (a->runs[i].seed == b->runs[j].seed)
                sbi_buf_printf(text, "%s seed %lld: b = %ld, c = %ld, exact p = %.3g",
                               pairs ? ";" : "", a->runs[i].seed, m.b, m.c, m.p_exact);
            else
                sbi_buf_printf(text, "%s seeds %lld/%lld: b = %ld, c = %ld, exact p = %.3g",
                               pairs ? ";" : "", a->runs[i].seed, b->runs[j].seed, m.b, m.c,
                               m.p_exact);
            pairs++;
        }
    if (pairs == 0)
        sbi_buf_puts(text, " no seed-matched pair of runs (A and B ran different seeds)");
    return SB_OK;
}

static sb_status compare_test(sbi_store *store, const side *a, const side *b, const char *test,
                              const compare_opts *o, int as_json, json_t *tests, sb_error *err)
{
    test_data d;
    sb_status st = load_test(store, a, b, test, &d, err);
    if (st != SB_OK) {
        test_data_free(&d);
        return st;
    }
    sb_paired_test t;
    st = sb_paired_bootstrap(d.gold, d.pred_a, a->n, d.pred_b, b->n, d.n, d.K, o->metric,
                             o->resamples, o->alpha, o->seed, &t, err);
    json_t *mc = json_array();
    sbi_buf mtext = { 0 };
    if (st == SB_OK)
        st = mcnemar_pairs(a, b, &d, mc, &mtext, err);
    if (st != SB_OK) {
        json_decref(mc);
        sbi_buf_free(&mtext);
        test_data_free(&d);
        return st;
    }
    int significant = t.p_bootstrap < o->alpha;
    json_array_append_new(
        tests, json_pack("{s:s, s:I, s:I, s:I, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:o}",
                         "test", test, "n", (json_int_t)t.n, "n_a", (json_int_t)d.n_a, "n_b",
                         (json_int_t)d.n_b, "classes", d.K, "score_a", t.score_a, "score_b",
                         t.score_b, "diff", t.diff, "ci_lo", t.ci_lo, "ci_hi", t.ci_hi,
                         "p_bootstrap", t.p_bootstrap, "significant", significant, "mcnemar", mc));
    if (!as_json) {
        double conf = 100.0 * (1.0 - o->alpha);
        printf("\n%s: %zu items both predicted (A %zu, B %zu), %d classes\n", test, t.n, d.n_a,
               d.n_b, d.K);
        printf("  %-10s A %.2f   B %.2f   A - B %+.2f, %g%% CI [%+.2f, %+.2f]\n", o->metric,
               100 * t.score_a, 100 * t.score_b, 100 * t.diff, conf, 100 * t.ci_lo, 100 * t.ci_hi);
        printf("  bootstrap  p = %.4g\n", t.p_bootstrap);
        printf("  McNemar   %s\n", mtext.s ? mtext.s : "");
        printf("  %s at alpha %g (bootstrap p %s %g)\n",
               significant ? "significant" : "not significant", o->alpha,
               significant ? "<" : ">=", o->alpha);
    }
    sbi_buf_free(&mtext);
    test_data_free(&d);
    return SB_OK;
}

/* The metric when --metric is not given: the first classification metric of A's
 * experiment.metrics, else ua. */
static const char *default_metric(const side *a)
{
    json_t *list = json_object_get(json_object_get(a->runs[0].config, "experiment"), "metrics");
    size_t i;
    json_t *m;
    sb_cls_metrics probe = { 0 };
    double v;
    json_array_foreach(list, i, m)
    {
        if (json_is_string(m) && sb_metrics_get(&probe, json_string_value(m), &v) == 0)
            return json_string_value(m);
    }
    return "ua";
}

static int run_compare(const cli_args *args, sbi_store *store, compare_opts *o)
{
    sb_error err = { 0 };
    side a = { .name = 'A', .arg = args->positional[0] };
    side b = { .name = 'B', .arg = args->positional[1] };
    int rc = 0;
    json_t *tests = json_array();
    if (resolve_side(store, &a, args->quiet, &err) != SB_OK ||
        resolve_side(store, &b, args->quiet, &err) != SB_OK) {
        rc = cli_fail(&err);
        goto done;
    }
    const char *ls_a = json_string_value(json_object_get(a.runs[0].prov, "label_space"));
    const char *ls_b = json_string_value(json_object_get(b.runs[0].prov, "label_space"));
    if (!sbi_streq(ls_a, ls_b)) {
        sb_error_set(&err, SB_ERR_INVALID, NULL,
                     "runs of different label spaces: A (run %s) was trained on '%s', B (run "
                     "%s) on '%s'",
                     a.runs[0].id, ls_a ? ls_a : "?", b.runs[0].id, ls_b ? ls_b : "?");
        rc = cli_fail(&err);
        goto done;
    }
    if (!o->metric)
        o->metric = default_metric(&a);
    sb_cls_metrics probe = { 0 };
    double v;
    if (sb_metrics_get(&probe, o->metric, &v) != 0) {
        fprintf(stderr,
                "serbench: error: --metric '%s' is not a classification metric (wa, ua, "
                "macro_f1, weighted_f1, micro_f1)\n",
                o->metric);
        rc = EXIT_USAGE;
        goto done;
    }

    /* The tests every run of both sides has, in the order of A's experiment.test. */
    json_t *order = json_object_get(json_object_get(a.runs[0].config, "experiment"), "test");
    const char *names[256];
    int n_tests = 0, have_wanted = 0;
    sbi_buf all = { 0 };
    size_t i;
    json_t *t;
    json_array_foreach(order, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name || !common_test(&a, &b, name) || n_tests == 256)
            continue;
        sbi_buf_printf(&all, "%s%s", all.len ? ", " : "", name);
        if (o->test && strcmp(o->test, name) != 0)
            continue;
        have_wanted = 1;
        names[n_tests++] = name;
    }
    if (!have_wanted) {
        if (o->test)
            fprintf(stderr,
                    "serbench: error: --test %s: not a test set both A and B were scored on "
                    "(common: %s)\n",
                    o->test, all.s ? all.s : "none");
        else
            fprintf(stderr, "serbench: error: A and B share no test set: nothing to compare on\n");
        sbi_buf_free(&all);
        rc = EXIT_USAGE;
        goto done;
    }
    sbi_buf_free(&all);

    if (!args->json) {
        print_side(&a);
        print_side(&b);
        printf("metric %s; paired bootstrap over items: %ld resamples, seed %llu; alpha %g\n",
               o->metric, o->resamples, (unsigned long long)o->seed, o->alpha);
    }
    for (int k = 0; k < n_tests; k++)
        if (compare_test(store, &a, &b, names[k], o, args->json, tests, &err) != SB_OK) {
            rc = cli_fail(&err);
            goto done;
        }
    if (args->json) {
        json_t *doc =
            json_pack("{s:s, s:f, s:I, s:I, s:o, s:o, s:O}", "metric", o->metric, "alpha", o->alpha,
                      "resamples", (json_int_t)o->resamples, "seed", (json_int_t)o->seed, "a",
                      side_json(&a), "b", side_json(&b), "tests", tests);
        char *text =
            json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
    }
done:
    json_decref(tests);
    side_free(&a);
    side_free(&b);
    return rc;
}

int cmd_compare(int argc, char **argv)
{
    compare_opts o = { .resamples = 1000, .seed = 0, .alpha = 0.05 };
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    cli_args a = { 0 };
    int rc = rest ? take_flags(argc, argv, rest, &n_rest, &o) : EXIT_USAGE;
    if (!rc)
        rc = cli_parse(n_rest, rest, 1, &a);
    if (!rc && a.n_positional != 2) {
        fprintf(stderr,
                "serbench: error: compare needs two run or group ids after the config, got %zu; "
                "see 'serbench help'\n",
                a.n_positional);
        rc = EXIT_USAGE;
    }
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc)
        rc = cli_open_existing_store(&a, plan, EXIT_USAGE, &store);
    if (!rc)
        rc = run_compare(&a, store, &o);
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    free(rest);
    return rc;
}
