/* core/lib/base/util.c — string, path and file helpers (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *sbi_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *sbi_strndup(const char *s, size_t n)
{
    return s ? strndup(s, n) : NULL;
}

char *sbi_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int r = vasprintf(&out, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : out;
}

int sbi_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int sbi_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int sbi_buf_add(sbi_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return -1;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

int sbi_buf_puts(sbi_buf *b, const char *s)
{
    return sbi_buf_add(b, s, strlen(s));
}

int sbi_buf_printf(sbi_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -1;
    r = sbi_buf_add(b, s, (size_t)r);
    free(s);
    return r;
}

int sbi_buf_csv_field(sbi_buf *b, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\n\r"))
        return sbi_buf_puts(b, s);
    int rc = sbi_buf_puts(b, "\"");
    for (const char *p = s; *p && !rc; p++)
        rc = (*p == '"' ? sbi_buf_puts(b, "\"") : 0) || sbi_buf_add(b, p, 1);
    return rc || sbi_buf_puts(b, "\"");
}

void sbi_buf_free(sbi_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

char *sbi_path_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int sbi_path_is_abs(const char *p)
{
    return p && p[0] == '/';
}

char *sbi_path_join(const char *dir, const char *rel)
{
    if (sbi_path_is_abs(rel) || !dir || !*dir)
        return strdup(rel);
    size_t n = strlen(dir);
    return sbi_asprintf("%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", rel);
}

int sbi_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int sbi_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

sb_status sbi_mkdir_p(const char *path, sb_error *err)
{
    char *p = strdup(path);
    if (!p)
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                sb_status st =
                    sb_error_set(err, SB_ERR_IO, p, "cannot create folder: %s", strerror(e));
                free(p);
                return st;
            }
            if (!sbi_is_dir(p)) {
                sb_status st = sb_error_set(err, SB_ERR_IO, p, "exists and is not a folder");
                free(p);
                return st;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return SB_OK;
}

sb_status sbi_read_file(const char *path, char **out, size_t *len, sb_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_error_set(err, SB_ERR_IO, path, "cannot open: %s", strerror(errno));
    sbi_buf b = { 0 };
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (sbi_buf_add(&b, chunk, n) != 0) {
            fclose(f);
            sbi_buf_free(&b);
            return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory reading file");
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        sbi_buf_free(&b);
        return sb_error_set(err, SB_ERR_IO, path, "read error");
    }
    if (!b.s && sbi_buf_add(&b, "", 0) != 0)
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    *out = b.s;
    if (len)
        *len = b.len;
    return SB_OK;
}

sb_status sbi_write_file_atomic(const char *path, const void *data, size_t len, sb_error *err)
{
    char *tmp = sbi_asprintf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp)
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        sb_status st = sb_error_set(err, SB_ERR_IO, path, "cannot write: %s", strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return sb_error_set(err, SB_ERR_IO, path, "cannot write: %s", strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return sb_error_set(err, SB_ERR_IO, path, "cannot write: %s", strerror(e));
    }
    free(tmp);
    return SB_OK;
}

double sbi_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *sbi_utc_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int sbi_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}
