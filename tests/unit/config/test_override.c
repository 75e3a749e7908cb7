/* tests/unit/config/test_override.c — step 4: "key.path=value" overrides: creating paths,
 * indexing lists, flow values, locations "<command line>:0:N", and refusals. */
#include "helpers.h"

TestSuite(override, .fini = cfg_leak_check);

static sbi_node *load_with(const char *const *ov, size_t n, sb_error *e)
{
    cfg_chdir_tests();
    return sbi_config_load("fixtures/exp/main.yaml", ov, n, e);
}

static sbi_node *load_with_ok(const char *const *ov, size_t n)
{
    sb_error e = { 0 };
    sbi_node *r = load_with(ov, n, &e);
    cr_assert_not_null(r, "load failed: %s", cfg_errstr(&e));
    return r;
}

static sb_error load_with_err(const char *const *ov, size_t n)
{
    sb_error e = { 0 };
    sbi_node *r = load_with(ov, n, &e);
    if (r) {
        sbi_node_free(&r);
        cr_assert_fail("expected the overrides to fail");
    }
    return e;
}

Test(override, replaces_value_and_locates_it)
{
    const char *ov[] = { "experiment.encoder=hubert", "heads.linear.epochs=5" };
    sbi_node *r = load_with_ok(ov, 2);
    cr_assert_str_eq(cfg_text(r, "experiment.encoder"), "hubert");
    const sbi_node *ep = sbi_node_path(r, "heads.linear.epochs");
    cr_assert_str_eq(ep->text, "5");
    char buf[64];
    cr_assert_str_eq(sbi_loc_str(ep->loc, buf, sizeof buf), "<command line>:0:2");
    cr_assert_str_eq(sbi_loc_str(sbi_node_path(r, "experiment.encoder")->loc, buf, sizeof buf),
                     "<command line>:0:1");
    /* untouched siblings keep their place and file */
    cr_assert_str_eq(sbi_node_path(r, "heads.linear.lr")->loc.file,
                     "fixtures/exp/../base/heads.yaml");
    json_t *j = sbi_scalar_to_json(ep);
    cr_assert(json_is_integer(j) && json_integer_value(j) == 5);
    json_decref(j);
    sbi_node_free(&r);
}

Test(override, creates_missing_maps)
{
    const char *ov[] = { "report.table.metric=ua", "experiment.train.extra.deep=1" };
    sbi_node *r = load_with_ok(ov, 2);
    cr_assert_str_eq(cfg_text(r, "report.table.metric"), "ua");
    cr_assert_eq(sbi_node_get(r, "report")->kind, SBI_MAP);
    cr_assert_str_eq(cfg_text(r, "experiment.train.extra.deep"), "1");
    cr_assert_str_eq(cfg_text(r, "experiment.train.split"), "train");
    /* new top-level keys go last */
    cr_assert_str_eq(r->keys[r->n - 1], "report");
    sbi_node_free(&r);
}

Test(override, flow_values)
{
    const char *ov[] = { "a=[1,2]", "b={x: 1, y: [z]}", "c=hello world", "d=", "e='quoted: yes'",
                         "f=~",     "g=\"1\"" };
    sbi_node *r = load_with_ok(ov, 7);
    const sbi_node *a = sbi_node_get(r, "a");
    cr_assert_eq(a->kind, SBI_SEQ);
    cr_assert_eq(a->n, 2);
    cr_assert_eq(sbi_node_get(r, "b")->kind, SBI_MAP);
    cr_assert_str_eq(cfg_text(r, "b.y.0"), "z");
    cr_assert_str_eq(cfg_text(r, "c"), "hello world");
    cr_assert_eq(sbi_node_get(r, "d")->kind, SBI_NULL, "an empty value is null");
    cr_assert_str_eq(cfg_text(r, "e"), "quoted: yes");
    cr_assert_eq(sbi_node_get(r, "f")->kind, SBI_NULL);
    cr_assert_eq(sbi_node_get(r, "g")->quoted, 1);
    char buf[64];
    cr_assert_str_eq(sbi_loc_str(sbi_node_path(r, "b.y.0")->loc, buf, sizeof buf),
                     "<command line>:0:2", "every node of the value is located at the override");
    sbi_node_free(&r);
}

Test(override, index_into_sequence)
{
    const char *ov[] = { "experiment.test.1.dataset=meld", "experiment.test.0={dataset: x}" };
    sbi_node *r = load_with_ok(ov, 2);
    cr_assert_str_eq(cfg_text(r, "experiment.test.1.dataset"), "meld");
    cr_assert_str_eq(cfg_text(r, "experiment.test.1.split"), "test");
    cr_assert_str_eq(cfg_text(r, "experiment.test.0.dataset"), "x");
    cr_assert_null(sbi_node_path(r, "experiment.test.0.split"), "a map value replaces");
    sbi_node_free(&r);
}

Test(override, index_out_of_range)
{
    const char *ov[] = { "experiment.test.5.dataset=meld" };
    sb_error e = load_with_err(ov, 1);
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "<command line>:0:1");
    cfg_assert_has(e, "experiment.test.5.dataset=meld");
    cfg_assert_has(e, "2 items");
}

Test(override, missing_equals_is_usage_error)
{
    const char *ov[] = { "experiment.encoder=a", "experiment.encoder" };
    sb_error e = load_with_err(ov, 2);
    cr_assert_eq(e.code, SB_ERR_USAGE);
    cfg_assert_has(e, "'experiment.encoder'");
    cfg_assert_has(e, "<command line>:0:2");
    cfg_assert_has(e, "key.path=value");
}

Test(override, empty_key_is_usage_error)
{
    const char *ov[] = { "=5" };
    sb_error e = load_with_err(ov, 1);
    cr_assert_eq(e.code, SB_ERR_USAGE);
    cfg_assert_has(e, "'=5'");
}

Test(override, through_a_scalar_refused)
{
    const char *ov[] = { "experiment.encoder.name=x" };
    sb_error e = load_with_err(ov, 1);
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "experiment.encoder.name=x");
    cfg_assert_has(e, "'experiment.encoder' is a scalar");
    cfg_assert_has(e, "fixtures/exp/main.yaml:11:12");
}

Test(override, bad_yaml_value)
{
    const char *ov[] = { "a=[1,2" };
    sb_error e = load_with_err(ov, 1);
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "<command line>:0:1");
    cfg_assert_has(e, "a=[1,2");
    cfg_assert_has(e, "not valid YAML");
}

Test(override, block_value_refused)
{
    const char *ov[] = { "a=k: v" };
    sb_error e = load_with_err(ov, 1);
    cfg_assert_has(e, "flow");
}

Test(override, empty_path_component)
{
    const char *ov[] = { "a..b=1" };
    sb_error e = load_with_err(ov, 1);
    cfg_assert_has(e, "empty component");
}

Test(override, sweep_entry_keeps_dotted_key)
{
    const char *ov[] = { "sweep.experiment.encoder=[hubert, wavlm]", "seeds=[1,2]" };
    sbi_node *r = load_with_ok(ov, 2);
    const sbi_node *sw = sbi_node_get(r, "sweep");
    cr_assert_eq(sw->kind, SBI_MAP);
    cr_assert_str_eq(sw->keys[0], "experiment.encoder");
    cr_assert_eq(sw->items[0]->n, 2);
    cr_assert_eq(sbi_node_get(r, "seeds")->kind, SBI_SEQ);
    sbi_node_free(&r);
}

Test(override, values_are_not_interpolated)
{
    unsetenv("CFG_T_NOT_THERE");
    const char *ov[] = { "x=${CFG_T_NOT_THERE}" };
    sbi_node *r = load_with_ok(ov, 1);
    cr_assert_str_eq(cfg_text(r, "x"), "${CFG_T_NOT_THERE}");
    sbi_node_free(&r);
}

Test(override, later_override_wins)
{
    const char *ov[] = { "a=1", "a=2", "b.c=1", "b=3" };
    sbi_node *r = load_with_ok(ov, 4);
    cr_assert_str_eq(cfg_text(r, "a"), "2");
    cr_assert_str_eq(cfg_text(r, "b"), "3");
    sbi_node_free(&r);
}

Test(override, include_refused)
{
    /* Includes are read with the files, before overrides; an include= override would be
     * silently ignored, so it is an error naming the override. */
    const char *ov[] = { "heads.linear.epochs=5", "include=../base/heads.yaml" };
    sb_error e = load_with_err(ov, 2);
    cr_assert_eq(e.code, SB_ERR_USAGE);
    cfg_assert_has(e, "<command line>:0:2");
    cfg_assert_has(e, "'include=../base/heads.yaml'");
    cfg_assert_has(e, "include:");

    const char *ov2[] = { "include.0=x.yaml" };
    sb_error e2 = load_with_err(ov2, 1);
    cr_assert_eq(e2.code, SB_ERR_USAGE);
    cfg_assert_has(e2, "'include.0=x.yaml'");
}
