/* core/lib/ssl/pool.c — the fork-join pool that runs the SSL forward pass: n threads
 * counting the caller, n being the thread budget the host set through OpenBLAS. While the
 * pool runs, OpenBLAS is kept at one thread (sbi_ssl_blas_serial), so each pool thread calls
 * single-threaded GEMMs on its own slice and the process never has more runnable threads
 * than the budget. Workers sleep on a condition variable between jobs. The split of a job
 * depends only on n, so results are reproducible for a given thread count. */
#include "ssl_internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

struct sbi_ssl_pool {
    int n; /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;
    int pending, quit;
    sbi_ssl_task fn;
    void *ctx;
    size_t items, grain;
};

/* Part k of n of [0, items), rounded to multiples of grain. */
static void part(const sbi_ssl_pool *p, int k, size_t *b, size_t *e)
{
    const size_t chunks = (p->items + p->grain - 1) / p->grain;
    const size_t per = chunks / (size_t)p->n, extra = chunks % (size_t)p->n;
    const size_t c0 = (size_t)k * per + ((size_t)k < extra ? (size_t)k : extra);
    const size_t c1 = c0 + per + ((size_t)k < extra ? 1 : 0);
    *b = c0 * p->grain < p->items ? c0 * p->grain : p->items;
    *e = c1 * p->grain < p->items ? c1 * p->grain : p->items;
}

typedef struct worker_arg {
    sbi_ssl_pool *p;
    int k;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    sbi_ssl_pool *p = wa->p;
    const int k = wa->k;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        size_t b, e;
        part(p, k, &b, &e);
        if (b < e)
            p->fn(p->ctx, k, b, e);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sbi_ssl_pool *sbi_ssl_pool_create(int n)
{
    if (n < 2)
        return NULL;
    sbi_ssl_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)n, sizeof *p->th))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = 1;
    for (int k = 1; k < n; k++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            break;
        *wa = (worker_arg){ p, k };
        if (pthread_create(&p->th[k], NULL, worker, wa) != 0) {
            free(wa);
            break;
        }
        p->n = k + 1;
    }
    if (p->n < 2) {
        sbi_ssl_pool_destroy(&p);
        return NULL;
    }
    return p;
}

int sbi_ssl_pool_size(const sbi_ssl_pool *p)
{
    return p ? p->n : 1;
}

void sbi_ssl_pool_destroy(sbi_ssl_pool **pp)
{
    sbi_ssl_pool *p = pp ? *pp : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int k = 1; k < p->n; k++)
        pthread_join(p->th[k], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
    *pp = NULL;
}

void sbi_ssl_parallel(sbi_ssl_pool *p, size_t items, size_t grain, sbi_ssl_task fn, void *ctx)
{
    if (grain == 0)
        grain = 1;
    if (!p || items <= grain) {
        if (items)
            fn(ctx, 0, 0, items);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->items = items;
    p->grain = grain;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    size_t b, e;
    part(p, 0, &b, &e);
    if (b < e)
        fn(ctx, 0, b, e);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* OpenBLAS's thread count is process-wide, and models on different threads may run at
 * once: the first user saves the host's count and sets 1, the last one restores it, so an
 * overlapping pass never mistakes another's 1 for the budget or restores too early. */
static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_users, blas_saved;

int sbi_ssl_blas_serial(void)
{
    pthread_mutex_lock(&blas_mu);
    if (blas_users++ == 0) {
        blas_saved = openblas_get_num_threads();
        if (blas_saved != 1)
            openblas_set_num_threads(1);
    }
    const int n = blas_saved;
    pthread_mutex_unlock(&blas_mu);
    return n;
}

void sbi_ssl_blas_restore(void)
{
    pthread_mutex_lock(&blas_mu);
    if (--blas_users == 0 && blas_saved != 1)
        openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_mu);
}
