/* core/lib/audio/audio.c — sb_audio_load and sb_audio_resample: a span of an audio file
 * as mono float at the rate an encoder wants. libsndfile reads (and seeks in) the
 * container, channels are averaged or one is picked, libsoxr resamples (HQ preset). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sndfile.h>
#include <soxr.h>

#include <serbench/audio.h>

#include "audio_native.h"

/* Frames read per sf_readf_float call: bounds the interleaved scratch buffer to
 * CHUNK_FRAMES * channels floats whatever the file's length. */
#define CHUNK_FRAMES 16384

/* An `end` past the end of the file by at most this much is clamped to the end: corpus
 * annotations round times to 10 ms. Anything further is an error, not silent truncation. */
#define END_SLACK_S 0.010

/* Sample rates accepted for `rate` and for files; beyond these something is wrong. */
#define MIN_RATE 1
#define MAX_RATE 1000000

sb_status sb_audio_resample(const float *in, size_t n, int in_rate, int out_rate, float **out,
                            size_t *out_n, sb_error *err)
{
    if (!out || !out_n || (n > 0 && !in))
        return sb_error_set(err, SB_ERR_INVALID, "sb_audio_resample",
                            "NULL argument (in, out and out_n must be given)");
    *out = NULL;
    *out_n = 0;
    if (in_rate < MIN_RATE || in_rate > MAX_RATE || out_rate < MIN_RATE || out_rate > MAX_RATE)
        return sb_error_set(err, SB_ERR_INVALID, "sb_audio_resample",
                            "sample rates must be in %d..%d Hz (got %d -> %d)", MIN_RATE, MAX_RATE,
                            in_rate, out_rate);
    if (n == 0) {
        /* Nothing to resample; hand back a valid (freeable) empty buffer. */
        *out = malloc(sizeof(float));
        if (!*out)
            return sb_error_set(err, SB_ERR_NOMEM, "sb_audio_resample", "out of memory");
        return SB_OK;
    }
    if (in_rate == out_rate) {
        float *copy = malloc(n * sizeof *copy);
        if (!copy)
            return sb_error_set(err, SB_ERR_NOMEM, "sb_audio_resample",
                                "out of memory copying %zu samples", n);
        memcpy(copy, in, n * sizeof *copy);
        *out = copy;
        *out_n = n;
        return SB_OK;
    }
    /* soxr_oneshot flushes its filter, producing round(n * out_rate / in_rate) samples;
     * leave room for one more so rounding can never truncate. */
    double want = (double)n * (double)out_rate / (double)in_rate;
    if (want > (double)(SIZE_MAX / sizeof(float)) - 2.0)
        return sb_error_set(err, SB_ERR_INVALID, "sb_audio_resample",
                            "%zu samples at %d -> %d Hz is too large to hold in memory", n, in_rate,
                            out_rate);
    size_t cap = (size_t)ceil(want) + 1;
    float *buf = malloc(cap * sizeof *buf);
    if (!buf)
        return sb_error_set(err, SB_ERR_NOMEM, "sb_audio_resample",
                            "out of memory for %zu resampled samples", cap);
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    /* One thread: the harness owns parallelism (one utterance per worker). */
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    size_t idone = 0, odone = 0;
    soxr_error_t e = soxr_oneshot((double)in_rate, (double)out_rate, 1, in, n, &idone, buf, cap,
                                  &odone, &io, &q, &rt);
    if (e) {
        free(buf);
        return sb_error_set(err, SB_ERR_AUDIO, "sb_audio_resample",
                            "libsoxr failed resampling %d -> %d Hz: %s", in_rate, out_rate, e);
    }
    *out = buf;
    *out_n = odone;
    return SB_OK;
}

/* Map a failed sf_open to a status and message. libsndfile keeps the reason for a failed
 * open in process-global state (sf_strerror(NULL)); we read it at once. The stat() checks
 * first give exact reasons for the common cases whatever libsndfile says. */
static sb_status open_error(const char *path, sb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return sb_error_set(err, SB_ERR_IO, path,
                            "cannot open audio file: %s; check the path (and the corpus root "
                            "or manifest folder it was resolved against)",
                            strerror(e));
    }
    if (S_ISDIR(st.st_mode))
        return sb_error_set(err, SB_ERR_IO, path, "is a folder, not an audio file; check the path");
    const char *why = sf_strerror(NULL);
    if (st.st_size == 0)
        return sb_error_set(err, SB_ERR_AUDIO, path,
                            "audio file is empty (0 bytes) (libsndfile: %s); re-create or "
                            "re-download it",
                            why);
    return sb_error_set(err, SB_ERR_AUDIO, path,
                        "not an audio file libsndfile can read (libsndfile: %s); it may be "
                        "truncated or in another format than its name says: check it with "
                        "`soxi` or convert it to WAV/FLAC (e.g. with ffmpeg)",
                        why);
}

/* libsndfile opens a WAV whose data was cut short (an interrupted copy or download) and
 * quietly reports only the frames present; its parse log then has a line
 * "data : <declared> (should be <present>)". Declared sizes at the "length unknown"
 * placeholders that streaming writers leave (0, 0x7ffff000 by sox, 0xffffffff) are not
 * truncation. Returns nonzero and fills the byte counts when the file looks truncated. */
static int wav_truncated(SNDFILE *sf, const SF_INFO *info, long long *declared, long long *present)
{
    int major = info->format & SF_FORMAT_TYPEMASK;
    if (major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX && major != SF_FORMAT_RF64)
        return 0;
    char log[4096];
    log[0] = '\0';
    sf_command(sf, SFC_GET_LOG_INFO, log, (int)sizeof log);
    for (const char *line = log; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        long long d = 0, p = 0;
        if (sscanf(line, "data : %lld (should be %lld)", &d, &p) == 2) {
            if (d > p && d < 0x7f000000LL) {
                *declared = d;
                *present = p;
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

sb_status sb_audio_load(const char *path, double start, double end, int channel, int rate,
                        float **samples, size_t *n, sb_error *err)
{
    return sbi_audio_load_native(path, start, end, channel, rate, samples, n, NULL, NULL, err);
}

sb_status sbi_audio_load_native(const char *path, double start, double end, int channel, int rate,
                                float **samples, size_t *n, int *native_rate, int *native_channels,
                                sb_error *err)
{
    if (!samples || !n || !path)
        return sb_error_set(err, SB_ERR_INVALID, path ? path : "sb_audio_load",
                            "NULL argument (path, samples and n must be given)");
    *samples = NULL;
    *n = 0;
    if (rate < MIN_RATE || rate > MAX_RATE)
        return sb_error_set(err, SB_ERR_INVALID, path,
                            "target sample rate %d Hz is out of range (%d..%d)", rate, MIN_RATE,
                            MAX_RATE);
    if (!(start >= 0.0) || !isfinite(start))
        return sb_error_set(err, SB_ERR_INVALID, path,
                            "span start %g s is invalid: it must be a finite number >= 0", start);
    if (isnan(end))
        return sb_error_set(err, SB_ERR_INVALID, path,
                            "span end is NaN: give a time in seconds, or a negative number for "
                            "'to the end of the file'");
    if (end >= 0.0 && end <= start)
        return sb_error_set(err, SB_ERR_AUDIO, path,
                            "empty span [%.3f, %.3f) s: end must be greater than start (or "
                            "negative for 'to the end of the file')",
                            start, end);
    if (channel < -1)
        return sb_error_set(err, SB_ERR_INVALID, path,
                            "channel %d is invalid: use -1 to average all channels or a "
                            "channel index >= 0",
                            channel);

    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        return open_error(path, err);
    if (native_rate)
        *native_rate = info.samplerate;
    if (native_channels)
        *native_channels = info.channels;

    sb_status st = SB_OK;
    float *mono = NULL, *chunk = NULL;
    if (info.channels < 1 || info.samplerate < MIN_RATE || info.samplerate > MAX_RATE ||
        info.frames < 0) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "implausible audio header (%d channels, %d Hz, %lld frames); the "
                          "file is probably damaged",
                          info.channels, info.samplerate, (long long)info.frames);
        goto done;
    }
    long long declared = 0, present = 0;
    if (wav_truncated(sf, &info, &declared, &present)) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "truncated audio: the WAV header announces %lld bytes of samples "
                          "but the file holds %lld (%.3f s present); re-create or re-download "
                          "the file",
                          declared, present, (double)info.frames / (double)info.samplerate);
        goto done;
    }
    if (channel >= info.channels) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "channel %d requested but the file has %d channel%s (valid: 0..%d, "
                          "or -1 to average them)",
                          channel, info.channels, info.channels == 1 ? "" : "s", info.channels - 1);
        goto done;
    }

    /* The span in frames of the file. */
    const double sr = (double)info.samplerate;
    const double dur = (double)info.frames / sr;
    if (info.frames == 0) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "audio file holds no samples (0 frames); re-create it");
        goto done;
    }
    if (start * sr >= (double)info.frames) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "span start %.3f s is beyond the end of the audio (%.3f s); check "
                          "the segment times against this file",
                          start, dur);
        goto done;
    }
    if (end >= 0.0 && end > dur + END_SLACK_S) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "span end %.3f s is beyond the end of the audio (%.3f s); check "
                          "the segment times against this file",
                          end, dur);
        goto done;
    }
    sf_count_t f0 = (sf_count_t)llround(start * sr);
    sf_count_t f1 = end < 0.0 ? info.frames : (sf_count_t)llround(end * sr);
    if (f1 > info.frames)
        f1 = info.frames;
    if (f1 <= f0) {
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "span [%.6f, %.6f) s is shorter than one sample at %d Hz", start, end,
                          info.samplerate);
        goto done;
    }
    const size_t count = (size_t)(f1 - f0);
    if (count > SIZE_MAX / sizeof(float)) {
        st = sb_error_set(err, SB_ERR_AUDIO, path, "span of %zu frames is too large", count);
        goto done;
    }
    if (f0 > 0 && sf_seek(sf, f0, SEEK_SET) != f0) {
        st = sb_error_set(err, SB_ERR_AUDIO, path, "cannot seek to %.3f s (frame %lld): %s", start,
                          (long long)f0, sf_strerror(sf));
        goto done;
    }

    mono = malloc(count * sizeof *mono);
    const size_t nch = (size_t)info.channels;
    chunk = malloc((size_t)CHUNK_FRAMES * nch * sizeof *chunk);
    if (!mono || !chunk) {
        st = sb_error_set(err, SB_ERR_NOMEM, path,
                          "out of memory reading %zu frames x %zu "
                          "channels",
                          count, nch);
        goto done;
    }
    size_t got = 0;
    while (got < count) {
        sf_count_t want = (sf_count_t)(count - got < CHUNK_FRAMES ? count - got : CHUNK_FRAMES);
        sf_count_t r = sf_readf_float(sf, chunk, want);
        if (r <= 0)
            break;
        /* chunk is (r, nch) interleaved; mono gets one value per frame. */
        if (nch == 1) {
            memcpy(mono + got, chunk, (size_t)r * sizeof *chunk);
        } else if (channel >= 0) {
            for (sf_count_t i = 0; i < r; i++)
                mono[got + (size_t)i] = chunk[(size_t)i * nch + (size_t)channel];
        } else {
            const float scale = 1.0f / (float)nch;
            for (sf_count_t i = 0; i < r; i++) {
                const float *frame = chunk + (size_t)i * nch;
                float s = 0.0f;
                for (size_t c = 0; c < nch; c++)
                    s += frame[c];
                mono[got + (size_t)i] = s * scale;
            }
        }
        got += (size_t)r;
    }
    if (got < count) {
        const char *why = sf_error(sf) ? sf_strerror(sf) : "unexpected end of data";
        st = sb_error_set(err, SB_ERR_AUDIO, path,
                          "truncated audio: read %zu of the %zu frames its header announces "
                          "from %.3f s (%s); re-create or re-download the file",
                          got, count, (double)f0 / sr, why);
        goto done;
    }
    free(chunk);
    chunk = NULL;
    sf_close(sf);
    sf = NULL;

    if (info.samplerate == rate) {
        *samples = mono;
        *n = count;
        return SB_OK;
    }
    float *res = NULL;
    size_t res_n = 0;
    st = sb_audio_resample(mono, count, info.samplerate, rate, &res, &res_n, err);
    free(mono);
    mono = NULL;
    if (st != SB_OK)
        return st;
    if (res_n == 0) {
        free(res);
        return sb_error_set(err, SB_ERR_AUDIO, path,
                            "span of %zu samples at %d Hz is empty after resampling to %d Hz",
                            count, info.samplerate, rate);
    }
    *samples = res;
    *n = res_n;
    return SB_OK;

done:
    free(chunk);
    free(mono);
    if (sf)
        sf_close(sf);
    return st;
}

sb_status sb_audio_probe(const char *path, int *rate, int *channels, double *seconds, sb_error *err)
{
    if (!path)
        return sb_error_set(err, SB_ERR_INVALID, "sb_audio_probe", "NULL path");
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        return open_error(path, err);
    sf_close(sf);
    if (rate)
        *rate = info.samplerate;
    if (channels)
        *channels = info.channels;
    if (seconds)
        *seconds = info.samplerate > 0 ? (double)info.frames / info.samplerate : 0.0;
    return SB_OK;
}
