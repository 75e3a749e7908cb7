/* tests/unit/config/test_sweep.c — step 5: sweep × seeds expansion, its order, the keys it
 * may name, and the validation of sweep and seeds. */
#include "helpers.h"

TestSuite(sweep, .fini = cfg_leak_check);

typedef struct expanded {
    sbi_node **runs;
    size_t n;
} expanded;

static expanded expand_ok(const sbi_node *root)
{
    expanded x = { 0 };
    sb_error e = { 0 };
    sb_status st = sbi_config_expand(root, &x.runs, &x.n, &e);
    cr_assert_eq(st, SB_OK, "expand failed: %s", cfg_errstr(&e));
    return x;
}

static void expanded_free(expanded *x)
{
    for (size_t i = 0; i < x->n; i++)
        sbi_node_free(&x->runs[i]);
    free(x->runs);
}

static sb_error expand_err(const char *text)
{
    sbi_node *r = cfg_parse_ok(text);
    sbi_node **runs = (sbi_node **)1;
    size_t n = 99;
    sb_error e = { 0 };
    sb_status st = sbi_config_expand(r, &runs, &n, &e);
    cr_assert_neq(st, SB_OK, "expected expansion of\n%s\nto fail", text);
    cr_assert_eq(st, e.code);
    cr_assert_null(runs);
    cr_assert_eq(n, 0);
    sbi_node_free(&r);
    return e;
}

Test(sweep, no_sweep_gives_one_run_with_seed_1)
{
    sbi_node *r = cfg_parse_ok("a: 1\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 1);
    char *j = cfg_json(x.runs[0]);
    cr_assert_str_eq(j, "{\"a\":1,\"seed\":1}");
    free(j);
    cr_assert_null(sbi_config_sweep_keys(r));
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, product_order_first_key_slowest_seeds_innermost)
{
    sbi_node *r = cfg_parse_ok("a: 0\nb: 0\nseeds: [7, 8]\nsweep:\n  a: [1, 2]\n  b: [x, y, z]\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 12);
    const char *want_a[] = { "1", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", "2" };
    const char *want_b[] = { "x", "x", "y", "y", "z", "z", "x", "x", "y", "y", "z", "z" };
    const char *want_s[] = { "7", "8", "7", "8", "7", "8", "7", "8", "7", "8", "7", "8" };
    for (size_t i = 0; i < 12; i++) {
        cr_assert_str_eq(cfg_text(x.runs[i], "a"), want_a[i], "run %zu", i);
        cr_assert_str_eq(cfg_text(x.runs[i], "b"), want_b[i], "run %zu", i);
        cr_assert_str_eq(cfg_text(x.runs[i], "seed"), want_s[i], "run %zu", i);
        cr_assert_null(sbi_node_get(x.runs[i], "sweep"));
        cr_assert_null(sbi_node_get(x.runs[i], "seeds"));
    }
    /* runs are independent trees */
    cr_assert_neq(sbi_node_get(x.runs[0], "a"), sbi_node_get(x.runs[1], "a"));
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, deep_paths_from_a_real_config)
{
    cfg_chdir_tests();
    sb_error e = { 0 };
    sbi_node *r = sbi_config_load("fixtures/exp/sweep.yaml", NULL, 0, &e);
    cr_assert_not_null(r, "%s", cfg_errstr(&e));
    const char **keys = sbi_config_sweep_keys(r);
    cr_assert_not_null(keys);
    cr_assert_str_eq(keys[0], "experiment.encoder");
    cr_assert_str_eq(keys[1], "experiment.train.labels");
    cr_assert_str_eq(keys[2], "heads.linear.lr");
    cr_assert_null(keys[3]);
    free(keys);
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 2 * 2 * 2 * 3);
    /* run 23 is the last: wavlm, gpt4o, 1.0e-4, seed 3 */
    cr_assert_str_eq(cfg_text(x.runs[23], "experiment.encoder"), "wavlm");
    cr_assert_str_eq(cfg_text(x.runs[23], "experiment.train.labels"), "gpt4o");
    cr_assert_str_eq(cfg_text(x.runs[23], "heads.linear.lr"), "1.0e-4");
    cr_assert_str_eq(cfg_text(x.runs[23], "seed"), "3");
    /* run 4: hubert, human, 1.0e-4, seed 2 */
    cr_assert_str_eq(cfg_text(x.runs[4], "experiment.encoder"), "hubert");
    cr_assert_str_eq(cfg_text(x.runs[4], "experiment.train.labels"), "human");
    cr_assert_str_eq(cfg_text(x.runs[4], "heads.linear.lr"), "1.0e-4");
    cr_assert_str_eq(cfg_text(x.runs[4], "seed"), "2");
    /* the rest of the block is intact, and the swept value is located at the sweep */
    cr_assert_str_eq(cfg_text(x.runs[4], "heads.linear.epochs"), "30");
    cr_assert_eq(sbi_node_path(x.runs[4], "heads.linear.lr")->loc.line, 20);
    json_t *seed = sbi_scalar_to_json(sbi_node_get(x.runs[4], "seed"));
    cr_assert(json_is_integer(seed) && json_integer_value(seed) == 2);
    json_decref(seed);
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, sweep_over_list_item)
{
    sbi_node *r = cfg_parse_ok("exp:\n  test: [{d: a}, {d: b}]\nsweep:\n  exp.test.1.d: [p, q]\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 2);
    cr_assert_str_eq(cfg_text(x.runs[1], "exp.test.1.d"), "q");
    cr_assert_str_eq(cfg_text(x.runs[1], "exp.test.0.d"), "a");
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, missing_key_with_suggestion)
{
    sb_error e = expand_err("experiment:\n  encoder: wavlm\n  train: {labels: human}\n"
                            "sweep:\n  experiment.encodr: [a, b]\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cr_assert_str_eq(e.where, "t.yaml:5:3");
    cfg_assert_has(e, "'experiment.encodr'");
    cfg_assert_has(e, "did you mean 'experiment.encoder'?");
    sb_error e2 = expand_err("experiment:\n  train: {labels: human}\n"
                             "sweep:\n  experiment.train.lables: [a, b]\n");
    cfg_assert_has(e2, "did you mean 'experiment.train.labels'?");
}

Test(sweep, missing_key_without_suggestion)
{
    sb_error e = expand_err("a: 1\nsweep:\n  completely.different: [1]\n");
    cfg_assert_has(e, "t.yaml:3:3");
    cfg_assert_has(e, "'completely.different' is not in the config");
    cr_assert_null(strstr(cfg_errstr(&e), "did you mean"));
}

Test(sweep, values_must_be_nonempty_lists)
{
    sb_error e = expand_err("a: 1\nsweep:\n  a: 5\n");
    cr_assert_str_eq(e.where, "t.yaml:3:6");
    cfg_assert_has(e, "'a'");
    cfg_assert_has(e, "non-empty list");
    sb_error e2 = expand_err("a: 1\nsweep:\n  a: []\n");
    cfg_assert_has(e2, "non-empty list");
    sb_error e3 = expand_err("a: 1\nsweep: [a]\n");
    cfg_assert_has(e3, "t.yaml:2:8");
    cfg_assert_has(e3, "sweep must map");
}

Test(sweep, seeds_int)
{
    sbi_node *r = cfg_parse_ok("a: 1\nseeds: 42\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 1);
    cr_assert_str_eq(cfg_text(x.runs[0], "seed"), "42");
    cr_assert_eq(sbi_node_get(x.runs[0], "seed")->loc.line, 2);
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, seeds_list)
{
    sbi_node *r = cfg_parse_ok("a: 1\nseeds: [3, 1, 0x10]\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 3);
    cr_assert_str_eq(cfg_text(x.runs[0], "seed"), "3");
    cr_assert_str_eq(cfg_text(x.runs[1], "seed"), "1");
    cr_assert_str_eq(cfg_text(x.runs[2], "seed"), "16");
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, seeds_invalid)
{
    sb_error e = expand_err("a: 1\nseeds: abc\n");
    cr_assert_str_eq(e.where, "t.yaml:2:8");
    cfg_assert_has(e, "seeds");
    sb_error e2 = expand_err("a: 1\nseeds: []\n");
    cr_assert_str_eq(e2.where, "t.yaml:2:8");
    sb_error e3 = expand_err("a: 1\nseeds: [1, x, 3]\n");
    cr_assert_str_eq(e3.where, "t.yaml:2:12");
    cfg_assert_has(e3, "'x'");
    sb_error e4 = expand_err("a: 1\nseeds: [\"1\"]\n");
    cfg_assert_has(e4, "seeds");
    sb_error e5 = expand_err("a: 1\nseeds: {a: 1}\n");
    cfg_assert_has(e5, "seeds");
    sb_error e6 = expand_err("a: 1\nseeds: [1, 2.5]\n");
    cfg_assert_has(e6, "'2.5'");
    sb_error e7 = expand_err("a: 1\nseeds: [1, 1]\n");
    cfg_assert_has(e7, "twice");
    sb_error e8 = expand_err("a: 1\nseeds:\n");
    cfg_assert_has(e8, "seeds");
    sb_error e9 = expand_err("a: 1\nseeds: -3\n");
    cfg_assert_has(e9, "non-negative");
}

Test(sweep, too_many_runs_refused)
{
    sb_error e = expand_err("a: 1\nb: 1\nc: 1\nd: 1\nsweep:\n"
                            "  a: [1,2,3,4,5,6,7,8,9,10]\n  b: [1,2,3,4,5,6,7,8,9,10]\n"
                            "  c: [1,2,3,4,5,6,7,8,9,10]\n  d: [1,2,3,4,5,6,7,8,9,10]\n"
                            "seeds: [1,2,3,4,5,6,7,8,9,10,11]\n");
    cfg_assert_has(e, "too many runs");
}

Test(sweep, root_must_be_a_map)
{
    sbi_node *r = cfg_parse_ok("[1, 2]");
    sbi_node **runs = NULL;
    size_t n = 0;
    sb_error e = { 0 };
    cr_assert_eq(sbi_config_expand(r, &runs, &n, &e), SB_ERR_CONFIG);
    cr_assert_null(runs);
    sbi_node_free(&r);
}

Test(sweep, existing_seed_key_is_replaced)
{
    sbi_node *r = cfg_parse_ok("seed: 99\na: 1\nseeds: [5]\n");
    expanded x = expand_ok(r);
    cr_assert_eq(x.n, 1);
    cr_assert_str_eq(cfg_text(x.runs[0], "seed"), "5");
    cr_assert_eq(x.runs[0]->n, 2);
    expanded_free(&x);
    sbi_node_free(&r);
}

Test(sweep, keys_borrowed_in_order)
{
    sbi_node *r = cfg_parse_ok("x: 1\ny: 2\nsweep: {y: [1], x: [2]}\n");
    const char **k = sbi_config_sweep_keys(r);
    cr_assert_not_null(k);
    cr_assert_str_eq(k[0], "y");
    cr_assert_str_eq(k[1], "x");
    cr_assert_null(k[2]);
    cr_assert_eq(k[0], sbi_node_get(r, "sweep")->keys[0], "strings are borrowed");
    free(k);
    sbi_node_free(&r);
}
