/* tests/unit/config/test_parse.c — step 1: YAML text to located nodes, and every way the
 * parser must refuse input (with file:line:col and libyaml's problem text). */
#include "helpers.h"

TestSuite(parse, .fini = cfg_leak_check);

Test(parse, locations_of_nodes_and_keys)
{
    sbi_node *r = cfg_parse_ok("a: 1\nb:\n  c: x\n  d: [p, q]\n");
    cr_assert_eq(r->kind, SBI_MAP);
    cr_assert_eq(r->n, 2);
    const sbi_node *c = sbi_node_path(r, "b.c");
    cr_assert_str_eq(c->loc.file, "t.yaml");
    cr_assert_eq(c->loc.line, 3);
    cr_assert_eq(c->loc.col, 6);
    const sbi_node *b = sbi_node_get(r, "b");
    cr_assert_eq(b->key_locs[0].line, 3);
    cr_assert_eq(b->key_locs[0].col, 3);
    cr_assert_eq(r->key_locs[1].line, 2);
    cr_assert_eq(r->key_locs[1].col, 1);
    const sbi_node *q = sbi_node_path(r, "b.d.1");
    cr_assert_eq(q->loc.line, 4);
    cr_assert_eq(q->loc.col, 10);
    char buf[64];
    cr_assert_str_eq(sbi_loc_str(q->loc, buf, sizeof buf), "t.yaml:4:10");
    sbi_node_free(&r);
    cr_assert_null(r);
}

Test(parse, empty_text_is_null_node)
{
    sbi_node *r = cfg_parse_ok("# nothing here\n\n");
    cr_assert_eq(r->kind, SBI_NULL);
    sbi_node_free(&r);
}

Test(parse, quoted_flag_and_nulls)
{
    sbi_node *r = cfg_parse_ok("p: plain\ns: 'single'\nd: \"double\"\nl: |\n  block\n"
                               "e:\nt: ~\nn: null\nqn: \"null\"\nst: !!str 12\n");
    cr_assert_eq(sbi_node_get(r, "p")->quoted, 0);
    cr_assert_eq(sbi_node_get(r, "s")->quoted, 1);
    cr_assert_eq(sbi_node_get(r, "d")->quoted, 1);
    cr_assert_eq(sbi_node_get(r, "l")->quoted, 1);
    cr_assert_str_eq(cfg_text(r, "l"), "block\n");
    cr_assert_eq(sbi_node_get(r, "e")->kind, SBI_NULL);
    cr_assert_eq(sbi_node_get(r, "t")->kind, SBI_NULL);
    cr_assert_eq(sbi_node_get(r, "n")->kind, SBI_NULL);
    cr_assert_eq(sbi_node_get(r, "qn")->kind, SBI_SCALAR);
    cr_assert_str_eq(cfg_text(r, "qn"), "null");
    cr_assert_eq(sbi_node_get(r, "st")->quoted, 1, "!!str makes a string");
    sbi_node_free(&r);
}

Test(parse, anchors_are_copied)
{
    sbi_node *r = cfg_parse_ok("a: &x {k: 1, l: [1, 2]}\nb: *x\nc: &s hello\nd: *s\n");
    sbi_node *a = sbi_node_get(r, "a"), *b = sbi_node_get(r, "b");
    cr_assert_eq(b->kind, SBI_MAP);
    cr_assert_neq(a, b);
    cr_assert_neq(sbi_node_path(r, "a.l"), sbi_node_path(r, "b.l"), "alias must be a copy");
    cr_assert_str_eq(cfg_text(r, "b.k"), "1");
    cr_assert_eq(b->loc.line, 2, "the copy is located at the alias");
    cr_assert_str_eq(cfg_text(r, "d"), "hello");
    char *j = cfg_json(r);
    cr_assert_str_eq(j, "{\"a\":{\"k\":1,\"l\":[1,2]},\"b\":{\"k\":1,\"l\":[1,2]},"
                        "\"c\":\"hello\",\"d\":\"hello\"}");
    free(j);
    sbi_node_free(&r);
}

Test(parse, unknown_alias)
{
    sb_error e = cfg_parse_err("a: 1\nb: *nope\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "t.yaml:2:4");
    cfg_assert_has(e, "*nope");
}

Test(parse, merge_key_refused_with_location)
{
    sb_error e = cfg_parse_err("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "t.yaml:3:3");
    cfg_assert_has(e, "<<");
}

Test(parse, quoted_merge_key_is_an_ordinary_key)
{
    sbi_node *r = cfg_parse_ok("\"<<\": 1\n");
    cr_assert_str_eq(cfg_text(r, "<<"), "1");
    sbi_node_free(&r);
}

Test(parse, duplicate_key_names_both_locations)
{
    sb_error e = cfg_parse_err("top:\n  lr: 1\n  epochs: 3\n  lr: 2\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cr_assert_str_eq(e.where, "t.yaml:4:3");
    cfg_assert_has(e, "'lr'");
    cfg_assert_has(e, "t.yaml:2:3");
}

Test(parse, tab_indentation)
{
    sb_error e = cfg_parse_err("a: 1\nb:\n\tc: 2\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "t.yaml:3:1");
    cfg_assert_has(e, "found character that cannot start any token");
    cfg_assert_has(e, "tabs");
}

Test(parse, syntax_error_has_libyaml_text_and_location)
{
    sb_error e = cfg_parse_err("a: [1, 2\nb: 3\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "did not find expected ',' or ']'");
    cfg_assert_has(e, "t.yaml:");
    cfg_assert_has(e, "t.yaml:1:4"); /* the context: where the flow sequence opened */
}

Test(parse, bad_indentation)
{
    sb_error e = cfg_parse_err("a:\n  b: 1\n c: 2\n");
    cfg_assert_has(e, "t.yaml:3:2");
}

Test(parse, two_documents_refused)
{
    sb_error e = cfg_parse_err("a: 1\n---\nb: 2\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "t.yaml:2:1");
    cfg_assert_has(e, "document");
}

Test(parse, one_explicit_document_is_fine)
{
    sbi_node *r = cfg_parse_ok("---\na: 1\n...\n");
    cr_assert_str_eq(cfg_text(r, "a"), "1");
    sbi_node_free(&r);
}

Test(parse, non_utf8_refused_with_location)
{
    sb_error e = cfg_parse_err("a: 1\nname: caf\xe9\n");
    cr_assert_eq(e.code, SB_ERR_CONFIG);
    cfg_assert_has(e, "t.yaml:2:10");
    cfg_assert_has(e, "UTF-8");
    sb_error e2 = cfg_parse_err("a: \xed\xa0\x80\n"); /* an encoded surrogate */
    cfg_assert_has(e2, "UTF-8");
    sb_error e3 = cfg_parse_err("a: \xc0\xaf\n"); /* overlong '/' */
    cfg_assert_has(e3, "UTF-8");
}

Test(parse, utf8_text_and_bom_accepted)
{
    sbi_node *r = cfg_parse_ok("\xef\xbb\xbfname: caf\xc3\xa9 \xf0\x9f\x98\x80\n");
    cr_assert_str_eq(cfg_text(r, "name"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    sbi_node_free(&r);
}

Test(parse, nul_and_control_characters)
{
    sb_error e = cfg_parse_err("a: \"x\\0y\"\n");
    cfg_assert_has(e, "NUL");
    cfg_assert_has(e, "t.yaml:1:4");
    const char raw[] = "a: x\0y\n";
    sb_error e2 = { 0 };
    sbi_node *n = sbi_config_parse_string(raw, sizeof raw - 1, "t.yaml", &e2);
    cr_assert_null(n);
    cfg_assert_has(e2, "t.yaml:1:5");
}

Test(parse, unsupported_tag)
{
    sb_error e = cfg_parse_err("a: !!binary aGVsbG8=\n");
    cfg_assert_has(e, "t.yaml:1:4");
    cfg_assert_has(e, "tag");
}

Test(parse, collection_key_refused)
{
    sb_error e = cfg_parse_err("? [a, b]\n: 1\n");
    cfg_assert_has(e, "t.yaml:1:3");
    cfg_assert_has(e, "key");
}

Test(parse, empty_key_refused)
{
    sb_error e = cfg_parse_err(": 1\n");
    cfg_assert_has(e, "t.yaml:1:1");
}

Test(parse, billion_laughs_stopped)
{
    const char *text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    sb_error e = cfg_parse_err(text);
    cfg_assert_has(e, "aliases expand");
}

Test(parse, deep_nesting_refused_not_crashing)
{
    size_t depth = 5000;
    char *text = malloc(2 * depth + 8);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    sb_error e = cfg_parse_err(text);
    cfg_assert_has(e, "nest deeper");
    free(text);
}

Test(parse, include_refused_in_text)
{
    sb_error e = cfg_parse_err("include: base.yaml\na: 1\n");
    cfg_assert_has(e, "t.yaml:1:1");
    cfg_assert_has(e, "include");
}

Test(parse, name_labels_locations)
{
    sb_error e = { 0 };
    sbi_node *n = sbi_config_parse_string("a: [", 4, "<default of x.y>", &e);
    cr_assert_null(n);
    cr_assert_not_null(strstr(e.where, "<default of x.y>:"), "%s", e.where);
    cfg_assert_has(e, "YAML syntax error");
}

Test(parse, scalar_and_list_roots_allowed_in_text)
{
    sbi_node *s = cfg_parse_ok("30");
    cr_assert_eq(s->kind, SBI_SCALAR);
    cr_assert_str_eq(s->text, "30");
    sbi_node *l = cfg_parse_ok("[a, b]");
    cr_assert_eq(l->kind, SBI_SEQ);
    cr_assert_eq(l->n, 2);
    sbi_node_free(&s);
    sbi_node_free(&l);
}
