/* tests/unit/run/test_loader.c — every loader check has a fixture plugin and a message. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

static char *fixture(const char *name)
{
    const char *dir = getenv("SB_FIXTURE_PLUGINS");
    cr_assert(dir, "SB_FIXTURE_PLUGINS not set (run through meson test)");
    char *p = NULL;
    cr_assert(asprintf(&p, "%s/%s.so", dir, name) > 0);
    return p;
}

static void expect_refused(const char *name, const char *fragment)
{
    char *path = fixture(name);
    sbi_plugin *p = NULL;
    sb_error err = { 0 };
    sb_status st = sbi_plugin_open(path, "test", &p, &err);
    cr_assert_eq(st, SB_ERR_PLUGIN, "%s: status %d", name, st);
    cr_assert_null(p);
    cr_assert(strstr(err.msg, fragment), "%s: message '%s' lacks '%s'", name, err.msg, fragment);
    cr_assert(strstr(err.where, name), "%s: where '%s' does not name the file", name, err.where);
    free(path);
}

Test(loader, missing_file)
{
    expect_refused("does_not_exist", "does not exist");
}
Test(loader, not_elf)
{
    expect_refused("notelf", "cannot load shared library [");
}
Test(loader, unresolved_symbol_shows_dlerror)
{
    expect_refused("unresolved", "sb_fixture_missing_symbol");
}
Test(loader, no_entry)
{
    expect_refused("noentry", "no entry point [serbench_plugin_v1]");
}
Test(loader, other_major)
{
    expect_refused("badmajor", "built for serbench plugin ABI major 2");
    expect_refused("badmajor", "has ABI major 1");
}
Test(loader, newer_minor)
{
    expect_refused("newer", "needs serbench plugin ABI 1.99");
}
Test(loader, small_descriptor)
{
    expect_refused("small", "struct_size 8");
}
Test(loader, misnamed_file)
{
    expect_refused("misnamed", "must be named NAME.so (fixture.so)");
}
Test(loader, bad_kind)
{
    expect_refused("badkind", "unknown kind 9");
}
Test(loader, no_vtable)
{
    expect_refused("novtable", "has no vtable");
}
Test(loader, bad_option_default)
{
    expect_refused("badopt", "default of option 'mode' is invalid");
}

Test(loader, good_plugin_and_registry)
{
    const char *root = getenv("SB_BUILD_ROOT");
    cr_assert(root);
    char *dir = NULL;
    cr_assert(asprintf(&dir, "%s/plugins/labellers/human", root) > 0);
    sbi_registry *r = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_registry_create(dir, NULL, 0, &r, &err), SB_OK);
    const sbi_plugin *p = NULL;
    cr_assert_eq(sbi_registry_get(r, "human", SB_KIND_LABELLER, &p, &err), SB_OK, "%s", err.msg);
    cr_assert_str_eq(p->desc->name, "human");
    cr_assert_eq(strlen(p->file_hash), 32);
    /* Wrong kind requested. */
    sb_error e2 = { 0 };
    cr_assert_eq(sbi_registry_get(r, "human", SB_KIND_HEAD, &p, &e2), SB_ERR_CONFIG);
    cr_assert(strstr(e2.msg, "is a labeller plugin, not a head"), "%s", e2.msg);
    /* Missing plugin: names the folders and suggests. */
    sb_error e3 = { 0 };
    cr_assert_eq(sbi_registry_get(r, "humna", 0, &p, &e3), SB_ERR_PLUGIN);
    cr_assert(strstr(e3.msg, dir), "%s", e3.msg);
    cr_assert(strstr(e3.msg, "Did you mean 'human'?"), "%s", e3.msg);
    sbi_registry_destroy(&r);
    cr_assert_null(r);
    free(dir);
}

Test(loader, env_path_after_builtin)
{
    const char *fx = getenv("SB_FIXTURE_PLUGINS");
    setenv("SERBENCH_PLUGIN_PATH", fx, 1);
    sbi_registry *r = NULL;
    sb_error err = { 0 };
    const char *cfg[] = { "/nonexistent/plugins" };
    cr_assert_eq(sbi_registry_create("/nonexistent/builtin", cfg, 1, &r, &err), SB_OK);
    cr_assert_eq(sbi_registry_n_dirs(r), 3);
    const char *origin = NULL;
    cr_assert_str_eq(sbi_registry_dir(r, 1, &origin), fx);
    cr_assert_str_eq(origin, "SERBENCH_PLUGIN_PATH");
    cr_assert_str_eq(sbi_registry_dir(r, 2, &origin), "/nonexistent/plugins");
    cr_assert_str_eq(origin, "plugin_path");
    /* Listing skips broken fixtures and reports them. */
    const sbi_plugin **list = NULL;
    size_t n = 0;
    void *broken = NULL;
    cr_assert_eq(sbi_registry_list(r, &list, &n, &broken, &err), SB_OK);
    cr_assert_eq(n, 1, "only slowenc is a valid fixture plugin, got %zu", n);
    cr_assert_str_eq(list[0]->desc->name, "slowenc");
    cr_assert_geq(json_array_size(broken), 9);
    json_decref(broken);
    sbi_registry_destroy(&r);
    unsetenv("SERBENCH_PLUGIN_PATH");
}
