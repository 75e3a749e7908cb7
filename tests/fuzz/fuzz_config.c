/* tests/fuzz/fuzz_config.c — libFuzzer target for the config loader: arbitrary bytes go
 * through sbi_config_parse_string, and a tree that parses goes on through JSON typing, sweep
 * expansion, and validation of every instance block (datasets:, heads:, ...) against an
 * option table with every option type — the path a config takes to a resolved config.
 * Crashes, leaks, UB, or an error without a code are findings. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One row of each option type, with ranges, choices and a required key. */
static const sb_option fuzz_table[] = {
    { .name = "plugin", .type = SB_OPT_STRING, .help = "h" },
    { .name = "epochs",
      .type = SB_OPT_INT,
      .def = "3",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 100,
      .help = "h" },
    { .name = "lr",
      .type = SB_OPT_FLOAT,
      .def = "0.1",
      .flags = SB_OPT_HAS_MIN,
      .min = 0,
      .help = "h" },
    { .name = "on", .type = SB_OPT_BOOL, .def = "true", .help = "h" },
    { .name = "path", .type = SB_OPT_PATH, .help = "h" },
    { .name = "pool", .type = SB_OPT_ENUM, .def = "mean", .choices = "mean|mean+std", .help = "h" },
    { .name = "layers",
      .type = SB_OPT_LIST,
      .def = "all",
      .flags = SB_OPT_HAS_MAX,
      .max = 50,
      .help = "h" },
    { .name = "context", .type = SB_OPT_MAP, .help = "h" },
    { .name = "model", .type = SB_OPT_STRING, .flags = SB_OPT_REQUIRED, .help = "h" },
    { .name = NULL },
};

static void validate_blocks(const sbi_node *root)
{
    static const char *const blocks[] = { "datasets", "labellers", "encoders", "heads" };
    for (size_t b = 0; b < 4; b++) {
        const sbi_node *m = sbi_node_get(root, blocks[b]);
        for (size_t i = 0; m && m->kind == SBI_MAP && i < m->n; i++) {
            sb_opts *o = NULL;
            sb_error e = { 0 };
            sb_status st = sbi_opts_validate(fuzz_table, "fuzz", m->items[i], NULL, &o, &e);
            if ((st == SB_OK) != (o != NULL) || (st != SB_OK && (e.code != st || !e.msg[0])))
                __builtin_trap();
            if (o) {
                (void)sb_opts_int(o, "epochs");
                (void)sb_opts_json(o, "context");
                for (size_t k = 0; k < sb_opts_list_len(o, "layers"); k++)
                    (void)sb_opts_list_item(o, "layers", k);
            }
            sbi_opts_destroy(&o);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[2200];
    sb_error err = { 0 };
    sbi_node *root = sbi_config_parse_string((const char *)data, size, "fuzz.yaml", &err);
    if (!root) {
        if (err.code == SB_OK || !err.msg[0]) /* a failure must say what failed */
            __builtin_trap();
        sb_error_format(&err, buf, sizeof buf);
        return 0;
    }

    json_t *j = sbi_node_to_json(root);
    if (!j)
        __builtin_trap(); /* only allocation failure may give NULL */
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    free(text);
    json_decref(j);

    sbi_node **runs = NULL;
    size_t n_runs = 0;
    sb_error xerr = { 0 };
    sb_status st = sbi_config_expand(root, &runs, &n_runs, &xerr);
    if (st == SB_OK) {
        if (n_runs == 0 || !runs)
            __builtin_trap(); /* a successful expansion has at least one run */
        for (size_t i = 0; i < n_runs; i++) {
            if (!sbi_node_get(runs[i], "seed") || sbi_node_get(runs[i], "sweep"))
                __builtin_trap();
            sbi_node_free(&runs[i]);
        }
        free(runs);
    } else if (xerr.code != st || runs || n_runs) {
        __builtin_trap();
    }

    validate_blocks(root);

    const char **keys = sbi_config_sweep_keys(root);
    for (size_t i = 0; keys && keys[i]; i++)
        (void)sbi_node_path(root, keys[i]);
    free(keys);

    sbi_node *copy = sbi_node_clone(root);
    sbi_node_free(&copy);
    sbi_node_free(&root);
    return 0;
}
