/* core/lib/run/loader.c — plugin discovery and the ordered load-time checks (loader.h). */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "util.h"

struct sbi_registry {
    char **dirs;
    char **origins;
    size_t n_dirs;
    sbi_plugin **loaded;
    size_t n_loaded;
};

static sb_status fail(sbi_plugin *p, sb_error *err, sb_status code, const char *fmt, ...)
    SB_PRINTF(4, 5);

static sb_status fail(sbi_plugin *p, sb_error *err, sb_status code, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_status st = sb_error_set(err, code, p->path, "%s", msg);
    sbi_plugin_close(&p);
    return st;
}

static int name_ok(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Size of the smallest vtable of each kind this host accepts, and its required calls. */
static const char *vtable_problem(const sb_plugin *d)
{
    switch (d->kind) {
    case SB_KIND_DATASET: {
        const sb_dataset_vtable *v = d->vtable;
        if (v->struct_size < sizeof *v)
            return "dataset vtable is smaller than ABI 1.0's";
        return v->load ? NULL : "dataset vtable has no load";
    }
    case SB_KIND_LABELLER: {
        const sb_labeller_vtable *v = d->vtable;
        /* ABI 1.0's vtable ends at destroy; `plan` (1.1) is read only when present. */
        if (v->struct_size < offsetof(sb_labeller_vtable, destroy) + sizeof v->destroy)
            return "labeller vtable is smaller than ABI 1.0's";
        return v->create && v->label && v->destroy ? NULL
                                                   : "labeller vtable lacks create/label/destroy";
    }
    case SB_KIND_ENCODER: {
        const sb_encoder_vtable *v = d->vtable;
        /* ABI 1.0's vtable ends at destroy; `frames` (1.1) is read only when present. */
        if (v->struct_size < offsetof(sb_encoder_vtable, destroy) + sizeof v->destroy)
            return "encoder vtable is smaller than ABI 1.0's";
        /* A text encoder (ABI 1.2) has encode_text instead of encode; which one it needs is
         * known only from info, so the feature stage checks that. */
        int has_text =
            v->struct_size >= offsetof(sb_encoder_vtable, encode_text) + sizeof v->encode_text &&
            v->encode_text;
        return v->create && v->info && (v->encode || has_text) && v->destroy
                   ? NULL
                   : "encoder vtable lacks create/info/encode/destroy";
    }
    case SB_KIND_HEAD: {
        const sb_head_vtable *v = d->vtable;
        /* ABI 1.0's vtable ends at destroy; save/load (1.2) are read only when present. */
        if (v->struct_size < offsetof(sb_head_vtable, destroy) + sizeof v->destroy)
            return "head vtable is smaller than ABI 1.0's";
        return v->create && v->train && v->predict && v->destroy
                   ? NULL
                   : "head vtable lacks create/train/predict/destroy";
    }
    }
    return "unknown kind";
}

sb_status sbi_plugin_open(const char *path, const char *origin, sbi_plugin **out, sb_error *err)
{
    *out = NULL;
    sbi_plugin *p = calloc(1, sizeof *p);
    if (!p)
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    p->path = realpath(path, NULL);
    p->origin = sbi_strdup(origin ? origin : "explicit");
    if (!p->path) {
        p->path = sbi_strdup(path);
        return fail(p, err, SB_ERR_PLUGIN, "plugin file does not exist");
    }
    if (!sbi_is_file(p->path))
        return fail(p, err, SB_ERR_PLUGIN, "not a regular file");
    sb_hash_file(p->path, p->file_hash, NULL);

    dlerror();
    p->handle = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *e = dlerror();
        return fail(p, err, SB_ERR_PLUGIN, "cannot load shared library [%s]: %s", p->path,
                    e ? e : "unknown dlopen error");
    }
    typedef const sb_plugin *(*entry_fn)(void);
    entry_fn entry = (entry_fn)(uintptr_t)dlsym(p->handle, SB_PLUGIN_ENTRY_NAME);
    if (!entry) {
        for (int major = 0; major <= 16; major++) {
            char sym[64];
            snprintf(sym, sizeof sym, "serbench_plugin_v%d", major);
            if (major != SB_ABI_MAJOR && dlsym(p->handle, sym))
                return fail(p, err, SB_ERR_PLUGIN,
                            "plugin was built for serbench plugin ABI major %d, but this serbench "
                            "(%s) has ABI major %d; rebuild the plugin against this SDK",
                            major, sb_version(), SB_ABI_MAJOR);
        }
        return fail(p, err, SB_ERR_PLUGIN,
                    "no entry point [%s] in shared library [%s]; is it a serbench plugin?",
                    SB_PLUGIN_ENTRY_NAME, p->path);
    }
    const sb_plugin *d = entry();
    if (!d)
        return fail(p, err, SB_ERR_PLUGIN, "entry point [%s] returned no descriptor",
                    SB_PLUGIN_ENTRY_NAME);
    if (d->abi_minor > SB_ABI_MINOR)
        return fail(p, err, SB_ERR_PLUGIN,
                    "plugin needs serbench plugin ABI %d.%u, newer than this serbench's %d.%d; "
                    "upgrade serbench",
                    SB_ABI_MAJOR, d->abi_minor, SB_ABI_MAJOR, SB_ABI_MINOR);
    if (d->struct_size < sizeof(sb_plugin))
        return fail(p, err, SB_ERR_PLUGIN,
                    "descriptor struct_size %u is smaller than ABI 1.0's %zu; set "
                    ".struct_size = sizeof(sb_plugin)",
                    d->struct_size, sizeof(sb_plugin));
    if (!name_ok(d->name))
        return fail(p, err, SB_ERR_PLUGIN,
                    "descriptor name '%s' is not of the form [a-z][a-z0-9_]*",
                    d->name ? d->name : "(null)");
    if (!d->version || !*d->version || !d->summary || !*d->summary)
        return fail(p, err, SB_ERR_PLUGIN, "plugin %s has no version or summary", d->name);
    const char *base = strrchr(p->path, '/');
    base = base ? base + 1 : p->path;
    size_t nl = strlen(d->name);
    if (strncmp(base, d->name, nl) != 0 || strcmp(base + nl, ".so") != 0)
        return fail(p, err, SB_ERR_PLUGIN,
                    "file declares plugin name '%s'; a plugin file must be named NAME.so (%s.so)",
                    d->name, d->name);
    if (d->kind < SB_KIND_DATASET || d->kind > SB_KIND_HEAD)
        return fail(p, err, SB_ERR_PLUGIN, "plugin %s has unknown kind %d", d->name, (int)d->kind);
    if (!d->vtable)
        return fail(p, err, SB_ERR_PLUGIN, "plugin %s has no vtable", d->name);
    const char *vp = vtable_problem(d);
    if (vp)
        return fail(p, err, SB_ERR_PLUGIN, "plugin %s: %s", d->name, vp);
    sb_error e = { 0 };
    if (sbi_opts_check_table(d->options, d->name, &e) != SB_OK)
        return fail(p, err, SB_ERR_PLUGIN, "option table: %s", e.msg);
    p->desc = d;
    *out = p;
    return SB_OK;
}

void sbi_plugin_close(sbi_plugin **pp)
{
    if (!pp || !*pp)
        return;
    sbi_plugin *p = *pp;
    if (p->handle)
        dlclose(p->handle);
    free(p->path);
    free(p->origin);
    free(p);
    *pp = NULL;
}

static int add_dir(sbi_registry *r, const char *dir, const char *origin)
{
    if (!dir || !*dir)
        return 0;
    char **d = realloc(r->dirs, (r->n_dirs + 1) * sizeof *d);
    if (!d)
        return -1;
    r->dirs = d;
    char **o = realloc(r->origins, (r->n_dirs + 1) * sizeof *o);
    if (!o)
        return -1;
    r->origins = o;
    r->dirs[r->n_dirs] = strdup(dir);
    r->origins[r->n_dirs] = strdup(origin);
    if (!r->dirs[r->n_dirs] || !r->origins[r->n_dirs])
        return -1;
    r->n_dirs++;
    return 0;
}

static int add_list(sbi_registry *r, const char *list, const char *origin)
{
    char *copy = sbi_strdup(list);
    if (list && !copy)
        return -1;
    int rc = 0;
    for (char *save = NULL, *t = copy ? strtok_r(copy, ":", &save) : NULL; t && !rc;
         t = strtok_r(NULL, ":", &save))
        rc = add_dir(r, t, origin);
    free(copy);
    return rc;
}

sb_status sbi_registry_create(const char *builtin, const char *const *config_dirs,
                              size_t n_config_dirs, sbi_registry **out, sb_error *err)
{
    sbi_registry *r = calloc(1, sizeof *r);
    if (!r)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    int rc = add_list(r, builtin, "built-in");
    if (!rc)
        rc = add_list(r, getenv("SERBENCH_PLUGIN_PATH"), "SERBENCH_PLUGIN_PATH");
    for (size_t i = 0; !rc && i < n_config_dirs; i++)
        rc = add_dir(r, config_dirs[i], "plugin_path");
    if (rc) {
        sbi_registry_destroy(&r);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    *out = r;
    return SB_OK;
}

void sbi_registry_destroy(sbi_registry **rp)
{
    if (!rp || !*rp)
        return;
    sbi_registry *r = *rp;
    for (size_t i = 0; i < r->n_loaded; i++)
        sbi_plugin_close(&r->loaded[i]);
    for (size_t i = 0; i < r->n_dirs; i++) {
        free(r->dirs[i]);
        free(r->origins[i]);
    }
    free(r->loaded);
    free(r->dirs);
    free(r->origins);
    free(r);
    *rp = NULL;
}

size_t sbi_registry_n_dirs(const sbi_registry *r)
{
    return r->n_dirs;
}

const char *sbi_registry_dir(const sbi_registry *r, size_t i, const char **origin)
{
    if (i >= r->n_dirs)
        return NULL;
    if (origin)
        *origin = r->origins[i];
    return r->dirs[i];
}

static const sbi_plugin *already(const sbi_registry *r, const char *path)
{
    char *real = realpath(path, NULL);
    const sbi_plugin *hit = NULL;
    for (size_t i = 0; real && i < r->n_loaded && !hit; i++)
        if (strcmp(r->loaded[i]->path, real) == 0)
            hit = r->loaded[i];
    free(real);
    return hit;
}

static sb_status keep(sbi_registry *r, sbi_plugin *p, sb_error *err)
{
    sbi_plugin **l = realloc(r->loaded, (r->n_loaded + 1) * sizeof *l);
    if (!l) {
        sbi_plugin_close(&p);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    r->loaded = l;
    r->loaded[r->n_loaded++] = p;
    return SB_OK;
}

sb_status sbi_registry_get(sbi_registry *r, const char *name, sb_kind want, const sbi_plugin **out,
                           sb_error *err)
{
    *out = NULL;
    for (size_t i = 0; i < r->n_dirs; i++) {
        char *path = sbi_asprintf("%s/%s.so", r->dirs[i], name);
        if (!path)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        if (!sbi_is_file(path)) {
            free(path);
            continue;
        }
        const sbi_plugin *p = already(r, path);
        sb_status st = SB_OK;
        if (!p) {
            sbi_plugin *np = NULL;
            st = sbi_plugin_open(path, r->origins[i], &np, err);
            if (st == SB_OK && (st = keep(r, np, err)) == SB_OK)
                p = np;
        }
        free(path);
        if (st != SB_OK)
            return st;
        if (want && p->desc->kind != want)
            return sb_error_set(
                err, SB_ERR_CONFIG, p->path, "plugin %s is a%s %s plugin, not a%s %s", name,
                p->desc->kind == SB_KIND_ENCODER ? "n" : "", sb_kind_name(p->desc->kind),
                want == SB_KIND_ENCODER ? "n" : "", sb_kind_name(want));
        *out = p;
        return SB_OK;
    }
    /* Not found: name the directories searched and suggest an installed name. */
    sbi_buf dirs = { 0 };
    for (size_t i = 0; i < r->n_dirs; i++)
        sbi_buf_printf(&dirs, "%s%s (%s)", i ? ", " : "", r->dirs[i], r->origins[i]);
    const sbi_plugin **all = NULL;
    size_t n = 0;
    void *broken = NULL;
    const char *cands[128];
    size_t nc = 0;
    if (sbi_registry_list(r, &all, &n, &broken, NULL) == SB_OK)
        for (size_t i = 0; i < n && nc < 127; i++)
            if (!want || all[i]->desc->kind == want)
                cands[nc++] = all[i]->desc->name;
    cands[nc] = NULL;
    json_decref(broken);
    const char *best = sbi_did_you_mean(name, cands);
    char hint[200] = "";
    if (best)
        snprintf(hint, sizeof hint, " Did you mean '%s'?", best);
    sb_status st = sb_error_set(err, SB_ERR_PLUGIN, name,
                                "no %s%splugin '%s' (%s.so) in %s.%s Add its folder to "
                                "SERBENCH_PLUGIN_PATH or the config's plugin_path.",
                                want ? sb_kind_name(want) : "", want ? " " : "", name, name,
                                dirs.s ? dirs.s : "(no plugin folders)", hint);
    sbi_buf_free(&dirs);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

sb_status sbi_registry_list(sbi_registry *r, const sbi_plugin ***list, size_t *n, void **broken,
                            sb_error *err)
{
    json_t *bad = json_array();
    for (size_t i = 0; i < r->n_dirs; i++) {
        DIR *d = opendir(r->dirs[i]);
        if (!d)
            continue;
        char **names = NULL;
        size_t nn = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || !sbi_has_suffix(e->d_name, ".so"))
                continue;
            char **t = realloc(names, (nn + 1) * sizeof *t);
            if (!t)
                break;
            names = t;
            names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, nn, sizeof *names, cmp_str);
        for (size_t k = 0; k < nn; k++) {
            char *path = names[k] ? sbi_path_join(r->dirs[i], names[k]) : NULL;
            int shadowed = 0;
            for (size_t j = 0; path && j < r->n_loaded; j++) {
                const char *b = strrchr(r->loaded[j]->path, '/');
                shadowed |= b && strcmp(b + 1, names[k]) == 0;
            }
            if (path && !shadowed && !already(r, path)) {
                sbi_plugin *p = NULL;
                sb_error e2 = { 0 };
                if (sbi_plugin_open(path, r->origins[i], &p, &e2) == SB_OK)
                    keep(r, p, NULL);
                else
                    json_array_append_new(bad,
                                          json_pack("{s:s, s:s}", "path", path, "error", e2.msg));
            }
            free(path);
            free(names[k]);
        }
        free(names);
    }
    (void)err;
    *list = (const sbi_plugin **)r->loaded;
    *n = r->n_loaded;
    if (broken)
        *broken = bad;
    else
        json_decref(bad);
    return SB_OK;
}

const char *sb_kind_name(sb_kind kind)
{
    switch (kind) {
    case SB_KIND_DATASET: return "dataset";
    case SB_KIND_LABELLER: return "labeller";
    case SB_KIND_ENCODER: return "encoder";
    case SB_KIND_HEAD: return "head";
    }
    return "?";
}
