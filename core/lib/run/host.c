/* core/lib/run/host.c — the services serbench lends a plugin instance (sb_host): logging
 * into the run's log, progress, cancellation, a private folder and a key-value cache in
 * the results store. */
#include "stage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

volatile sig_atomic_t sbi_cancel_requested = 0;

static void host_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void host_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    const host_priv *hp = h->priv;
    va_list ap;
    va_start(ap, fmt);
    sbi_ui_logv(hp->ui, level, hp->who, fmt, ap);
    va_end(ap);
}

static void host_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    const host_priv *hp = h->priv;
    if (hp->prog) {
        hp->prog->total = total;
        sbi_progress_update(hp->prog, done);
    }
}

static int host_cancelled(const sb_host *h)
{
    (void)h;
    return sbi_cancel_requested != 0;
}

/* The plugin cache: table plugin_cache(plugin, key, value, created) in the store. */
static int host_cache_get(const sb_host *h, const char *key, char **value, size_t *len)
{
    const host_priv *hp = h->priv;
    *value = NULL;
    *len = 0;
    if (!hp->store || !key)
        return hp->store ? -1 : 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(hp->store->db,
                           "SELECT value FROM plugin_cache WHERE plugin=?1 AND key=?2", -1, &q,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, hp->plugin, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), found = 0;
    if (rc == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(q, 0);
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        char *v = malloc(n + 1);
        if (v) {
            if (n)
                memcpy(v, b, n);
            v[n] = 0;
            *value = v;
            *len = n;
            found = 1;
        } else {
            found = -1;
        }
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(q);
    return found;
}

static sb_status host_cache_put(const sb_host *h, const char *key, const void *value, size_t len,
                                sb_error *err)
{
    const host_priv *hp = h->priv;
    if (!hp->store)
        return sb_error_set(err, SB_ERR_STORE, NULL, "no results store is open for the cache");
    if (!key || (!value && len))
        return sb_error_set(err, SB_ERR_INVALID, NULL, "cache_put: NULL key or value");
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(hp->store,
                                     "INSERT OR REPLACE INTO plugin_cache VALUES(?1, ?2, ?3, "
                                     "strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                                     &q, err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, hp->plugin, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, len ? value : "", (int)len, SQLITE_TRANSIENT);
    st = sbi_store_step_done(hp->store, q, err);
    sqlite3_finalize(q);
    /* Durable on return: the label stage may hold a transaction of deliveries open on the
     * same connection; commit it with this row (a Batch id must never be lost). */
    if (st == SB_OK && !sqlite3_get_autocommit(hp->store->db))
        st = sbi_store_commit(hp->store, err);
    return st;
}

sb_status sbi_host_init(sb_host *h, host_priv *hp, const sbi_ui *ui, sbi_store *store,
                        const char *cache_root, const sbi_instance *in, uint64_t seed, int threads,
                        char *cache_buf, size_t cache_size, sb_error *err)
{
    memset(h, 0, sizeof *h);
    memset(hp, 0, sizeof *hp);
    hp->ui = ui;
    hp->store = store;
    hp->plugin = in->plugin->desc->name;
    snprintf(hp->who, sizeof hp->who, "%s %s", sb_kind_name(in->kind), in->name);
    snprintf(cache_buf, cache_size, "%s/cache/%s", cache_root, in->plugin->desc->name);
    sb_status st = sbi_mkdir_p(cache_buf, err);
    h->struct_size = sizeof *h;
    h->priv = hp;
    h->log = host_log;
    h->progress = host_progress;
    h->cancelled = host_cancelled;
    h->cache_get = host_cache_get;
    h->cache_put = host_cache_put;
    h->cache_dir = cache_buf;
    h->seed = seed;
    h->threads = threads > 0 ? threads : 1;
    return st;
}
