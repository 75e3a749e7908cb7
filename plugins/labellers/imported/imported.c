/* plugins/labellers/imported/imported.c — labels read from a column of a CSV/TSV file keyed
 * by utterance id: labels made elsewhere (MELT's GPT-4o `llm_label`, a colleague's
 * annotation round) enter serbench through the same label stage as human and LLM labels.
 *
 * The file's rows are matched to the corpus by an id template over its columns, e.g.
 * "test/dia{Dialogue_ID}_utt{Utterance_ID}" for MELT against the meld and melt datasets.
 * Values are matched to the label space by class name (case-insensitively unless told
 * otherwise), then through `map`; anything else is stored as an invalid answer with the
 * raw value, never coerced. */
#include <serbench/serbench.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const sb_option imported_options[] = {
    { .name = "file",
      .type = SB_OPT_PATH,
      .flags = SB_OPT_REQUIRED,
      .help = "CSV (or TSV with delimiter: tab) file with one row per labelled utterance" },
    { .name = "id",
      .type = SB_OPT_STRING,
      .def = "\"{id}\"",
      .help = "template of the corpus utterance id over the file's columns, e.g. "
              "\"test/dia{Dialogue_ID}_utt{Utterance_ID}\"" },
    { .name = "label_column",
      .type = SB_OPT_STRING,
      .flags = SB_OPT_REQUIRED,
      .help = "column holding the label (e.g. llm_label)" },
    { .name = "confidence_column",
      .type = SB_OPT_STRING,
      .help = "optional column with a confidence in [0,1]" },
    { .name = "map",
      .type = SB_OPT_MAP,
      .help = "file value -> class name, for values that are not class names "
              "(e.g. {frustration: anger}); unmapped values are stored as invalid" },
    { .name = "case_sensitive",
      .type = SB_OPT_BOOL,
      .def = "false",
      .help = "match values to class names exactly instead of ignoring case" },
    { .name = "delimiter",
      .type = SB_OPT_ENUM,
      .def = "comma",
      .choices = "comma|tab",
      .help = "field separator of the file" },
    { .name = NULL },
};

typedef struct imported {
    const sb_host *host;
    const char *file, *id_tmpl, *label_col, *conf_col;
    json_t *map;
    int case_sensitive;
    char delim;
} imported;

static sb_status imported_create(const sb_host *host, const sb_opts *opts, void **inst,
                                 sb_error *err)
{
    imported *im = calloc(1, sizeof *im);
    if (!im)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    im->host = host;
    im->file = sb_opts_str(opts, "file");
    im->id_tmpl = sb_opts_str(opts, "id");
    im->label_col = sb_opts_str(opts, "label_column");
    im->conf_col = sb_opts_str(opts, "confidence_column");
    im->case_sensitive = sb_opts_bool(opts, "case_sensitive");
    im->delim = strcmp(sb_opts_str(opts, "delimiter"), "tab") == 0 ? '\t' : ',';
    *inst = im;
    const char *map = sb_opts_has(opts, "map") ? sb_opts_json(opts, "map") : NULL;
    if (map) {
        im->map = json_loads(map, 0, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(im->map, k, v)
        {
            if (!json_is_string(v))
                return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "map"),
                                    "map: '%s' must map to a class name (a string)", k);
        }
    }
    return SB_OK;
}

/* Index of `name` among the header fields, or -1. */
static long column(const char *const *hdr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(hdr[i], name) == 0)
            return (long)i;
    return -1;
}

/* Expand the id template for one row into out (size cap). Returns 0, or -1 with *bad set
 * to the unknown column name (pointing into tmpl, length *bad_len). */
static int expand_id(const char *tmpl, const char *const *hdr, const char *const *row, size_t n,
                     char *out, size_t cap, const char **bad, size_t *bad_len)
{
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        const char *piece = p;
        size_t len = 1;
        if (close) {
            long col = -1;
            for (size_t i = 0; i < n; i++)
                if (strlen(hdr[i]) == (size_t)(close - p - 1) &&
                    strncmp(hdr[i], p + 1, (size_t)(close - p - 1)) == 0)
                    col = (long)i;
            if (col < 0) {
                *bad = p + 1;
                *bad_len = (size_t)(close - p - 1);
                return -1;
            }
            piece = row[col];
            len = strlen(piece);
            p = close + 1;
        } else {
            p++;
        }
        if (o + len >= cap)
            len = cap - 1 - o;
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = 0;
    return 0;
}

/* Trimmed copy of s in buf. */
static const char *trim(const char *s, char *buf, size_t cap)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return buf;
}

static int class_of(const imported *im, const sb_corpus *corpus, const char *value)
{
    const int nc = sb_corpus_n_classes(corpus);
    for (int k = 0; k < nc; k++) {
        const char *name = sb_corpus_class(corpus, k);
        if (im->case_sensitive ? strcmp(name, value) == 0 : strcasecmp(name, value) == 0)
            return k;
    }
    if (im->map) {
        const char *key;
        json_t *v;
        json_object_foreach(im->map, key, v)
        {
            if (im->case_sensitive ? strcmp(key, value) == 0 : strcasecmp(key, value) == 0) {
                for (int k = 0; k < nc; k++)
                    if (strcmp(sb_corpus_class(corpus, k), json_string_value(v)) == 0)
                        return k;
                return -2; /* mapped to something outside the space: a config error */
            }
        }
    }
    return -1;
}

static sb_status imported_label(void *inst, const sb_corpus *corpus, const size_t *todo,
                                size_t n_todo, sb_label_sink *sink, sb_error *err)
{
    imported *im = inst;
    const size_t n_utt = sb_corpus_size(corpus);
    /* Which corpus items the host wants, and which the file has delivered already. */
    unsigned char *want = calloc(n_utt + 1, 1);
    if (!want)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t k = 0; k < n_todo; k++)
        want[todo[k]] = 1;
    sb_csv *csv = NULL;
    sb_status st = sb_csv_open(im->file, im->delim, &csv, err);
    const char *const *f = NULL;
    size_t nf = 0;
    int eof = 0;
    char **hdr = NULL;
    size_t nh = 0;
    if (st == SB_OK)
        st = sb_csv_next(csv, &f, &nf, &eof, err);
    if (st == SB_OK && eof)
        st = sb_error_set(err, SB_ERR_FORMAT, im->file, "the file is empty (no header row)");
    if (st == SB_OK) {
        hdr = calloc(nf + 1, sizeof *hdr);
        for (size_t i = 0; hdr && i < nf; i++)
            hdr[i] = strdup(f[i]);
        nh = nf;
    }
    long lab_col = -1, conf_col = -1;
    if (st == SB_OK && (lab_col = column((const char *const *)hdr, nh, im->label_col)) < 0)
        st = sb_error_set(err, SB_ERR_FORMAT, im->file,
                          "no column '%s' in the header; label_column must name one of its "
                          "%zu columns",
                          im->label_col, nh);
    if (st == SB_OK && im->conf_col &&
        (conf_col = column((const char *const *)hdr, nh, im->conf_col)) < 0)
        st = sb_error_set(err, SB_ERR_FORMAT, im->file, "no column '%s' (confidence_column)",
                          im->conf_col);
    size_t rows = 0, matched = 0, unmatched = 0, invalid = 0;
    char first_unmatched[1100] = "";
    while (st == SB_OK) {
        if ((st = sb_csv_next(csv, &f, &nf, &eof, err)) != SB_OK || eof)
            break;
        if (nf == 1 && !f[0][0])
            continue; /* blank line */
        rows++;
        if (nf != nh) {
            st = sb_error_set(err, SB_ERR_FORMAT, NULL,
                              "%s:%ld: %zu fields where the header has %zu", im->file,
                              sb_csv_line(csv), nf, nh);
            break;
        }
        char id[1024];
        const char *bad = NULL;
        size_t bad_len = 0;
        if (expand_id(im->id_tmpl, (const char *const *)hdr, f, nf, id, sizeof id, &bad,
                      &bad_len)) {
            st = sb_error_set(err, SB_ERR_CONFIG, im->file,
                              "the id template \"%s\" names column '%.*s', which the file does "
                              "not have",
                              im->id_tmpl, (int)bad_len, bad);
            break;
        }
        long u = sb_corpus_find(corpus, id);
        if (u < 0) {
            if (!unmatched++)
                snprintf(first_unmatched, sizeof first_unmatched, "%s (line %ld)", id,
                         sb_csv_line(csv));
            continue;
        }
        matched++;
        if (!want[u])
            continue;
        want[u] = 0;
        char vbuf[256];
        const char *value = trim(f[lab_col], vbuf, sizeof vbuf);
        double conf = -1.0;
        if (conf_col >= 0 && f[conf_col][0]) {
            char *end = NULL;
            conf = strtod(f[conf_col], &end);
            if (end == f[conf_col] || *end || !(conf >= 0.0 && conf <= 1.0)) {
                st = sb_error_set(err, SB_ERR_FORMAT, NULL,
                                  "%s:%ld: confidence '%s' is not a number in [0,1]", im->file,
                                  sb_csv_line(csv), f[conf_col]);
                break;
            }
        }
        int k = class_of(im, corpus, value);
        if (k == -2) {
            st = sb_error_set(err, SB_ERR_CONFIG, im->file,
                              "map sends '%s' to a name that is not a class of %s", value,
                              sb_corpus_name(corpus));
            break;
        }
        char detail[512];
        snprintf(detail, sizeof detail, "{\"line\": %ld}", sb_csv_line(csv));
        sb_label_result r = { .struct_size = sizeof r,
                              .status = k >= 0 ? SB_LABEL_OK : SB_LABEL_INVALID,
                              .label = k,
                              .confidence = conf,
                              .raw = f[lab_col],
                              .detail = detail };
        char reason[400];
        if (k < 0) {
            snprintf(reason, sizeof reason,
                     "'%s' (%s line %ld) is not one of the %d classes and the map does not name "
                     "it",
                     value, im->file, sb_csv_line(csv), sb_corpus_n_classes(corpus));
            r.reason = reason;
            invalid++;
        }
        if ((st = sb_label_deliver(sink, (size_t)u, &r)) != SB_OK)
            sb_error_set(err, st, im->file, "could not store the label of %s", id);
    }
    size_t missing = 0;
    for (size_t i = 0; i < n_utt; i++)
        missing += want[i];
    if (st == SB_OK) {
        im->host->log(im->host, SB_LOG_INFO,
                      "%s: %zu rows, %zu matched utterances of %s, %zu invalid labels; %zu "
                      "requested utterances have no row",
                      im->file, rows, matched, sb_corpus_name(corpus), invalid, missing);
        if (unmatched)
            im->host->log(im->host, SB_LOG_WARN,
                          "%s: %zu rows name no utterance of %s (first: %s); check the id "
                          "template \"%s\"",
                          im->file, unmatched, sb_corpus_name(corpus), first_unmatched,
                          im->id_tmpl);
        if (matched == 0 && rows > 0)
            st = sb_error_set(err, SB_ERR_CONFIG, im->file,
                              "none of the %zu rows matches an utterance id of %s (first row "
                              "gives %s); fix the id template",
                              rows, sb_corpus_name(corpus), first_unmatched);
    }
    for (size_t i = 0; hdr && i < nh; i++)
        free(hdr[i]);
    free(hdr);
    free(want);
    sb_csv_close(&csv);
    return st;
}

static void imported_destroy(void *inst)
{
    imported *im = inst;
    if (!im)
        return;
    json_decref(im->map);
    free(im);
}

static const sb_labeller_vtable imported_vtable = {
    .struct_size = sizeof(sb_labeller_vtable),
    .create = imported_create,
    .label = imported_label,
    .destroy = imported_destroy,
};

static const sb_plugin imported_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_LABELLER,
    .name = "imported",
    .version = "1.0.0",
    .summary = "labels from a column of a CSV file keyed by utterance id (e.g. MELT's llm_label)",
    .options = imported_options,
    .vtable = &imported_vtable,
};

SB_PLUGIN_DEFINE(imported_plugin)
