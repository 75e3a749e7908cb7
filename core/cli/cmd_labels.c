/* core/cli/cmd_labels.c — the label store seen from outside:
 *   serbench export labels CONFIG --out FILE.csv [--format csv|melt] [--labeller L] [--dataset D]
 *   serbench agree CONFIG [--dataset D] [--split S] [--json]
 * Both read the labels the config's label stages hold (nothing is labelled here; a stage
 * that is not complete is reported) through the pipeline's read-only label pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* One label stage the plan uses. */
typedef struct stage {
    const sbi_instance *labeller;
    const sb_corpus *corpus; /* owned by the pipeline: valid only during the pass */
    char key[SB_HASH_HEX];
    int32_t *labels; /* copy, [n] */
} stage;

typedef struct collect {
    const cli_args *a;
    sbi_store *store;
    stage *st;
    size_t n;
    int (*each)(struct collect *c, stage *s); /* called as each stage arrives; nonzero = stop */
    FILE *out;
    json_t *report; /* agree: per corpus */
    int failed;
    sb_error err;
} collect;

static void on_labels(void *user, const sbi_instance *labeller, const sb_corpus *corpus,
                      const char *stage_key, const int32_t *labels)
{
    collect *c = user;
    if (c->failed)
        return;
    if (c->a->labeller && strcmp(c->a->labeller, labeller->name) != 0)
        return;
    if (c->a->dataset && strcmp(c->a->dataset, sb_corpus_name(corpus)) != 0)
        return;
    stage *grown = realloc(c->st, (c->n + 1) * sizeof *grown);
    size_t n = sb_corpus_size(corpus);
    int32_t *copy = malloc((n + 1) * sizeof *copy);
    if (!grown || !copy) {
        free(copy);
        if (grown)
            c->st = grown;
        c->failed = 1;
        sb_error_set(&c->err, SB_ERR_NOMEM, NULL, "out of memory");
        return;
    }
    c->st = grown;
    memcpy(copy, labels, n * sizeof *copy);
    stage *s = &c->st[c->n++];
    s->labeller = labeller;
    s->corpus = corpus;
    snprintf(s->key, sizeof s->key, "%s", stage_key);
    s->labels = copy;
    if (c->each && c->each(c, s))
        c->failed = 1;
}

/* Run the read-only label pass over the plan, calling c->each per stage. */
static int collect_stages(const cli_args *a, collect *c, sbi_plan **plan, sbi_store **store)
{
    int rc = cli_load_plan(a, plan);
    if (!rc)
        rc = cli_open_store(a, *plan, store);
    if (rc)
        return rc;
    c->store = *store;
    sbi_ui ui;
    sbi_ui_init(&ui, a->quiet, a->verbose);
    sbi_exec_opts o = { .jobs = 1,
                        .threads = a->threads,
                        .stage = SBI_STAGE_LABELS,
                        .label_readonly = 1,
                        .on_labels = on_labels,
                        .on_labels_user = c,
                        .ui = &ui };
    sbi_exec_summary sum;
    sb_error err = { 0 };
    if (sbi_execute(*plan, *store, &o, &sum, &err) != SB_OK)
        return cli_fail(&err);
    if (c->failed)
        return cli_fail(&c->err);
    if (c->n == 0) {
        fprintf(stderr,
                "serbench: error: the config uses no label stage%s%s%s%s; check --labeller and "
                "--dataset against its experiment\n",
                a->labeller ? " with labeller " : "", a->labeller ? a->labeller : "",
                a->dataset ? " on dataset " : "", a->dataset ? a->dataset : "");
        return EXIT_USAGE;
    }
    return 0;
}

static void free_stages(collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->st[i].labels);
    free(c->st);
}

/* ---- export labels ---------------------------------------------------------------------- */

static void csv_field(sbi_buf *b, const char *s, int last)
{
    sbi_buf_csv_field(b, s ? s : "");
    sbi_buf_puts(b, last ? "\r\n" : ",");
}

/* "HH:MM:SS,mmm" as in MELD's StartTime/EndTime. */
static void meld_time(double sec, char *buf, size_t n)
{
    long ms = lround(sec * 1000.0);
    snprintf(buf, n, "%02ld:%02ld:%02ld,%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
             ms % 1000);
}

/* A MELD column from the utterance's meta JSON, as text. */
static void meta_field(sbi_buf *b, json_t *meta, const char *key)
{
    json_t *v = json_object_get(meta, key);
    char tmp[64] = "";
    if (json_is_string(v)) {
        csv_field(b, json_string_value(v), 0);
        return;
    }
    if (json_is_integer(v))
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    csv_field(b, tmp, 0);
}

static int export_stage(collect *c, stage *s)
{
    const int melt = c->a->format && strcmp(c->a->format, "melt") == 0;
    sqlite3_stmt *q = NULL;
    if (sbi_store_prepare(c->store,
                          "SELECT utt_id, label_name, confidence, status, reason, raw FROM labels "
                          "WHERE stage_key=?1",
                          &q, &c->err) != SB_OK)
        return 1;
    sqlite3_bind_text(q, 1, s->key, -1, SQLITE_STATIC);
    const size_t n = sb_corpus_size(s->corpus);
    /* Rows in corpus order: index the store's rows by corpus position. */
    char **name = calloc(n + 1, sizeof *name), **status = calloc(n + 1, sizeof *status);
    char **conf = calloc(n + 1, sizeof *conf), **raw = calloc(n + 1, sizeof *raw);
    char **reason = calloc(n + 1, sizeof *reason);
    if (!name || !status || !conf || !raw || !reason) {
        sqlite3_finalize(q);
        free(name), free(status), free(conf), free(raw), free(reason);
        sb_error_set(&c->err, SB_ERR_NOMEM, NULL, "out of memory");
        return 1;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        long i = sb_corpus_find(s->corpus, (const char *)sqlite3_column_text(q, 0));
        if (i < 0)
            continue;
        const char *t;
        name[i] = (t = (const char *)sqlite3_column_text(q, 1)) ? sbi_strdup(t) : NULL;
        if (sqlite3_column_type(q, 2) != SQLITE_NULL)
            conf[i] = sbi_asprintf("%.6g", sqlite3_column_double(q, 2));
        status[i] = (t = (const char *)sqlite3_column_text(q, 3)) ? sbi_strdup(t) : NULL;
        reason[i] = (t = (const char *)sqlite3_column_text(q, 4)) ? sbi_strdup(t) : NULL;
        raw[i] = (t = (const char *)sqlite3_column_text(q, 5)) ? sbi_strdup(t) : NULL;
    }
    sqlite3_finalize(q);
    sbi_buf b = { 0 };
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (!status[i])
            continue;
        const sb_utt *u = sb_corpus_utt(s->corpus, i);
        rows++;
        if (!melt) {
            csv_field(&b, sb_corpus_name(s->corpus), 0);
            csv_field(&b, s->labeller->name, 0);
            csv_field(&b, u->id, 0);
            csv_field(&b, u->split, 0);
            csv_field(&b, name[i], 0);
            csv_field(&b, conf[i], 0);
            csv_field(&b, status[i], 0);
            csv_field(&b, strcmp(status[i], "ok") ? reason[i] : NULL, 0);
            csv_field(&b, raw[i], 1);
            continue;
        }
        /* MELT's layout: MELD's columns, then the labeller's label as llm_label (the raw
         * answer for an invalid one, as MELT's own files keep out-of-schema labels). */
        json_t *meta = u->meta ? json_loads(u->meta, 0, NULL) : NULL;
        long d = -1;
        const char *dia = u->dialogue ? strrchr(u->dialogue, '/') : NULL;
        if (dia && sscanf(dia, "/dia%ld", &d) != 1)
            d = -1;
        char tmp[96];
        snprintf(tmp, sizeof tmp, "dia%ld_utt%ld.wav", d, (long)u->turn);
        csv_field(&b, tmp, 0);
        meta_field(&b, meta, "sr_no");
        csv_field(&b, u->text, 0);
        csv_field(&b, u->speaker, 0);
        meta_field(&b, meta, "emotion");
        meta_field(&b, meta, "sentiment");
        snprintf(tmp, sizeof tmp, "%ld", d);
        csv_field(&b, tmp, 0);
        snprintf(tmp, sizeof tmp, "%ld", (long)u->turn);
        csv_field(&b, tmp, 0);
        meta_field(&b, meta, "season");
        meta_field(&b, meta, "episode");
        json_t *t0 = json_object_get(meta, "start_time"), *t1 = json_object_get(meta, "end_time");
        tmp[0] = 0;
        if (json_is_number(t0))
            meld_time(json_number_value(t0), tmp, sizeof tmp);
        csv_field(&b, tmp, 0);
        tmp[0] = 0;
        if (json_is_number(t1))
            meld_time(json_number_value(t1), tmp, sizeof tmp);
        csv_field(&b, tmp, 0);
        csv_field(&b, strcmp(status[i], "ok") ? raw[i] : name[i], 1);
        json_decref(meta);
    }
    for (size_t i = 0; i < n; i++)
        free(name[i]), free(status[i]), free(conf[i]), free(raw[i]), free(reason[i]);
    free(name), free(status), free(conf), free(raw), free(reason);
    if (b.len && fwrite(b.s, 1, b.len, c->out) != b.len) {
        free(b.s);
        sb_error_set(&c->err, SB_ERR_IO, c->a->out, "cannot write");
        return 1;
    }
    free(b.s);
    fprintf(stderr, "serbench: %zu labels of %s on %s\n", rows, s->labeller->name,
            sb_corpus_name(s->corpus));
    return 0;
}

int cmd_export_labels(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    const int melt = !rc && a.format && strcmp(a.format, "melt") == 0;
    if (!rc && a.format && !melt && strcmp(a.format, "csv") != 0) {
        fprintf(stderr, "serbench: error: --format for labels is csv or melt (got '%s')\n",
                a.format);
        rc = EXIT_USAGE;
    }
    if (!rc && !a.out) {
        fprintf(stderr, "serbench: error: export labels needs --out FILE.csv\n");
        rc = EXIT_USAGE;
    }
    if (!rc && melt && !a.labeller) {
        fprintf(stderr, "serbench: error: --format melt writes one labeller's labels as "
                        "llm_label: name it with --labeller\n");
        rc = EXIT_USAGE;
    }
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    collect c = { .a = &a, .each = export_stage };
    char *tmp = NULL;
    if (rc)
        goto out;
    tmp = sbi_asprintf("%s.tmp", a.out);
    c.out = tmp ? fopen(tmp, "wb") : NULL;
    if (!c.out) {
        fprintf(stderr, "serbench: error: %s: cannot write\n", a.out);
        rc = EXIT_USAGE;
        goto out;
    }
    fputs(melt ? "filename,Sr_No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,"
                 "Season,Episode,StartTime,EndTime,llm_label\r\n"
               : "dataset,labeller,utt_id,split,label,confidence,status,reason,raw\r\n",
          c.out);
    rc = collect_stages(&a, &c, &plan, &store);
    if (fclose(c.out) != 0 && !rc) {
        fprintf(stderr, "serbench: error: %s: cannot write\n", a.out);
        rc = EXIT_USAGE;
    }
    if (!rc && melt && c.n > 1)
        fprintf(stderr,
                "serbench: note: %zu label stages went into one MELT file (one per dataset)\n",
                c.n);
    if (!rc && rename(tmp, a.out) != 0) {
        fprintf(stderr, "serbench: error: %s: cannot write\n", a.out);
        rc = EXIT_USAGE;
    }
    if (rc)
        remove(tmp);
out:
    free(tmp);
    free_stages(&c);
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}

/* ---- agree -------------------------------------------------------------------------------- */

static int in_split(const cli_args *a, const sb_utt *u)
{
    return !a->split || strcmp(a->split, u->split) == 0;
}

/* Pairwise statistics of two labellers on one corpus. */
static json_t *pair_json(const cli_args *a, const stage *x, const stage *y, sb_error *err)
{
    const sb_corpus *cp = x->corpus;
    const size_t n = sb_corpus_size(cp);
    const int k = sb_corpus_n_classes(cp);
    int32_t *la = malloc((n + 1) * sizeof *la), *lb = malloc((n + 1) * sizeof *lb);
    if (!la || !lb) {
        free(la), free(lb);
        sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_split(a, sb_corpus_utt(cp, i)))
            continue;
        la[m] = x->labels[i];
        lb[m] = y->labels[i];
        m++;
    }
    sb_agree_pair p = { 0 };
    json_t *j = NULL;
    if (sb_agree_pair_compute(la, lb, m, k, &p, err) == SB_OK) {
        json_t *conf = json_array();
        for (int r = 0; r < k; r++) {
            json_t *row = json_array();
            for (int col = 0; col < k; col++)
                json_array_append_new(row, json_integer((json_int_t)p.confusion[r * k + col]));
            json_array_append_new(conf, row);
        }
        j = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o}", "a", x->labeller->name, "b",
                      y->labeller->name, "n", (json_int_t)p.n, "missing", (json_int_t)p.n_missing,
                      "raw", isnan(p.raw) ? json_null() : json_real(p.raw), "cohen_kappa",
                      isnan(p.kappa) ? json_null() : json_real(p.kappa), "cohen_kappa_se",
                      isnan(p.kappa_se) ? json_null() : json_real(p.kappa_se), "confusion", conf);
    }
    sb_agree_pair_free(&p);
    free(la), free(lb);
    return j;
}

/* Agreement among the corpus's own raters (e.g. IEMOCAP's C- lines): categories are the
 * raters' label texts as given. Krippendorff's alpha over every item with >= 2 ratings;
 * Fleiss' kappa over the items with the most common number of ratings (its chance model
 * needs one count), saying how many items that is. */
static json_t *raters_json(const cli_args *a, const sb_corpus *cp, sb_error *err)
{
    const size_t n = sb_corpus_size(cp);
    json_t *cats = json_object(); /* label text -> index */
    size_t n_rated = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_split(a, sb_corpus_utt(cp, i)))
            continue;
        size_t nr = sb_corpus_n_ratings(cp, i);
        n_rated += nr > 0;
        for (size_t r = 0; r < nr; r++) {
            const char *t = sb_corpus_rating(cp, i, r, NULL);
            if (t && !json_object_get(cats, t))
                json_object_set_new(cats, t, json_integer((json_int_t)json_object_size(cats)));
        }
    }
    const int k = (int)json_object_size(cats);
    if (n_rated == 0 || k == 0) {
        json_decref(cats);
        return NULL;
    }
    uint32_t *counts = calloc(n * (size_t)k + 1, sizeof *counts);
    size_t *by_m = calloc(64, sizeof *by_m);
    if (!counts || !by_m) {
        free(counts), free(by_m), json_decref(cats);
        sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_split(a, sb_corpus_utt(cp, i)))
            continue;
        size_t nr = sb_corpus_n_ratings(cp, i), m = 0;
        for (size_t r = 0; r < nr; r++) {
            const char *t = sb_corpus_rating(cp, i, r, NULL);
            if (!t)
                continue;
            counts[rows * (size_t)k + (size_t)json_integer_value(json_object_get(cats, t))]++;
            m++;
        }
        by_m[m < 63 ? m : 63]++;
        rows++;
    }
    double alpha = NAN, fleiss = NAN;
    sb_status st = sb_agree_krippendorff_nominal(counts, rows, k, &alpha, err);
    size_t mode = 2;
    for (size_t m = 2; m < 64; m++)
        if (by_m[m] > by_m[mode])
            mode = m;
    /* Fleiss over the items with `mode` ratings: compact those rows. */
    size_t kept = 0;
    for (size_t r = 0; st == SB_OK && r < rows; r++) {
        uint32_t s = 0;
        for (int c = 0; c < k; c++)
            s += counts[r * (size_t)k + (size_t)c];
        if (s != mode)
            continue;
        memmove(counts + kept * (size_t)k, counts + r * (size_t)k, (size_t)k * sizeof *counts);
        kept++;
    }
    if (st == SB_OK && kept)
        st = sb_agree_fleiss(counts, kept, k, &fleiss, err);
    free(counts);
    free(by_m);
    json_t *names = json_array();
    const char *t;
    json_t *v;
    json_object_foreach(cats, t, v) json_array_append_new(names, json_string(t));
    json_decref(cats);
    if (st != SB_OK) {
        json_decref(names);
        return NULL;
    }
    return json_pack("{s:I, s:o, s:o, s:I, s:I, s:o}", "items_rated", (json_int_t)n_rated,
                     "krippendorff_alpha", isnan(alpha) ? json_null() : json_real(alpha),
                     "fleiss_kappa", isnan(fleiss) ? json_null() : json_real(fleiss),
                     "fleiss_items", (json_int_t)kept, "fleiss_raters_per_item", (json_int_t)mode,
                     "categories", names);
}

/* " LABEL 0.1234" or " LABEL n/a". */
static void print_num(const char *label, json_t *v)
{
    if (json_is_number(v))
        printf(" %s%8.4f", label, json_number_value(v));
    else
        printf(" %s%8s", label, "n/a");
}

static void print_agree(json_t *rep)
{
    const char *cname;
    json_t *c;
    json_object_foreach(rep, cname, c)
    {
        json_t *classes = json_object_get(c, "classes");
        printf("%s (%zu classes, %" JSON_INTEGER_FORMAT " utterances%s%s)\n", cname,
               json_array_size(classes), json_integer_value(json_object_get(c, "utterances")),
               json_is_string(json_object_get(c, "split")) ? ", split " : "",
               json_is_string(json_object_get(c, "split"))
                   ? json_string_value(json_object_get(c, "split"))
                   : "");
        size_t i;
        json_t *p;
        json_t *pairs = json_object_get(c, "pairs");
        if (json_array_size(pairs))
            printf("  %-32s %7s %8s %8s %19s\n", "labellers", "n", "raw", "kappa", "95% CI");
        json_array_foreach(pairs, i, p)
        {
            char who[128];
            snprintf(who, sizeof who, "%s vs %s", json_string_value(json_object_get(p, "a")),
                     json_string_value(json_object_get(p, "b")));
            printf("  %-32s %7" JSON_INTEGER_FORMAT, who,
                   json_integer_value(json_object_get(p, "n")));
            print_num("", json_object_get(p, "raw"));
            json_t *kap = json_object_get(p, "cohen_kappa"),
                   *se = json_object_get(p, "cohen_kappa_se");
            print_num("", kap);
            if (json_is_number(kap) && json_is_number(se))
                printf("   [%.4f, %.4f]", json_number_value(kap) - 1.96 * json_number_value(se),
                       json_number_value(kap) + 1.96 * json_number_value(se));
            printf("\n");
        }
        json_array_foreach(pairs, i, p)
        {
            printf("  confusion: rows %s, columns %s\n", json_string_value(json_object_get(p, "a")),
                   json_string_value(json_object_get(p, "b")));
            printf("  %10s", "");
            for (size_t k = 0; k < json_array_size(classes); k++)
                printf(" %8.8s", json_string_value(json_array_get(classes, k)));
            printf("\n");
            size_t r;
            json_t *row;
            json_array_foreach(json_object_get(p, "confusion"), r, row)
            {
                printf("  %10.10s", json_string_value(json_array_get(classes, r)));
                size_t k;
                json_t *cell;
                json_array_foreach(row, k, cell)
                    printf(" %8" JSON_INTEGER_FORMAT, json_integer_value(cell));
                printf("\n");
            }
        }
        json_t *raters = json_object_get(c, "raters");
        if (raters) {
            printf("  raters: %" JSON_INTEGER_FORMAT " items rated, %zu categories;",
                   json_integer_value(json_object_get(raters, "items_rated")),
                   json_array_size(json_object_get(raters, "categories")));
            print_num("Krippendorff alpha", json_object_get(raters, "krippendorff_alpha"));
            printf(";");
            print_num("Fleiss kappa", json_object_get(raters, "fleiss_kappa"));
            printf(" (over the %" JSON_INTEGER_FORMAT " items with %" JSON_INTEGER_FORMAT
                   " ratings)\n",
                   json_integer_value(json_object_get(raters, "fleiss_items")),
                   json_integer_value(json_object_get(raters, "fleiss_raters_per_item")));
        }
        if (!json_array_size(pairs) && !raters)
            printf("  one labeller and no rater labels: nothing to compare\n");
    }
}

/* As each label stage arrives (its corpus is alive only during the pass): compare it with
 * the stages of the same corpus before it; describe the corpus's raters the first time. */
static int agree_each(collect *c, stage *s)
{
    const sb_corpus *cp = s->corpus;
    const char *cname = sb_corpus_name(cp);
    json_t *entry = json_object_get(c->report, cname);
    if (!entry) {
        json_t *classes = json_array();
        for (int k = 0; k < sb_corpus_n_classes(cp); k++)
            json_array_append_new(classes, json_string(sb_corpus_class(cp, k)));
        entry = json_pack("{s:I, s:o, s:[]}", "utterances", (json_int_t)sb_corpus_size(cp),
                          "classes", classes, "pairs");
        if (c->a->split)
            json_object_set_new(entry, "split", json_string(c->a->split));
        json_t *raters = raters_json(c->a, cp, &c->err);
        if (!raters && c->err.code) {
            json_decref(entry);
            return 1;
        }
        if (raters)
            json_object_set_new(entry, "raters", raters);
        json_object_set_new(c->report, cname, entry);
    }
    for (size_t x = 0; x + 1 < c->n; x++) {
        if (c->st[x].corpus != cp)
            continue;
        json_t *p = pair_json(c->a, &c->st[x], s, &c->err);
        if (!p)
            return 1;
        json_array_append_new(json_object_get(entry, "pairs"), p);
    }
    return 0;
}

int cmd_agree(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    if (!rc && a.labeller) {
        fprintf(stderr, "serbench: error: agree compares every labeller the config uses on a "
                        "dataset; choose the dataset with --dataset\n");
        rc = EXIT_USAGE;
    }
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    collect c = { .a = &a, .each = agree_each, .report = json_object() };
    if (!rc)
        rc = collect_stages(&a, &c, &plan, &store);
    if (!rc) {
        if (a.json) {
            char *t = json_dumps(c.report,
                                 JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
            printf("%s\n", t ? t : "{}");
            free(t);
        } else {
            print_agree(c.report);
        }
    }
    json_decref(c.report);
    free_stages(&c);
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
