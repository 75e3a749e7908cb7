/* core/lib/nn/agree.c — inter-annotator agreement: Cohen's kappa with the Fleiss-Cohen-Everitt
 * standard error, Fleiss' kappa and Krippendorff's nominal alpha. The formulas are in
 * serbench/agree.h; tests/unit/nn/test_agree.c checks them against scikit-learn, statsmodels,
 * nltk and the published worked examples. */
#include <serbench/agree.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sb_agree_pair_free(sb_agree_pair *p)
{
    if (!p)
        return;
    free(p->confusion);
    memset(p, 0, sizeof *p);
}

static sb_status check_label(int32_t v, int k, const char *who, size_t item, sb_error *err)
{
    if (v == SB_AGREE_MISSING || (v >= 0 && v < k))
        return SB_OK;
    return sb_error_set(err, SB_ERR_INVALID, NULL,
                        "agree: %s's label %d on item %zu is outside [0, %d); use 0..%d for a "
                        "class or %d for an item the rater did not label",
                        who, (int)v, item, k, k - 1, SB_AGREE_MISSING);
}

/* FCE 1969's large-sample variance of kappa, in proportions: with p_ij = C[i][j] / n,
 * row marginals r_i (rater a) and column marginals c_j (rater b),
 *   var = ( Σ_i p_ii [1 − (r_i + c_i)(1 − κ)]²
 *         + (1 − κ)² Σ_{i≠j} p_ij (c_i + r_j)²
 *         − [κ − p_e (1 − κ)]² ) / (n (1 − p_e)²).
 * row and col are the (k) marginal counts. Rounding can leave −1e-17 where the true value
 * is 0 (perfect agreement), hence the clamp. */
static double kappa_se(const uint64_t *cm, const uint64_t *row, const uint64_t *col, int k,
                       size_t n, double kappa, double pe)
{
    const double dn = (double)n, one_k = 1.0 - kappa;
    double diag = 0.0, off = 0.0;
    for (int i = 0; i < k; i++) {
        double ri = (double)row[i] / dn, ci = (double)col[i] / dn;
        for (int j = 0; j < k; j++) {
            double pij = (double)cm[(size_t)i * k + j] / dn;
            if (i == j) {
                double t = 1.0 - (ri + ci) * one_k;
                diag += pij * t * t;
            } else {
                double t = ci + (double)row[j] / dn;
                off += pij * t * t;
            }
        }
    }
    double c = kappa - pe * one_k;
    double var = (diag + one_k * one_k * off - c * c) / ((1.0 - pe) * (1.0 - pe)) / dn;
    return sqrt(var > 0.0 ? var : 0.0);
}

sb_status sb_agree_pair_compute(const int32_t *a, const int32_t *b, size_t n, int k,
                                sb_agree_pair *out, sb_error *err)
{
    if (!out)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "agree: NULL output");
    memset(out, 0, sizeof *out);
    if (k < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "agree: %d classes; need at least 1", k);
    if (n > 0 && (!a || !b))
        return sb_error_set(err, SB_ERR_INVALID, NULL, "agree: NULL labels for %zu items", n);
    sb_status st;
    for (size_t i = 0; i < n; i++)
        if ((st = check_label(a[i], k, "rater a", i, err)) != SB_OK ||
            (st = check_label(b[i], k, "rater b", i, err)) != SB_OK)
            return st;

    const size_t K = (size_t)k;
    uint64_t *cm = calloc(K * K + 2 * K, sizeof *cm); /* (k,k) matrix, then row and col sums */
    if (!cm)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "agree: out of memory for %d classes", k);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == SB_AGREE_MISSING || b[i] == SB_AGREE_MISSING)
            continue;
        cm[(size_t)a[i] * K + (size_t)b[i]]++;
        used++;
    }
    uint64_t *row = cm + K * K, *col = row + K;
    uint64_t same = 0;
    int pe_is_one = 0; /* both raters put every item in one and the same class */
    for (size_t i = 0; i < K; i++) {
        for (size_t j = 0; j < K; j++) {
            row[i] += cm[i * K + j];
            col[j] += cm[i * K + j];
        }
        same += cm[i * K + i];
    }
    double rc = 0.0; /* Σ_c row_c · col_c = n² p_e, exact while below 2^53 */
    for (size_t c = 0; c < K; c++) {
        rc += (double)row[c] * (double)col[c];
        if (used > 0 && row[c] == used && col[c] == used)
            pe_is_one = 1;
    }

    out->k = k;
    out->n = used;
    out->n_missing = n - used;
    out->confusion = cm; /* the marginals after it are scratch the caller never sees */
    if (used == 0 || pe_is_one) {
        out->raw = used ? (double)same / (double)used : NAN;
        out->kappa = NAN;
        out->kappa_se = NAN;
        return SB_OK;
    }
    const double dn = (double)used;
    out->raw = (double)same / dn;
    /* As scikit-learn: 1 − observed / expected disagreement, both in counts; the expected
     * count n(1 − p_e) = (n² − Σ_c row_c col_c) / n. Equal to (p_o − p_e) / (1 − p_e). */
    out->kappa = 1.0 - (dn - (double)same) * dn / (dn * dn - rc);
    out->kappa_se = kappa_se(cm, row, col, k, used, out->kappa, rc / (dn * dn));
    return SB_OK;
}

sb_status sb_agree_count_ratings(const int32_t *labels, size_t n_items, size_t n_raters, int k,
                                 uint32_t *counts, sb_error *err)
{
    if (k < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "agree: %d classes; need at least 1", k);
    if (n_items > 0 && (!counts || (n_raters > 0 && !labels)))
        return sb_error_set(err, SB_ERR_INVALID, NULL, "agree: NULL labels or counts");
    const size_t K = (size_t)k;
    for (size_t i = 0; i < n_items; i++) {
        uint32_t *counts_i = counts + i * K;
        memset(counts_i, 0, K * sizeof *counts_i);
        for (size_t r = 0; r < n_raters; r++) {
            int32_t v = labels[i * n_raters + r];
            if (v == SB_AGREE_MISSING)
                continue;
            if (v < 0 || v >= k)
                return sb_error_set(err, SB_ERR_INVALID, NULL,
                                    "agree: rater %zu's label %d on item %zu is outside [0, %d); "
                                    "use 0..%d for a class or %d for a missing rating",
                                    r, (int)v, i, k, k - 1, SB_AGREE_MISSING);
            counts_i[v]++;
        }
    }
    return SB_OK;
}

static sb_status check_counts(const char *what, const uint32_t *counts, size_t n_items, int k,
                              double *value, sb_error *err)
{
    if (!value)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "%s: NULL output", what);
    *value = NAN;
    if (k < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "%s: %d classes; need at least 1", what, k);
    if (n_items > 0 && !counts)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "%s: NULL counts for %zu items", what,
                            n_items);
    return SB_OK;
}

static uint64_t item_total(const uint32_t *counts_i, size_t K)
{
    uint64_t m = 0;
    for (size_t c = 0; c < K; c++)
        m += counts_i[c];
    return m;
}

/* Sums of squares of counts are accumulated in double: exact while below 2^53, far beyond
 * any real annotation (10^6 items x 10^3 raters stays under 10^12). */
sb_status sb_agree_fleiss(const uint32_t *counts, size_t n_items, int k, double *kappa,
                          sb_error *err)
{
    sb_status st = check_counts("fleiss", counts, n_items, k, kappa, err);
    if (st != SB_OK)
        return st;
    const size_t K = (size_t)k;
    double *class_total = calloc(K, sizeof *class_total);
    if (!class_total)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "fleiss: out of memory");
    uint64_t m = 0;      /* ratings per item, from the first item used */
    size_t first = 0;    /* that item */
    size_t n_used = 0;   /* items with m ratings */
    double sum_sq = 0.0; /* Σ_i Σ_c n_ic² */
    for (size_t i = 0; i < n_items; i++) {
        const uint32_t *counts_i = counts + i * K;
        uint64_t m_i = item_total(counts_i, K);
        if (m_i < 2)
            continue;
        if (n_used == 0) {
            m = m_i;
            first = i;
        } else if (m_i != m) {
            free(class_total);
            return sb_error_set(
                err, SB_ERR_INVALID, NULL,
                "fleiss: item %zu has %llu ratings but item %zu (the first with 2 or more) has "
                "%llu; Fleiss' kappa needs the same number of ratings on every item — use "
                "Krippendorff's alpha for varying numbers of raters",
                i, (unsigned long long)m_i, first, (unsigned long long)m);
        }
        for (size_t c = 0; c < K; c++) {
            sum_sq += (double)counts_i[c] * (double)counts_i[c];
            class_total[c] += (double)counts_i[c];
        }
        n_used++;
    }
    if (n_used == 0) {
        free(class_total);
        return SB_OK; /* NAN: nothing pairable */
    }
    const double total = (double)n_used * (double)m; /* N m ratings */
    double pe = 0.0;
    int one_class = 0;
    for (size_t c = 0; c < K; c++) {
        double p_c = class_total[c] / total;
        pe += p_c * p_c;
        if (class_total[c] == total)
            one_class = 1;
    }
    free(class_total);
    if (one_class)
        return SB_OK; /* NAN: P_e = 1 */
    /* mean_i P_i with P_i = (Σ_c n_ic² − m) / (m(m − 1)) */
    double p_bar = (sum_sq - total) / (total * (double)(m - 1));
    *kappa = (p_bar - pe) / (1.0 - pe);
    return SB_OK;
}

sb_status sb_agree_krippendorff_nominal(const uint32_t *counts, size_t n_items, int k,
                                        double *alpha, sb_error *err)
{
    sb_status st = check_counts("krippendorff", counts, n_items, k, alpha, err);
    if (st != SB_OK)
        return st;
    const size_t K = (size_t)k;
    double *n_c = calloc(K, sizeof *n_c); /* pairable values per class: the coincidence
                                             matrix's marginals */
    if (!n_c)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "krippendorff: out of memory");
    double o_diag = 0.0; /* Σ_c o_cc: coincidences of matching values */
    for (size_t i = 0; i < n_items; i++) {
        const uint32_t *counts_i = counts + i * K;
        uint64_t m_i = item_total(counts_i, K);
        if (m_i < 2)
            continue;            /* a lone value has no partner to coincide with */
        double same_pairs = 0.0; /* ordered pairs of distinct ratings with equal values */
        for (size_t c = 0; c < K; c++) {
            double v = (double)counts_i[c];
            same_pairs += v * (v - 1.0);
            n_c[c] += v;
        }
        o_diag += same_pairs / (double)(m_i - 1);
    }
    double n = 0.0, nn_c = 0.0; /* n and Σ_c n_c (n_c − 1) */
    for (size_t c = 0; c < K; c++) {
        n += n_c[c];
        nn_c += n_c[c] * (n_c[c] - 1.0);
    }
    free(n_c);
    double de = n * (n - 1.0) - nn_c; /* n(n − 1) D_e: 0 with < 2 values or one class */
    if (de <= 0.0)
        return SB_OK; /* NAN */
    *alpha = ((n - 1.0) * o_diag - nn_c) / de;
    return SB_OK;
}
