/* tests/unit/config/test_json.c — core-schema typing of scalars and whole trees to JSON. */
#include "helpers.h"

TestSuite(json, .fini = cfg_leak_check);

#include <math.h>

/* Type the scalar written as `yaml` (a flow value) and return its JSON. */
static json_t *typed(const char *yaml)
{
    sbi_node *n = cfg_parse_ok(yaml);
    json_t *j = sbi_scalar_to_json(n);
    cr_assert_not_null(j, "no JSON for %s", yaml);
    sbi_node_free(&n);
    return j;
}

static void want_int(const char *yaml, long long v)
{
    json_t *j = typed(yaml);
    cr_assert(json_is_integer(j), "%s should be an int (type %d)", yaml, (int)json_typeof(j));
    cr_assert_eq(json_integer_value(j), v, "%s: got %lld", yaml, json_integer_value(j));
    json_decref(j);
}

static void want_real(const char *yaml, double v)
{
    json_t *j = typed(yaml);
    cr_assert(json_is_real(j), "%s should be a real (type %d)", yaml, (int)json_typeof(j));
    double got = json_real_value(j);
    double err = fabs(got - v);
    cr_assert(err <= 1e-15 * fabs(v), "%s: got %.17g want %.17g (abs err %.3g, rel %.3g)", yaml,
              got, v, err, v != 0 ? err / fabs(v) : err);
    json_decref(j);
}

static void want_string(const char *yaml, const char *s)
{
    json_t *j = typed(yaml);
    cr_assert(json_is_string(j), "%s should be a string (type %d)", yaml, (int)json_typeof(j));
    cr_assert_str_eq(json_string_value(j), s);
    json_decref(j);
}

static void want_type(const char *yaml, json_type t)
{
    json_t *j = typed(yaml);
    cr_assert_eq(json_typeof(j), t, "%s: type %d, want %d", yaml, (int)json_typeof(j), (int)t);
    json_decref(j);
}

Test(json, ints)
{
    want_int("0", 0);
    want_int("42", 42);
    want_int("-7", -7);
    want_int("+12", 12);
    want_int("007", 7);
    want_int("0x10", 16);
    want_int("0xFf", 255);
    want_int("0o17", 15);
    want_int("9223372036854775807", 9223372036854775807LL);
}

Test(json, reals)
{
    want_real("1.0e-3", 1.0e-3);
    want_real("1e3", 1000.0);
    want_real(".5", 0.5);
    want_real("-2.5", -2.5);
    want_real("5.", 5.0);
    want_real("+1.5E+2", 150.0);
}

Test(json, bools_and_nulls)
{
    want_type("true", JSON_TRUE);
    want_type("True", JSON_TRUE);
    want_type("FALSE", JSON_FALSE);
    want_type("~", JSON_NULL);
    want_type("null", JSON_NULL);
    want_type("", JSON_NULL);
}

Test(json, strings)
{
    want_string("\"1\"", "1");
    want_string("'true'", "true");
    want_string("\"~\"", "~");
    want_string("hello", "hello");
    want_string("yes", "yes");     /* YAML 1.1 bool, a string in 1.2 */
    want_string("1_000", "1_000"); /* no underscores in 1.2 core */
    want_string("0x", "0x");
    want_string("-0x10", "-0x10");
    want_string("1.2.3", "1.2.3");
    want_string("e3", "e3");
    want_string(".", ".");
    want_string("99999999999999999999", "99999999999999999999"); /* too big: kept exact */
    want_string(".inf", ".inf");                                 /* JSON cannot hold infinities */
    want_string(".nan", ".nan");
}

Test(json, whole_tree_keeps_order_and_types)
{
    sbi_node *r =
        cfg_parse_ok("z: 1\na: [1, \"1\", 1.5, true, ~, x]\nm: {q: {r: null}, b: '0x10'}\n"
                     "e:\n");
    char *s = cfg_json(r);
    cr_assert_str_eq(s, "{\"z\":1,\"a\":[1,\"1\",1.5,true,null,\"x\"],"
                        "\"m\":{\"q\":{\"r\":null},\"b\":\"0x10\"},\"e\":null}");
    free(s);
    sbi_node_free(&r);
}

Test(json, hand_built_non_utf8_does_not_fail)
{
    sbi_loc l = { NULL, 0, 0 };
    sbi_node *m = sbi_node_new_map(l);
    sbi_map_set(m, "k\xff", l, sbi_node_new_scalar("v\xfe", 1, l));
    json_t *j = sbi_node_to_json(m);
    cr_assert_not_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    cr_assert_str_eq(s, "{\"k?\":\"v?\"}");
    free(s);
    json_decref(j);
    sbi_node_free(&m);
}
