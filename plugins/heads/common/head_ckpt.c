/* plugins/heads/common/head_ckpt.c — see head_ckpt.h. */
#include "head_ckpt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- head_config: a flat JSON object of numbers, booleans, strings and arrays of them ---- */

#define CFG_MAX_KEYS 32
#define CFG_KEY 64
#define CFG_VAL 256

typedef struct cfg_kv {
    char key[CFG_KEY];
    char val[CFG_VAL]; /* the value's JSON text without whitespace */
} cfg_kv;

typedef struct cfg {
    cfg_kv kv[CFG_MAX_KEYS];
    int n;
} cfg;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Copies a JSON string starting at p (the opening quote) into out (escapes kept verbatim,
 * quotes included when `quoted`); returns the position after it, or NULL. */
static const char *scan_string(const char *p, char *out, size_t cap, size_t *len, int quoted)
{
    if (*p != '"')
        return NULL;
    if (quoted && *len + 1 < cap)
        out[(*len)++] = '"';
    p++;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) {
            if (*len + 2 < cap) {
                out[(*len)++] = p[0];
                out[(*len)++] = p[1];
            }
            p += 2;
            continue;
        }
        if (*len + 1 < cap)
            out[(*len)++] = *p;
        p++;
    }
    if (*p != '"')
        return NULL;
    if (quoted && *len + 1 < cap)
        out[(*len)++] = '"';
    out[*len] = '\0';
    return p + 1;
}

/* A scalar (number, true, false, null or string) into out; returns the position after it. */
static const char *scan_scalar(const char *p, char *out, size_t cap, size_t *len)
{
    if (*p == '"')
        return scan_string(p, out, cap, len, 1);
    const char *s = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.'))
        p++;
    if (p == s)
        return NULL;
    for (const char *q = s; q < p; q++)
        if (*len + 1 < cap)
            out[(*len)++] = *q;
    out[*len] = '\0';
    return p;
}

static sb_status cfg_parse(const char *who, const char *json, cfg *c, sb_error *err)
{
    c->n = 0;
    const char *p = json ? skip_ws(json) : NULL;
    if (!p || *p != '{')
        goto bad;
    p = skip_ws(p + 1);
    if (*p == '}')
        return SB_OK;
    for (;;) {
        if (c->n == CFG_MAX_KEYS)
            goto bad;
        cfg_kv *kv = &c->kv[c->n++];
        size_t len = 0;
        if (!(p = scan_string(p, kv->key, sizeof kv->key, &len, 0)))
            goto bad;
        p = skip_ws(p);
        if (*p != ':')
            goto bad;
        p = skip_ws(p + 1);
        len = 0;
        kv->val[0] = '\0';
        if (*p == '[') {
            kv->val[len++] = '[';
            p = skip_ws(p + 1);
            while (*p != ']') {
                if (!(p = scan_scalar(p, kv->val, sizeof kv->val, &len)))
                    goto bad;
                p = skip_ws(p);
                if (*p == ',') {
                    if (len + 1 < sizeof kv->val)
                        kv->val[len++] = ',';
                    p = skip_ws(p + 1);
                } else if (*p != ']') {
                    goto bad;
                }
            }
            if (len + 1 < sizeof kv->val)
                kv->val[len++] = ']';
            kv->val[len] = '\0';
            p++;
        } else if (!(p = scan_scalar(p, kv->val, sizeof kv->val, &len))) {
            goto bad;
        }
        p = skip_ws(p);
        if (*p == '}')
            return *skip_ws(p + 1)
                       ? sb_error_set(err, SB_ERR_FORMAT, who,
                                      "head_config: text after the object: %.40s", skip_ws(p + 1))
                       : SB_OK;
        if (*p != ',')
            goto bad;
        p = skip_ws(p + 1);
    }
bad:
    return sb_error_set(err, SB_ERR_FORMAT, who,
                        "the checkpoint's head_config is not a flat JSON object: %.80s",
                        json ? json : "(missing)");
}

sb_status hd_config_diff(const char *who, const char *saved, const char *want, const char *skip,
                         sb_error *err)
{
    if (!saved)
        return sb_error_set(err, SB_ERR_FORMAT, who,
                            "the checkpoint has no head_config metadata; it was not saved by "
                            "this head");
    cfg *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory");
    }
    sb_status st = cfg_parse(who, saved, a, err);
    if (st == SB_OK)
        st = cfg_parse(who, want, b, err);
    for (int i = 0; st == SB_OK && i < b->n; i++) {
        if (skip && strcmp(b->kv[i].key, skip) == 0)
            continue;
        const char *got = NULL;
        for (int j = 0; j < a->n && !got; j++)
            if (strcmp(a->kv[j].key, b->kv[i].key) == 0)
                got = a->kv[j].val;
        if (!got || strcmp(got, b->kv[i].val) != 0)
            st = sb_error_set(err, SB_ERR_CONFIG, who,
                              "the checkpoint does not fit this head: head_config %s is %s in "
                              "the checkpoint but %s here",
                              b->kv[i].key, got ? got : "missing", b->kv[i].val);
    }
    free(a);
    free(b);
    return st;
}

sb_status hd_config_int(const char *who, const char *json, const char *key, long *out,
                        sb_error *err)
{
    cfg *c = malloc(sizeof *c);
    if (!c)
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory");
    sb_status st = cfg_parse(who, json, c, err);
    int found = 0;
    for (int i = 0; st == SB_OK && i < c->n && !found; i++) {
        if (strcmp(c->kv[i].key, key) != 0)
            continue;
        char *end = NULL;
        long v = strtol(c->kv[i].val, &end, 10);
        if (end == c->kv[i].val || *end)
            st = sb_error_set(err, SB_ERR_FORMAT, who, "head_config %s is %s, not an integer", key,
                              c->kv[i].val);
        *out = v;
        found = 1;
    }
    if (st == SB_OK && !found)
        st = sb_error_set(err, SB_ERR_FORMAT, who, "the checkpoint's head_config has no %s", key);
    free(c);
    return st;
}

sb_status hd_st_read(const char *who, const sb_st_file *f, const char *name, int ndim,
                     const int64_t *shape, float *out, sb_error *err)
{
    char want[96] = "", got[96] = "";
    size_t u = 0;
    for (int i = 0; i < ndim && u + 24 < sizeof want; i++)
        u += (size_t)snprintf(want + u, sizeof want - u, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
    const sb_st_tensor *t = sb_st_find(f, name);
    if (!t)
        return sb_error_set(err, SB_ERR_FORMAT, who,
                            "the checkpoint has no tensor %s (expected shape [%s])", name, want);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        u = 0;
        for (int i = 0; i < t->ndim && u + 24 < sizeof got; i++)
            u += (size_t)snprintf(got + u, sizeof got - u, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        return sb_error_set(err, SB_ERR_FORMAT, who,
                            "checkpoint tensor %s has shape [%s], expected [%s]", name, got, want);
    }
    sb_status st = sb_st_to_f32(t, out, err);
    if (st != SB_OK)
        return st;
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(out[i]))
            return sb_error_set(err, SB_ERR_FORMAT, who,
                                "checkpoint tensor %s has a non-finite value at %lld", name,
                                (long long)i);
    return SB_OK;
}

/* ---- the probe heads' (linear, mlp) common checkpoint parts ------------------------------ */

void hd_probe_config(char *buf, size_t cap, int L, int D, int n_classes, const int *hidden,
                     int n_hidden)
{
    int u = snprintf(buf, cap, "{\"n_layers\":%d,\"dim\":%d,\"n_classes\":%d", L, D, n_classes);
    if (hidden && u > 0 && (size_t)u < cap)
        u += snprintf(buf + u, cap - (size_t)u, ",\"hidden\":[");
    for (int i = 0; hidden && i < n_hidden && u > 0 && (size_t)u < cap; i++)
        u += snprintf(buf + u, cap - (size_t)u, "%s%d", i ? "," : "", hidden[i]);
    if (u > 0 && (size_t)u < cap)
        snprintf(buf + u, cap - (size_t)u, hidden ? "]}" : "}");
}

sb_status hd_probe_load_check(const char *who, const char *head, const sb_st_file *f,
                              const sb_head_init *init, const char *want, int *fresh, sb_error *err)
{
    const char *parts = init && init->parts ? init->parts : "all";
    if (strcmp(parts, "all") != 0)
        return sb_error_set(err, SB_ERR_CONFIG, who,
                            "cannot take part '%s' of a checkpoint: the %s head knows only "
                            "\"all\"",
                            parts, head);
    *fresh = init && init->new_output;
    return hd_config_diff(who, sb_st_metadata(f, "head_config"), want, *fresh ? "n_classes" : NULL,
                          err);
}

sb_status hd_probe_save_stats(sb_st_writer *w, int L, int D, const float *a, const float *mu,
                              const float *inv_sd, sb_error *err)
{
    const int64_t s_l[1] = { L }, s_ld[2] = { L, D };
    sb_status st;
    if ((st = sb_st_writer_add(w, "layer_logits", SB_DT_F32, 1, s_l, a, err)) != SB_OK ||
        (st = sb_st_writer_add(w, "mu", SB_DT_F32, 2, s_ld, mu, err)) != SB_OK)
        return st;
    return sb_st_writer_add(w, "inv_sd", SB_DT_F32, 2, s_ld, inv_sd, err);
}

sb_status hd_stage_read_stats(const char *who, const sb_st_file *f, int L, int D, size_t n_params,
                              hd_stage *s, sb_error *err)
{
    const size_t LD = (size_t)L * (size_t)D;
    *s = (hd_stage){ .n_params = n_params, .LD = LD };
    s->params = malloc((n_params + 2 * LD) * sizeof(float));
    if (!s->params)
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory");
    s->mu = s->params + n_params;
    s->inv_sd = s->mu + LD;
    const int64_t s_l[1] = { L }, s_ld[2] = { L, D };
    sb_status st;
    if ((st = hd_st_read(who, f, "layer_logits", 1, s_l, s->params, err)) != SB_OK ||
        (st = hd_st_read(who, f, "mu", 2, s_ld, s->mu, err)) != SB_OK ||
        (st = hd_st_read(who, f, "inv_sd", 2, s_ld, s->inv_sd, err)) != SB_OK)
        hd_stage_free(s);
    return st;
}

void hd_stage_commit(hd_stage *s, size_t keep, float *params, float *mu, float *inv_sd)
{
    memcpy(params, s->params, keep * sizeof(float));
    memcpy(mu, s->mu, s->LD * sizeof(float));
    memcpy(inv_sd, s->inv_sd, s->LD * sizeof(float));
    hd_stage_free(s);
}

void hd_stage_free(hd_stage *s)
{
    free(s->params);
    *s = (hd_stage){ 0 };
}
