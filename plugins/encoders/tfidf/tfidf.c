/* plugins/encoders/tfidf/tfidf.c — the `tfidf` text encoder plugin: hashed word and char_wb
 * n-grams (scikit-learn's HashingVectorizer scheme), TF-IDF weights fitted on the training
 * split's transcripts, optionally reduced by a truncated SVD (LSA). Needs no download. */
#include <errno.h>
#include <lapacke.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#define TFIDF_VERSION "1.0.0"

#define MAX_WORD_NGRAM 8
#define MAX_CHAR_NGRAM 16
#define MAX_FEATURES 1048576
#define MAX_SVD 4096
#define SVD_OVERSAMPLE 10 /* extra random directions of the range finder (sklearn's default) */
#define SVD_SEED 0x7466696466ull /* fixed: the components depend on the data, not the run */

static const sb_option tfidf_options[] = {
    { "ngram", SB_OPT_LIST, "[1, 2]", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 2, 2, NULL,
      "Word n-gram lengths [min, max] (1..8), words joined by one space; [0, 0] turns word "
      "n-grams off." },
    { "char_ngram", SB_OPT_LIST, "[0, 0]", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 2, 2, NULL,
      "Character n-gram lengths [min, max] (1..16) within each space-padded word, like "
      "sklearn's char_wb analyser, hashed into the same features; [0, 0] = off." },
    { "features", SB_OPT_INT, "4096", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 16, MAX_FEATURES, NULL,
      "Number of hashed features n_features (MurmurHash3 of the term, |h| mod n_features)." },
    { "lowercase", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Lowercase the text before tokenising (ASCII, Latin-1, Greek and Cyrillic letters)." },
    { "sublinear_tf", SB_OPT_BOOL, "false", 0, 0, 0, NULL,
      "Use 1 + ln(count) instead of the raw count as the term frequency." },
    { "norm", SB_OPT_ENUM, "l2", 0, 0, 0, "l2|none",
      "Scale each TF-IDF vector to unit Euclidean length (l2) or leave it (none)." },
    { "svd", SB_OPT_INT, "0", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, MAX_SVD, NULL,
      "Project onto the top k right singular vectors of the training TF-IDF matrix (LSA); "
      "0 = off, else the output has k dimensions (k < features, k <= training texts)." },
    { "svd_iter", SB_OPT_INT, "7", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 100, NULL,
      "Power iterations of the randomized SVD; more give components closer to the exact SVD." },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

/* One training text's hashed counts, kept for the SVD: row r is col/val[row[r]..row[r+1]). */
typedef struct csr {
    size_t n_rows, nnz, cap;
    size_t *row; /* [n_rows + 1] */
    uint32_t *col;
    double *val;
} csr;

typedef struct tfidf_enc {
    const sb_host *host;
    /* options */
    int word_lo, word_hi; /* 0, 0 = off */
    int char_lo, char_hi;
    uint32_t features;
    int lowercase, sublinear, l2;
    int k;      /* svd components, 0 = off */
    int n_iter; /* svd power iterations */
    /* fitted state */
    int fitted;
    size_t n_train;
    double *idf; /* [features] */
    float *comp; /* [features, k] right singular vectors as columns, or NULL */
    /* scratch for one text */
    char *low; /* lowercased text */
    size_t cap_low;
    size_t *tok; /* [2 * n_tokens] byte start, end of each word token in low */
    size_t cap_tok;
    char *gram; /* an n-gram being assembled */
    size_t cap_gram;
    size_t *off; /* code point offsets of a padded word */
    size_t cap_off;
    double *acc;       /* [features] counts of the current text; zero between texts */
    uint32_t *touched; /* [features] indices with acc != 0, in first-seen order */
    size_t n_touched;
} tfidf_enc;

/* ---- hashing ---------------------------------------------------------------------- */

static uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

/* MurmurHash3 x86 32-bit (Austin Appleby), the hash of sklearn's HashingVectorizer. */
static uint32_t murmur3_32(const unsigned char *key, size_t len, uint32_t seed)
{
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = seed;
    const size_t nblocks = len / 4;
    for (size_t i = 0; i < nblocks; i++) {
        const unsigned char *p = key + 4 * i;
        uint32_t k =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64u;
    }
    const unsigned char *tail = key + 4 * nblocks;
    const size_t rest = len & 3;
    uint32_t k1 = 0;
    if (rest >= 3)
        k1 ^= (uint32_t)tail[2] << 16;
    if (rest >= 2)
        k1 ^= (uint32_t)tail[1] << 8;
    if (rest >= 1) {
        k1 ^= tail[0];
        k1 *= c1;
        k1 = rotl32(k1, 15);
        k1 *= c2;
        h ^= k1;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Count the term s[0..len) in the current text: index |h| mod features with h the hash as
 * a signed int32 (|INT32_MIN| taken in 64 bits, as sklearn's special case amounts to). */
static void add_term(tfidf_enc *e, const char *s, size_t len)
{
    const int32_t h = (int32_t)murmur3_32((const unsigned char *)s, len, 0);
    const int64_t a = h < 0 ? -(int64_t)h : (int64_t)h;
    const uint32_t j = (uint32_t)(a % (int64_t)e->features);
    if (e->acc[j] == 0.0)
        e->touched[e->n_touched++] = j;
    e->acc[j] += 1.0;
}

static void clear_counts(tfidf_enc *e)
{
    for (size_t t = 0; t < e->n_touched; t++)
        e->acc[e->touched[t]] = 0.0;
    e->n_touched = 0;
}

/* ---- text analysis ------------------------------------------------------------------ */

/* Decode the UTF-8 sequence at s[i] (i < n): its code point in *cp and its length. A
 * malformed byte decodes alone as U+FFFD, so any byte string is accepted. */
static size_t utf8_next(const unsigned char *s, size_t i, size_t n, uint32_t *cp)
{
    const unsigned c = s[i];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c < 0xe0) {
        len = 2, v = c & 0x1f;
    } else if (c >= 0xe0 && c < 0xf0) {
        len = 3, v = c & 0x0f;
    } else if (c >= 0xf0 && c < 0xf5) {
        len = 4, v = c & 0x07;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (i + len > n) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = v << 6 | (s[i + k] & 0x3f);
    }
    *cp = v;
    return len;
}

/* Python's str.isspace for the code points a transcript can hold. */
static int is_space_cp(uint32_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) || c == 0x85 ||
           c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* A character of a word token: ASCII letters, digits and '_' as in the regex \w, and every
 * code point from U+0080 up (so UTF-8 letters stay inside words) except spaces, the Latin-1
 * punctuation and symbols U+00A0..U+00BF other than ª ² ³ µ ¹ º ¼ ½ ¾ (which Python's \w
 * matches), and the General Punctuation block U+2000..U+206F (curly quotes, dashes, "…"). */
static int is_word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (c >= 0xa0 && c <= 0xbf)
        return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb5 || c == 0xb9 || c == 0xba ||
               (c >= 0xbc && c <= 0xbe);
    if (c >= 0x2000 && c <= 0x206f)
        return 0;
    return !is_space_cp(c) && c != 0xfffd;
}

/* Lowercase of a two-byte code point whose lowercase has the same UTF-8 length. */
static uint32_t lower_cp(uint32_t c)
{
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3ab && c != 0x3a2) ||
        (c >= 0x410 && c <= 0x42f))
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40f)
        return c + 0x50;
    return c;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Count every term of `text` into e->acc: word n-grams of the tokens, then char_wb n-grams
 * of the whitespace-separated words. -1 when out of memory. */
static int analyse(tfidf_enc *e, const char *text)
{
    const size_t n = strlen(text);
    if (grow((void **)&e->low, &e->cap_low, n + 1, 1))
        return -1;
    memcpy(e->low, text, n + 1);
    unsigned char *s = (unsigned char *)e->low;
    if (e->lowercase) {
        for (size_t i = 0; i < n;) {
            uint32_t c;
            const size_t len = utf8_next(s, i, n, &c);
            if (c < 0x80) {
                if (c >= 'A' && c <= 'Z')
                    s[i] = (unsigned char)(c + 32);
            } else if (len == 2) {
                const uint32_t l = lower_cp(c);
                s[i] = (unsigned char)(0xc0 | l >> 6);
                s[i + 1] = (unsigned char)(0x80 | (l & 0x3f));
            }
            i += len;
        }
    }

    if (e->word_hi > 0) {
        /* Tokens: maximal runs of 2+ word characters (the regex (?u)\b\w\w+\b). */
        size_t n_tok = 0;
        for (size_t i = 0; i < n;) {
            uint32_t c;
            size_t len = utf8_next(s, i, n, &c);
            if (!is_word_cp(c)) {
                i += len;
                continue;
            }
            const size_t start = i;
            size_t chars = 0;
            while (i < n) {
                len = utf8_next(s, i, n, &c);
                if (!is_word_cp(c))
                    break;
                i += len;
                chars++;
            }
            if (chars < 2)
                continue;
            if (grow((void **)&e->tok, &e->cap_tok, 2 * n_tok + 2, sizeof *e->tok))
                return -1;
            e->tok[2 * n_tok] = start;
            e->tok[2 * n_tok + 1] = i;
            n_tok++;
        }
        for (int g = e->word_lo; g <= e->word_hi && (size_t)g <= n_tok; g++) {
            for (size_t t = 0; t + (size_t)g <= n_tok; t++) {
                if (g == 1) {
                    add_term(e, e->low + e->tok[2 * t], e->tok[2 * t + 1] - e->tok[2 * t]);
                    continue;
                }
                /* tokens t .. t+g-1 joined by one space */
                const size_t need = e->tok[2 * (t + g - 1) + 1] - e->tok[2 * t] + 1;
                if (grow((void **)&e->gram, &e->cap_gram, need, 1))
                    return -1;
                size_t len = 0;
                for (size_t u = t; u < t + (size_t)g; u++) {
                    if (u > t)
                        e->gram[len++] = ' ';
                    memcpy(e->gram + len, e->low + e->tok[2 * u],
                           e->tok[2 * u + 1] - e->tok[2 * u]);
                    len += e->tok[2 * u + 1] - e->tok[2 * u];
                }
                add_term(e, e->gram, len);
            }
        }
    }

    if (e->char_hi > 0) {
        /* sklearn's char_wb: each word w (split on whitespace) becomes " w ", and its
         * n-grams of code points are counted; a padded word no longer than n gives one
         * n-gram (itself) and stops the longer lengths. */
        for (size_t i = 0; i < n;) {
            uint32_t c;
            size_t len = utf8_next(s, i, n, &c);
            if (is_space_cp(c)) {
                i += len;
                continue;
            }
            const size_t start = i;
            while (i < n) {
                len = utf8_next(s, i, n, &c);
                if (is_space_cp(c))
                    break;
                i += len;
            }
            const size_t wlen = i - start;
            if (grow((void **)&e->gram, &e->cap_gram, wlen + 2, 1) ||
                grow((void **)&e->off, &e->cap_off, wlen + 3, sizeof *e->off))
                return -1;
            e->gram[0] = ' ';
            memcpy(e->gram + 1, e->low + start, wlen);
            e->gram[wlen + 1] = ' ';
            size_t L = 0; /* code points of the padded word; off[L] = its byte length */
            for (size_t b = 0; b < wlen + 2; L++) {
                e->off[L] = b;
                b += utf8_next((const unsigned char *)e->gram, b, wlen + 2, &c);
            }
            e->off[L] = wlen + 2;
            for (int g = e->char_lo; g <= e->char_hi; g++) {
                size_t o = 0;
                const size_t gn = (size_t)g;
                size_t end = gn < L ? gn : L;
                add_term(e, e->gram + e->off[0], e->off[end] - e->off[0]);
                while (o + gn < L) {
                    o++;
                    end = o + gn < L ? o + gn : L;
                    add_term(e, e->gram + e->off[o], e->off[end] - e->off[o]);
                }
                if (o == 0)
                    break;
            }
        }
    }
    return 0;
}

/* ---- weighting ---------------------------------------------------------------------- */

/* Turn the current counts into TF-IDF weights in place (acc[touched]), L2-normalised when
 * asked. An empty text stays all zero. */
static void weigh(tfidf_enc *e)
{
    double ss = 0.0;
    for (size_t t = 0; t < e->n_touched; t++) {
        const uint32_t j = e->touched[t];
        const double tf = e->sublinear ? 1.0 + log(e->acc[j]) : e->acc[j];
        const double w = tf * e->idf[j];
        e->acc[j] = w;
        ss += w * w;
    }
    if (e->l2 && ss > 0.0) {
        const double inv = 1.0 / sqrt(ss);
        for (size_t t = 0; t < e->n_touched; t++)
            e->acc[e->touched[t]] *= inv;
    }
}

/* ---- truncated SVD ------------------------------------------------------------------ */

/* Y [n_rows, l] = X Om, Om [features, l]; all row-major. */
static void csr_mul(const csr *X, const double *Om, size_t l, double *Y)
{
    memset(Y, 0, X->n_rows * l * sizeof *Y);
    for (size_t r = 0; r < X->n_rows; r++) {
        double *y_r = Y + r * l;
        for (size_t p = X->row[r]; p < X->row[r + 1]; p++) {
            const double v = X->val[p];
            const double *om_c = Om + (size_t)X->col[p] * l;
            for (size_t j = 0; j < l; j++)
                y_r[j] += v * om_c[j];
        }
    }
}

/* Z [d, l] = X^T Q, Q [n_rows, l]; all row-major. */
static void csr_tmul(const csr *X, const double *Q, size_t l, size_t d, double *Z)
{
    memset(Z, 0, d * l * sizeof *Z);
    for (size_t r = 0; r < X->n_rows; r++) {
        const double *q_r = Q + r * l;
        for (size_t p = X->row[r]; p < X->row[r + 1]; p++) {
            const double v = X->val[p];
            double *z_c = Z + (size_t)X->col[p] * l;
            for (size_t j = 0; j < l; j++)
                z_c[j] += v * q_r[j];
        }
    }
}

/* Replace A [m, l] (m >= l, row-major) by an orthonormal basis of its columns (Householder
 * QR; Q stays orthonormal when A is rank-deficient). */
static int orthonormalise(double *A, size_t m, size_t l, double *tau)
{
    if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, A, (lapack_int)l, tau))
        return -1;
    if (LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, (lapack_int)l, A,
                       (lapack_int)l, tau))
        return -1;
    return 0;
}

/* The top k right singular vectors of X [n_rows, d] into comp [d, k] (column c = vector c),
 * by Halko, Martinsson & Tropp's randomized range finder with n_iter power iterations
 * (QR between products), then an exact SVD of the small projected matrix. Each vector's
 * largest-magnitude entry is made positive. sv[0..k) gets the singular values. */
static sb_status randomized_svd(const csr *X, size_t d, int k, int n_iter, float *comp, double *sv,
                                sb_error *err)
{
    const size_t n = X->n_rows, m = n < d ? n : d;
    size_t l = (size_t)k + SVD_OVERSAMPLE;
    if (l > m)
        l = m;
    double *Om = malloc(d * l * sizeof *Om); /* Om, then Z = X^T Q: [d, l] */
    double *Y = malloc(n * l * sizeof *Y);   /* Y = X Om, then Q: [n, l] */
    double *tau = malloc(l * sizeof *tau);
    double *s = malloc(l * sizeof *s);
    double *U = malloc(d * l * sizeof *U);
    double *Vt = malloc(l * l * sizeof *Vt);
    sb_status st = SB_OK;
    if (!Om || !Y || !tau || !s || !U || !Vt) {
        st = sb_error_set(err, SB_ERR_NOMEM, "tfidf",
                          "out of memory for the SVD of %zu x %zu with %zu directions", n, d, l);
        goto done;
    }
    sb_rng rng;
    sb_rng_seed(&rng, SVD_SEED, 0);
    for (size_t i = 0; i < d * l; i++)
        Om[i] = sb_rng_normal(&rng);
    csr_mul(X, Om, l, Y);
    if (orthonormalise(Y, n, l, tau))
        goto lapack_failed;
    for (int it = 0; it < n_iter; it++) {
        csr_tmul(X, Y, l, d, Om);
        if (orthonormalise(Om, d, l, tau))
            goto lapack_failed;
        csr_mul(X, Om, l, Y);
        if (orthonormalise(Y, n, l, tau))
            goto lapack_failed;
    }
    /* B = Q^T X = Z^T with Z = X^T Q [d, l]; B's right singular vectors are Z's left ones. */
    csr_tmul(X, Y, l, d, Om);
    if (LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)d, (lapack_int)l, Om, (lapack_int)l, s, U,
                       (lapack_int)l, Vt, (lapack_int)l))
        goto lapack_failed;
    for (int c = 0; c < k; c++) {
        size_t arg = 0;
        for (size_t j = 1; j < d; j++)
            if (fabs(U[j * l + (size_t)c]) > fabs(U[arg * l + (size_t)c]))
                arg = j;
        const double sign = U[arg * l + (size_t)c] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < d; j++)
            comp[j * (size_t)k + (size_t)c] = (float)(sign * U[j * l + (size_t)c]);
        sv[c] = s[c];
    }
    goto done;
lapack_failed:
    st = sb_error_set(err, SB_ERR_INTERNAL, "tfidf",
                      "LAPACK failed in the SVD of the %zu x %zu training TF-IDF matrix", n, d);
done:
    free(Om);
    free(Y);
    free(tau);
    free(s);
    free(U);
    free(Vt);
    return st;
}

/* ---- the plugin --------------------------------------------------------------------- */

static void forget_fit(tfidf_enc *e)
{
    free(e->idf);
    free(e->comp);
    e->idf = NULL;
    e->comp = NULL;
    e->fitted = 0;
    e->n_train = 0;
}

static void tfidf_destroy(void *inst)
{
    tfidf_enc *e = inst;
    if (!e)
        return;
    forget_fit(e);
    free(e->low);
    free(e->tok);
    free(e->gram);
    free(e->off);
    free(e->acc);
    free(e->touched);
    free(e);
}

/* An n-gram range option: a pair [lo, hi] of integers, 1 <= lo <= hi <= max, or [0, 0]. */
static sb_status parse_range(const sb_opts *opts, const char *key, int max, int *lo, int *hi,
                             sb_error *err)
{
    const char *where = sb_opts_where(opts, key);
    const size_t len = sb_opts_list_len(opts, key);
    if (len != 2)
        return sb_error_set(err, SB_ERR_CONFIG, where,
                            "%s must be a pair [min, max] of n-gram lengths, got %zu item(s)", key,
                            len);
    long v[2];
    for (size_t i = 0; i < 2; i++) {
        const char *s = sb_opts_list_item(opts, key, i);
        char *end = NULL;
        errno = 0;
        v[i] = s ? strtol(s, &end, 10) : -1;
        if (!s || end == s || *end || errno || v[i] < 0 || v[i] > max)
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "%s item %zu '%s' is not an integer in 0..%d", key, i + 1,
                                s ? s : "", max);
    }
    if (v[0] > v[1])
        return sb_error_set(err, SB_ERR_CONFIG, where,
                            "%s [%ld, %ld]: the minimum length is above the maximum", key, v[0],
                            v[1]);
    if (v[0] == 0 && v[1] != 0)
        return sb_error_set(err, SB_ERR_CONFIG, where,
                            "%s [0, %ld]: n-gram lengths start at 1; [0, 0] turns them off", key,
                            v[1]);
    *lo = (int)v[0];
    *hi = (int)v[1];
    return SB_OK;
}

static sb_status tfidf_create(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err)
{
    *inst = NULL;
    tfidf_enc *e = calloc(1, sizeof *e);
    if (!e)
        return sb_error_set(err, SB_ERR_NOMEM, "tfidf", "out of memory");
    e->host = host;
    sb_status st = parse_range(opts, "ngram", MAX_WORD_NGRAM, &e->word_lo, &e->word_hi, err);
    if (st == SB_OK)
        st = parse_range(opts, "char_ngram", MAX_CHAR_NGRAM, &e->char_lo, &e->char_hi, err);
    if (st != SB_OK) {
        tfidf_destroy(e);
        return st;
    }
    if (e->word_hi == 0 && e->char_hi == 0) {
        tfidf_destroy(e);
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "ngram"),
                            "ngram and char_ngram are both [0, 0]: no terms to count; turn one "
                            "of them on");
    }
    e->features = (uint32_t)sb_opts_int(opts, "features");
    e->lowercase = sb_opts_bool(opts, "lowercase");
    e->sublinear = sb_opts_bool(opts, "sublinear_tf");
    const char *norm = sb_opts_str(opts, "norm");
    e->l2 = !norm || strcmp(norm, "none") != 0;
    e->k = (int)sb_opts_int(opts, "svd");
    e->n_iter = (int)sb_opts_int(opts, "svd_iter");
    if (e->k > 0 && (uint32_t)e->k >= e->features) {
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "svd"),
                          "svd %d must be below features (%u)", e->k, e->features);
        tfidf_destroy(e);
        return st;
    }
    e->acc = calloc(e->features, sizeof *e->acc);
    e->touched = malloc(e->features * sizeof *e->touched);
    if (!e->acc || !e->touched) {
        tfidf_destroy(e);
        return sb_error_set(err, SB_ERR_NOMEM, "tfidf", "out of memory for %u features",
                            (unsigned)sb_opts_int(opts, "features"));
    }
    *inst = e;
    return SB_OK;
}

static sb_status tfidf_info(void *inst, sb_encoder_info *info, sb_error *err)
{
    const tfidf_enc *e = inst;
    info->sample_rate = 0; /* no audio: the encoder reads text */
    info->n_layers = 1;
    info->dim = e->k > 0 ? e->k : (int)e->features;
    if (info->struct_size >= offsetof(sb_encoder_info, input) + sizeof info->input)
        info->input = SB_INPUT_TEXT;
    return SB_OK;
}

static sb_status nomem(sb_error *err, const char *what, size_t i)
{
    char where[64];
    snprintf(where, sizeof where, "text %zu", i);
    return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory while %s", what);
}

/* texts[0..n): the training transcripts. Learns df per hashed feature, the smoothed IDF
 * ln((1 + n) / (1 + df)) + 1 and, with svd, the components. */
static sb_status tfidf_fit(void *inst, const char *const *texts, size_t n, sb_error *err)
{
    tfidf_enc *e = inst;
    forget_fit(e);
    if (n == 0)
        return sb_error_set(err, SB_ERR_INVALID, "tfidf",
                            "no transcripts in the training split: the IDF weights are fitted "
                            "on them; give the training utterances transcripts");
    if (e->k > 0 && (size_t)e->k > n)
        return sb_error_set(err, SB_ERR_INVALID, "tfidf",
                            "svd %d needs at least %d training transcripts; the training split "
                            "has %zu (lower svd)",
                            e->k, e->k, n);
    const size_t d = e->features;
    uint32_t *df = calloc(d, sizeof *df);
    e->idf = malloc(d * sizeof *e->idf);
    csr X = { 0 };
    sb_status st = SB_OK;
    if (!df || !e->idf || (e->k > 0 && !(X.row = malloc((n + 1) * sizeof *X.row)))) {
        st = sb_error_set(err, SB_ERR_NOMEM, "tfidf", "out of memory for %zu features", d);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!texts[i]) {
            char where[64];
            snprintf(where, sizeof where, "text %zu", i);
            st = sb_error_set(err, SB_ERR_INVALID, where, "transcript is NULL");
            goto done;
        }
        if ((i & 1023) == 0 && e->host && e->host->cancelled(e->host)) {
            st = sb_error_set(err, SB_ERR_CANCELLED, "tfidf", "fit cancelled");
            goto done;
        }
        if (analyse(e, texts[i])) {
            st = nomem(err, "counting terms", i);
            goto done;
        }
        for (size_t t = 0; t < e->n_touched; t++)
            df[e->touched[t]]++;
        if (e->k > 0) {
            const size_t old_cap = X.cap; /* val follows col's capacity */
            if (grow((void **)&X.col, &X.cap, X.nnz + e->n_touched, sizeof *X.col)) {
                st = nomem(err, "keeping the training matrix", i);
                goto done;
            }
            if (X.cap != old_cap) {
                double *v = realloc(X.val, X.cap * sizeof *v);
                if (!v) {
                    st = nomem(err, "keeping the training matrix", i);
                    goto done;
                }
                X.val = v;
            }
            X.row[i] = X.nnz;
            for (size_t t = 0; t < e->n_touched; t++) {
                X.col[X.nnz] = e->touched[t];
                X.val[X.nnz++] = e->acc[e->touched[t]];
            }
        }
        clear_counts(e);
    }
    for (size_t j = 0; j < d; j++)
        e->idf[j] = log((1.0 + (double)n) / (1.0 + (double)df[j])) + 1.0;

    if (e->k > 0) {
        X.n_rows = n;
        X.row[n] = X.nnz;
        /* The training rows weighted exactly as encode_text weighs a text. */
        for (size_t r = 0; r < n; r++) {
            for (size_t p = X.row[r]; p < X.row[r + 1]; p++) {
                e->acc[X.col[p]] = X.val[p];
                e->touched[e->n_touched++] = X.col[p];
            }
            weigh(e);
            for (size_t p = X.row[r]; p < X.row[r + 1]; p++)
                X.val[p] = e->acc[X.col[p]];
            clear_counts(e);
        }
        e->comp = malloc(d * (size_t)e->k * sizeof *e->comp);
        double *sv = malloc((size_t)e->k * sizeof *sv);
        if (!e->comp || !sv) {
            free(sv);
            st = sb_error_set(err, SB_ERR_NOMEM, "tfidf", "out of memory for %d components", e->k);
            goto done;
        }
        st = randomized_svd(&X, d, e->k, e->n_iter, e->comp, sv, err);
        if (st == SB_OK && e->host) {
            int zero = 0;
            for (int c = 0; c < e->k; c++)
                zero += !(sv[c] > 1e-9 * sv[0]);
            if (zero)
                e->host->log(e->host, SB_LOG_WARN,
                             "%d of the %d SVD components have a zero singular value (the "
                             "training texts span fewer dimensions); lower svd",
                             zero, e->k);
        }
        free(sv);
    }
done:
    clear_counts(e);
    free(df);
    free(X.row);
    free(X.col);
    free(X.val);
    if (st != SB_OK)
        forget_fit(e);
    else {
        e->fitted = 1;
        e->n_train = n;
    }
    return st;
}

static sb_status tfidf_fingerprint(void *inst, char out[128], sb_error *err)
{
    const tfidf_enc *e = inst;
    if (!e->fitted)
        return sb_error_set(err, SB_ERR_INVALID, "tfidf",
                            "fingerprint before fit: the host must call fit with the training "
                            "split's transcripts first");
    sb_hasher *h = sb_hasher_create();
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, "tfidf", "out of memory");
    char opt[256];
    snprintf(opt, sizeof opt,
             "tfidf " TFIDF_VERSION " ngram=%d,%d char_ngram=%d,%d features=%u lowercase=%d "
             "sublinear_tf=%d norm=%s svd=%d svd_iter=%d n_train=%zu",
             e->word_lo, e->word_hi, e->char_lo, e->char_hi, e->features, e->lowercase,
             e->sublinear, e->l2 ? "l2" : "none", e->k, e->n_iter, e->n_train);
    sb_hasher_str(h, opt);
    sb_hasher_update(h, e->idf, e->features * sizeof *e->idf);
    if (e->comp)
        sb_hasher_update(h, e->comp, (size_t)e->features * (size_t)e->k * sizeof *e->comp);
    char hex[SB_HASH_HEX];
    sb_hasher_hex(h, hex);
    sb_hasher_destroy(&h);
    snprintf(out, 128, "tfidf-%s", hex);
    return SB_OK;
}

/* out: [n, 1, dim] — the TF-IDF vector of each text (dim = features), or its projection on
 * the SVD components (dim = k). An empty text (or one with no terms) gives zeros. */
static sb_status tfidf_encode_text(void *inst, const char *const *texts, size_t n, float *out,
                                   sb_error *err)
{
    tfidf_enc *e = inst;
    if (!e->fitted)
        return sb_error_set(err, SB_ERR_INVALID, "tfidf",
                            "encode_text before fit: the host must call fit with the training "
                            "split's transcripts first");
    const size_t dim = e->k > 0 ? (size_t)e->k : e->features;
    for (size_t i = 0; i < n; i++) {
        float *out_i = out + i * dim;
        if (!texts[i]) {
            char where[64];
            snprintf(where, sizeof where, "text %zu", i);
            return sb_error_set(err, SB_ERR_INVALID, where, "transcript is NULL");
        }
        if (analyse(e, texts[i])) {
            clear_counts(e);
            return nomem(err, "counting terms", i);
        }
        weigh(e);
        if (e->k == 0) {
            memset(out_i, 0, dim * sizeof *out_i);
            for (size_t t = 0; t < e->n_touched; t++)
                out_i[e->touched[t]] = (float)e->acc[e->touched[t]];
        } else {
            double proj[MAX_SVD];
            memset(proj, 0, dim * sizeof *proj);
            for (size_t t = 0; t < e->n_touched; t++) {
                const uint32_t j = e->touched[t];
                const double w = e->acc[j];
                const float *comp_j = e->comp + (size_t)j * dim;
                for (size_t c = 0; c < dim; c++)
                    proj[c] += w * comp_j[c];
            }
            for (size_t c = 0; c < dim; c++)
                out_i[c] = (float)proj[c];
        }
        clear_counts(e);
    }
    return SB_OK;
}

static const sb_encoder_vtable tfidf_vtable = {
    .struct_size = sizeof(sb_encoder_vtable),
    .create = tfidf_create,
    .info = tfidf_info,
    .fingerprint = tfidf_fingerprint,
    .encode = NULL, /* a text encoder: the host calls encode_text */
    .destroy = tfidf_destroy,
    .frames = NULL,
    .fit = tfidf_fit,
    .encode_text = tfidf_encode_text,
};

static const sb_plugin tfidf_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_ENCODER,
    .name = "tfidf",
    .version = TFIDF_VERSION,
    .summary = "TF-IDF of hashed word and char_wb n-grams fitted on the training transcripts "
               "(optional LSA); no download.",
    .options = tfidf_options,
    .vtable = &tfidf_vtable,
};

SB_PLUGIN_DEFINE(tfidf_plugin)
