/* tests/unit/config/test_include.c — step 2: loading files, include: from other folders,
 * deep-merge semantics, missing files, cycles, the depth limit, and errors in included
 * files. Runs from tests/unit/config so locations read "fixtures/...". */
#include "helpers.h"

TestSuite(include, .fini = cfg_leak_check);

#include <sys/stat.h>

static sbi_node *load_ok(const char *path)
{
    sb_error e = { 0 };
    sbi_node *r = sbi_config_load(path, NULL, 0, &e);
    cr_assert_not_null(r, "load %s failed: %s", path, cfg_errstr(&e));
    cr_assert_eq(r->kind, SBI_MAP);
    return r;
}

static sb_error load_err(const char *path)
{
    sb_error e = { 0 };
    sbi_node *r = sbi_config_load(path, NULL, 0, &e);
    if (r) {
        sbi_node_free(&r);
        cr_assert_fail("expected loading %s to fail", path);
    }
    cr_assert_neq(e.code, SB_OK);
    return e;
}

Test(include, deep_merge_from_another_folder, .init = cfg_chdir_tests)
{
    sbi_node *r = load_ok("fixtures/exp/main.yaml");
    cr_assert_null(sbi_node_get(r, "include"), "include: must be removed");
    /* top-level key order: the bases' keys first (in include order), then the file's */
    cr_assert_eq(r->n, 4);
    cr_assert_str_eq(r->keys[0], "datasets");
    cr_assert_str_eq(r->keys[1], "labellers");
    cr_assert_str_eq(r->keys[2], "heads");
    cr_assert_str_eq(r->keys[3], "experiment");
    /* maps merge key by key, the later file wins */
    cr_assert_str_eq(cfg_text(r, "datasets.meld.root"), "/mnt/meld");
    cr_assert_str_eq(cfg_text(r, "datasets.meld.plugin"), "meld");
    cr_assert_str_eq(cfg_text(r, "datasets.meld.protocol"), "meld-7class");
    cr_assert_str_eq(cfg_text(r, "datasets.iemocap.root"), "/scratch/iemocap");
    cr_assert_str_eq(cfg_text(r, "datasets.iemocap.protocol"), "iemocap-4class-loso");
    /* lists are replaced, not concatenated */
    const sbi_node *hidden = sbi_node_path(r, "heads.mlp.hidden");
    cr_assert_eq(hidden->kind, SBI_SEQ);
    cr_assert_eq(hidden->n, 1);
    cr_assert_str_eq(cfg_text(r, "heads.mlp.hidden.0"), "64");
    cr_assert_str_eq(cfg_text(r, "heads.mlp.plugin"), "mlp");
    cr_assert_str_eq(cfg_text(r, "heads.linear.lr"), "1.0e-3");
    /* every node remembers its own file, as the path was given */
    const sbi_node *root = sbi_node_path(r, "datasets.meld.root");
    cr_assert_str_eq(root->loc.file, "fixtures/exp/../base/heads.yaml");
    cr_assert_eq(root->loc.line, 5);
    const sbi_node *proto = sbi_node_path(r, "datasets.meld.protocol");
    cr_assert_str_eq(proto->loc.file, "fixtures/exp/../base/corpora.yaml");
    cr_assert_eq(proto->loc.line, 3);
    const sbi_node *enc = sbi_node_path(r, "experiment.encoder");
    cr_assert_str_eq(enc->loc.file, "fixtures/exp/main.yaml");
    cr_assert_eq(enc->loc.line, 11);
    cr_assert_eq(enc->loc.col, 12);
    sbi_node_free(&r);
}

Test(include, single_string_form, .init = cfg_chdir_tests)
{
    sbi_node *r = load_ok("fixtures/exp/single.yaml");
    cr_assert_str_eq(cfg_text(r, "heads.linear.epochs"), "30");
    cr_assert_str_eq(cfg_text(r, "extra"), "1");
    cr_assert_null(sbi_node_get(r, "include"));
    sbi_node_free(&r);
}

/* Write `text` to dir/name. */
static void write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

Test(include, merge_semantics_exact)
{
    char tmpl[] = "/tmp/cfgmergeXXXXXX";
    char *dir = mkdtemp(tmpl);
    cr_assert_not_null(dir);
    write_file(dir, "a.yaml", "m: {x: 1, y: {p: 1}}\nl: [1, 2]\ns: a\nz: {k: 1}\nn: ~\n");
    write_file(dir, "b.yaml", "m: {y: {q: 2}}\nb_only: 1\n");
    write_file(dir, "top.yaml",
               "include: [a.yaml, b.yaml]\nm: {y: {p: 5}, w: 3}\nl: [9]\n"
               "s: {now: map}\nz: ~\nn: {made: here}\n");
    char top[512];
    snprintf(top, sizeof top, "%s/top.yaml", dir);
    sbi_node *r = load_ok(top);
    char *j = cfg_json(r);
    cr_assert_str_eq(j, "{\"m\":{\"x\":1,\"y\":{\"p\":5,\"q\":2},\"w\":3},\"l\":[9],"
                        "\"s\":{\"now\":\"map\"},\"z\":null,\"n\":{\"made\":\"here\"},"
                        "\"b_only\":1}");
    free(j);
    /* a key overridden by the top file is located there */
    char at[600];
    snprintf(at, sizeof at, "%s/top.yaml", dir);
    cr_assert_str_eq(sbi_node_path(r, "m.y.p")->loc.file, at);
    sbi_node_free(&r);
    const char *names[] = { "a.yaml", "b.yaml", "top.yaml" };
    for (int i = 0; i < 3; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

Test(include, missing_include_names_chain, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/exp/missing.yaml");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cr_assert_str_eq(e.where, "fixtures/exp/missing.yaml:3:5");
    cfg_assert_has(e, "fixtures/exp/../base/nope.yaml");
    cfg_assert_has(e, "No such file");
    cfg_assert_has(e, "fixtures/exp/missing.yaml:3:5 includes fixtures/exp/../base/nope.yaml");
}

Test(include, missing_top_file_is_io_error, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/does-not-exist.yaml");
    cr_assert_eq(e.code, SB_ERR_IO);
    cfg_assert_has(e, "fixtures/does-not-exist.yaml");
}

Test(include, directory_is_not_a_config, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/exp");
    cr_assert_eq(e.code, SB_ERR_IO);
    cfg_assert_has(e, "fixtures/exp");
}

Test(include, cycle_names_chain_with_locations, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/cycle/a.yaml");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "include cycle");
    cfg_assert_has(e, "fixtures/cycle/a.yaml:1:10 includes fixtures/cycle/b.yaml:2:11 "
                      "includes fixtures/cycle/a.yaml");
    cr_assert_str_eq(e.where, "fixtures/cycle/b.yaml:2:11");
}

Test(include, self_include_is_a_cycle, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/cycle/self.yaml");
    cfg_assert_has(e, "include cycle");
    cfg_assert_has(e, "fixtures/cycle/self.yaml:1:10 includes fixtures/cycle/self.yaml");
}

Test(include, cycle_found_through_different_spellings, .init = cfg_chdir_tests)
{
    /* ./a.yaml and ../cycle/a.yaml are one file: realpath catches it */
    sb_error e = load_err("fixtures/../fixtures/cycle/./a.yaml");
    cfg_assert_has(e, "include cycle");
}

Test(include, diamond_is_not_a_cycle, .init = cfg_chdir_tests)
{
    sbi_node *r = load_ok("fixtures/diamond/top.yaml");
    cr_assert_str_eq(cfg_text(r, "side"), "right");
    cr_assert_str_eq(cfg_text(r, "shared.s"), "1");
    sbi_node_free(&r);
}

/* A chain of n files in a fresh temp folder: f0 includes f1 ... f(n-1). */
static char *make_chain(int n)
{
    char tmpl[] = "/tmp/cfgchainXXXXXX";
    char *dir = mkdtemp(tmpl);
    cr_assert_not_null(dir);
    for (int i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/f%d.yaml", dir, i);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        if (i + 1 < n)
            fprintf(f, "include: f%d.yaml\n", i + 1);
        fprintf(f, "level%d: %d\n", i, i);
        fclose(f);
    }
    return strdup(dir);
}

static void remove_chain(const char *dir, int n)
{
    for (int i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/f%d.yaml", dir, i);
        unlink(p);
    }
    rmdir(dir);
}

Test(include, depth_limit_32)
{
    char *dir = make_chain(32); /* 32 files deep: allowed */
    char p[256];
    snprintf(p, sizeof p, "%s/f0.yaml", dir);
    sbi_node *r = load_ok(p);
    cr_assert_str_eq(cfg_text(r, "level31"), "31");
    sbi_node_free(&r);
    remove_chain(dir, 32);
    free(dir);

    dir = make_chain(34);
    snprintf(p, sizeof p, "%s/f0.yaml", dir);
    sb_error e = load_err(p);
    cfg_assert_has(e, "deeper than 32");
    cfg_assert_has(e, "f0.yaml:1:10 includes ");
    remove_chain(dir, 34);
    free(dir);
}

Test(include, syntax_error_in_included_file, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/bad/included_syntax.yaml");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cr_assert_not_null(strstr(e.where, "fixtures/bad/broken.yaml:"), "%s", e.where);
    cfg_assert_has(e, "did not find expected");
    cfg_assert_has(e, "fixtures/bad/included_syntax.yaml:1:10 includes fixtures/bad/broken.yaml");
}

Test(include, include_value_must_be_names, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/bad/include_map.yaml");
    cfg_assert_has(e, "fixtures/bad/include_map.yaml:1:10");
    cfg_assert_has(e, "include");
}

Test(include, top_level_must_be_a_map, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/bad/toplist.yaml");
    cfg_assert_has(e, "fixtures/bad/toplist.yaml:1:1");
    cfg_assert_has(e, "mapping");
}

Test(include, empty_file_is_empty_map, .init = cfg_chdir_tests)
{
    sbi_node *r = load_ok("fixtures/bad/empty.yaml");
    cr_assert_eq(r->n, 0);
    sbi_node_free(&r);
}

Test(include, file_errors_carry_file_locations, .init = cfg_chdir_tests)
{
    sb_error e = load_err("fixtures/bad/tabs.yaml");
    cfg_assert_has(e, "fixtures/bad/tabs.yaml:3:1");
    cfg_assert_has(e, "tabs");
    sb_error e2 = load_err("fixtures/bad/twodocs.yaml");
    cfg_assert_has(e2, "fixtures/bad/twodocs.yaml:2:1");
    sb_error e3 = load_err("fixtures/bad/latin1.yaml");
    cfg_assert_has(e3, "fixtures/bad/latin1.yaml:1:10");
    cfg_assert_has(e3, "UTF-8");
}

Test(include, include_path_is_interpolated, .init = cfg_chdir_tests)
{
    setenv("CFG_TEST_BASE", "../base", 1);
    sbi_node *r = load_ok("fixtures/exp/envinc.yaml");
    cr_assert_str_eq(cfg_text(r, "heads.mlp.plugin"), "mlp");
    sbi_node_free(&r);
    unsetenv("CFG_TEST_BASE");
    sb_error e = load_err("fixtures/exp/envinc.yaml");
    cfg_assert_has(e, "CFG_TEST_BASE");
    cfg_assert_has(e, "fixtures/exp/envinc.yaml:1:10");
}

Test(include, interpolation_runs_after_merge, .init = cfg_chdir_tests)
{
    unsetenv("CFG_SURELY_UNDEFINED_1");
    sbi_node *r = load_ok("fixtures/exp/after_merge.yaml");
    cr_assert_str_eq(cfg_text(r, "token"), "fixed");
    sbi_node_free(&r);
}

Test(include, absolute_include_path)
{
    char tmpl[] = "/tmp/cfgabsXXXXXX";
    char *dir = mkdtemp(tmpl);
    cr_assert_not_null(dir);
    char base[256], top[256];
    snprintf(base, sizeof base, "%s/base.yaml", dir);
    snprintf(top, sizeof top, "%s/top.yaml", dir);
    FILE *f = fopen(base, "w");
    fprintf(f, "a: {x: 1, y: 2}\n");
    fclose(f);
    f = fopen(top, "w");
    fprintf(f, "include: %s\na: {y: 3}\n", base);
    fclose(f);
    sbi_node *r = load_ok(top);
    cr_assert_str_eq(cfg_text(r, "a.x"), "1");
    cr_assert_str_eq(cfg_text(r, "a.y"), "3");
    cr_assert_str_eq(sbi_node_path(r, "a.x")->loc.file, base);
    sbi_node_free(&r);
    unlink(base);
    unlink(top);
    rmdir(dir);
}
