/* core/lib/config/yaml_parse.c — step 1: YAML text to a node tree with file:line:col on every
 * node and key, through libyaml's event API. Anchors are copied at aliases; merge keys,
 * duplicate keys, tags other than !!str, several documents and non-UTF-8 text are errors
 * naming the location. Also sbi_config_parse_string (steps 1 and 3). */
#include "config_priv.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_SEQ "tag:yaml.org,2002:seq"
#define TAG_MAP "tag:yaml.org,2002:map"

typedef struct anchor {
    char *name;
    sbi_node *node; /* a private copy, cloned again at each alias */
    size_t count;   /* nodes in it, for the expansion budget */
} anchor;

typedef struct parser {
    yaml_parser_t yp;
    const char *text;
    size_t len;
    const char *name; /* interned */
    sb_error *err;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    size_t budget; /* nodes created by alias copies and anchor copies so far */
} parser;

static sbi_loc mark_loc(const parser *P, yaml_mark_t m)
{
    sbi_loc l = { P->name, (int)m.line + 1, (int)m.column + 1 };
    return l;
}

static sb_status fail_at(parser *P, sb_status code, sbi_loc loc, const char *fmt, ...)
    SB_PRINTF(4, 5);
static sb_status fail_at(parser *P, sb_status code, sbi_loc loc, const char *fmt, ...)
{
    char where[512], msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(P->err, code, sbi_loc_str(loc, where, sizeof where), "%s", msg);
}

/* Line and column (1-based, columns in characters) of byte `off` in the text. */
static sbi_loc offset_loc(const parser *P, size_t off)
{
    sbi_loc l = { P->name, 1, 1 };
    for (size_t i = 0; i < off && i < P->len; i++) {
        unsigned char c = (unsigned char)P->text[i];
        if (c == '\n') {
            l.line++;
            l.col = 1;
        } else if ((c & 0xC0) != 0x80) {
            l.col++;
        }
    }
    return l;
}

/* Offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code points
 * past U+10FFFF included), or len if the text is valid. */
size_t sbi_utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

/* Does line `line` (1-based) have a tab in its indentation or at column `col`? */
static int tab_near(const parser *P, int line, int col)
{
    size_t i = 0;
    for (int l = 1; l < line && i < P->len; i++)
        if (P->text[i] == '\n')
            l++;
    int indent = 1, c = 1;
    for (; i < P->len && P->text[i] != '\n'; i++, c++) {
        char ch = P->text[i];
        if (ch == '\t' && (indent || c == col))
            return 1;
        if (ch != ' ' && ch != '\t')
            indent = 0;
    }
    return 0;
}

/* Turn libyaml's error state into an sb_error: its problem text, where it happened and,
 * for the common case of tab indentation, what to do. */
static sb_status syntax_error(parser *P)
{
    yaml_parser_t *y = &P->yp;
    if (y->error == YAML_MEMORY_ERROR)
        return sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
    sbi_loc loc;
    if (y->error == YAML_READER_ERROR)
        loc = offset_loc(P, y->problem_offset);
    else
        loc = mark_loc(P, y->problem_mark);
    char ctx[600] = "";
    if (y->context) {
        char at[512];
        sbi_loc c = mark_loc(P, y->context_mark);
        snprintf(ctx, sizeof ctx, " (%s at %s)", y->context, sbi_loc_str(c, at, sizeof at));
    }
    const char *hint = tab_near(P, loc.line, loc.col)
                           ? "; tabs cannot indent YAML, use spaces"
                           : "; check the indentation and quoting around here";
    char where[512];
    sbi_loc_str(loc, where, sizeof where);
    return sb_error_set(P->err, SB_ERR_CONFIG, where, "YAML syntax error: %s%s%s",
                        y->problem ? y->problem : "unknown problem", ctx, hint);
}

static int next_event(parser *P, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&P->yp, ev)) {
        syntax_error(P);
        return -1;
    }
    return 0;
}

static const anchor *find_anchor(const parser *P, const char *name)
{
    for (size_t i = P->n_anchors; i-- > 0;) /* the latest definition wins */
        if (strcmp(P->anchors[i].name, name) == 0)
            return &P->anchors[i];
    return NULL;
}

static int add_anchor(parser *P, const char *name, const sbi_node *n, sbi_loc loc)
{
    size_t count = sbi_node_count(n);
    P->budget += count;
    if (P->budget > SBI_CONFIG_MAX_NODES) {
        fail_at(P, SB_ERR_CONFIG, loc,
                "anchors and aliases expand to more than %d nodes; write the repeated parts "
                "out or use include",
                SBI_CONFIG_MAX_NODES);
        return -1;
    }
    if (P->n_anchors == P->cap_anchors) {
        size_t cap = P->cap_anchors ? 2 * P->cap_anchors : 8;
        anchor *a = realloc(P->anchors, cap * sizeof *a);
        if (!a)
            goto nomem;
        P->anchors = a;
        P->cap_anchors = cap;
    }
    anchor *a = &P->anchors[P->n_anchors];
    a->name = strdup(name);
    a->node = sbi_node_clone(n);
    a->count = count;
    if (!a->name || !a->node) {
        free(a->name);
        sbi_node_free(&a->node);
        goto nomem;
    }
    P->n_anchors++;
    return 0;
nomem:
    sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
    return -1;
}

/* A scalar's text must not hold NUL ("\0" in a double-quoted string): C strings would
 * silently cut it. */
static int check_nul(parser *P, const yaml_event_t *ev)
{
    if (memchr(ev->data.scalar.value, 0, ev->data.scalar.length)) {
        fail_at(P, SB_ERR_CONFIG, mark_loc(P, ev->start_mark),
                "a NUL character (\\0) in a string is not supported");
        return -1;
    }
    return 0;
}

static int is_null_text(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static sbi_node *parse_node(parser *P, yaml_event_t *ev, int depth);

static sbi_node *parse_scalar(parser *P, yaml_event_t *ev)
{
    sbi_loc loc = mark_loc(P, ev->start_mark);
    const char *tag = (const char *)ev->data.scalar.tag;
    int quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
                 ev->data.scalar.style != YAML_ANY_SCALAR_STYLE;
    if (tag) {
        if (strcmp(tag, TAG_STR) == 0 || strcmp(tag, "!") == 0) {
            quoted = 1; /* explicitly a string: typed as one later */
        } else {
            fail_at(P, SB_ERR_CONFIG, loc,
                    "the tag '%s' is not supported (only !!str); remove it and quote the value "
                    "if it must stay a string",
                    tag);
            return NULL;
        }
    }
    if (check_nul(P, ev) != 0)
        return NULL;
    const char *text = (const char *)ev->data.scalar.value;
    sbi_node *n;
    if (!quoted && is_null_text(text, ev->data.scalar.length)) {
        n = sbi_node_new_seq(loc); /* any empty node; made NULL below */
        if (n)
            n->kind = SBI_NULL;
    } else {
        n = sbi_node_new_scalar(text, quoted, loc);
    }
    if (!n)
        sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
    return n;
}

static int check_collection_tag(parser *P, const yaml_char_t *tag, const char *want, sbi_loc loc)
{
    if (tag && strcmp((const char *)tag, want) != 0) {
        fail_at(P, SB_ERR_CONFIG, loc, "the tag '%s' is not supported here; remove it",
                (const char *)tag);
        return -1;
    }
    return 0;
}

static sbi_node *parse_seq(parser *P, yaml_event_t *start, int depth)
{
    sbi_loc loc = mark_loc(P, start->start_mark);
    if (check_collection_tag(P, start->data.sequence_start.tag, TAG_SEQ, loc) != 0)
        return NULL;
    sbi_node *seq = sbi_node_new_seq(loc);
    if (!seq) {
        sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
        return NULL;
    }
    for (;;) {
        yaml_event_t ev;
        if (next_event(P, &ev) != 0)
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return seq;
        }
        sbi_node *item = parse_node(P, &ev, depth + 1);
        if (!item)
            goto fail;
        size_t before = seq->n;
        sbi_seq_push(seq, item);
        if (seq->n == before) {
            sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
            goto fail;
        }
    }
fail:
    sbi_node_free(&seq);
    return NULL;
}

static sbi_node *parse_map(parser *P, yaml_event_t *start, int depth)
{
    sbi_loc loc = mark_loc(P, start->start_mark);
    if (check_collection_tag(P, start->data.mapping_start.tag, TAG_MAP, loc) != 0)
        return NULL;
    sbi_node *map = sbi_node_new_map(loc);
    if (!map) {
        sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
        return NULL;
    }
    char where[512], first[512];
    for (;;) {
        yaml_event_t kev;
        if (next_event(P, &kev) != 0)
            goto fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return map;
        }
        sbi_loc kloc = mark_loc(P, kev.start_mark);
        if (kev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&kev);
            fail_at(P, SB_ERR_CONFIG, kloc, "a mapping key must be plain text, not %s",
                    kev.type == YAML_ALIAS_EVENT ? "an alias" : "a list or mapping");
            goto fail;
        }
        const char *key = (const char *)kev.data.scalar.value;
        int plain = kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (check_nul(P, &kev) != 0) {
            yaml_event_delete(&kev);
            goto fail;
        }
        if (plain && strcmp(key, "<<") == 0) {
            yaml_event_delete(&kev);
            fail_at(P, SB_ERR_CONFIG, kloc,
                    "merge keys (<<) are not supported; write the keys out, or move the shared "
                    "part to a file and use include");
            goto fail;
        }
        if (plain && kev.data.scalar.length == 0) {
            yaml_event_delete(&kev);
            fail_at(P, SB_ERR_CONFIG, kloc, "a mapping key is empty; write 'key: value'");
            goto fail;
        }
        long dup = sbi_map_find(map, key);
        if (dup >= 0) {
            sbi_loc_str(kloc, where, sizeof where);
            sbi_loc_str(map->key_locs[dup], first, sizeof first);
            sb_error_set(P->err, SB_ERR_CONFIG, where,
                         "duplicate key '%s' (first written at %s); keep one of them", key, first);
            yaml_event_delete(&kev);
            goto fail;
        }
        char *k = strdup(key);
        yaml_event_delete(&kev);
        if (!k) {
            sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
            goto fail;
        }
        yaml_event_t vev;
        if (next_event(P, &vev) != 0) {
            free(k);
            goto fail;
        }
        sbi_node *value = parse_node(P, &vev, depth + 1);
        if (!value) {
            free(k);
            goto fail;
        }
        size_t before = map->n;
        sbi_map_set(map, k, kloc, value);
        free(k);
        if (map->n == before) {
            sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
            goto fail;
        }
    }
fail:
    sbi_node_free(&map);
    return NULL;
}

/* Build the node that starts with event `ev` (consumed), reading further events for
 * collections. NULL with P->err set on failure. */
static sbi_node *parse_node(parser *P, yaml_event_t *ev, int depth)
{
    sbi_loc loc = mark_loc(P, ev->start_mark);
    sbi_node *n = NULL;
    const yaml_char_t *anchor_name = NULL;
    if (depth > SBI_CONFIG_MAX_DEPTH) {
        yaml_event_delete(ev);
        fail_at(P, SB_ERR_CONFIG, loc,
                "lists and mappings nest deeper than %d levels; flatten "
                "the config",
                SBI_CONFIG_MAX_DEPTH);
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const anchor *a = find_anchor(P, name);
        if (!a) {
            fail_at(P, SB_ERR_CONFIG, loc,
                    "alias *%s names no anchor defined before it; define &%s on a complete "
                    "value first",
                    name, name);
            break;
        }
        P->budget += a->count;
        if (P->budget > SBI_CONFIG_MAX_NODES) {
            fail_at(P, SB_ERR_CONFIG, loc,
                    "anchors and aliases expand to more than %d nodes; write the repeated parts "
                    "out or use include",
                    SBI_CONFIG_MAX_NODES);
            break;
        }
        n = sbi_node_clone(a->node);
        if (!n) {
            sb_error_set(P->err, SB_ERR_NOMEM, P->name, "out of memory parsing YAML");
            break;
        }
        /* the copy answers to where the alias is written */
        n->loc = loc;
        break;
    }
    case YAML_SCALAR_EVENT:
        anchor_name = ev->data.scalar.anchor;
        n = parse_scalar(P, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor_name = ev->data.sequence_start.anchor;
        n = parse_seq(P, ev, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        anchor_name = ev->data.mapping_start.anchor;
        n = parse_map(P, ev, depth);
        break;
    default: fail_at(P, SB_ERR_CONFIG, loc, "unexpected YAML event"); break;
    }
    if (n && anchor_name && add_anchor(P, (const char *)anchor_name, n, loc) != 0)
        sbi_node_free(&n);
    yaml_event_delete(ev);
    return n;
}

sbi_node *sbi_yaml_parse(const char *text, size_t len, const char *name, sb_error *err)
{
    parser P;
    memset(&P, 0, sizeof P);
    P.text = text ? text : "";
    P.len = text ? len : 0;
    P.name = name ? name : sbi_intern("<string>");
    P.err = err;

    size_t bad = sbi_utf8_invalid_at((const unsigned char *)P.text, P.len);
    if (bad < P.len) {
        char where[512];
        sbi_loc_str(offset_loc(&P, bad), where, sizeof where);
        sb_error_set(err, SB_ERR_CONFIG, where,
                     "not valid UTF-8 (byte 0x%02X); save the file as UTF-8",
                     (unsigned char)P.text[bad]);
        return NULL;
    }
    if (!yaml_parser_initialize(&P.yp)) {
        sb_error_set(err, SB_ERR_NOMEM, P.name, "out of memory parsing YAML");
        return NULL;
    }
    yaml_parser_set_input_string(&P.yp, (const unsigned char *)P.text, P.len);
    yaml_parser_set_encoding(&P.yp, YAML_UTF8_ENCODING);

    sbi_node *root = NULL;
    yaml_event_t ev;
    if (next_event(&P, &ev) != 0) /* STREAM-START */
        goto done;
    yaml_event_delete(&ev);
    if (next_event(&P, &ev) != 0)
        goto done;
    if (ev.type == YAML_STREAM_END_EVENT) { /* nothing but comments and blank lines */
        yaml_event_delete(&ev);
        sbi_loc loc = { P.name, 1, 1 };
        root = sbi_node_new_seq(loc);
        if (root)
            root->kind = SBI_NULL;
        else
            sb_error_set(err, SB_ERR_NOMEM, P.name, "out of memory parsing YAML");
        goto done;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if (next_event(&P, &ev) != 0)
        goto done;
    root = parse_node(&P, &ev, 0);
    if (!root)
        goto done;
    if (next_event(&P, &ev) != 0) /* DOCUMENT-END */
        goto fail;
    yaml_event_delete(&ev);
    if (next_event(&P, &ev) != 0)
        goto fail;
    if (ev.type != YAML_STREAM_END_EVENT) {
        fail_at(&P, SB_ERR_CONFIG, mark_loc(&P, ev.start_mark),
                "a second YAML document starts here ('---'); a config holds one document: split "
                "it into files and use include");
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
    goto done;
fail:
    sbi_node_free(&root);
done:
    for (size_t i = 0; i < P.n_anchors; i++) {
        free(P.anchors[i].name);
        sbi_node_free(&P.anchors[i].node);
    }
    free(P.anchors);
    yaml_parser_delete(&P.yp);
    return root;
}

sbi_node *sbi_config_parse_string(const char *text, size_t len, const char *name, sb_error *err)
{
    const char *label = sbi_intern(name ? name : "<string>");
    if (!label) {
        sb_error_set(err, SB_ERR_NOMEM, name, "out of memory");
        return NULL;
    }
    sbi_node *root = sbi_yaml_parse(text, len, label, err);
    if (!root)
        return NULL;
    long inc = sbi_map_find(root, "include");
    if (inc >= 0) {
        char where[512];
        sbi_loc_str(root->key_locs[inc], where, sizeof where);
        sb_error_set(err, SB_ERR_CONFIG, where,
                     "include: needs a config file; it cannot be used in YAML text given "
                     "directly");
        sbi_node_free(&root);
        return NULL;
    }
    if (sbi_interp_tree(root, err) != SB_OK)
        sbi_node_free(&root);
    return root;
}
