/* plugins/encoders/fbank/fbank.c — the `fbank` encoder plugin: log-mel filterbank
 * statistics (mean, or mean and standard deviation over frames), no weights. A fast
 * baseline and the template for an encoder plugin; it uses only the public SDK. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

static const sb_option fbank_options[] = {
    { "n_mels", SB_OPT_INT, "80", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 8, 256, NULL,
      "Number of triangular mel filters." },
    { "frame_ms", SB_OPT_FLOAT, "25", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 1000, NULL,
      "Analysis frame length in milliseconds." },
    { "hop_ms", SB_OPT_FLOAT, "10", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 1000, NULL,
      "Hop between frame starts in milliseconds." },
    { "f_min", SB_OPT_FLOAT, "20", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Lower edge of the lowest mel filter in Hz." },
    { "f_max", SB_OPT_FLOAT, "0", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Upper edge of the highest mel filter in Hz; 0 means sample_rate / 2." },
    { "preemph", SB_OPT_FLOAT, "0.97", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 1, NULL,
      "Pre-emphasis coefficient a in y[i] = x[i] - a x[i-1]; 0 disables it." },
    { "pool", SB_OPT_ENUM, "mean+std", 0, 0, 0, "mean|mean+std",
      "Statistics over frames: the mean, or the mean then the population standard deviation." },
    { "sample_rate", SB_OPT_INT, "16000", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1000, 192000, NULL,
      "Rate in Hz the audio is resampled to before analysis." },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

typedef struct fbank_enc {
    sb_fbank *fb;
    int n_mels;
    int with_std; /* pool = mean+std */
    int sample_rate;
    float *frames; /* [cap_frames, n_mels] scratch, grown as utterances need */
    size_t cap_frames;
} fbank_enc;

static void fbank_destroy(void *inst)
{
    fbank_enc *e = inst;
    if (!e)
        return;
    sb_fbank_destroy(&e->fb);
    free(e->frames);
    free(e);
}

/* Mel filters that cover no FFT bin (narrower than the bin spacing, for large n_mels)
 * always read the log floor. Counted here from the documented definition (edges equally
 * spaced in HTK mel, bins at k*rate/n_fft) so the user can be warned at creation. */
static int count_empty_filters(const sb_fbank_config *c, double f_max)
{
    const int L = (int)floor(c->frame_ms * 1e-3 * c->sample_rate + 0.5);
    int n_fft = 1;
    while (n_fft < L)
        n_fft *= 2;
    const double lo = 2595.0 * log10(1.0 + c->f_min / 700.0);
    const double hi = 2595.0 * log10(1.0 + f_max / 700.0);
    const double bin = (double)c->sample_rate / n_fft;
    int empty = 0;
    const double step = (hi - lo) / (c->n_mels + 1);
    for (int m = 0; m < c->n_mels; m++) {
        const double left = 700.0 * (pow(10.0, (lo + step * m) / 2595.0) - 1.0);
        const double right = 700.0 * (pow(10.0, (lo + step * (m + 2)) / 2595.0) - 1.0);
        const double k = floor(left / bin) + 1.0; /* first bin strictly above the left edge */
        if (!(k * bin < right))
            empty++;
    }
    return empty;
}

static sb_status fbank_create(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err)
{
    *inst = NULL;
    sb_fbank_config c;
    sb_fbank_config_default(&c);
    c.sample_rate = (int)sb_opts_int(opts, "sample_rate");
    c.n_mels = (int)sb_opts_int(opts, "n_mels");
    c.frame_ms = sb_opts_float(opts, "frame_ms");
    c.hop_ms = sb_opts_float(opts, "hop_ms");
    c.f_min = sb_opts_float(opts, "f_min");
    c.f_max = sb_opts_float(opts, "f_max");
    c.preemph = sb_opts_float(opts, "preemph");

    /* The table checks each value alone; these need two of them. Name the config key's
     * location, since the user fixes it there. */
    const double nyq = 0.5 * c.sample_rate;
    if (c.f_max > nyq)
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "f_max"),
                            "f_max %g Hz is above the Nyquist frequency %g Hz of sample_rate "
                            "%d; lower it, or set 0 for Nyquist",
                            c.f_max, nyq, c.sample_rate);
    const double f_max = c.f_max > 0 ? c.f_max : nyq;
    if (c.f_min >= f_max)
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "f_min"),
                            "f_min %g Hz must be below f_max (%g Hz)", c.f_min, f_max);

    const int empty = count_empty_filters(&c, f_max);
    if (empty > 0)
        host->log(host, SB_LOG_WARN,
                  "%d of the %d mel filters are narrower than the FFT bin spacing and cover no "
                  "bin, so they are constant (the log floor); lower n_mels, raise f_min or "
                  "lengthen frame_ms",
                  empty, c.n_mels);

    fbank_enc *e = calloc(1, sizeof *e);
    if (!e)
        return sb_error_set(err, SB_ERR_NOMEM, "fbank", "out of memory");
    e->n_mels = c.n_mels;
    e->sample_rate = c.sample_rate;
    const char *pool = sb_opts_str(opts, "pool");
    e->with_std = !pool || strcmp(pool, "mean") != 0;
    sb_status st = sb_fbank_create(&c, &e->fb, err);
    if (st != SB_OK) {
        fbank_destroy(e);
        return st == SB_ERR_INVALID ? SB_ERR_CONFIG : st;
    }
    *inst = e;
    return SB_OK;
}

static sb_status fbank_info(void *inst, sb_encoder_info *info, sb_error *err)
{
    const fbank_enc *e = inst;
    info->sample_rate = e->sample_rate;
    info->n_layers = 1;
    info->dim = e->with_std ? 2 * e->n_mels : e->n_mels;
    return SB_OK;
}

/* audio: [n] samples at sample_rate. out: [1, dim] = mean over frames of the (T, M)
 * log-mel matrix, then (mean+std) the population standard deviation sqrt(mean((x-mu)^2)). */
static sb_status fbank_encode(void *inst, const float *audio, size_t n, float *out, sb_error *err)
{
    fbank_enc *e = inst;
    if (n == 0)
        return sb_error_set(err, SB_ERR_AUDIO, "fbank",
                            "empty audio (0 samples): no frames to pool; check the "
                            "utterance's file and span");
    const size_t T = sb_fbank_n_frames(e->fb, n), M = (size_t)e->n_mels;
    if (T > e->cap_frames) {
        size_t cap = e->cap_frames ? e->cap_frames : 256;
        while (cap < T)
            cap *= 2;
        float *p = realloc(e->frames, cap * M * sizeof *p);
        if (!p)
            return sb_error_set(err, SB_ERR_NOMEM, "fbank",
                                "out of memory for %zu frames of %zu mels", T, M);
        e->frames = p;
        e->cap_frames = cap;
    }
    sb_status st = sb_fbank_compute(e->fb, audio, n, e->frames, err);
    if (st != SB_OK)
        return st;
    /* Two passes in double: exact enough for the std of near-constant bands. */
    for (size_t m = 0; m < M; m++) {
        double sum = 0.0;
        for (size_t t = 0; t < T; t++)
            sum += e->frames[t * M + m];
        const double mu = sum / (double)T;
        out[m] = (float)mu;
        if (e->with_std) {
            double ss = 0.0;
            for (size_t t = 0; t < T; t++) {
                const double d = e->frames[t * M + m] - mu;
                ss += d * d;
            }
            out[M + m] = (float)sqrt(ss / (double)T);
        }
    }
    return SB_OK;
}

static const sb_encoder_vtable fbank_vtable = {
    .struct_size = sizeof(sb_encoder_vtable),
    .create = fbank_create,
    .info = fbank_info,
    .fingerprint = NULL, /* nothing beyond the options determines the output */
    .encode = fbank_encode,
    .destroy = fbank_destroy,
};

static const sb_plugin fbank_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_ENCODER,
    .name = "fbank",
    .version = "1.0.0",
    .summary = "Log-mel filterbank statistics (mean or mean+std over frames); no weights.",
    .options = fbank_options,
    .vtable = &fbank_vtable,
};

SB_PLUGIN_DEFINE(fbank_plugin)
