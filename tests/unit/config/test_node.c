/* tests/unit/config/test_node.c — the tree API: dotted paths, set_path, map_set/remove,
 * clone, locations, interning, and did-you-mean. */
#include "helpers.h"

TestSuite(node, .fini = cfg_leak_check);
TestSuite(suggest, .fini = cfg_leak_check);

static const sbi_loc L0 = { NULL, 0, 0 };

Test(node, path_lookup)
{
    sbi_node *r = cfg_parse_ok("experiment:\n  test:\n    - {dataset: meld}\n"
                               "    - {dataset: iemocap}\n  \"0\": zero\n");
    cr_assert_str_eq(cfg_text(r, "experiment.test.0.dataset"), "meld");
    cr_assert_str_eq(cfg_text(r, "experiment.test.1.dataset"), "iemocap");
    cr_assert_str_eq(cfg_text(r, "experiment.0"), "zero", "a map key that looks like a number");
    cr_assert_eq(sbi_node_path(r, "experiment.test")->kind, SBI_SEQ);
    cr_assert_null(sbi_node_path(r, "experiment.test.2"));
    cr_assert_null(sbi_node_path(r, "experiment.test.x"));
    cr_assert_null(sbi_node_path(r, "experiment.test.-1"));
    cr_assert_null(sbi_node_path(r, "experiment.nope"));
    cr_assert_null(sbi_node_path(r, "experiment."));
    cr_assert_null(sbi_node_path(r, "experiment.test.0.dataset.more"));
    cr_assert_null(sbi_node_path(NULL, "a"));
    cr_assert_null(sbi_node_get(sbi_node_path(r, "experiment.test"), "0"), "get on a SEQ");
    sbi_node_free(&r);
}

Test(node, set_path_creates_and_replaces)
{
    sbi_node *r = cfg_parse_ok("a: {b: 1}\nl: [x, y]\nn:\n");
    sb_error e = { 0 };
    sbi_loc at = { sbi_intern("here"), 7, 3 };
    cr_assert_eq(sbi_node_set_path(r, "a.b", sbi_node_new_scalar("2", 0, at), &e), SB_OK);
    cr_assert_eq(sbi_node_set_path(r, "a.c.d.e", sbi_node_new_scalar("3", 0, at), &e), SB_OK);
    cr_assert_eq(sbi_node_set_path(r, "l.1", sbi_node_new_scalar("z", 0, at), &e), SB_OK);
    cr_assert_eq(sbi_node_set_path(r, "n.k", sbi_node_new_scalar("v", 0, at), &e), SB_OK,
                 "a null on the way becomes a map: %s", cfg_errstr(&e));
    char *s = cfg_json(r);
    cr_assert_str_eq(s, "{\"a\":{\"b\":2,\"c\":{\"d\":{\"e\":3}}},\"l\":[\"x\",\"z\"],"
                        "\"n\":{\"k\":\"v\"}}");
    free(s);
    const sbi_node *a = sbi_node_get(r, "a");
    cr_assert_eq(a->key_locs[1].line, 7, "created keys are located at the value");
    sbi_node_free(&r);
}

Test(node, set_path_errors_free_the_value)
{
    sbi_node *r = cfg_parse_ok("a: 1\nl: [x]\n");
    sb_error e = { 0 };
    cr_assert_eq(sbi_node_set_path(r, "a.b", sbi_node_new_scalar("v", 0, L0), &e), SB_ERR_CONFIG);
    cfg_assert_has(e, "'a' is a scalar");
    cfg_assert_has(e, "t.yaml:1:4");
    sb_error e2 = { 0 };
    cr_assert_neq(sbi_node_set_path(r, "l.3", sbi_node_new_scalar("v", 0, L0), &e2), SB_OK);
    cfg_assert_has(e2, "1 items");
    sb_error e3 = { 0 };
    cr_assert_neq(sbi_node_set_path(r, "", sbi_node_new_scalar("v", 0, L0), &e3), SB_OK);
    sb_error e4 = { 0 };
    cr_assert_neq(sbi_node_set_path(r, "x.", sbi_node_new_scalar("v", 0, L0), &e4), SB_OK);
    cfg_assert_has(e4, "empty component");
    sbi_node_free(&r); /* LeakSanitizer checks that the refused values were freed */
}

Test(node, map_set_replace_keeps_position_and_remove)
{
    sbi_node *m = sbi_node_new_map(L0);
    for (int i = 0; i < 20; i++) {
        char k[8], v[8];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "%d", i);
        sbi_map_set(m, k, L0, sbi_node_new_scalar(v, 0, L0));
    }
    cr_assert_eq(m->n, 20);
    sbi_map_set(m, "k3", L0, sbi_node_new_scalar("new", 1, L0));
    cr_assert_eq(m->n, 20);
    cr_assert_str_eq(m->keys[3], "k3");
    cr_assert_str_eq(m->items[3]->text, "new");
    sbi_node_remove(m, "k0");
    sbi_node_remove(m, "absent");
    cr_assert_eq(m->n, 19);
    cr_assert_str_eq(m->keys[0], "k1");
    cr_assert_str_eq(m->keys[18], "k19");
    for (int i = 1; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        sbi_node_remove(m, k);
    }
    cr_assert_eq(m->n, 0);
    sbi_map_set(m, "again", L0, sbi_node_new_scalar("1", 0, L0));
    cr_assert_str_eq(cfg_text(m, "again"), "1");
    sbi_node_free(&m);
}

Test(node, seq_push_and_clone_are_deep)
{
    sbi_node *s = sbi_node_new_seq(L0);
    for (int i = 0; i < 100; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        sbi_seq_push(s, sbi_node_new_scalar(v, 0, L0));
    }
    sbi_node *m = sbi_node_new_map(L0);
    sbi_map_set(m, "s", L0, s);
    sbi_node *c = sbi_node_clone(m);
    cr_assert_eq(sbi_node_path(c, "s")->n, 100);
    cr_assert_neq(sbi_node_path(c, "s.99"), sbi_node_path(m, "s.99"));
    cr_assert_str_eq(cfg_text(c, "s.99"), "99");
    char *a = cfg_json(m), *b = cfg_json(c);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    sbi_node_free(&m);
    cr_assert_str_eq(cfg_text(c, "s.0"), "0", "the clone outlives the original");
    sbi_node_free(&c);
    sbi_seq_push(NULL, sbi_node_new_scalar("leak?", 0, L0)); /* freed, not leaked */
}

Test(node, loc_str_and_intern)
{
    char buf[64];
    sbi_loc a = { sbi_intern("x/y.yaml"), 3, 7 };
    cr_assert_str_eq(sbi_loc_str(a, buf, sizeof buf), "x/y.yaml:3:7");
    sbi_loc b = { sbi_intern("x/y.yaml"), 0, 0 };
    cr_assert_str_eq(sbi_loc_str(b, buf, sizeof buf), "x/y.yaml");
    cr_assert_eq(a.file, b.file, "interned names are shared");
    char tmp[16] = "x/y.yaml";
    cr_assert_eq(sbi_intern(tmp), a.file);
    cr_assert_neq(sbi_intern("other"), a.file);
}

Test(suggest, did_you_mean)
{
    const char *c[] = { "labels", "layers", "encoder", "epochs", "lr", NULL };
    cr_assert_str_eq(sbi_did_you_mean("lables", c), "labels", "a swap costs 1");
    cr_assert_str_eq(sbi_did_you_mean("encodr", c), "encoder");
    cr_assert_str_eq(sbi_did_you_mean("epoch", c), "epochs");
    cr_assert_str_eq(sbi_did_you_mean("labels", c), "labels");
    cr_assert_str_eq(sbi_did_you_mean("lt", c), "lr");
    cr_assert_null(sbi_did_you_mean("xyz", c));
    cr_assert_null(sbi_did_you_mean("learning_rate", c));
    /* threshold max(1, len/3): "encodxx" (7 → 2) reaches encoder, "enxxxer" (3 edits) not */
    cr_assert_str_eq(sbi_did_you_mean("encodxx", c), "encoder");
    cr_assert_null(sbi_did_you_mean("enxxxer", c));
    const char *none[] = { NULL };
    cr_assert_null(sbi_did_you_mean("a", none));
    cr_assert_null(sbi_did_you_mean(NULL, c));
    const char *tie[] = { "ab", "ba", NULL };
    cr_assert_str_eq(sbi_did_you_mean("aa", tie), "ab", "ties keep the first");
}
