/* core/lib/audio/fbank.c — log-mel filterbank energies with FFTW (single precision r2c).
 * The definition is in serbench/fbank.h and, with formulas, docs/encoders.md "## fbank";
 * scripts/ref_fbank.py is an independent numpy implementation the tests compare with. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include <serbench/fbank.h>

/* Energies are floored before the log so silence gives ln(1e-10), not -inf. */
#define ENERGY_FLOOR 1e-10

/* FFTW's planner (plan creation and destruction) is not thread-safe; fftwf_execute on
 * distinct plans is. This is the one piece of global state in libserbench's audio code. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* One triangular mel filter, stored sparsely: weights for FFT bins lo .. lo+len-1. */
typedef struct mel_filter {
    int lo, len;
    int off; /* offset of its first weight in sb_fbank.weights */
} mel_filter;

struct sb_fbank {
    sb_fbank_config c;
    int frame_len;       /* L: samples per frame */
    int hop;             /* samples between frame starts */
    int n_fft;           /* N >= L */
    int n_bins;          /* N/2 + 1 */
    float *window;       /* [L] periodic Hann */
    float *frame;        /* [N] FFT input (fftwf_malloc, aligned) */
    fftwf_complex *spec; /* [n_bins] FFT output (fftwf_malloc) */
    float *power;        /* [n_bins] |X_k|^2 */
    mel_filter *filters; /* [n_mels] */
    float *weights;      /* all filters' nonzero weights, concatenated */
    fftwf_plan plan;
};

void sb_fbank_config_default(sb_fbank_config *c)
{
    if (!c)
        return;
    c->sample_rate = 16000;
    c->n_mels = 80;
    c->frame_ms = 25.0;
    c->hop_ms = 10.0;
    c->f_min = 20.0;
    c->f_max = 0.0;
    c->preemph = 0.97;
    c->n_fft = 0;
}

static double hz_to_mel(double f)
{
    return 2595.0 * log10(1.0 + f / 700.0);
}
static double mel_to_hz(double m)
{
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

/* Check a config; on success fill the derived sizes. */
static sb_status check_config(const sb_fbank_config *c, int *frame_len, int *hop, int *n_fft,
                              double *f_max, sb_error *err)
{
    const char *w = "fbank";
    if (c->sample_rate < 1000 || c->sample_rate > 384000)
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "sample_rate %d Hz is out of range (1000..384000)", c->sample_rate);
    if (c->n_mels < 1 || c->n_mels > 1024)
        return sb_error_set(err, SB_ERR_INVALID, w, "n_mels %d is out of range (1..1024)",
                            c->n_mels);
    if (!isfinite(c->frame_ms) || !isfinite(c->hop_ms) || c->frame_ms <= 0 || c->hop_ms <= 0 ||
        c->frame_ms > 10000 || c->hop_ms > 10000)
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "frame_ms %g and hop_ms %g must be in (0, 10000] ms", c->frame_ms,
                            c->hop_ms);
    double L = floor(c->frame_ms * 1e-3 * c->sample_rate + 0.5);
    double H = floor(c->hop_ms * 1e-3 * c->sample_rate + 0.5);
    if (L < 2)
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "frame_ms %g ms is under 2 samples at %d Hz; use a longer frame",
                            c->frame_ms, c->sample_rate);
    if (H < 1)
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "hop_ms %g ms is under 1 sample at %d Hz; use a longer hop", c->hop_ms,
                            c->sample_rate);
    int N = c->n_fft;
    if (N == 0) {
        N = 1;
        while (N < (int)L)
            N *= 2;
    }
    if (N < (int)L || N > (1 << 22))
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "n_fft %d must be 0 (automatic) or between the frame length (%d "
                            "samples) and 4194304",
                            c->n_fft, (int)L);
    const double nyq = 0.5 * c->sample_rate;
    double fmax = c->f_max > 0 ? c->f_max : nyq;
    if (!isfinite(c->f_min) || !isfinite(c->f_max) || c->f_min < 0 || fmax > nyq ||
        c->f_min >= fmax)
        return sb_error_set(err, SB_ERR_INVALID, w,
                            "mel range f_min %g .. f_max %g Hz is invalid: need 0 <= f_min < "
                            "f_max <= %g (Nyquist at %d Hz); f_max 0 means Nyquist",
                            c->f_min, c->f_max, nyq, c->sample_rate);
    if (!(c->preemph >= 0.0 && c->preemph <= 1.0))
        return sb_error_set(err, SB_ERR_INVALID, w, "preemph %g is out of range (0..1)",
                            c->preemph);
    *frame_len = (int)L;
    *hop = (int)H;
    *n_fft = N;
    *f_max = fmax;
    return SB_OK;
}

/* Triangular HTK-mel filters, linear in Hz between mel-spaced edges:
 * edges e_0 .. e_{M+1} equally spaced in mel from f_min to f_max; filter m (0-based)
 * weights bin k (frequency f_k = k*sr/N) by max(0, min((f_k - e_m)/(e_{m+1} - e_m),
 * (e_{m+2} - f_k)/(e_{m+2} - e_{m+1}))). */
static sb_status build_filters(sb_fbank *f, double fmax, sb_error *err)
{
    const int M = f->c.n_mels, K = f->n_bins;
    double *edge = malloc((size_t)(M + 2) * sizeof *edge);
    float *dense = malloc((size_t)K * sizeof *dense);
    f->filters = calloc((size_t)M, sizeof *f->filters);
    size_t cap = 0, used = 0;
    if (!edge || !dense || !f->filters)
        goto nomem;
    const double mlo = hz_to_mel(f->c.f_min), mhi = hz_to_mel(fmax);
    for (int i = 0; i < M + 2; i++)
        edge[i] = mel_to_hz(mlo + (mhi - mlo) * (double)i / (double)(M + 1));
    for (int m = 0; m < M; m++) {
        const double left = edge[m], centre = edge[m + 1], right = edge[m + 2];
        int lo = -1, hi = -1;
        for (int k = 0; k < K; k++) {
            const double fk = (double)k * f->c.sample_rate / (double)f->n_fft;
            const double up = (fk - left) / (centre - left);
            const double down = (right - fk) / (right - centre);
            double wk = up < down ? up : down;
            dense[k] = wk > 0 ? (float)wk : 0.0f;
            if (dense[k] > 0) {
                if (lo < 0)
                    lo = k;
                hi = k;
            }
        }
        /* A filter narrower than the bin spacing may cover no bin: it then has no weights
         * and its energy is the floor (documented in docs/encoders.md). */
        const int len = lo < 0 ? 0 : hi - lo + 1;
        if (used + (size_t)len > cap) {
            size_t ncap = cap ? 2 * cap : (size_t)K;
            while (ncap < used + (size_t)len)
                ncap *= 2;
            float *nw = realloc(f->weights, ncap * sizeof *nw);
            if (!nw)
                goto nomem;
            f->weights = nw;
            cap = ncap;
        }
        f->filters[m].lo = lo < 0 ? 0 : lo;
        f->filters[m].len = len;
        f->filters[m].off = (int)used;
        for (int j = 0; j < len; j++)
            f->weights[used + (size_t)j] = dense[lo + j];
        used += (size_t)len;
    }
    free(edge);
    free(dense);
    return SB_OK;
nomem:
    free(edge);
    free(dense);
    return sb_error_set(err, SB_ERR_NOMEM, "fbank", "out of memory building mel filters");
}

sb_status sb_fbank_create(const sb_fbank_config *c, sb_fbank **out, sb_error *err)
{
    if (!c || !out)
        return sb_error_set(err, SB_ERR_INVALID, "sb_fbank_create",
                            "NULL argument (config and out must be given)");
    *out = NULL;
    int L = 0, H = 0, N = 0;
    double fmax = 0;
    sb_status st = check_config(c, &L, &H, &N, &fmax, err);
    if (st != SB_OK)
        return st;

    sb_fbank *f = calloc(1, sizeof *f);
    if (!f)
        return sb_error_set(err, SB_ERR_NOMEM, "fbank", "out of memory");
    f->c = *c;
    f->frame_len = L;
    f->hop = H;
    f->n_fft = N;
    f->n_bins = N / 2 + 1;
    f->window = malloc((size_t)L * sizeof *f->window);
    f->power = malloc((size_t)f->n_bins * sizeof *f->power);
    f->frame = fftwf_malloc((size_t)N * sizeof *f->frame);
    f->spec = fftwf_malloc((size_t)f->n_bins * sizeof *f->spec);
    if (!f->window || !f->power || !f->frame || !f->spec) {
        sb_fbank_destroy(&f);
        return sb_error_set(err, SB_ERR_NOMEM, "fbank", "out of memory for n_fft %d", N);
    }
    /* Periodic Hann: w[i] = 0.5 - 0.5 cos(2 pi i / L). */
    for (int i = 0; i < L; i++)
        f->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)L));
    st = build_filters(f, fmax, err);
    if (st != SB_OK) {
        sb_fbank_destroy(&f);
        return st;
    }
    /* FFTW_ESTIMATE: the plan (hence the rounding) does not depend on timing, so results
     * are reproducible run to run. */
    pthread_mutex_lock(&plan_lock);
    f->plan = fftwf_plan_dft_r2c_1d(N, f->frame, f->spec, FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
    pthread_mutex_unlock(&plan_lock);
    if (!f->plan) {
        sb_fbank_destroy(&f);
        return sb_error_set(err, SB_ERR_INTERNAL, "fbank",
                            "FFTW could not plan a real FFT of size %d", N);
    }
    *out = f;
    return SB_OK;
}

void sb_fbank_destroy(sb_fbank **pf)
{
    if (!pf || !*pf)
        return;
    sb_fbank *f = *pf;
    if (f->plan) {
        pthread_mutex_lock(&plan_lock);
        fftwf_destroy_plan(f->plan);
        pthread_mutex_unlock(&plan_lock);
    }
    fftwf_free(f->frame);
    fftwf_free(f->spec);
    free(f->window);
    free(f->power);
    free(f->filters);
    free(f->weights);
    free(f);
    *pf = NULL;
}

size_t sb_fbank_n_frames(const sb_fbank *f, size_t n)
{
    if (!f || n == 0)
        return 0;
    const size_t L = (size_t)f->frame_len, H = (size_t)f->hop;
    if (n < L)
        return 1;
    return 1 + (n - L) / H;
}

/* One frame: x is the frame's L samples (already zero-padded if the audio was short),
 * out_t is [n_mels]. */
static void fbank_frame(sb_fbank *f, const float *x, float *out_t)
{
    const int L = f->frame_len, N = f->n_fft, K = f->n_bins;
    float *buf = f->frame;
    /* DC offset removed per frame (mean in double: a 400-sample float sum loses digits). */
    double mean = 0.0;
    for (int i = 0; i < L; i++)
        mean += x[i];
    mean /= L;
    for (int i = 0; i < L; i++)
        buf[i] = (float)((double)x[i] - mean);
    /* Pre-emphasis y[i] = x[i] - a x[i-1], y[0] = (1 - a) x[0]; backwards, in place. */
    const float a = (float)f->c.preemph;
    if (a != 0.0f) {
        for (int i = L - 1; i > 0; i--)
            buf[i] -= a * buf[i - 1];
        buf[0] -= a * buf[0];
    }
    for (int i = 0; i < L; i++)
        buf[i] *= f->window[i];
    for (int i = L; i < N; i++)
        buf[i] = 0.0f;
    fftwf_execute(f->plan);
    for (int k = 0; k < K; k++) {
        const float re = f->spec[k][0], im = f->spec[k][1];
        f->power[k] = re * re + im * im;
    }
    for (int m = 0; m < f->c.n_mels; m++) {
        const mel_filter *fm = &f->filters[m];
        const float *w = f->weights + fm->off;
        const float *p = f->power + fm->lo;
        float e = 0.0f;
        for (int j = 0; j < fm->len; j++)
            e += w[j] * p[j];
        out_t[m] = (float)log(e > ENERGY_FLOOR ? (double)e : ENERGY_FLOOR);
    }
}

sb_status sb_fbank_compute(sb_fbank *f, const float *audio, size_t n, float *out, sb_error *err)
{
    if (!f || !out || (n > 0 && !audio))
        return sb_error_set(err, SB_ERR_INVALID, "sb_fbank_compute",
                            "NULL argument (fbank, audio and out must be given)");
    if (n == 0)
        return sb_error_set(err, SB_ERR_INVALID, "sb_fbank_compute",
                            "no audio samples (n == 0): there is nothing to compute features "
                            "from; check the utterance's span");
    const size_t T = sb_fbank_n_frames(f, n);
    const size_t L = (size_t)f->frame_len, H = (size_t)f->hop, M = (size_t)f->c.n_mels;
    if (n < L) {
        /* Shorter than one frame: one frame, zero-padded after the audio. */
        float *pad = calloc(L, sizeof *pad);
        if (!pad)
            return sb_error_set(err, SB_ERR_NOMEM, "sb_fbank_compute", "out of memory");
        memcpy(pad, audio, n * sizeof *pad);
        fbank_frame(f, pad, out);
        free(pad);
        return SB_OK;
    }
    /* out is (T, M); frame t covers audio[t*H .. t*H+L). */
    for (size_t t = 0; t < T; t++)
        fbank_frame(f, audio + t * H, out + t * M);
    return SB_OK;
}
