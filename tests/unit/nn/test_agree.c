/* tests/unit/nn/test_agree.c — agree.h against scikit-learn (Cohen's kappa, confusion matrix,
 * raw agreement), statsmodels (kappa's standard error, Fleiss' kappa) and nltk (Krippendorff's
 * alpha) on tests/fixtures/agree/cases.json (made by scripts/gen-agree-fixtures.py, including
 * MELT's GPT-4o labels against MELD's on the real files), to 1e-12; the published worked
 * examples (Fleiss 1971: 0.430; the 14-rater example: 0.210; Krippendorff 2011: 0.743); and
 * the edge cases: no items, one class, perfect agreement, bad labels, unequal rater counts. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#define TOL 1e-12

static json_t *load_cases(void)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/fixtures/agree/cases.json", root ? root : ".");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    cr_assert_not_null(doc, "%s: %s (regenerate with scripts/gen-agree-fixtures.py)", path,
                       jerr.text);
    return doc;
}

/* The reference value of `key`, NAN for null (undefined). */
static double ref(const json_t *c, const char *key)
{
    json_t *v = json_object_get(c, key);
    cr_assert(v && (json_is_number(v) || json_is_null(v)), "fixture field %s missing", key);
    return json_is_null(v) ? NAN : json_number_value(v);
}

static void close_to(const char *cname, const char *what, double got, double want)
{
    if (isnan(want)) {
        cr_assert(isnan(got), "case %s: %s ours %.17g, reference undefined (NaN)", cname, what,
                  got);
        return;
    }
    cr_assert(fabs(got - want) <= TOL, "case %s: %s ours %.17g, reference %.17g (diff %.3g)", cname,
              what, got, want, fabs(got - want));
}

static int32_t *int_array(const json_t *arr)
{
    size_t n = json_array_size(arr);
    int32_t *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return x;
}

/* A (rows, cols) JSON matrix of integers, row-major. */
static void *int_matrix(const json_t *rows_json, size_t *rows, size_t *cols, int as_u32)
{
    *rows = json_array_size(rows_json);
    *cols = *rows ? json_array_size(json_array_get(rows_json, 0)) : 0;
    size_t n = *rows * *cols;
    void *x = malloc((n ? n : 1) * 4);
    cr_assert_not_null(x);
    for (size_t i = 0; i < *rows; i++) {
        json_t *row = json_array_get(rows_json, i);
        cr_assert_eq(json_array_size(row), *cols, "ragged fixture matrix at row %zu", i);
        for (size_t j = 0; j < *cols; j++) {
            json_int_t v = json_integer_value(json_array_get(row, j));
            if (as_u32)
                ((uint32_t *)x)[i * *cols + j] = (uint32_t)v;
            else
                ((int32_t *)x)[i * *cols + j] = (int32_t)v;
        }
    }
    return x;
}

static void case_name(char *buf, size_t size, size_t i, const json_t *c)
{
    snprintf(buf, size, "#%zu %s", i, json_string_value(json_object_get(c, "name")));
}

Test(agree, pairs_match_sklearn_statsmodels_nltk)
{
    json_t *doc = load_cases();
    json_t *cases = json_object_get(doc, "pairs");
    cr_assert_geq(json_array_size(cases), 15u);
    int saw_meld = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        char cname[96];
        case_name(cname, sizeof cname, i, c);
        int k = (int)json_integer_value(json_object_get(c, "k"));
        json_t *ja = json_object_get(c, "a");
        size_t n = json_array_size(ja);
        cr_assert_eq(json_array_size(json_object_get(c, "b")), n);
        int32_t *a = int_array(ja), *b = int_array(json_object_get(c, "b"));
        sb_agree_pair p;
        sb_error err = { 0 };
        cr_assert_eq(sb_agree_pair_compute(a, b, n, k, &p, &err), SB_OK, "case %s: %s", cname,
                     err.msg);
        cr_assert_eq(p.k, k);
        cr_assert_eq((double)p.n, ref(c, "n"), "case %s: n %zu", cname, p.n);
        cr_assert_eq((double)p.n_missing, ref(c, "n_missing"), "case %s: n_missing", cname);
        close_to(cname, "raw agreement", p.raw, ref(c, "raw"));
        close_to(cname, "Cohen's kappa", p.kappa, ref(c, "kappa"));
        close_to(cname, "kappa standard error", p.kappa_se, ref(c, "kappa_se"));
        json_t *cm = json_object_get(c, "confusion");
        for (int r = 0; r < k; r++)
            for (int j = 0; j < k; j++)
                cr_assert_eq(p.confusion[r * k + j],
                             (uint64_t)json_integer_value(json_array_get(json_array_get(cm, r), j)),
                             "case %s: confusion[%d][%d]", cname, r, j);
        sb_agree_pair_free(&p);
        cr_assert_null(p.confusion);

        /* the same two raters as a many-rater table: Fleiss' kappa (Scott's pi for two) and
         * Krippendorff's alpha; an item with one label is unpairable and skipped */
        int32_t *ratings = malloc((n ? n : 1) * 2 * sizeof *ratings);
        uint32_t *counts = malloc((n ? n : 1) * (size_t)k * sizeof *counts);
        for (size_t t = 0; t < n; t++) {
            ratings[2 * t] = a[t];
            ratings[2 * t + 1] = b[t];
        }
        cr_assert_eq(sb_agree_count_ratings(ratings, n, 2, k, counts, &err), SB_OK, "%s", err.msg);
        double v;
        cr_assert_eq(sb_agree_fleiss(counts, n, k, &v, &err), SB_OK, "case %s: %s", cname, err.msg);
        close_to(cname, "Fleiss' kappa of the pair", v, ref(c, "fleiss_kappa"));
        cr_assert_eq(sb_agree_krippendorff_nominal(counts, n, k, &v, &err), SB_OK);
        close_to(cname, "Krippendorff's alpha of the pair", v, ref(c, "alpha"));
        if (strncmp(json_string_value(json_object_get(c, "name")), "melt-", 5) == 0)
            saw_meld++;
        free(ratings);
        free(counts);
        free(a);
        free(b);
    }
    cr_assert_eq(saw_meld, 2, "the MELT test and train cases are in the fixture");
    json_decref(doc);
}

Test(agree, fleiss_matches_statsmodels_and_published)
{
    json_t *doc = load_cases();
    json_t *cases = json_object_get(doc, "fleiss");
    cr_assert_geq(json_array_size(cases), 8u);
    int published = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        char cname[96];
        case_name(cname, sizeof cname, i, c);
        int k = (int)json_integer_value(json_object_get(c, "k"));
        size_t rows, cols;
        uint32_t *counts = int_matrix(json_object_get(c, "counts"), &rows, &cols, 1);
        cr_assert_eq(cols, (size_t)k);
        double kappa;
        sb_error err = { 0 };
        cr_assert_eq(sb_agree_fleiss(counts, rows, k, &kappa, &err), SB_OK, "case %s: %s", cname,
                     err.msg);
        close_to(cname, "Fleiss' kappa", kappa, ref(c, "kappa"));
        if (json_object_get(c, "published")) {
            /* the papers print three decimals */
            double want = ref(c, "published");
            cr_assert(fabs(kappa - want) < 5e-4, "case %s: %.6f, published %.3f", cname, kappa,
                      want);
            published++;
        }
        free(counts);
    }
    cr_assert_eq(published, 2);
    json_decref(doc);
}

Test(agree, krippendorff_matches_nltk_and_published)
{
    json_t *doc = load_cases();
    json_t *cases = json_object_get(doc, "krippendorff");
    cr_assert_geq(json_array_size(cases), 6u);
    int published = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        char cname[96];
        case_name(cname, sizeof cname, i, c);
        int k = (int)json_integer_value(json_object_get(c, "k"));
        size_t items, raters;
        int32_t *ratings = int_matrix(json_object_get(c, "ratings"), &items, &raters, 0);
        uint32_t *counts = malloc((items ? items : 1) * (size_t)k * sizeof *counts);
        sb_error err = { 0 };
        cr_assert_eq(sb_agree_count_ratings(ratings, items, raters, k, counts, &err), SB_OK,
                     "case %s: %s", cname, err.msg);
        double alpha;
        cr_assert_eq(sb_agree_krippendorff_nominal(counts, items, k, &alpha, &err), SB_OK,
                     "case %s: %s", cname, err.msg);
        close_to(cname, "Krippendorff's alpha", alpha, ref(c, "alpha"));
        if (json_object_get(c, "published")) {
            double want = ref(c, "published");
            cr_assert(fabs(alpha - want) < 5e-4, "case %s: %.6f, published %.3f", cname, alpha,
                      want);
            published++;
        }
        free(counts);
        free(ratings);
    }
    cr_assert_eq(published, 1);
    json_decref(doc);
}

/* Krippendorff (2011)'s example by hand: 40 pairable values; alpha = 0.743 exactly as the
 * fraction ((n − 1) Σ o_cc − Σ n_c(n_c − 1)) / (n(n − 1) − Σ n_c(n_c − 1)) gives it. Also the
 * varying rater counts that Fleiss' kappa refuses. */
Test(agree, krippendorff_paper_example)
{
    enum { U = 12, R = 4, K = 5 };
    const int32_t m = SB_AGREE_MISSING;
    /* units x observers A..D, values 1..5 stored as 0..4 */
    const int32_t ratings[U * R] = {
        0, 0, m, 0, 1, 1, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1, 2, 3,
        3, 3, 3, 3, 0, 0, 1, 0, 1, 1, 1, 1, m, 4, 4, 4, m, m, 0, 0, m, 2, m, m,
    };
    uint32_t counts[U * K];
    sb_error err = { 0 };
    cr_assert_eq(sb_agree_count_ratings(ratings, U, R, K, counts, &err), SB_OK, "%s", err.msg);
    const uint32_t unit6[K] = { 1, 1, 1, 1, 0 }; /* the unit where all four disagree */
    cr_assert_eq(memcmp(counts + 5 * K, unit6, sizeof unit6), 0);
    double alpha;
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, U, K, &alpha, &err), SB_OK);
    cr_assert(fabs(alpha - 0.743) < 5e-4, "alpha %.6f, the paper gives 0.743", alpha);
    /* n = 40, Σ o_cc = 32, n_c = 9, 13, 10, 5, 3 → (39·32 − 344) / (1560 − 344) */
    cr_assert(fabs(alpha - (39.0 * 32.0 - 344.0) / (1560.0 - 344.0)) < 1e-15, "alpha %.17g", alpha);
    double kappa = 0.0;
    cr_assert_eq(sb_agree_fleiss(counts, U, K, &kappa, &err), SB_ERR_INVALID);
    cr_assert(isnan(kappa));
    /* unit 1 (index 0) has 3 ratings, unit 2 has 4: the message names item 1 and item 0 */
    cr_assert(strstr(err.msg, "item 1 has 4 ratings") && strstr(err.msg, "item 0") &&
                  strstr(err.msg, "has 3") && strstr(err.msg, "Krippendorff"),
              "%s", err.msg);
}

Test(agree, no_items)
{
    sb_agree_pair p;
    sb_error err = { 0 };
    cr_assert_eq(sb_agree_pair_compute(NULL, NULL, 0, 7, &p, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(p.n, 0u);
    cr_assert_eq(p.n_missing, 0u);
    cr_assert(isnan(p.raw) && isnan(p.kappa) && isnan(p.kappa_se));
    cr_assert_not_null(p.confusion);
    for (int i = 0; i < 49; i++)
        cr_assert_eq(p.confusion[i], 0u);
    sb_agree_pair_free(&p);
    /* items, but never both rated */
    int32_t a[3] = { 0, -1, 2 }, b[3] = { -1, 1, -1 };
    cr_assert_eq(sb_agree_pair_compute(a, b, 3, 3, &p, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(p.n, 0u);
    cr_assert_eq(p.n_missing, 3u);
    cr_assert(isnan(p.raw) && isnan(p.kappa) && isnan(p.kappa_se));
    sb_agree_pair_free(&p);

    double v = 0.0;
    cr_assert_eq(sb_agree_fleiss(NULL, 0, 3, &v, &err), SB_OK);
    cr_assert(isnan(v));
    cr_assert_eq(sb_agree_krippendorff_nominal(NULL, 0, 3, &v, &err), SB_OK);
    cr_assert(isnan(v));
    /* only unpairable items (0 or 1 rating each) */
    const uint32_t lone[3 * 2] = { 1, 0, 0, 0, 0, 1 };
    cr_assert_eq(sb_agree_fleiss(lone, 3, 2, &v, &err), SB_OK);
    cr_assert(isnan(v));
    cr_assert_eq(sb_agree_krippendorff_nominal(lone, 3, 2, &v, &err), SB_OK);
    cr_assert(isnan(v));
    cr_assert_eq(err.code, SB_OK, "no error recorded: %s", err.msg);
}

Test(agree, one_class_is_undefined_not_a_crash)
{
    int32_t a[5] = { 3, 3, 3, 3, 3 };
    sb_agree_pair p;
    cr_assert_eq(sb_agree_pair_compute(a, a, 5, 4, &p, NULL), SB_OK);
    cr_assert_eq(p.n, 5u);
    cr_assert_eq(p.raw, 1.0);
    cr_assert(isnan(p.kappa) && isnan(p.kappa_se), "kappa %g se %g", p.kappa, p.kappa_se);
    cr_assert_eq(p.confusion[3 * 4 + 3], 5u);
    sb_agree_pair_free(&p);
    /* k = 1: every label is class 0 */
    int32_t z[2] = { 0, 0 };
    cr_assert_eq(sb_agree_pair_compute(z, z, 2, 1, &p, NULL), SB_OK);
    cr_assert(isnan(p.kappa));
    sb_agree_pair_free(&p);
    const uint32_t counts[2 * 3] = { 0, 0, 5, 0, 0, 5 };
    double v;
    cr_assert_eq(sb_agree_fleiss(counts, 2, 3, &v, NULL), SB_OK);
    cr_assert(isnan(v));
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, 2, 3, &v, NULL), SB_OK);
    cr_assert(isnan(v));
}

Test(agree, all_agree)
{
    int32_t a[6] = { 0, 1, 2, 2, 1, 0 };
    sb_agree_pair p;
    cr_assert_eq(sb_agree_pair_compute(a, a, 6, 3, &p, NULL), SB_OK);
    cr_assert_eq(p.raw, 1.0);
    cr_assert_eq(p.kappa, 1.0);
    cr_assert_eq(p.kappa_se, 0.0);
    sb_agree_pair_free(&p);
    const uint32_t counts[3 * 3] = { 4, 0, 0, 0, 4, 0, 0, 0, 4 };
    double v;
    cr_assert_eq(sb_agree_fleiss(counts, 3, 3, &v, NULL), SB_OK);
    cr_assert_eq(v, 1.0);
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, 3, 3, &v, NULL), SB_OK);
    cr_assert_eq(v, 1.0);
}

Test(agree, bad_labels_name_the_item)
{
    sb_agree_pair p;
    sb_error err = { 0 };
    int32_t a[4] = { 0, 1, 2, 1 }, b[4] = { 0, 1, 7, 1 };
    cr_assert_eq(sb_agree_pair_compute(a, b, 4, 7, &p, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "rater b's label 7 on item 2") && strstr(err.msg, "[0, 7)"), "%s",
              err.msg);
    cr_assert_null(p.confusion);
    sb_agree_pair_free(&p); /* safe after a failure */
    sb_error_clear(&err);
    int32_t neg[4] = { 0, 1, -2, 1 }; /* only -1 means missing */
    cr_assert_eq(sb_agree_pair_compute(neg, a, 4, 3, &p, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "rater a's label -2 on item 2"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_agree_pair_compute(a, a, 4, 0, &p, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "0 classes"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_agree_pair_compute(a, NULL, 4, 3, &p, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_agree_pair_compute(a, a, 4, 3, NULL, &err), SB_ERR_INVALID);

    sb_error_clear(&err);
    const int32_t ratings[2 * 3] = { 0, 1, -1, 2, 5, 0 };
    uint32_t counts[2 * 3];
    cr_assert_eq(sb_agree_count_ratings(ratings, 2, 3, 3, counts, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "rater 1's label 5 on item 1"), "%s", err.msg);
    sb_error_clear(&err);
    double v = 0.0;
    cr_assert_eq(sb_agree_fleiss(NULL, 2, 3, &v, &err), SB_ERR_INVALID);
    cr_assert(isnan(v));
    sb_error_clear(&err);
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, 2, 0, &v, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "0 classes"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, 2, 3, NULL, &err), SB_ERR_INVALID);
}

Test(agree, fleiss_unequal_raters_names_the_item)
{
    /* items 0 and 1 have 3 ratings, item 2 a single one (skipped), item 3 has 2 */
    const uint32_t counts[4 * 2] = { 2, 1, 0, 3, 1, 0, 1, 1 };
    double v = 0.0;
    sb_error err = { 0 };
    cr_assert_eq(sb_agree_fleiss(counts, 4, 2, &v, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "item 3 has 2 ratings but item 0") && strstr(err.msg, "has 3"), "%s",
              err.msg);
    cr_assert(isnan(v));
    /* Krippendorff's alpha takes them: by hand, n_c = (3, 5), Σ o_cc = 2/2 + 6/2 + 0 = 4,
     * alpha = (7·4 − (6 + 20)) / (8·7 − 26) = 2/30 */
    cr_assert_eq(sb_agree_krippendorff_nominal(counts, 4, 2, &v, &err), SB_OK);
    cr_assert(fabs(v - 2.0 / 30.0) < 1e-15, "alpha %.17g", v);
}

/* Append `count` items rated (va, vb). */
static size_t put(int32_t *a, int32_t *b, size_t t, int count, int32_t va, int32_t vb)
{
    for (int i = 0; i < count; i++, t++) {
        a[t] = va;
        b[t] = vb;
    }
    return t;
}

/* kappa_se, which callers turn into a confidence interval, on a 2 x 2 table worked by hand
 * from Fleiss, Cohen and Everitt (1969)'s formula (agree.c): C = [[20, 5], [10, 15]]. */
Test(agree, kappa_standard_error_by_hand)
{
    int32_t a[50], b[50];
    size_t t = put(a, b, 0, 20, 0, 0);
    t = put(a, b, t, 5, 0, 1);
    t = put(a, b, t, 10, 1, 0);
    t = put(a, b, t, 15, 1, 1);
    cr_assert_eq(t, 50u);
    sb_agree_pair p;
    cr_assert_eq(sb_agree_pair_compute(a, b, 50, 2, &p, NULL), SB_OK);
    /* n = 50, p_o = .7, rows r = (.5, .5), columns c = (.6, .4), p_e = .5, kappa = .4 */
    cr_assert(fabs(p.raw - 0.7) < 1e-15);
    cr_assert(fabs(p.kappa - 0.4) < 1e-15, "kappa %.17g", p.kappa);
    /* 1 − κ = .6:
     * diag: .4·(1 − 1.1·.6)² + .3·(1 − .9·.6)² = .4·.1156 + .3·.2116 = .10972
     * off:  .1·(c_0 + r_1)² + .2·(c_1 + r_0)² = .1·1.21 + .2·.81 = .283, × .36 = .10188
     * c:    (.4 − .5·.6)² = .01
     * var = (.10972 + .10188 − .01) / .25 / 50 = .016128 */
    cr_assert(fabs(p.kappa_se - sqrt(0.016128)) < 1e-15, "se %.17g", p.kappa_se);
    sb_agree_pair_free(&p);
    sb_agree_pair_free(&p); /* twice is fine */
    sb_agree_pair_free(NULL);
}
