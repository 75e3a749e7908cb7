/* tests/unit/base/test_options.c — option tables: validation messages, defaults, typing,
 * paths, lists, maps, getters. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"
#include "opts.h"

static const sb_option table[] = {
    { .name = "epochs",
      .type = SB_OPT_INT,
      .def = "30",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 1000,
      .help = "passes" },
    { .name = "lr",
      .type = SB_OPT_FLOAT,
      .def = "1e-3",
      .flags = SB_OPT_HAS_MIN,
      .min = 0,
      .help = "learning rate" },
    { .name = "shuffle", .type = SB_OPT_BOOL, .def = "true", .help = "shuffle" },
    { .name = "pool",
      .type = SB_OPT_ENUM,
      .def = "mean",
      .choices = "mean|mean+std|max",
      .help = "pooling" },
    { .name = "layers", .type = SB_OPT_LIST, .def = "all", .help = "layers" },
    { .name = "kinds", .type = SB_OPT_LIST, .choices = "a|b|c", .help = "kinds" },
    { .name = "prompt", .type = SB_OPT_PATH, .help = "a file" },
    { .name = "model", .type = SB_OPT_STRING, .flags = SB_OPT_REQUIRED, .help = "model name" },
    { .name = "context", .type = SB_OPT_MAP, .help = "context" },
    { .name = NULL },
};

static sb_opts *parse_ok(const char *yaml)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(table, yaml, "t.yaml", &o, &err), SB_OK, "%s: %s", err.where,
                 err.msg);
    return o;
}

static void parse_bad(const char *yaml, const char *frag, const char *where)
{
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(table, yaml, "t.yaml", &o, &err), SB_ERR_CONFIG, "accepted: %s",
                 yaml);
    cr_assert_null(o);
    cr_assert(strstr(err.msg, frag), "message '%s' lacks '%s'", err.msg, frag);
    if (where)
        cr_assert(strstr(err.where, where), "where '%s' lacks '%s'", err.where, where);
}

Test(options, defaults_and_types)
{
    sb_opts *o = parse_ok("model: gpt\n");
    cr_assert_eq(sb_opts_int(o, "epochs"), 30);
    cr_assert_float_eq(sb_opts_float(o, "lr"), 1e-3, 1e-15);
    cr_assert(sb_opts_bool(o, "shuffle"));
    cr_assert_str_eq(sb_opts_str(o, "pool"), "mean");
    cr_assert_eq(sb_opts_list_len(o, "layers"), 1);
    cr_assert_str_eq(sb_opts_list_item(o, "layers", 0), "all");
    cr_assert_not(sb_opts_has(o, "prompt"));
    cr_assert_null(sb_opts_str(o, "prompt"));
    cr_assert_str_eq(sb_opts_json(o, "context"), "{}");
    cr_assert_str_eq(sb_opts_where(o, "epochs"), "default");
    cr_assert_str_eq(sb_opts_where(o, "model"), "t.yaml:1:8");
    /* Asking for a name of the wrong type is a plugin bug: 0/NULL, no crash. */
    cr_assert_eq(sb_opts_int(o, "lr"), 0);
    cr_assert_null(sb_opts_str(o, "nope"));
    sbi_opts_destroy(&o);
    cr_assert_null(o);
}

Test(options, values_written)
{
    sb_opts *o = parse_ok("model: m\nepochs: 5\nlr: 2\nshuffle: false\npool: mean+std\n"
                          "layers: [0, 3, 12]\nkinds: b\ncontext: {before: 5, after: 0}\n");
    cr_assert_eq(sb_opts_int(o, "epochs"), 5);
    cr_assert_float_eq(sb_opts_float(o, "lr"), 2.0, 0); /* an int is a valid float */
    cr_assert_not(sb_opts_bool(o, "shuffle"));
    cr_assert_str_eq(sb_opts_str(o, "pool"), "mean+std");
    cr_assert_eq(sb_opts_list_len(o, "layers"), 3);
    cr_assert_str_eq(sb_opts_list_item(o, "layers", 2), "12");
    cr_assert_str_eq(sb_opts_list_item(o, "kinds", 0), "b");
    cr_assert_str_eq(sb_opts_json(o, "context"), "{\"after\":0,\"before\":5}");
    json_t *v = sbi_opts_values(o);
    cr_assert(json_is_real(json_object_get(v, "lr")));
    cr_assert(json_is_integer(json_object_get(v, "epochs")));
    sbi_opts_destroy(&o);
}

Test(options, errors_name_key_location_and_fix)
{
    parse_bad("model: m\nepoch: 5\n",
              "unknown option 'epoch' for plugin t.yaml (did you mean 'epochs'?)", "t.yaml:2:1");
    parse_bad("model: m\nzzzzzz: 5\n", "serbench plugins", "t.yaml:2:1");
    parse_bad("model: m\nepochs: many\n", "expects an integer, got 'many'", "t.yaml:2:9");
    parse_bad("model: m\nepochs: \"5\"\n", "the quoted string '5'", NULL);
    parse_bad("model: m\nepochs: 1.5\n", "expects an integer", NULL);
    parse_bad("model: m\nepochs: 0\n", "outside its range 1..1000", NULL);
    parse_bad("model: m\nlr: -1\n", "outside its range >= 0", NULL);
    parse_bad("model: m\nlr: .nan\n", "expects a number", NULL);
    parse_bad("model: m\nshuffle: yes\n", "expects true or false", NULL);
    parse_bad("model: m\npool: men\n",
              "is 'men' (did you mean 'mean'?); allowed: mean|mean+std|max", NULL);
    parse_bad("model: m\nkinds: [a, d]\n", "item 'd' not allowed", NULL);
    parse_bad("model: m\nlayers: {a: 1}\n", "expects a list", NULL);
    parse_bad("model: m\ncontext: [1]\n", "expects a mapping", NULL);
    parse_bad("model: [a]\n", "expects a string, got a list", NULL);
    parse_bad("epochs: 3\n", "needs option 'model'", NULL);
}

/* A value that came from ${VAR} may be a secret: a message about it never shows it. */
Test(options, a_value_from_the_environment_is_never_shown)
{
    setenv("SB_TEST_SECRET", "hunter2-sekrit", 1);
    static const char *const cases[] = {
        "model: m\nepochs: ${SB_TEST_SECRET}\n",
        "model: m\nepochs: \"${SB_TEST_SECRET}\"\n",
        "model: m\npool: ${SB_TEST_SECRET}\n",
        "model: m\nlr: ${SB_TEST_SECRET}\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_error err = { 0 };
        sbi_node *n = sbi_config_parse_string(cases[i], strlen(cases[i]), "t.yaml", &err);
        cr_assert(n, "%s", err.msg);
        sb_opts *o = NULL;
        cr_assert_eq(sbi_opts_validate(table, "t", n, NULL, &o, &err), SB_ERR_CONFIG, "%s",
                     cases[i]);
        cr_assert_null(strstr(err.msg, "hunter2"), "the secret is in: %s", err.msg);
        cr_assert(strstr(err.msg, "a value from an environment variable (not shown)"), "%s",
                  err.msg);
        sbi_node_free(&n);
    }
    /* without the variable, the value is shown as before */
    sb_error err = { 0 };
    sbi_node *n = sbi_config_parse_string("model: m\nepochs: many\n", 22, "t.yaml", &err);
    sb_opts *o = NULL;
    cr_assert_eq(sbi_opts_validate(table, "t", n, NULL, &o, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "got 'many'"), "%s", err.msg);
    sbi_node_free(&n);
    unsetenv("SB_TEST_SECRET");
}

Test(options, path_resolves_against_the_yaml_file)
{
    char dir[] = "/tmp/sboptsXXXXXX";
    cr_assert(mkdtemp(dir));
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%s/exp.yaml", dir);
    /* sbi_opts_parse labels locations with the name given: use the file's path. */
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_opts_parse(table, "model: m\nprompt: prompts/p.txt\n", yaml, &o, &err), SB_OK,
                 "%s", err.msg);
    char want[600];
    snprintf(want, sizeof want, "%s/prompts/p.txt", dir);
    cr_assert_str_eq(sb_opts_str(o, "prompt"), want);
    sbi_opts_destroy(&o);
    cr_assert_eq(sbi_opts_parse(table, "model: m\nprompt: /abs/p.txt\n", yaml, &o, &err), SB_OK);
    cr_assert_str_eq(sb_opts_str(o, "prompt"), "/abs/p.txt");
    sbi_opts_destroy(&o);
}

Test(options, table_checks)
{
    static const sb_option bad_enum[] = { { .name = "x", .type = SB_OPT_ENUM, .help = "h" },
                                          { 0 } };
    static const sb_option dup[] = { { .name = "x", .type = SB_OPT_INT },
                                     { .name = "x", .type = SB_OPT_INT },
                                     { 0 } };
    static const sb_option bad_name[] = { { .name = "Bad-Name", .type = SB_OPT_INT }, { 0 } };
    static const sb_option bad_def[] = { { .name = "x", .type = SB_OPT_INT, .def = "abc" }, { 0 } };
    sb_error e = { 0 };
    cr_assert_eq(sbi_opts_check_table(bad_enum, "p", &e), SB_ERR_PLUGIN);
    cr_assert(strstr(e.msg, "lists no choices"), "%s", e.msg);
    sb_error_clear(&e);
    cr_assert_eq(sbi_opts_check_table(dup, "p", &e), SB_ERR_PLUGIN);
    cr_assert(strstr(e.msg, "declared twice"), "%s", e.msg);
    sb_error_clear(&e);
    cr_assert_eq(sbi_opts_check_table(bad_name, "p", &e), SB_ERR_PLUGIN);
    sb_error_clear(&e);
    cr_assert_eq(sbi_opts_check_table(bad_def, "p", &e), SB_ERR_PLUGIN);
    cr_assert(strstr(e.msg, "default of option 'x' is invalid"), "%s", e.msg);
    sb_error e2 = { 0 };
    cr_assert_eq(sbi_opts_check_table(table, "p", &e2), SB_OK, "%s", e2.msg);
}
