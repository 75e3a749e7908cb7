/* plugins/datasets/meld/tests/meld_testutil.h — scaffolding shared by the meld and melt
 * plugin tests (header-only, static): a fresh temporary folder per test, a host that
 * captures log lines, option blocks from YAML text, the generated MELD tree (made once
 * per build tree by scripts/make-meld-corpus, under a lock), and its expected.csv. */
#ifndef MELD_TESTUTIL_H
#define MELD_TESTUTIL_H

#include <criterion/criterion.h>

#include "shared_data.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <serbench/serbench.h>

#include "internal.h"

const sb_plugin *serbench_plugin_v1(void);

static char g_dir[512];

static void tu_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sb-meldt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp failed");
}

static int tu_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tu_teardown(void)
{
    if (g_dir[0])
        nftw(g_dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Full path of `rel` in the test folder (4 rotating buffers). */
static inline const char *tpath(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

static inline void mkdirs_for(const char *path)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", path);
    for (char *s = sub + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(sub, 0755);
        *s = '/';
    }
}

static inline void write_bytes(const char *rel, const char *data, size_t n)
{
    const char *p = tpath(rel);
    mkdirs_for(p);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "cannot write %s", p);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static inline void write_text(const char *rel, const char *text)
{
    write_bytes(rel, text, strlen(text));
}

/* ---- a host that records log lines ----------------------------------------------------- */

static char g_log[1 << 17];
static size_t g_log_len;

static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    static const char *tag[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    if (g_log_len + 16 >= sizeof g_log)
        return;
    g_log_len += (size_t)snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "[%s] ",
                                  tag[level <= SB_LOG_DEBUG ? level : SB_LOG_DEBUG]);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_log + g_log_len, sizeof g_log - g_log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        g_log_len += (size_t)n;
    if (g_log_len >= sizeof g_log - 1)
        g_log_len = sizeof g_log - 2;
    g_log[g_log_len++] = '\n';
    g_log[g_log_len] = '\0';
}

static void cap_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    cr_assert_leq(done, total);
}

static int cap_cancelled(const sb_host *h)
{
    (void)h;
    return 0;
}

/* Dataset plugins do not use the cache, so cache_get/cache_put stay NULL here. */
static const sb_host g_cap_host = { .struct_size = sizeof(sb_host),
                                    .log = cap_log,
                                    .progress = cap_progress,
                                    .cancelled = cap_cancelled,
                                    .cache_dir = "/tmp",
                                    .seed = 1,
                                    .threads = 1 };

/* Nonzero when a captured log line at `level` contains every needle (NULL-terminated). */
static inline int log_has(const char *level, const char *const *needles)
{
    char tag[16];
    snprintf(tag, sizeof tag, "[%s] ", level);
    for (const char *p = g_log; (p = strstr(p, tag)); p++) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        int all = 1;
        for (const char *const *n = needles; *n && all; n++)
            all = strstr(line, *n) != NULL;
        if (all)
            return 1;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* Load with options given as YAML text; the log is captured into g_log. */
static inline sb_status load_yaml(const char *yaml, sb_corpus **out, sb_error *err)
{
    const sb_plugin *p = serbench_plugin_v1();
    sb_opts *opts = NULL;
    sb_error_clear(err);
    g_log_len = 0;
    g_log[0] = '\0';
    sb_status st = sbi_opts_parse(p->options, yaml, "test.yaml", &opts, err);
    cr_assert_eq(st, SB_OK, "options did not parse: %s | %s\n%s", err->where, err->msg, yaml);
    cr_assert_eq(sb_corpus_create("t", out, err), SB_OK);
    const sb_dataset_vtable *vt = p->vtable;
    st = vt->load(&g_cap_host, opts, *out, err);
    sbi_opts_destroy(&opts);
    if (st != SB_OK)
        cr_assert_neq(err->code, SB_OK, "status %d but the error object is empty", st);
    return st;
}

static inline void expect_ok(sb_status st, const sb_error *err)
{
    cr_assert_eq(st, SB_OK, "load failed: %s | %s", err->where, err->msg);
}

/* The error must carry every needle (NULL-terminated) in "where | msg". */
static inline void expect_err(sb_status st, sb_status code, const sb_error *err,
                              const char *const *needles)
{
    char all[2100];
    snprintf(all, sizeof all, "%s | %s", err->where, err->msg);
    cr_assert_eq(st, code, "status %d, want %d: %s", st, code, all);
    for (const char *const *n = needles; *n; n++)
        cr_assert_not_null(strstr(all, *n), "error '%s' lacks '%s'", all, *n);
}

static inline const sb_utt *utt_by_id(const sb_corpus *c, const char *id)
{
    long i = sb_corpus_find(c, id);
    cr_assert_geq(i, 0, "utterance %s not in the corpus", id);
    return sb_corpus_utt(c, (size_t)i);
}

/* The warning for an utterance id, or NULL. */
static inline const char *warning_for(const sb_corpus *c, const char *id)
{
    for (size_t i = 0; i < sb_corpus_n_warnings(c); i++) {
        const char *wid = NULL;
        const char *msg = sb_corpus_warning(c, i, &wid);
        if (wid && strcmp(wid, id) == 0)
            return msg;
    }
    return NULL;
}

/* Notes do not exclude the item (missing clips, out-of-schema LLM labels kept unlabelled). */
static inline const char *note_for(const sb_corpus *c, const char *id)
{
    for (size_t i = 0; i < sb_corpus_n_notes(c); i++) {
        const char *nid = NULL;
        const char *msg = sb_corpus_note(c, i, &nid);
        if (nid && strcmp(nid, id) == 0)
            return msg;
    }
    return NULL;
}

static inline size_t count_split(const sb_corpus *c, const char *split)
{
    size_t n = 0;
    for (size_t i = 0; i < sb_corpus_size(c); i++)
        n += strcmp(sb_corpus_utt(c, i)->split, split) == 0;
    return n;
}

static inline size_t count_split_label(const sb_corpus *c, const char *split, const char *cls)
{
    int k = sb_corpus_class_index(c, cls);
    cr_assert_geq(k, 0, "no class %s", cls);
    size_t n = 0;
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        n += strcmp(u->split, split) == 0 && u->label == k;
    }
    return n;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- external programs ------------------------------------------------------------------- */

/* Run a shell command; its stdout+stderr go to `out` (may be NULL). Returns the exit code. */
static inline int run_cmd(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = 0;
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && n + 1 < size) {
            size_t c = k < size - 1 - n ? k : size - 1 - n;
            memcpy(out + n, buf, c);
            n += c;
        }
    }
    if (out)
        out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline const char *source_root(void)
{
    const char *s = getenv("SB_SOURCE_ROOT");
    cr_assert_not_null(s, "SB_SOURCE_ROOT is not set (run through meson test)");
    return s;
}

static inline int have_tools(void)
{
    return run_cmd("command -v espeak-ng && command -v sox && command -v ffmpeg && "
                   "command -v ffprobe",
                   NULL, 0) == 0;
}

/* The generated MELD tree (OUT of scripts/make-meld-corpus), made once per build tree:
 * the first test process to get the lock generates it into a temporary name and renames
 * it, so a half-made tree is never seen. Skips the test when the tools are missing. */
static inline const char *meld_corpus(void)
{
    static char out[1024];
    const char *b = getenv("SB_BUILD_ROOT");
    cr_assert_not_null(b, "SB_BUILD_ROOT is not set (run through meson test)");
    char dir[900], lock[1100];
    snprintf(dir, sizeof dir, "%s/test-data", b);
    mkdir(dir, 0755);
    snprintf(out, sizeof out, "%s/meld", dir);
    snprintf(lock, sizeof lock, "%s/meld.lock", dir);
    int fd = open(lock, O_CREAT | O_RDWR, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    struct stat st;
    if (stat(out, &st) != 0) {
        if (!have_tools()) {
            close(fd);
            cr_skip_test("espeak-ng, sox or ffmpeg missing: no generated MELD tree");
        }
        char cmd[4096], log[8192];
        snprintf(cmd, sizeof cmd, "rm -rf '%s.tmp' && '%s/scripts/make-meld-corpus' '%s.tmp' 2>&1",
                 out, source_root(), out);
        int rc = run_cmd(cmd, log, sizeof log);
        cr_assert_eq(rc, 0, "make-meld-corpus failed:\n%s", log);
        snprintf(cmd, sizeof cmd, "%s.tmp", out);
        cr_assert_eq(rename(cmd, out), 0);
    }
    flock(fd, LOCK_UN);
    close(fd);
    return out;
}

/* expected.csv of the generated tree: one row per utterance, columns as in the header. */
typedef struct expected_row {
    char id[64], split[8], speaker[64], emotion[16], sentiment[16], text[256], clip[16], melt[8],
        llm[16];
    long d, u;
} expected_row;

static inline size_t read_expected(const char *corpus, expected_row *rows, size_t cap)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/expected.csv", corpus);
    sb_csv *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_csv_open(path, ',', &c, &e), SB_OK, "%s", e.msg);
    const char *const *f;
    size_t nf, n = 0;
    int eof;
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK); /* header */
    cr_assert_eq(nf, 11);
    while (sb_csv_next(c, &f, &nf, &eof, &e) == SB_OK && !eof) {
        cr_assert_lt(n, cap);
        expected_row *r = &rows[n++];
        snprintf(r->id, sizeof r->id, "%s", f[0]);
        snprintf(r->split, sizeof r->split, "%s", f[1]);
        r->d = atol(f[2]);
        r->u = atol(f[3]);
        snprintf(r->speaker, sizeof r->speaker, "%s", f[4]);
        snprintf(r->emotion, sizeof r->emotion, "%s", f[5]);
        snprintf(r->sentiment, sizeof r->sentiment, "%s", f[6]);
        snprintf(r->text, sizeof r->text, "%s", f[7]);
        snprintf(r->clip, sizeof r->clip, "%s", f[8]);
        snprintf(r->melt, sizeof r->melt, "%s", f[9]);
        snprintf(r->llm, sizeof r->llm, "%s", f[10]);
    }
    sb_csv_close(&c);
    return n;
}

/* The text of meta key `key` (a number or a string without escapes), or "" when absent. */
static inline const char *meta_get(const sb_utt *u, const char *key, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!u->meta)
        return buf;
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(u->meta, pat);
    if (!p)
        return buf;
    p += strlen(pat);
    int quoted = *p == '"';
    if (quoted)
        p++;
    size_t n = 0;
    while (p[n] && n + 1 < size && (quoted ? p[n] != '"' : p[n] != ',' && p[n] != '}'))
        n++;
    snprintf(buf, size, "%.*s", (int)n, p);
    return buf;
}

#endif
