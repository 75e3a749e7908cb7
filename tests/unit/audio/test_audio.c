/* tests/unit/audio/test_audio.c — sb_audio_load / sb_audio_resample on files written
 * here with libsndfile: WAV and FLAC, channel handling, resampling (a sine's frequency and
 * amplitude must survive), spans, and every failure with a generated bad file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sndfile.h>

#include <serbench/serbench.h>

#include "audio/audio_native.h"

/* A fresh folder per test (Criterion runs each test in its own process). */
static char tmpdir[512];

static void make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sb_audio_XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(tmpdir), "mkdtemp %s", tmpdir);
}

static void remove_tmpdir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(audio, .init = make_tmpdir, .fini = remove_tmpdir);

static const char *tmp_path(const char *name)
{
    static char buf[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Write frames x channels interleaved floats in the given major|subtype format. */
static void write_audio(const char *path, int format, int rate, int channels, const float *x,
                        size_t frames)
{
    SF_INFO info = { .samplerate = rate, .channels = channels, .format = format };
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(sf, "cannot write %s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(sf, x, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
}

/* Write 16-bit PCM from int16 values, so the file holds exactly k and reading gives k/32768
 * (libsndfile scales float writes by 32767 but reads by 1/32768). */
static void write_pcm16(const char *path, int major, int rate, int channels, const short *x,
                        size_t frames)
{
    SF_INFO info = { .samplerate = rate, .channels = channels, .format = major | SF_FORMAT_PCM_16 };
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(sf, "cannot write %s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_short(sf, x, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
}

static float *sine(size_t n, double freq, double rate, double amp)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * sin(2.0 * M_PI * freq * (double)i / rate + 0.3));
    return x;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- reading ----------------------------------------------------------------------- */

Test(audio, wav_16bit_exact)
{
    /* Every 16-bit value k/32768 survives exactly (libsndfile scales by 1/32768). */
    const size_t n = 3000;
    short *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (short)((int)(i * 21) - 32000);
    const char *p = tmp_path("a.wav");
    write_pcm16(p, SF_FORMAT_WAV, 16000, 1, x, n);
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_load(p, 0, -1, -1, 16000, &y, &m, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(m, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(y[i], (float)x[i] / 32768.0f, "sample %zu: %f vs %d/32768", i, (double)y[i],
                     x[i]);
    sb_free(y);
    free(x);
}

Test(audio, flac_16bit)
{
    const size_t n = 16000;
    short *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (short)lrint(16000.0 * sin(2.0 * M_PI * 440.0 * (double)i / 16000.0));
    const char *p = tmp_path("a.flac");
    write_pcm16(p, SF_FORMAT_FLAC, 16000, 1, x, n);
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_load(p, 0, -1, -1, 16000, &y, &m, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(m, n);
    /* FLAC is lossless: every sample exactly. */
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(y[i], (float)x[i] / 32768.0f, "sample %zu: %f vs %d/32768", i, (double)y[i],
                     x[i]);
    sb_free(y);
    free(x);
}

Test(audio, stereo_downmix_and_channel_select)
{
    const size_t n = 2000;
    float *x = malloc(2 * n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (float)((int)(i % 200) - 100) / 256.0f;   /* left: a ramp */
        x[2 * i + 1] = (float)((int)(i % 50) - 25) / 128.0f; /* right: a faster ramp */
    }
    const char *p = tmp_path("st.wav");
    write_audio(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, x, n);
    for (int ch = -1; ch <= 1; ch++) {
        float *y = NULL;
        size_t m = 0;
        sb_error err = { 0 };
        cr_assert_eq(sb_audio_load(p, 0, -1, ch, 16000, &y, &m, &err), SB_OK, "ch %d: %s", ch,
                     err.msg);
        cr_assert_eq(m, n);
        for (size_t i = 0; i < n; i++) {
            float want = ch < 0 ? 0.5f * (x[2 * i] + x[2 * i + 1]) : x[2 * i + (size_t)ch];
            cr_assert_float_eq(y[i], want, 1e-7, "channel %d sample %zu: %f vs %f", ch, i,
                               (double)y[i], (double)want);
        }
        sb_free(y);
    }
    free(x);
}

/* Fit a*cos + b*sin at `freq` to x[0..n) (n spanning whole cycles): the fitted
 * amplitude, and the RMS of what is left relative to the signal's RMS. */
static void fit_sine(const float *x, size_t n, double freq, double rate, double *amp,
                     double *resid_rel)
{
    double c = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double ph = 2.0 * M_PI * freq * (double)i / rate;
        c += x[i] * cos(ph);
        s += x[i] * sin(ph);
    }
    double a = 2.0 * c / (double)n, b = 2.0 * s / (double)n;
    *amp = sqrt(a * a + b * b);
    double e = 0, tot = 0;
    for (size_t i = 0; i < n; i++) {
        double ph = 2.0 * M_PI * freq * (double)i / rate;
        double r = x[i] - (a * cos(ph) + b * sin(ph));
        e += r * r;
        tot += (double)x[i] * x[i];
    }
    *resid_rel = sqrt(e / tot);
}

static void check_resampled_sine(int in_rate, double freq)
{
    const size_t n_in = (size_t)in_rate; /* 1 s */
    float *x = sine(n_in, freq, in_rate, 0.5);
    char name[64];
    snprintf(name, sizeof name, "sine_%d.wav", in_rate);
    const char *p = tmp_path(name);
    write_audio(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, in_rate, 1, x, n_in);
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_load(p, 0, -1, -1, 16000, &y, &m, &err), SB_OK, "%s", err.msg);
    cr_expect(m == 16000 || m == 16001 || m == 15999, "%d Hz -> 16 kHz: %zu samples for 1 s",
              in_rate, m);
    /* 0.5 s from the middle (away from the filter's edge transients): whole cycles of
     * 440 Hz and 3 kHz. */
    double amp, resid;
    fit_sine(y + 4000, 8000, freq, 16000.0, &amp, &resid);
    cr_expect(fabs(amp - 0.5) <= 0.005,
              "%d Hz -> 16 kHz, %.0f Hz tone: amplitude %.5f, want "
              "0.5 +- 1%%",
              in_rate, freq, amp);
    cr_expect_leq(resid, 1e-3,
                  "%d Hz -> 16 kHz, %.0f Hz tone: residual %.3g of the RMS "
                  "(frequency moved or distortion)",
                  in_rate, freq, resid);
    sb_free(y);
    free(x);
}

Test(audio, resample_8k)
{
    check_resampled_sine(8000, 440.0);
    check_resampled_sine(8000, 3000.0);
}

Test(audio, resample_22k)
{
    check_resampled_sine(22050, 440.0);
    check_resampled_sine(22050, 3000.0);
}

Test(audio, resample_44k)
{
    check_resampled_sine(44100, 440.0);
    check_resampled_sine(44100, 3000.0);
}

Test(audio, resample_removes_content_above_new_nyquist)
{
    /* 9 kHz at 44.1 kHz would alias to 7 kHz at 16 kHz if not filtered away. */
    const size_t n = 44100;
    float *x = sine(n, 9000.0, 44100.0, 0.5);
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_resample(x, n, 44100, 16000, &y, &m, &err), SB_OK, "%s", err.msg);
    double e = 0;
    for (size_t i = 2000; i < m - 2000; i++)
        e += (double)y[i] * y[i];
    double rms = sqrt(e / (double)(m - 4000));
    cr_expect_leq(rms, 0.5e-3, "aliased energy: RMS %.3g (input RMS 0.354)", rms);
    sb_free(y);
    free(x);
}

Test(audio, resample_same_rate_copies_and_empty_input)
{
    float x[5] = { 0.1f, -0.2f, 0.3f, -0.4f, 0.5f };
    float *y = NULL;
    size_t m = 99;
    cr_assert_eq(sb_audio_resample(x, 5, 16000, 16000, &y, &m, NULL), SB_OK);
    cr_assert_eq(m, 5);
    cr_expect_eq(memcmp(x, y, sizeof x), 0);
    sb_free(y);
    cr_assert_eq(sb_audio_resample(NULL, 0, 8000, 16000, &y, &m, NULL), SB_OK);
    cr_expect_eq(m, 0);
    sb_free(y);
    sb_error err = { 0 };
    cr_expect_eq(sb_audio_resample(x, 5, 0, 16000, &y, &m, &err), SB_ERR_INVALID);
    cr_expect_null(y);
}

/* ---- spans ------------------------------------------------------------------------- */

/* 1.5 s at 16 kHz whose sample i is i / 32768 (exact in 16-bit), so a span's first value
 * tells where it started. */
static const char *ramp_file(void)
{
    const size_t n = 24000;
    short *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (short)i;
    const char *p = tmp_path("ramp.wav");
    write_pcm16(p, SF_FORMAT_WAV, 16000, 1, x, n);
    free(x);
    return p;
}

static void check_span(const char *p, double start, double end, size_t first, size_t count)
{
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_load(p, start, end, -1, 16000, &y, &m, &err), SB_OK, "[%g, %g): %s",
                 start, end, err.msg);
    cr_expect_eq(m, count, "[%g, %g): %zu samples, want %zu", start, end, m, count);
    for (size_t i = 0; i < m && i < count; i++)
        cr_assert_eq(y[i], (float)(first + i) / 32768.0f, "[%g, %g): sample %zu", start, end, i);
    sb_free(y);
}

Test(audio, spans)
{
    const char *p = ramp_file();
    check_span(p, 0.0, -1, 0, 24000);
    check_span(p, 0.5, 1.0, 8000, 8000);
    check_span(p, 1.25, -1, 20000, 4000);
    check_span(p, 0.0, 0.001, 0, 16);
    check_span(p, 1.4999, -1, 23998, 2);
    /* End past the file by <= 10 ms (annotation rounding) is clamped to the end. */
    check_span(p, 1.0, 1.505, 16000, 8000);
}

Test(audio, span_resampled)
{
    /* Span first, then resampling: 0.25 s of an 8 kHz file gives 0.25 s at 16 kHz. */
    float *x = sine(8000, 440.0, 8000.0, 0.5);
    const char *p = tmp_path("s8.wav");
    write_audio(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, x, 8000);
    float *y = NULL;
    size_t m = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_load(p, 0.5, 0.75, -1, 16000, &y, &m, &err), SB_OK, "%s", err.msg);
    cr_expect(m >= 3999 && m <= 4001, "%zu samples", m);
    sb_free(y);
    free(x);
}

/* ---- errors ------------------------------------------------------------------------ */

static void expect_error(const char *path, double start, double end, int channel, int rate,
                         sb_status code, const char *needle)
{
    float *y = (float *)&y;
    size_t m = 123;
    sb_error err = { 0 };
    sb_status st = sb_audio_load(path, start, end, channel, rate, &y, &m, &err);
    cr_expect_eq(st, code, "%s: status %d (%s), want %d; message: %s", path, st, sb_strerror(st),
                 code, err.msg);
    cr_expect_eq(err.code, code);
    cr_expect_null(y, "samples not NULL after an error");
    cr_expect_eq(m, 0);
    cr_expect_str_eq(err.where, path, "error must name the path");
    cr_expect(strstr(err.msg, needle), "message lacks '%s': %s", needle, err.msg);
}

Test(audio, missing_file)
{
    expect_error(tmp_path("nope.wav"), 0, -1, -1, 16000, SB_ERR_IO, "No such file");
}

Test(audio, folder_is_not_audio)
{
    expect_error(tmpdir, 0, -1, -1, 16000, SB_ERR_IO, "folder");
}

Test(audio, text_file_renamed_wav)
{
    const char *p = tmp_path("notes.wav");
    const char *text = "id,label\nutt1,happy\nutt2,sad\nthis is not audio at all\n";
    write_file(p, text, strlen(text));
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "not an audio file");
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "libsndfile: ");
}

Test(audio, empty_file)
{
    const char *p = tmp_path("empty.wav");
    write_file(p, "", 0);
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "empty");
}

Test(audio, truncated_wav_header)
{
    const char *good = ramp_file();
    FILE *f = fopen(good, "rb");
    cr_assert(f);
    unsigned char head[64];
    cr_assert_eq(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    /* RIFF + WAVE + part of the fmt chunk: the header stops mid-field. */
    const char *p = tmp_path("trunc.wav");
    write_file(p, head, 30);
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "libsndfile: ");
}

Test(audio, truncated_wav_data)
{
    /* A complete header announcing 1.5 s, but the copy stopped after 0.25 s. */
    const char *good = ramp_file();
    FILE *f = fopen(good, "rb");
    cr_assert(f);
    static unsigned char buf[44 + 8000];
    cr_assert_eq(fread(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    const char *p = tmp_path("cut.wav");
    write_file(p, buf, sizeof buf);
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "truncated audio");
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "announces 48000 bytes");
}

Test(audio, wav_without_samples)
{
    const char *p = tmp_path("zero.wav");
    write_audio(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, NULL, 0);
    expect_error(p, 0, -1, -1, 16000, SB_ERR_AUDIO, "no samples");
}

Test(audio, span_start_beyond_end)
{
    const char *p = ramp_file();
    expect_error(p, 2.0, -1, -1, 16000, SB_ERR_AUDIO, "beyond the end");
    expect_error(p, 1.5, 2.5, -1, 16000, SB_ERR_AUDIO, "beyond the end");
}

Test(audio, span_end_beyond_end)
{
    const char *p = ramp_file();
    expect_error(p, 1.0, 1.6, -1, 16000, SB_ERR_AUDIO, "span end 1.600 s is beyond the end");
}

Test(audio, empty_span)
{
    const char *p = ramp_file();
    expect_error(p, 0.5, 0.5, -1, 16000, SB_ERR_AUDIO, "empty span");
    expect_error(p, 0.5, 0.4, -1, 16000, SB_ERR_AUDIO, "empty span");
    /* Less than one sample long. */
    expect_error(p, 0.5, 0.50001, -1, 16000, SB_ERR_AUDIO, "shorter than one sample");
}

Test(audio, channel_out_of_range)
{
    short x[20] = { 0 };
    const char *p = tmp_path("st.wav");
    write_pcm16(p, SF_FORMAT_WAV, 16000, 2, x, 10);
    expect_error(p, 0, -1, 2, 16000, SB_ERR_AUDIO, "channel 2 requested but the file has 2");
    expect_error(p, 0, -1, -2, 16000, SB_ERR_INVALID, "channel -2");
}

Test(audio, bad_arguments)
{
    const char *p = ramp_file();
    expect_error(p, 0, -1, -1, 0, SB_ERR_INVALID, "rate");
    expect_error(p, -1, -1, -1, 16000, SB_ERR_INVALID, "start");
    expect_error(p, NAN, -1, -1, 16000, SB_ERR_INVALID, "start");
    expect_error(p, 0, NAN, -1, 16000, SB_ERR_INVALID, "span end is NaN");
    float *y;
    size_t m;
    cr_expect_eq(sb_audio_load(NULL, 0, -1, -1, 16000, &y, &m, NULL), SB_ERR_INVALID);
    cr_expect_eq(sb_audio_load(p, 0, -1, -1, 16000, NULL, &m, NULL), SB_ERR_INVALID);
}

Test(audio, first_error_wins)
{
    sb_error err = { 0 };
    sb_error_set(&err, SB_ERR_CONFIG, "x.yaml:1:1", "earlier problem");
    float *y;
    size_t m;
    cr_expect_eq(sb_audio_load(tmp_path("nope.wav"), 0, -1, -1, 16000, &y, &m, &err), SB_ERR_IO);
    cr_expect_eq(err.code, SB_ERR_CONFIG);
    cr_expect_str_eq(err.msg, "earlier problem");
}

/* ---- header probe and native format ------------------------------------------------ */

Test(audio, probe_reads_the_header)
{
    const size_t n = 44100;
    float *x = malloc(2 * n * sizeof *x);
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = 0.1f;
    const char *p = tmp_path("probe.wav");
    write_audio(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, x, n);
    free(x);
    int rate = 0, ch = 0;
    double secs = 0;
    sb_error err = { 0 };
    cr_assert_eq(sb_audio_probe(p, &rate, &ch, &secs, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(rate, 44100);
    cr_assert_eq(ch, 2);
    cr_assert_float_eq(secs, 1.0, 1e-9);
    cr_assert_eq(sb_audio_probe(p, NULL, NULL, NULL, &err), SB_OK);
    /* The loader that the feature stage uses reports the same from its own open. */
    float *y = NULL;
    size_t m = 0;
    int nr = 0, nc = 0;
    cr_assert_eq(sbi_audio_load_native(p, 0, -1, -1, 16000, &y, &m, &nr, &nc, &err), SB_OK, "%s",
                 err.msg);
    cr_assert_eq(nr, 44100);
    cr_assert_eq(nc, 2);
    cr_assert(m >= 15999 && m <= 16001, "%zu samples", m);
    sb_free(y);
    /* Errors are sb_audio_load's. */
    sb_error e2 = { 0 };
    cr_assert_eq(sb_audio_probe(tmp_path("absent.wav"), &rate, &ch, NULL, &e2), SB_ERR_IO);
    cr_assert(strstr(e2.msg, "No such file"), "%s", e2.msg);
}
