/* tests/unit/config/test_interp.c — step 3: ${VAR}, ${VAR:-default}, $$, and the errors for
 * undefined variables and unterminated references. */
#include "helpers.h"

TestSuite(interp, .fini = cfg_leak_check);

Test(interp, variable_replaced)
{
    setenv("CFG_T_ROOT", "/data/meld", 1);
    sbi_node *r = cfg_parse_ok("root: ${CFG_T_ROOT}/audio\nq: \"${CFG_T_ROOT}\"\n");
    cr_assert_str_eq(cfg_text(r, "root"), "/data/meld/audio");
    cr_assert_str_eq(cfg_text(r, "q"), "/data/meld");
    cr_assert_eq(sbi_node_get(r, "q")->quoted, 1, "quoted stays quoted");
    sbi_node_free(&r);
}

Test(interp, undefined_variable_error)
{
    unsetenv("CFG_T_NOPE");
    sb_error e = cfg_parse_err("a: 1\nb:\n  c: x${CFG_T_NOPE}y\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cr_assert_str_eq(e.where, "t.yaml:3:6");
    cfg_assert_has(e, "CFG_T_NOPE");
    cfg_assert_has(e, "set CFG_T_NOPE in the environment or write ${CFG_T_NOPE:-default}");
}

Test(interp, undefined_variable_in_file_names_file_location)
{
    cfg_chdir_tests();
    unsetenv("CFG_SURELY_UNDEFINED_2");
    sb_error e = { 0 };
    sbi_node *r = sbi_config_load("fixtures/exp/interp_error.yaml", NULL, 0, &e);
    cr_assert_null(r);
    cr_assert_str_eq(e.where, "fixtures/exp/interp_error.yaml:2:6");
    cfg_assert_has(e, "CFG_SURELY_UNDEFINED_2");
}

Test(interp, default_used_when_unset_or_empty)
{
    unsetenv("CFG_T_UNSET");
    setenv("CFG_T_EMPTY", "", 1);
    setenv("CFG_T_SET", "given", 1);
    sbi_node *r = cfg_parse_ok("a: ${CFG_T_UNSET:-fallback}\nb: ${CFG_T_EMPTY:-fb}\n"
                               "c: ${CFG_T_SET:-fb}\nd: ${CFG_T_UNSET:-}\ne: [\"${CFG_T_EMPTY}\"]\n"
                               "f: \"${CFG_T_UNSET:-a b: c}\"\n");
    cr_assert_str_eq(cfg_text(r, "a"), "fallback");
    cr_assert_str_eq(cfg_text(r, "b"), "fb");
    cr_assert_str_eq(cfg_text(r, "c"), "given");
    cr_assert_str_eq(cfg_text(r, "d"), "");
    cr_assert_str_eq(cfg_text(r, "e.0"), "");
    cr_assert_str_eq(cfg_text(r, "f"), "a b: c");
    sbi_node_free(&r);
}

Test(interp, nested_default)
{
    unsetenv("CFG_T_A");
    setenv("CFG_T_B", "bee", 1);
    sbi_node *r = cfg_parse_ok("x: ${CFG_T_A:-${CFG_T_B}}\ny: ${CFG_T_A:-<${CFG_T_A:-z}>}\n");
    cr_assert_str_eq(cfg_text(r, "x"), "bee");
    cr_assert_str_eq(cfg_text(r, "y"), "<z>");
    sbi_node_free(&r);
}

Test(interp, dollar_escape)
{
    setenv("CFG_T_X", "v", 1);
    sbi_node *r = cfg_parse_ok("a: cost $$5\nb: $$${CFG_T_X}\nc: $5 and $\nd: $${CFG_T_X}\n"
                               "e: ${CFG_T_UNSET2:-$$}\n");
    cr_assert_str_eq(cfg_text(r, "a"), "cost $5");
    cr_assert_str_eq(cfg_text(r, "b"), "$v");
    cr_assert_str_eq(cfg_text(r, "c"), "$5 and $", "a lone $ stays");
    cr_assert_str_eq(cfg_text(r, "d"), "${CFG_T_X}", "$$ then {..} is literal");
    cr_assert_str_eq(cfg_text(r, "e"), "$");
    sbi_node_free(&r);
}

Test(interp, unterminated_reference)
{
    sb_error e = cfg_parse_err("a: 1\nb: pre${CFG_T_X\n");
    cr_assert_str_eq(e.where, "t.yaml:2:4");
    cfg_assert_has(e, "unterminated");
    sb_error e2 = cfg_parse_err("b: ${CFG_T_X:-abc\n");
    cfg_assert_has(e2, "unterminated");
    cfg_assert_has(e2, "CFG_T_X");
    sb_error e3 = cfg_parse_err("b: ${\n");
    cfg_assert_has(e3, "unterminated");
}

Test(interp, bad_variable_name)
{
    sb_error e = cfg_parse_err("b: ${1ABC}\n");
    cfg_assert_has(e, "t.yaml:1:4");
    cfg_assert_has(e, "bad variable reference");
    sb_error e2 = cfg_parse_err("b: ${A B}\n");
    cfg_assert_has(e2, "bad variable reference");
}

Test(interp, values_are_not_reparsed)
{
    setenv("CFG_T_BOOL", "true", 1);
    setenv("CFG_T_LIST", "[1, 2]", 1);
    setenv("CFG_T_MAP", "{a: 1}", 1);
    setenv("CFG_T_NUM", "5", 1);
    sbi_node *r = cfg_parse_ok("b: ${CFG_T_BOOL}\nl: ${CFG_T_LIST}\nm: ${CFG_T_MAP}\n"
                               "n: \"${CFG_T_NUM}\"\ni: ${CFG_T_NUM}\n");
    cr_assert_eq(sbi_node_get(r, "l")->kind, SBI_SCALAR);
    cr_assert_eq(sbi_node_get(r, "m")->kind, SBI_SCALAR);
    char *j = cfg_json(r);
    cr_assert_str_eq(j, "{\"b\":true,\"l\":\"[1, 2]\",\"m\":\"{a: 1}\",\"n\":\"5\",\"i\":5}");
    free(j);
    sbi_node_free(&r);
}

Test(interp, keys_not_interpolated)
{
    setenv("CFG_T_K", "kk", 1);
    sbi_node *r = cfg_parse_ok("${CFG_T_K}: 1\n");
    cr_assert_str_eq(r->keys[0], "${CFG_T_K}");
    sbi_node_free(&r);
}

Test(interp, non_utf8_value_refused)
{
    setenv("CFG_T_LATIN1", "caf\xe9", 1);
    sb_error e = cfg_parse_err("a: ${CFG_T_LATIN1}\n");
    cfg_assert_has(e, "CFG_T_LATIN1");
    cfg_assert_has(e, "UTF-8");
}

Test(interp, secret_values_never_in_messages)
{
    setenv("CFG_T_SECRET", "sk-very-secret", 1);
    unsetenv("CFG_T_NOPE3");
    sb_error e = cfg_parse_err("a: ${CFG_T_SECRET}${CFG_T_NOPE3}\n");
    cr_assert_null(strstr(cfg_errstr(&e), "sk-very-secret"));
    cfg_assert_has(e, "CFG_T_NOPE3");
}
