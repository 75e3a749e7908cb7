/* core/lib/base/testhost.c — a minimal sb_host for unit tests and one-off tools: logs to
 * stderr (ERROR and WARN always, INFO/DEBUG when SERBENCH_DEBUG is set). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void th_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void th_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    if (level > SB_LOG_WARN && !getenv("SERBENCH_DEBUG"))
        return;
    static const char *names[] = { "error", "warning", "info", "debug" };
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[test %s] ", names[level <= SB_LOG_DEBUG ? level : SB_LOG_DEBUG]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void th_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    (void)done;
    (void)total;
}

static int th_cancelled(const sb_host *h)
{
    (void)h;
    return 0;
}

typedef struct th_entry {
    char *key, *value;
    size_t len;
} th_entry;

static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static th_entry *th_cache;
static size_t th_n, th_cap;

int sbi_test_cache_get(const sb_host *h, const char *key, char **value, size_t *len)
{
    (void)h;
    int found = 0;
    *value = NULL;
    *len = 0;
    pthread_mutex_lock(&th_lock);
    for (size_t i = 0; i < th_n && !found; i++)
        if (strcmp(th_cache[i].key, key) == 0) {
            char *v = malloc(th_cache[i].len + 1);
            if (!v) {
                found = -1;
                break;
            }
            memcpy(v, th_cache[i].value, th_cache[i].len + 1);
            *value = v;
            *len = th_cache[i].len;
            found = 1;
        }
    pthread_mutex_unlock(&th_lock);
    return found;
}

sb_status sbi_test_cache_put(const sb_host *h, const char *key, const void *value, size_t len,
                             sb_error *err)
{
    (void)h;
    char *k = strdup(key), *v = malloc(len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    if (len)
        memcpy(v, value, len);
    v[len] = 0;
    pthread_mutex_lock(&th_lock);
    size_t i = 0;
    while (i < th_n && strcmp(th_cache[i].key, key) != 0)
        i++;
    if (i == th_n) {
        if (th_n == th_cap) {
            size_t cap = th_cap ? 2 * th_cap : 64;
            th_entry *grown = realloc(th_cache, cap * sizeof *grown);
            if (!grown) {
                pthread_mutex_unlock(&th_lock);
                free(k);
                free(v);
                return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            }
            th_cache = grown;
            th_cap = cap;
        }
        th_cache[th_n++] = (th_entry){ k, v, len };
    } else {
        free(k);
        free(th_cache[i].value);
        th_cache[i].value = v;
        th_cache[i].len = len;
    }
    pthread_mutex_unlock(&th_lock);
    return SB_OK;
}

void sbi_test_cache_clear(void)
{
    pthread_mutex_lock(&th_lock);
    for (size_t i = 0; i < th_n; i++) {
        free(th_cache[i].key);
        free(th_cache[i].value);
    }
    free(th_cache);
    th_cache = NULL;
    th_n = th_cap = 0;
    pthread_mutex_unlock(&th_lock);
}

const sb_host *sbi_test_host(uint64_t seed, int threads)
{
    /* One host per thread; tests are single-threaded per process. */
    static _Thread_local sb_host h;
    const char *tmp = getenv("TMPDIR");
    h.struct_size = sizeof h;
    h.priv = NULL;
    h.log = th_log;
    h.progress = th_progress;
    h.cancelled = th_cancelled;
    h.cache_get = sbi_test_cache_get;
    h.cache_put = sbi_test_cache_put;
    h.cache_dir = tmp ? tmp : "/tmp";
    h.seed = seed;
    h.threads = threads > 0 ? threads : 1;
    return &h;
}
