/* plugins/encoders/wav2vec2/bench_ssl.c — timing of the SSL encoder forward pass (every
 * layer, nothing pooled) on one audio file at a given OpenBLAS thread count, and the sgemm
 * peak of the same OpenBLAS at that count, for scripts/bench-ssl. Audio and weights are
 * loaded first and not timed; the best of R runs is reported after one warm-up, with the
 * CPU time the process used during that run: cpu_s / (forward_s * THREADS) well below 1
 * means the threads waited, on each other or on other processes.
 *
 *     bench_ssl CHECKPOINT AUDIO THREADS [REPEAT]
 * prints: forward_s=… cpu_s=… audio_s=… frames=… sgemm_gflops=…                          */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <serbench/serbench.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* User + system CPU seconds of the whole process (all threads). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static sb_status ignore(void *user, int index, const float *h, size_t T, int H, sb_error *err)
{
    (void)user, (void)index, (void)h, (void)T, (void)H, (void)err;
    return SB_OK;
}

/* Best GFLOP/s of C (M,N) = A (M,K) B (K,N)^T at base-model-like shapes. */
static double sgemm_peak(void)
{
    const int M = 1024, N = 3072, K = 768;
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4),
          *c = calloc((size_t)M * N, 4);
    double best = 0;
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++)
        b[i] = (float)(i % 5) * 0.1f;
    for (int r = 0; r < 8; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double dt = now() - t0;
        double g = 2.0 * M * N * K / dt * 1e-9;
        best = g > best ? g : best;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_ssl CHECKPOINT AUDIO THREADS [REPEAT]\n");
        return 2;
    }
    const int threads = atoi(argv[3]), repeat = argc > 4 ? atoi(argv[4]) : 3;
    openblas_set_num_threads(threads);
    sb_error err = { 0 };
    sb_ssl_model *m = NULL;
    float *x = NULL;
    size_t n = 0;
    char buf[2200];
    if (sb_ssl_open(argv[1], &m, &err) || sb_audio_load(argv[2], 0, -1, -1, 16000, &x, &n, &err)) {
        fprintf(stderr, "bench_ssl: %s\n", sb_error_format(&err, buf, sizeof buf));
        return 1;
    }
    double best = 1e30, best_cpu = 0;
    for (int r = 0; r <= repeat; r++) {
        const double t0 = now(), c0 = cpu_now();
        if (sb_ssl_forward(m, x, n, 0, -1, ignore, NULL, &err)) {
            fprintf(stderr, "bench_ssl: %s\n", sb_error_format(&err, buf, sizeof buf));
            return 1;
        }
        const double dt = now() - t0, cpu = cpu_now() - c0;
        if ((r > 0 || repeat == 0) && dt < best) {
            best = dt;
            best_cpu = cpu;
        }
    }
    printf("forward_s=%.4f cpu_s=%.4f audio_s=%.3f frames=%zu sgemm_gflops=%.1f\n", best, best_cpu,
           n / 16000.0, sb_ssl_n_frames(m, n), sgemm_peak());
    sb_free(x);
    sb_ssl_close(&m);
    return 0;
}
