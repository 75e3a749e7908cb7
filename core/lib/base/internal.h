/* core/lib/base/internal.h — (internal) helpers shared across libserbench modules and
 * used by unit tests: a host for tests, and option blocks built from YAML text. */
#ifndef SBI_INTERNAL_H
#define SBI_INTERNAL_H

#include <serbench/serbench.h>

/* A host whose log goes to stderr, with the given seed and thread budget, cache_dir
 * under $TMPDIR. Static storage; for tests and simple tools. */
const sb_host *sbi_test_host(uint64_t seed, int threads);

/* The test host's cache_get/cache_put: an in-memory table shared by the process (the
 * store's is SQLite). Thread-safe. sbi_test_cache_clear empties it. */
int sbi_test_cache_get(const sb_host *h, const char *key, char **value, size_t *len);
sb_status sbi_test_cache_put(const sb_host *h, const char *key, const void *value, size_t len,
                             sb_error *err);
void sbi_test_cache_clear(void);

/* Validate YAML mapping text (e.g. "epochs: 5\nlr: 0.01") against an option table and
 * build the values a plugin receives, exactly as the host does for a config block.
 * `name` labels locations in messages. Free with sbi_opts_destroy. */
sb_status sbi_opts_parse(const sb_option *table, const char *yaml_text, const char *name,
                         sb_opts **out, sb_error *err);
void sbi_opts_destroy(sb_opts **o);

#endif
