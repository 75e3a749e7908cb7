/* tests/fuzz/fuzz_config.c — libFuzzer target for the config module: arbitrary bytes go
 * through sbi_config_parse_string, and a tree that parses goes on through JSON typing and
 * sweep expansion. Crashes, leaks, UB, or an error without a code are findings. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[2200];
    sb_error err = {0};
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
    sb_error xerr = {0};
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

    const char **keys = sbi_config_sweep_keys(root);
    for (size_t i = 0; keys && keys[i]; i++)
        (void)sbi_node_path(root, keys[i]);
    free(keys);

    sbi_node *copy = sbi_node_clone(root);
    sbi_node_free(&copy);
    sbi_node_free(&root);
    return 0;
}
