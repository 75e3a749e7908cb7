/* core/lib/config/interp.c — step 3: ${VAR}, ${VAR:-default} and $$ in scalar values, from
 * the environment. The result is plain text and is never parsed as YAML again; a value
 * that becomes "true" stays a scalar and is typed later. Values of variables never appear
 * in messages (they may be secrets). */
#include "config_priv.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nested defaults ("${A:-${B:-x}}") deeper than this are refused. */
#define MAX_NESTING 16

typedef struct interp {
    sbi_loc loc;
    const char *whole; /* the scalar being expanded, for messages */
    sb_error *err;
} interp;

/* "<what> in '<scalar>'<hint>" at the scalar's location. */
static sb_status fail(const interp *I, const char *what, const char *hint)
{
    char where[512];
    sbi_loc_str(I->loc, where, sizeof where);
    size_t n = strlen(I->whole);
    return sb_error_set(I->err, SB_ERR_CONFIG, where, "%s in '%.80s%s'%s", what, I->whole,
                        n > 80 ? "..." : "", hint);
}

static int name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static sb_status expand(const interp *I, const char *s, size_t n, sbi_buf *out, int depth)
{
    if (depth > MAX_NESTING)
        return fail(I, "defaults nest too deeply", "; simplify the ${...:-...} chain");
    size_t i = 0;
    while (i < n) {
        if (s[i] != '$' || i + 1 >= n || (s[i + 1] != '$' && s[i + 1] != '{')) {
            size_t j = i + 1; /* copy a run of ordinary text */
            while (j < n && s[j] != '$')
                j++;
            if (sbi_buf_add(out, s + i, j - i) != 0)
                return sb_error_set(I->err, SB_ERR_NOMEM, NULL, "out of memory");
            i = j;
            continue;
        }
        if (s[i + 1] == '$') {
            if (sbi_buf_add(out, "$", 1) != 0)
                return sb_error_set(I->err, SB_ERR_NOMEM, NULL, "out of memory");
            i += 2;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        size_t j = i + 2;
        if (j < n && name_start(s[j]))
            while (j < n && name_char(s[j]))
                j++;
        char name[256];
        size_t nlen = j - (i + 2);
        if (j >= n)
            return fail(I, "unterminated '${'", "; close it with '}', or write $$ for a literal $");
        if (nlen == 0 || (s[j] != '}' && !(s[j] == ':' && j + 1 < n && s[j + 1] == '-')))
            return fail(I, "bad variable reference",
                        "; write ${NAME} or ${NAME:-default} (letters, digits, _), or $$ for "
                        "a literal $");
        if (nlen >= sizeof name)
            return fail(I, "variable name too long", "");
        memcpy(name, s + i + 2, nlen);
        name[nlen] = '\0';
        const char *val = getenv(name);
        if (s[j] == '}') {
            if (!val) {
                char what[300], hint[600];
                snprintf(what, sizeof what, "undefined variable ${%s}", name);
                snprintf(hint, sizeof hint, "; set %s in the environment or write ${%s:-default}",
                         name, name);
                return fail(I, what, hint);
            }
            i = j + 1;
        } else {
            /* find the '}' that closes this reference, skipping nested ${...} and $$ */
            size_t k = j + 2, open = 1;
            while (k < n) {
                if (s[k] == '$' && k + 1 < n && (s[k + 1] == '{' || s[k + 1] == '$')) {
                    open += s[k + 1] == '{';
                    k += 2;
                    continue;
                }
                if (s[k] == '}' && --open == 0)
                    break;
                k++;
            }
            if (k >= n) {
                char what[300];
                snprintf(what, sizeof what, "unterminated '${%s:-'", name);
                return fail(I, what, "; close it with '}', or write $$ for a literal $");
            }
            i = k + 1;
            if (!val || !*val) { /* as in the shell, :- also covers an empty variable */
                sb_status st = expand(I, s + j + 2, k - (j + 2), out, depth + 1);
                if (st != SB_OK)
                    return st;
                continue;
            }
        }
        size_t vlen = strlen(val);
        if (sbi_utf8_invalid_at((const unsigned char *)val, vlen) < vlen) {
            char what[300];
            snprintf(what, sizeof what, "the value of %s is not valid UTF-8", name);
            return fail(I, what, "; fix the variable's encoding");
        }
        if (sbi_buf_add(out, val, vlen) != 0)
            return sb_error_set(I->err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    return SB_OK;
}

sb_status sbi_interp_string(const char *in, sbi_loc loc, char **out, sb_error *err)
{
    *out = NULL;
    interp I = { loc, in ? in : "", err };
    sbi_buf b = { 0 };
    sb_status st = expand(&I, I.whole, strlen(I.whole), &b, 0);
    if (st == SB_OK && !b.s && sbi_buf_add(&b, "", 0) != 0)
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st != SB_OK) {
        sbi_buf_free(&b);
        return st;
    }
    *out = b.s;
    return SB_OK;
}

sb_status sbi_interp_tree(sbi_node *n, sb_error *err)
{
    if (!n)
        return SB_OK;
    if (n->kind == SBI_SCALAR) {
        if (!n->text || !strchr(n->text, '$'))
            return SB_OK;
        char *s;
        sb_status st = sbi_interp_string(n->text, n->loc, &s, err);
        if (st != SB_OK)
            return st;
        n->from_env |= strstr(n->text, "${") != NULL;
        free(n->text);
        n->text = s;
        return SB_OK;
    }
    for (size_t i = 0; i < n->n; i++) {
        sb_status st = sbi_interp_tree(n->items[i], err);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}
