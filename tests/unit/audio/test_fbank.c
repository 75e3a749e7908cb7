/* tests/unit/audio/test_fbank.c — sb_fbank against the numpy reference
 * (scripts/ref_fbank.py, fixtures from scripts/make-fbank-fixtures in tests/fixtures/fbank)
 * plus properties that need no reference: frame counts, silence, a tone's band, gain,
 * determinism across objects and threads, and every config error. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

/* Log-mel values are compared as |c - ref| <= ATOL + RTOL |ref|. The reference is float64;
 * the C code runs a float32 FFT and float32 mel sums, so a band's relative energy error
 * is ~1e-6 of the frame's total energy divided by the band's share of it; the fixtures
 * keep every band within ~60 dB of the frame's energy, which bounds the log error near
 * 1e-3. Measured max-abs error on the fixtures: 1.9e-4 (SB_VERBOSE=1 prints it). */
#define ATOL 1e-3
#define RTOL 1e-4

static const char *source_root(void)
{
    const char *r = getenv("SB_SOURCE_ROOT");
    return r ? r : ".";
}

/* Read a little-endian float32 file of exactly n values. */
static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open fixture %s (run scripts/make-fbank-fixtures)", path);
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x);
    size_t got = fread(x, sizeof *x, n, f);
    int extra = fgetc(f);
    fclose(f);
    cr_assert_eq(got, n, "%s: %zu of %zu floats", path, got, n);
    cr_assert_eq(extra, EOF, "%s: longer than %zu floats", path, n);
    return x;
}

typedef struct cmp_result {
    double max_abs, max_rel;
    size_t worst, n_bad;
} cmp_result;

static cmp_result compare(const float *got, const float *ref, size_t n, double atol, double rtol)
{
    cmp_result r = { 0, 0, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double rel = d / (fabs((double)ref[i]) + 1e-30);
        if (d > r.max_abs) {
            r.max_abs = d;
            r.worst = i;
        }
        if (rel > r.max_rel)
            r.max_rel = rel;
        if (!(d <= atol + rtol * fabs((double)ref[i])))
            r.n_bad++;
    }
    return r;
}

Test(fbank, matches_numpy_reference)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/fbank/cases.txt", source_root());
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char name[128];
        sb_fbank_config c;
        size_t n, T;
        int k = sscanf(line, "%127s %d %d %lf %lf %lf %lf %lf %d %zu %zu", name, &c.sample_rate,
                       &c.n_mels, &c.frame_ms, &c.hop_ms, &c.f_min, &c.f_max, &c.preemph, &c.n_fft,
                       &n, &T);
        cr_assert_eq(k, 11, "bad line in %s: %s", path, line);
        char p[4200];
        snprintf(p, sizeof p, "%s/tests/fixtures/fbank/%s.in.f32", source_root(), name);
        float *x = read_f32(p, n);
        snprintf(p, sizeof p, "%s/tests/fixtures/fbank/%s.out.f32", source_root(), name);
        float *ref = read_f32(p, T * (size_t)c.n_mels);

        sb_error err = { 0 };
        sb_fbank *fb = NULL;
        cr_assert_eq(sb_fbank_create(&c, &fb, &err), SB_OK, "%s: %s", name, err.msg);
        cr_assert_eq(sb_fbank_n_frames(fb, n), T, "%s: %zu frames, reference has %zu", name,
                     sb_fbank_n_frames(fb, n), T);
        float *out = malloc(T * (size_t)c.n_mels * sizeof *out);
        cr_assert_eq(sb_fbank_compute(fb, x, n, out, &err), SB_OK, "%s: %s", name, err.msg);
        cmp_result r = compare(out, ref, T * (size_t)c.n_mels, ATOL, RTOL);
        size_t M = (size_t)c.n_mels;
        cr_expect_eq(r.n_bad, 0,
                     "%s: %zu of %zu values outside %g + %g|ref|; max-abs %.3g at frame %zu "
                     "mel %zu (got %.6f, ref %.6f), max-rel %.3g",
                     name, r.n_bad, T * M, ATOL, RTOL, r.max_abs, r.worst / M, r.worst % M,
                     (double)out[r.worst], (double)ref[r.worst], r.max_rel);
        if (getenv("SB_VERBOSE"))
            fprintf(stderr, "fbank %-16s T=%-3zu M=%-3zu max-abs %.3g max-rel %.3g\n", name, T, M,
                    r.max_abs, r.max_rel);
        free(out);
        free(x);
        free(ref);
        sb_fbank_destroy(&fb);
        cr_assert_null(fb);
        cases++;
    }
    fclose(f);
    cr_assert_geq(cases, 5, "only %d fixture cases in %s", cases, path);
}

static sb_fbank *make_default(void)
{
    sb_fbank_config c;
    sb_fbank_config_default(&c);
    sb_fbank *fb = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sb_fbank_create(&c, &fb, &err), SB_OK, "%s", err.msg);
    return fb;
}

Test(fbank, defaults)
{
    sb_fbank_config c;
    memset(&c, 0xff, sizeof c);
    sb_fbank_config_default(&c);
    cr_expect_eq(c.sample_rate, 16000);
    cr_expect_eq(c.n_mels, 80);
    cr_expect_eq(c.frame_ms, 25.0);
    cr_expect_eq(c.hop_ms, 10.0);
    cr_expect_eq(c.f_min, 20.0);
    cr_expect_eq(c.f_max, 0.0);
    cr_expect_eq(c.preemph, 0.97);
    cr_expect_eq(c.n_fft, 0);
}

/* 25 ms / 10 ms at 16 kHz: L = 400, H = 160. */
Test(fbank, frame_count)
{
    sb_fbank *fb = make_default();
    cr_expect_eq(sb_fbank_n_frames(fb, 0), 0);
    cr_expect_eq(sb_fbank_n_frames(fb, 1), 1);
    cr_expect_eq(sb_fbank_n_frames(fb, 399), 1);
    cr_expect_eq(sb_fbank_n_frames(fb, 400), 1);
    cr_expect_eq(sb_fbank_n_frames(fb, 559), 1);
    cr_expect_eq(sb_fbank_n_frames(fb, 560), 2);
    cr_expect_eq(sb_fbank_n_frames(fb, 16000), 98);
    cr_expect_eq(sb_fbank_n_frames(NULL, 100), 0);
    sb_fbank_destroy(&fb);
    sb_fbank_destroy(&fb); /* NULL-safe */
    sb_fbank_destroy(NULL);
}

Test(fbank, silence_is_the_floor)
{
    sb_fbank *fb = make_default();
    float *x = calloc(1000, sizeof *x);
    float out[4 * 80];
    sb_error err = { 0 };
    cr_assert_eq(sb_fbank_compute(fb, x, 1000, out, &err), SB_OK, "%s", err.msg);
    /* A constant signal is silence too: the DC is removed per frame. */
    for (int i = 0; i < 1000; i++)
        x[i] = 0.25f;
    float out2[4 * 80];
    cr_assert_eq(sb_fbank_compute(fb, x, 1000, out2, &err), SB_OK, "%s", err.msg);
    const float floor_log = (float)log(1e-10);
    for (int i = 0; i < 4 * 80; i++) {
        cr_assert_float_eq(out[i], floor_log, 1e-5, "zeros: value %d = %f", i, (double)out[i]);
        cr_assert_float_eq(out2[i], floor_log, 1e-5, "DC: value %d = %f", i, (double)out2[i]);
    }
    free(x);
    sb_fbank_destroy(&fb);
}

/* The centre frequency (Hz) of mel band m under the default config. */
static double band_centre(int m, int n_mels, double f_min, double f_max)
{
    double lo = 2595.0 * log10(1.0 + f_min / 700.0), hi = 2595.0 * log10(1.0 + f_max / 700.0);
    double mel = lo + (hi - lo) * (m + 1) / (n_mels + 1);
    return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
}

Test(fbank, tone_lands_in_its_band_and_gain_shifts_by_log4)
{
    sb_fbank *fb = make_default();
    const size_t n = 4000;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.1f * (float)sin(2.0 * M_PI * 1000.0 * (double)i / 16000.0);
    size_t T = sb_fbank_n_frames(fb, n);
    float *a = malloc(T * 80 * sizeof *a), *b = malloc(T * 80 * sizeof *b);
    sb_error err = { 0 };
    cr_assert_eq(sb_fbank_compute(fb, x, n, a, &err), SB_OK, "%s", err.msg);
    int best = 0;
    for (int m = 1; m < 80; m++)
        if (a[5 * 80 + m] > a[5 * 80 + best])
            best = m;
    double fc = band_centre(best, 80, 20.0, 8000.0);
    double below = band_centre(best - 1, 80, 20.0, 8000.0);
    double above = band_centre(best + 1, 80, 20.0, 8000.0);
    cr_expect(below < 1000.0 && 1000.0 < above,
              "1 kHz tone peaks in band %d centred at %.1f Hz (neighbours %.1f, %.1f)", best, fc,
              below, above);
    /* Doubling the amplitude quadruples every energy: +ln 4 in every band that is well
     * above the floor (pre-emphasis and the window are linear). */
    for (size_t i = 0; i < n; i++)
        x[i] *= 2.0f;
    cr_assert_eq(sb_fbank_compute(fb, x, n, b, &err), SB_OK, "%s", err.msg);
    double worst = 0;
    for (size_t i = 0; i < T * 80; i++)
        if (a[i] > -15.0) {
            double d = fabs((double)b[i] - (double)a[i] - log(4.0));
            if (d > worst)
                worst = d;
        }
    cr_expect_leq(worst, 1e-3, "gain x2: max |delta - ln 4| = %.3g", worst);
    free(a);
    free(b);
    free(x);
    sb_fbank_destroy(&fb);
}

Test(fbank, short_input_is_one_padded_frame)
{
    sb_fbank *fb = make_default();
    float x[100], out[80], out2[80];
    for (int i = 0; i < 100; i++)
        x[i] = (float)sin(0.3 * i);
    sb_error err = { 0 };
    cr_assert_eq(sb_fbank_n_frames(fb, 100), 1);
    cr_assert_eq(sb_fbank_compute(fb, x, 100, out, &err), SB_OK, "%s", err.msg);
    /* Equal to the same samples explicitly padded to 400 with zeros. */
    float pad[400] = { 0 };
    memcpy(pad, x, sizeof x);
    cr_assert_eq(sb_fbank_compute(fb, pad, 400, out2, &err), SB_OK, "%s", err.msg);
    for (int m = 0; m < 80; m++)
        cr_expect_eq(out[m], out2[m], "mel %d: %f vs %f", m, (double)out[m], (double)out2[m]);
    sb_fbank_destroy(&fb);
}

Test(fbank, empty_and_null_input_are_errors)
{
    sb_fbank *fb = make_default();
    float x[1] = { 0 }, out[80];
    sb_error err = { 0 };
    cr_expect_eq(sb_fbank_compute(fb, x, 0, out, &err), SB_ERR_INVALID);
    cr_expect(strstr(err.msg, "n == 0"), "message: %s", err.msg);
    sb_error_clear(&err);
    cr_expect_eq(sb_fbank_compute(fb, NULL, 10, out, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_expect_eq(sb_fbank_compute(fb, x, 1, NULL, &err), SB_ERR_INVALID);
    cr_expect_eq(sb_fbank_create(NULL, &fb, NULL), SB_ERR_INVALID);
    sb_fbank_destroy(&fb);
}

static void expect_bad(sb_fbank_config c, const char *needle)
{
    sb_fbank *fb = (sb_fbank *)&c; /* must be reset to NULL on failure */
    sb_error err = { 0 };
    cr_expect_eq(sb_fbank_create(&c, &fb, &err), SB_ERR_INVALID, "config accepted (%s)", needle);
    cr_expect_null(fb);
    cr_expect(strstr(err.msg, needle), "message lacks '%s': %s", needle, err.msg);
}

Test(fbank, config_errors)
{
    sb_fbank_config d;
    sb_fbank_config_default(&d);
    sb_fbank_config c = d;
    c.f_min = 9000;
    expect_bad(c, "f_min");
    c = d;
    c.f_max = 8001;
    expect_bad(c, "Nyquist");
    c = d;
    c.f_min = 4000, c.f_max = 4000;
    expect_bad(c, "f_min");
    c = d;
    c.n_fft = 256; /* frame is 400 samples */
    expect_bad(c, "n_fft");
    c = d;
    c.preemph = 1.5;
    expect_bad(c, "preemph");
    c = d;
    c.preemph = NAN;
    expect_bad(c, "preemph");
    c = d;
    c.frame_ms = 0.05; /* 0.8 samples */
    expect_bad(c, "frame_ms");
    c = d;
    c.hop_ms = -1;
    expect_bad(c, "hop_ms");
    c = d;
    c.n_mels = 0;
    expect_bad(c, "n_mels");
    c = d;
    c.sample_rate = 0;
    expect_bad(c, "sample_rate");
    c = d;
    c.frame_ms = INFINITY;
    expect_bad(c, "frame_ms");
}

/* Objects created concurrently (FFTW planning is serialised inside) compute the same
 * bits as one created alone. */
typedef struct job {
    const float *x;
    size_t n;
    float *out;
    sb_status st;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        sb_fbank *fb = NULL;
        sb_fbank_config c;
        sb_fbank_config_default(&c);
        c.n_fft = 400 + 2 * rep; /* a fresh plan each time, various sizes */
        j->st = sb_fbank_create(&c, &fb, NULL);
        if (j->st != SB_OK)
            return NULL;
        sb_fbank_destroy(&fb);
    }
    sb_fbank *fb = NULL;
    sb_fbank_config c;
    sb_fbank_config_default(&c);
    j->st = sb_fbank_create(&c, &fb, NULL);
    if (j->st == SB_OK)
        j->st = sb_fbank_compute(fb, j->x, j->n, j->out, NULL);
    sb_fbank_destroy(&fb);
    return NULL;
}

Test(fbank, deterministic_across_objects_and_threads)
{
    const size_t n = 8000;
    float *x = malloc(n * sizeof *x);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
    }
    sb_fbank *fb = make_default();
    size_t T = sb_fbank_n_frames(fb, n);
    float *ref = malloc(T * 80 * sizeof *ref);
    cr_assert_eq(sb_fbank_compute(fb, x, n, ref, NULL), SB_OK);
    sb_fbank_destroy(&fb);

    enum { NT = 4 };
    pthread_t th[NT];
    job jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (job){ x, n, malloc(T * 80 * sizeof(float)), SB_ERR_INTERNAL };
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(jobs[i].st, SB_OK, "thread %d failed", i);
        cr_expect_eq(memcmp(jobs[i].out, ref, T * 80 * sizeof(float)), 0,
                     "thread %d: output differs from the single-threaded one", i);
        free(jobs[i].out);
    }
    free(ref);
    free(x);
}
