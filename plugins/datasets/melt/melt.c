/* plugins/datasets/melt/melt.c — the `melt` dataset plugin: the released MELT label files
 * (meld_train.csv, meld_test.csv: MELD rows with GPT-4o's llm_label) joined to MELD's
 * extracted clips by (split, Dialogue_ID, Utterance_ID). Either MELD's human Emotion or
 * llm_label is the gold label; the other stays in meta. Out-of-schema LLM labels go
 * through a configured policy, never silently; dev is carved from train by whole
 * dialogues with a fixed hash rule. See docs/datasets.md, "melt". */
#include <serbench/serbench.h>

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meld_common.h"

static const char *const emotions[7] = { "neutral", "surprise", "fear", "sadness",
                                         "joy",     "disgust",  "anger" };
static const char *const files[2] = { "meld_train.csv", "meld_test.csv" };
static const char *const meld_split[2] = { "train", "test" };

enum { POLICY_DROP, POLICY_MAP, POLICY_INVALID };

/* One row of either file, kept until the dev split is known. */
typedef struct mrow {
    int file; /* 0 train, 1 test */
    long line;
    long d, u, season, episode, sr_no;
    double t0, t1;
    char *text, *speaker, *emotion, *sentiment, *llm_raw;
    const char *llm; /* after the policy: an emotion, or llm_raw (invalid) */
    int invalid_llm; /* llm_raw is not one of the 7 emotions */
    int is_dev;
    int repaired;
} mrow;

typedef struct loader {
    const sb_host *host;
    const sb_opts *opts;
    sb_corpus *corpus;
    sb_error *err;
    const char *root;
    int use_llm, policy, repair;
    double dev_fraction;
    json_t *map; /* llm_label_map */
    mc_audio *audio;
    char *path[2];
    mrow *rows;
    size_t n, cap;
    size_t n_file[2], n_dev, n_dev_dialogues, n_dropped, n_mapped, n_invalid_kept;
    size_t with_audio, repaired;
} loader;

static int class_of(const char *s)
{
    for (int i = 0; i < 7; i++)
        if (strcmp(emotions[i], s) == 0)
            return i;
    return -1;
}

static void lower_trim(const char *s, char *out, size_t size)
{
    while (*s == ' ')
        s++;
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        out[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static void free_rows(loader *L)
{
    for (size_t i = 0; i < L->n; i++) {
        mrow *r = &L->rows[i];
        free(r->text);
        free(r->speaker);
        free(r->emotion);
        free(r->sentiment);
        free(r->llm_raw);
    }
    free(L->rows);
}

/* ---- files --------------------------------------------------------------------------- */

static sb_status find_files(loader *L)
{
    const char *bases[] = { "", "meltdataset/", "MELT/", "melt/" };
    for (int f = 0; f < 2; f++) {
        char list[600] = "";
        for (size_t b = 0; b < sizeof bases / sizeof bases[0] && !L->path[f]; b++) {
            char *p = mc_printf("%s/%s%s", L->root, bases[b], files[f]);
            if (!p)
                return sb_error_set(L->err, SB_ERR_NOMEM, L->root, "out of memory");
            if (mc_is_file(p)) {
                L->path[f] = p;
                break;
            }
            free(p);
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s%s", b ? ", " : "",
                     bases[b], files[f]);
        }
        if (!L->path[f])
            return sb_error_set(L->err, SB_ERR_NOT_FOUND, L->root,
                                "MELT's %s not found; looked for (below root) %s. Set `root` "
                                "(%s) to the folder holding meld_train.csv and meld_test.csv "
                                "(a clone of github.com/KeiKinn/meltdataset)",
                                files[f], list, sb_opts_where(L->opts, "root"));
    }
    return SB_OK;
}

/* ---- the LLM label policy ---------------------------------------------------------------- */

static sb_status parse_map(loader *L)
{
    const char *text = sb_opts_json(L->opts, "llm_label_map");
    json_error_t je;
    L->map = json_loads(text ? text : "{}", 0, &je);
    const char *where = sb_opts_where(L->opts, "llm_label_map");
    if (!json_is_object(L->map))
        return sb_error_set(L->err, SB_ERR_CONFIG, where, "llm_label_map is not a mapping");
    const char *key;
    json_t *v;
    json_object_foreach(L->map, key, v)
    {
        if (!json_is_string(v) || class_of(json_string_value(v)) < 0)
            return sb_error_set(L->err, SB_ERR_CONFIG, where,
                                "llm_label_map: '%s' maps to %s, which is not one of the 7 "
                                "emotions (neutral, surprise, fear, sadness, joy, disgust, "
                                "anger)",
                                key, json_is_string(v) ? json_string_value(v) : "a non-string");
        if (class_of(key) >= 0)
            return sb_error_set(L->err, SB_ERR_CONFIG, where,
                                "llm_label_map: '%s' is already one of the 7 emotions; the map "
                                "renames only labels outside them (merge classes with an "
                                "experiment's label_map)",
                                key);
    }
    if (json_object_size(L->map) && L->policy != POLICY_MAP)
        L->host->log(L->host, SB_LOG_WARN,
                     "llm_label_map (%s) is not used: invalid_llm_label is not 'map'", where);
    return SB_OK;
}

/* Apply the policy to row r; sets r->llm. Returns 0 to keep the row, 1 to drop it, or an
 * error status (as a negative number never happens: errors are returned through *st). */
static int apply_policy(loader *L, mrow *r, sb_status *st)
{
    if (class_of(r->llm_raw) >= 0) {
        r->llm = r->llm_raw;
        return 0;
    }
    r->invalid_llm = 1;
    r->llm = r->llm_raw;
    switch (L->policy) {
    case POLICY_DROP: L->n_dropped++; return 1;
    case POLICY_MAP: {
        json_t *v = json_object_get(L->map, r->llm_raw);
        if (!v) {
            *st = sb_error_set(L->err, SB_ERR_CONFIG, sb_opts_where(L->opts, "llm_label_map"),
                               "llm_label '%s' (%s:%ld) is outside the 7 emotions and not in "
                               "llm_label_map; add it to the map or set invalid_llm_label to "
                               "drop or invalid",
                               r->llm_raw, L->path[r->file], r->line);
            return 1;
        }
        r->llm = json_string_value(v);
        L->n_mapped++;
        return 0;
    }
    default: L->n_invalid_kept++; return 0;
    }
}

/* ---- reading -------------------------------------------------------------------------------- */

static sb_status read_file(loader *L, int f)
{
    static const char *const extra[] = { "filename", "llm_label", NULL };
    mc_rows *rd = NULL;
    sb_status st = mc_rows_open(L->path[f], meld_split[f], L->repair, extra, &rd, L->err);
    while (st == SB_OK) {
        mc_row row;
        int eof;
        if ((st = mc_rows_next(rd, &row, &eof, L->err)) != SB_OK || eof)
            break;
        char want[64];
        snprintf(want, sizeof want, "dia%ld_utt%ld.wav", row.dialogue, row.utterance);
        if (strcmp(row.extra[0], want) != 0) {
            char where[700];
            snprintf(where, sizeof where, "%.600s:%ld", L->path[f], row.line);
            st = sb_error_set(L->err, SB_ERR_FORMAT, where,
                              "filename '%.80s' does not match Dialogue_ID %ld, Utterance_ID "
                              "%ld (expected %s)",
                              row.extra[0], row.dialogue, row.utterance, want);
            break;
        }
        if (L->n == L->cap) {
            size_t cap = L->cap ? L->cap * 2 : 1024;
            mrow *p = realloc(L->rows, cap * sizeof *p);
            if (!p) {
                st = sb_error_set(L->err, SB_ERR_NOMEM, L->path[f], "out of memory");
                break;
            }
            L->rows = p;
            L->cap = cap;
        }
        mrow *r = &L->rows[L->n];
        memset(r, 0, sizeof *r);
        L->n++;
        char llm[64];
        lower_trim(row.extra[1], llm, sizeof llm);
        r->file = f;
        r->line = row.line;
        r->d = row.dialogue;
        r->u = row.utterance;
        r->season = row.season;
        r->episode = row.episode;
        r->sr_no = row.sr_no;
        r->t0 = row.start_time;
        r->t1 = row.end_time;
        r->repaired = row.repaired;
        r->text = mc_printf("%s", row.text);
        r->speaker = mc_printf("%s", row.speaker);
        r->emotion = mc_printf("%s", row.emotion);
        r->sentiment = mc_printf("%s", row.sentiment);
        r->llm_raw = mc_printf("%s", llm);
        if (!r->text || !r->speaker || !r->emotion || !r->sentiment || !r->llm_raw)
            st = sb_error_set(L->err, SB_ERR_NOMEM, L->path[f], "out of memory");
        L->n_file[f]++;
    }
    mc_rows_close(&rd);
    return st;
}

/* ---- the dev split ----------------------------------------------------------------------------
 */

/* FNV-1a 64 of the text, then the splitmix64 finalizer (FNV alone barely moves the high
 * bits for the last characters, which would sort neighbouring dialogues together). Simple
 * to reproduce anywhere; docs/datasets.md shows it in Python. */
static uint64_t dev_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

typedef struct dia_rank {
    uint64_t h;
    long d;
    size_t n;
} dia_rank;

static int cmp_rank(const void *a, const void *b)
{
    const dia_rank *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->d > y->d) - (x->d < y->d);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Rule "melt-dev/1": the dialogues of meld_train.csv in increasing dev_key of the text
 * "melt-dev/dia<D>" (ties by D) go to dev, whole, until dev holds at least
 * round(dev_fraction x train rows) rows. Computed on every row of the file, before any
 * row is dropped, so the split does not depend on the label options. */
static sb_status carve_dev(loader *L)
{
    size_t n_train = L->n_file[0];
    size_t target = (size_t)floor(L->dev_fraction * (double)n_train + 0.5);
    if (!target)
        return SB_OK;
    long *ds = malloc(n_train * sizeof *ds);
    dia_rank *rk = malloc(n_train * sizeof *rk);
    if (!ds || !rk) {
        free(ds);
        free(rk);
        return sb_error_set(L->err, SB_ERR_NOMEM, L->path[0], "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < L->n; i++)
        if (L->rows[i].file == 0)
            ds[k++] = L->rows[i].d;
    qsort(ds, k, sizeof *ds, cmp_long);
    size_t nd = 0;
    for (size_t i = 0; i < k; i++) {
        if (nd && rk[nd - 1].d == ds[i]) {
            rk[nd - 1].n++;
            continue;
        }
        char key[48];
        snprintf(key, sizeof key, "melt-dev/dia%ld", ds[i]);
        rk[nd].h = dev_key(key);
        rk[nd].d = ds[i];
        rk[nd].n = 1;
        nd++;
    }
    qsort(rk, nd, sizeof *rk, cmp_rank);
    size_t taken = 0, n_dev = 0;
    while (n_dev < target && taken < nd)
        n_dev += rk[taken++].n;
    /* mark: the chosen dialogue ids, sorted, then a binary search per row */
    for (size_t i = 0; i < taken; i++)
        ds[i] = rk[i].d;
    qsort(ds, taken, sizeof *ds, cmp_long);
    for (size_t i = 0; i < L->n; i++) {
        mrow *r = &L->rows[i];
        r->is_dev = r->file == 0 && bsearch(&r->d, ds, taken, sizeof *ds, cmp_long) != NULL;
    }
    L->n_dev = n_dev;
    L->n_dev_dialogues = taken;
    free(ds);
    free(rk);
    return SB_OK;
}

/* ---- adding ---------------------------------------------------------------------------------- */

static sb_status add_rows(loader *L)
{
    sb_status st = SB_OK;
    for (size_t i = 0; i < L->n && st == SB_OK; i++) {
        mrow *r = &L->rows[i];
        if (apply_policy(L, r, &st))
            continue; /* dropped (logged with the count), or an error in st */
        const char *split = r->file == 1 ? "test" : r->is_dev ? "dev" : "train";
        char id[64], dialogue[48];
        snprintf(id, sizeof id, "%s/dia%ld_utt%ld", meld_split[r->file], r->d, r->u);
        snprintf(dialogue, sizeof dialogue, "%s/dia%ld", meld_split[r->file], r->d);
        int label = L->use_llm ? class_of(r->llm) : class_of(r->emotion);
        char e_llm[80], e_raw[80], e_emo[80], e_sen[80], meta[768];
        mc_json_str(r->llm, e_llm, sizeof e_llm);
        mc_json_str(r->llm_raw, e_raw, sizeof e_raw);
        mc_json_str(r->emotion, e_emo, sizeof e_emo);
        mc_json_str(r->sentiment, e_sen, sizeof e_sen);
        int mn = snprintf(meta, sizeof meta,
                          "{\"llm_label\":\"%s\",\"emotion\":\"%s\",\"sentiment\":\"%s\","
                          "\"season\":%ld,\"episode\":%ld,\"start_time\":%.3f,\"end_time\":%.3f",
                          e_llm, e_emo, e_sen, r->season, r->episode, r->t0, r->t1);
        if (r->sr_no >= 0)
            mn += snprintf(meta + mn, sizeof meta - (size_t)mn, ",\"sr_no\":%ld", r->sr_no);
        if (strcmp(r->llm, r->llm_raw) != 0)
            mn += snprintf(meta + mn, sizeof meta - (size_t)mn, ",\"llm_label_raw\":\"%s\"", e_raw);
        snprintf(meta + mn, sizeof meta - (size_t)mn, "}");
        sb_utt ut;
        sb_utt_init(&ut);
        ut.id = id;
        ut.dialogue = dialogue;
        ut.turn = (int32_t)r->u;
        ut.speaker = r->speaker;
        ut.text = r->text;
        ut.split = split;
        ut.label = label;
        ut.meta = meta;
        ut.audio = L->audio
                       ? mc_audio_find(L->audio, L->corpus, id, meld_split[r->file], r->d, r->u)
                       : NULL;
        if ((st = sb_corpus_add(L->corpus, &ut, L->err)) != SB_OK)
            break;
        L->with_audio += ut.audio != NULL;
        L->repaired += r->repaired != 0;
        /* both annotations as ratings, for agreement statistics */
        st = sb_corpus_add_rating(L->corpus, id, "meld", r->emotion, L->err);
        if (st == SB_OK)
            st = sb_corpus_add_rating(L->corpus, id, "gpt-4o", r->llm_raw, L->err);
        if (label < 0)
            sb_corpus_note_item(
                L->corpus, id, "%s:%ld: %s '%s' is not one of the 7 emotions%s", L->path[r->file],
                r->line, L->use_llm ? "llm_label" : "Emotion", L->use_llm ? r->llm : r->emotion,
                L->use_llm && r->invalid_llm ? " (invalid_llm_label: invalid)" : "");
        if (!L->repair && !sb_utf8_valid(r->text, strlen(r->text)))
            sb_corpus_warn_item(L->corpus, id,
                                "%s:%ld: the text is not valid UTF-8; set repair_text: true",
                                L->path[r->file], r->line);
    }
    return st;
}

/* One WARN line per file with out-of-schema LLM labels: each value, its count and ids. */
static void report_invalid(loader *L)
{
    static const char pol_invalid[] = "invalid: rows kept; with labels: llm they are "
                                      "unlabelled, each with an item note";
    static const char *const pol[] = { "drop: rows left out", "map: renamed by llm_label_map",
                                       pol_invalid };
    for (int f = 0; f < 2; f++) {
        char buf[1500] = "";
        size_t total = 0;
        for (size_t i = 0; i < L->n; i++) {
            const mrow *r = &L->rows[i];
            if (r->file != f || class_of(r->llm_raw) >= 0)
                continue;
            total++;
            if (strlen(buf) < sizeof buf - 100)
                snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s (%s/dia%ld_utt%ld)",
                         buf[0] ? ", " : "", r->llm_raw, meld_split[f], r->d, r->u);
        }
        if (total)
            L->host->log(L->host, SB_LOG_WARN,
                         "%s: %zu llm_label value%s outside the 7 emotions: %s; "
                         "invalid_llm_label %s",
                         L->path[f], total, total == 1 ? "" : "s", buf, pol[L->policy]);
    }
}

static sb_status describe(loader *L)
{
    char dev[400], notes[700];
    if (L->n_dev)
        snprintf(dev, sizeof dev,
                 "carved from meld_train.csv by whole dialogues, rule melt-dev/1 (dialogues in "
                 "increasing splitmix64(FNV-1a-64(\"melt-dev/dia<D>\")) until >= round(%g x "
                 "%zu) rows): "
                 "%zu dialogues, %zu rows",
                 L->dev_fraction, L->n_file[0], L->n_dev_dialogues, L->n_dev);
    else
        snprintf(dev, sizeof dev, "none (dev_fraction: 0)");
    snprintf(notes, sizeof notes,
             "gold label: %s (the other column in meta); ids <MELD split>/dia<D>_utt<U> as in "
             "the meld plugin; llm_label outside the 7 emotions: %zu dropped, %zu mapped, %zu "
             "kept as invalid; text repaired in %zu rows; ratings 'meld' and 'gpt-4o'",
             L->use_llm ? "llm_label (GPT-4o)" : "Emotion (MELD, human)", L->n_dropped, L->n_mapped,
             L->n_invalid_kept, L->repaired);
    const char *aroot = sb_opts_has(L->opts, "meld_audio_root")
                            ? sb_opts_str(L->opts, "meld_audio_root")
                            : "none (meld_audio_root unset)";
    char *layout = mc_printf("csv: %s, %s; audio: %s (%zu of %zu rows with audio)", L->path[0],
                             L->path[1], aroot, L->with_audio, sb_corpus_size(L->corpus));
    const char *kv[][2] = { { "protocol", "melt" },
                            { "protocol_version", "1" },
                            { "dev_split", dev },
                            { "layout", layout ? layout : "?" },
                            { "notes", notes } };
    sb_status st = SB_OK;
    for (size_t i = 0; i < 5 && st == SB_OK; i++)
        st = sb_corpus_set_info(L->corpus, kv[i][0], kv[i][1], L->err);
    free(layout);
    return st;
}

static sb_status melt_load(const sb_host *host, const sb_opts *opts, sb_corpus *corpus,
                           sb_error *err)
{
    loader L = { 0 };
    L.host = host;
    L.opts = opts;
    L.corpus = corpus;
    L.err = err;
    L.root = sb_opts_str(opts, "root");
    L.use_llm = strcmp(sb_opts_str(opts, "labels"), "llm") == 0;
    const char *pol = sb_opts_str(opts, "invalid_llm_label");
    L.policy = strcmp(pol, "drop") == 0  ? POLICY_DROP
               : strcmp(pol, "map") == 0 ? POLICY_MAP
                                         : POLICY_INVALID;
    L.repair = sb_opts_bool(opts, "repair_text");
    L.dev_fraction = sb_opts_float(opts, "dev_fraction");
    if (!mc_is_dir(L.root))
        return sb_error_set(err, SB_ERR_NOT_FOUND, sb_opts_where(opts, "root"),
                            "root '%s' is not a folder; set it to the folder holding MELT's "
                            "meld_train.csv and meld_test.csv",
                            L.root ? L.root : "");
    sb_status st = parse_map(&L);
    if (st == SB_OK)
        st = find_files(&L);
    if (st == SB_OK && sb_opts_has(opts, "meld_audio_root")) {
        const char *ar = sb_opts_str(opts, "meld_audio_root");
        if (!mc_is_dir(ar))
            st = sb_error_set(err, SB_ERR_NOT_FOUND, sb_opts_where(opts, "meld_audio_root"),
                              "meld_audio_root '%s' is not a folder; set it to MELD's "
                              "extracted WAV tree (scripts/meld-extract-audio) or leave it out",
                              ar);
        else
            st = mc_audio_open(host, ar, "meld_audio_root", &L.audio, err);
    } else if (st == SB_OK) {
        host->log(host, SB_LOG_INFO,
                  "no meld_audio_root: MELT ships labels only, so the corpus is text only; set "
                  "meld_audio_root to MELD's extracted WAV tree for audio");
    }
    if (st == SB_OK)
        st = sb_corpus_set_classes(corpus, "meld-7class", emotions, 7, err);
    for (int f = 0; f < 2 && st == SB_OK; f++) {
        st = read_file(&L, f);
        host->progress(host, (uint64_t)f + 1, 2);
    }
    if (st == SB_OK)
        st = carve_dev(&L);
    if (st == SB_OK)
        st = add_rows(&L);
    if (st == SB_OK) {
        report_invalid(&L);
        st = describe(&L);
        host->log(host, SB_LOG_INFO,
                  "MELT: %zu train rows (%zu of them dev), %zu test rows; gold = %s", L.n_file[0],
                  L.n_dev, L.n_file[1], L.use_llm ? "llm_label" : "Emotion");
    }
    mc_audio_close(&L.audio);
    free_rows(&L);
    json_decref(L.map);
    free(L.path[0]);
    free(L.path[1]);
    return st;
}

static const sb_option melt_options[] = {
    { "root", SB_OPT_PATH, NULL, SB_OPT_REQUIRED, 0, 0, NULL,
      "folder with MELT's meld_train.csv and meld_test.csv (a clone of KeiKinn/meltdataset)" },
    { "labels", SB_OPT_ENUM, "human", 0, 0, 0, "human|llm",
      "gold label: MELD's human Emotion or GPT-4o's llm_label (the other goes to meta)" },
    { "invalid_llm_label", SB_OPT_ENUM, "invalid", 0, 0, 0, "drop|map|invalid",
      "an llm_label outside the 7 emotions: drop the row, map it (llm_label_map), or keep it "
      "with no label when labels: llm (reported per item)" },
    { "llm_label_map", SB_OPT_MAP, NULL, 0, 0, 0, NULL,
      "for invalid_llm_label: map, e.g. {frustration: anger, comfort: neutral}" },
    { "dev_fraction", SB_OPT_FLOAT, "0.1", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 0.5, NULL,
      "share of meld_train.csv rows carved into dev by whole dialogues (rule melt-dev/1); 0: "
      "no dev" },
    { "meld_audio_root", SB_OPT_PATH, NULL, 0, 0, 0, NULL,
      "MELD's extracted WAV tree (scripts/meld-extract-audio); unset: text only" },
    { "repair_text", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "repair the mojibake in Utterance and Speaker (MELT has It can€™t, NestlÃ©)" },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL }
};

static const sb_dataset_vtable melt_vtable = {
    .struct_size = sizeof(sb_dataset_vtable),
    .load = melt_load,
};

static const sb_plugin melt_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_DATASET,
    .name = "melt",
    .version = "1.0.0",
    .summary = "MELT: MELD rows with GPT-4o labels (7024 train / 1794 test), human or LLM gold",
    .options = melt_options,
    .vtable = &melt_vtable,
};

SB_PLUGIN_DEFINE(melt_plugin)
