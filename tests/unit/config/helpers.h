/* tests/unit/config/helpers.h — shared helpers for the config tests: parse/load wrappers
 * that print the error on failure, and running from the fixture folder so that locations
 * in messages are short relative paths ("fixtures/exp/main.yaml:3:5"). */
#ifndef CFG_TEST_HELPERS_H
#define CFG_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sb_build_config.h"

#if defined(__SANITIZE_ADDRESS__)
#define CFG_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CFG_HAVE_LSAN 1
#endif
#endif
#ifdef CFG_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* Suite fini: under ASan, fail the test if it leaked. (LeakSanitizer's own report at
 * exit comes after Criterion has recorded the result, so it would not fail the test.) */
static inline void cfg_leak_check(void)
{
#ifdef CFG_HAVE_LSAN
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "memory leaked (LeakSanitizer report above)\n");
        fflush(stderr);
        abort(); /* an assertion in fini would not fail the test; a crash does */
    }
#endif
}

/* chdir to tests/unit/config of the source tree (SB_SOURCE_ROOT from the test env, else
 * the configure-time path). Criterion runs each test in its own process. */
static inline void cfg_chdir_tests(void)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/unit/config", root && *root ? root : SB_SOURCE_ROOT);
    cr_assert_eq(chdir(dir), 0, "cannot chdir to %s", dir);
}

/* "where: msg" of an error, in a static buffer. */
static inline const char *cfg_errstr(const sb_error *e)
{
    static char buf[2200];
    return sb_error_format(e, buf, sizeof buf);
}

/* Parse text that must be valid; fails the test with the error otherwise. */
static inline sbi_node *cfg_parse_ok(const char *text)
{
    sb_error e = { 0 };
    sbi_node *n = sbi_config_parse_string(text, strlen(text), "t.yaml", &e);
    cr_assert_not_null(n, "parse failed: %s", cfg_errstr(&e));
    return n;
}

/* Parse text that must fail; returns the error (code asserted != OK). */
static inline sb_error cfg_parse_err(const char *text)
{
    sb_error e = { 0 };
    sbi_node *n = sbi_config_parse_string(text, strlen(text), "t.yaml", &e);
    if (n) {
        sbi_node_free(&n);
        cr_assert_fail("expected a parse error for:\n%s", text);
    }
    cr_assert_neq(e.code, SB_OK);
    return e;
}

/* The error text must contain `want`. */
#define cfg_assert_has(e, want)                                                                    \
    cr_assert_not_null(strstr(cfg_errstr(&(e)), (want)), "error \"%s\" lacks \"%s\"",              \
                       cfg_errstr(&(e)), (want))

/* Scalar text at a dotted path, asserting it exists and is a scalar. */
static inline const char *cfg_text(const sbi_node *root, const char *path)
{
    const sbi_node *n = sbi_node_path(root, path);
    cr_assert_not_null(n, "no node at %s", path);
    cr_assert_eq(n->kind, SBI_SCALAR, "%s is not a scalar (kind %d)", path, (int)n->kind);
    return n->text;
}

/* Compact, key-ordered JSON of a tree (caller frees). */
static inline char *cfg_json(const sbi_node *n)
{
    json_t *j = sbi_node_to_json(n);
    cr_assert_not_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    cr_assert_not_null(s);
    return s;
}

#endif
