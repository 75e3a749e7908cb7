/* core/lib/base/testhost.c — a minimal sb_host for unit tests and one-off tools: logs to
 * stderr (ERROR and WARN always, INFO/DEBUG when SERBENCH_DEBUG is set). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
    h.cache_dir = tmp ? tmp : "/tmp";
    h.seed = seed;
    h.threads = threads > 0 ? threads : 1;
    return &h;
}
