/* core/lib/run/loader.h — (internal) finding, loading and checking plugins.
 *
 * Search order: the built-in directories (the build tree when serbench runs from it, else
 * the install directory), then SERBENCH_PLUGIN_PATH (colon-separated), then the config's
 * `plugin_path` entries. The current directory is never searched implicitly. A plugin
 * named NAME lives in a file NAME.so; the first directory holding it wins.
 *
 * Checks, in this fixed order, each failure naming the path and closing the handle:
 * file exists → dlopen (dlerror shown) → entry symbol serbench_plugin_v1 (if absent, other
 * majors are probed to say "built for ABI major N") → descriptor non-NULL → ABI minor not
 * newer than the host's → struct_size → name/version/summary present and well-formed →
 * name equals the file name → kind known → vtable present with the kind's required calls →
 * option table valid (defaults included). */
#ifndef SBI_LOADER_H
#define SBI_LOADER_H

#include <serbench/serbench.h>

typedef struct sbi_plugin {
    char *path;   /* absolute path of the .so */
    char *origin; /* "build", "install", "SERBENCH_PLUGIN_PATH", "plugin_path" */
    void *handle; /* dlopen handle */
    const sb_plugin *desc;
    char file_hash[SB_HASH_HEX];
} sbi_plugin;

typedef struct sbi_registry sbi_registry;

/* builtin: colon-separated directories (may be NULL); config_dirs: from `plugin_path`. */
sb_status sbi_registry_create(const char *builtin, const char *const *config_dirs,
                              size_t n_config_dirs, sbi_registry **out, sb_error *err);
void sbi_registry_destroy(sbi_registry **r);

/* Find and load plugin `name`; `want` is the expected kind, or 0 for any. The plugin stays
 * loaded (and *out valid) until the registry is destroyed. */
sb_status sbi_registry_get(sbi_registry *r, const char *name, sb_kind want, const sbi_plugin **out,
                           sb_error *err);

/* Every *.so in the search path (the first of each name), loaded; plugins that fail to
 * load are reported in `broken` (a JSON array of {"path", "error"}, owned by the caller)
 * and skipped. *list is borrowed from the registry. */
sb_status sbi_registry_list(sbi_registry *r, const sbi_plugin ***list, size_t *n, void **broken,
                            sb_error *err);

/* The search directories with their origin, for messages and `serbench plugins`. */
size_t sbi_registry_n_dirs(const sbi_registry *r);
const char *sbi_registry_dir(const sbi_registry *r, size_t i, const char **origin);

/* Load one .so by path with all the checks (for tests and explicit paths). */
sb_status sbi_plugin_open(const char *path, const char *origin, sbi_plugin **out, sb_error *err);
void sbi_plugin_close(sbi_plugin **p);

#endif
