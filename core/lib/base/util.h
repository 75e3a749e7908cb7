/* core/lib/base/util.h — (internal) small string, path and file helpers used across
 * libserbench. All return NULL / nonzero on allocation failure rather than aborting. */
#ifndef SBI_UTIL_H
#define SBI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <serbench/error.h>

char *sbi_strdup(const char *s); /* NULL in → NULL out */
char *sbi_strndup(const char *s, size_t n);
char *sbi_asprintf(const char *fmt, ...) SB_PRINTF(1, 2);
int sbi_streq(const char *a, const char *b); /* NULL-safe equality */
/* write() all n bytes, retrying on EINTR and short writes: 0, or -1 with errno set. */
int sbi_write_all(int fd, const void *p, size_t n);
int sbi_has_suffix(const char *s, const char *suffix);

/* Growable string. */
typedef struct sbi_buf {
    char *s;
    size_t len, cap;
} sbi_buf;
int sbi_buf_add(sbi_buf *b, const char *s, size_t n);
int sbi_buf_puts(sbi_buf *b, const char *s);
int sbi_buf_printf(sbi_buf *b, const char *fmt, ...) SB_PRINTF(2, 3);
void sbi_buf_free(sbi_buf *b);
/* Append s (NULL = empty) as one RFC 4180 CSV field, quoted when it holds , " CR or LF. */
int sbi_buf_csv_field(sbi_buf *b, const char *s);

/* Paths. dirname/join return new strings. join of an absolute `rel` returns a copy of it. */
char *sbi_path_dirname(const char *path);
char *sbi_path_join(const char *dir, const char *rel);
int sbi_path_is_abs(const char *p);
/* mkdir -p; returns 0 or sets err (SB_ERR_IO naming the path). */
sb_status sbi_mkdir_p(const char *path, sb_error *err);
int sbi_is_dir(const char *path);
int sbi_is_file(const char *path);
/* Read a whole file (NUL-terminated; *len excludes the NUL). */
sb_status sbi_read_file(const char *path, char **out, size_t *len, sb_error *err);
/* Write a file atomically: tmp in the same folder, fsync, rename. */
sb_status sbi_write_file_atomic(const char *path, const void *data, size_t len, sb_error *err);

/* Monotonic seconds, and wall-clock ISO-8601 UTC into buf[32]. */
double sbi_now(void);
const char *sbi_utc_now(char buf[32]);

#endif
