/* core/cli/cmd_merge.c — `serbench merge SRC... --into DST [--dry-run] [--json]
 * [--allow-mixed] [--partial]`: merge shards' results stores (merge.h, docs/cli.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "merge.h"

static const char *const table_order[] = { "runs",         "metrics",  "predictions",
                                           "stages",       "labels",   "item_failures",
                                           "plugin_cache", "features", "file_hashes" };

static void print_text(const json_t *r, FILE *f)
{
    int dry = json_is_true(json_object_get(r, "dry_run"));
    fprintf(f, "%s %zu store%s into %s%s\n", dry ? "would merge" : "merge",
            json_array_size(json_object_get(r, "sources")),
            json_array_size(json_object_get(r, "sources")) == 1 ? "" : "s",
            json_string_value(json_object_get(r, "into")),
            dry ? " (dry run: nothing written)" : "");
    fprintf(f, "%-14s %9s %9s %14s %10s\n", "table", "added", "replaced", "already there",
            "conflicts");
    const json_t *tabs = json_object_get(r, "tables");
    for (size_t k = 0; k < sizeof table_order / sizeof *table_order; k++) {
        const json_t *t = json_object_get(tabs, table_order[k]);
        fprintf(f, "%-14s %9lld %9lld %14lld %10lld\n", table_order[k],
                (long long)json_integer_value(json_object_get(t, "added")),
                (long long)json_integer_value(json_object_get(t, "replaced")),
                (long long)json_integer_value(json_object_get(t, "already_there")),
                (long long)json_integer_value(json_object_get(t, "conflicts")));
    }
    const json_t *files = json_object_get(r, "files");
    fprintf(f, "files: %lld copied, %lld hard-linked, %lld already there\n",
            (long long)json_integer_value(json_object_get(files, "copied")),
            (long long)json_integer_value(json_object_get(files, "linked")),
            (long long)json_integer_value(json_object_get(files, "already_there")));
}

static void print_problems(const json_t *r)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(r, "warnings"), i, v)
    {
        fprintf(stderr, "serbench: warning: %s\n", json_string_value(v));
    }
    json_array_foreach(json_object_get(r, "conflicts"), i, v)
    {
        fprintf(stderr, "serbench: conflict: %s %s in",
                json_string_value(json_object_get(v, "table")),
                json_string_value(json_object_get(v, "key")));
        size_t k;
        const json_t *s;
        json_array_foreach(json_object_get(v, "sources"), k, s)
        {
            fprintf(stderr, "%s %s", k ? "," : "", json_string_value(s));
        }
        fputc('\n', stderr);
    }
    json_int_t more = json_integer_value(json_object_get(r, "n_conflicts")) -
                      (json_int_t)json_array_size(json_object_get(r, "conflicts"));
    if (more > 0)
        fprintf(stderr, "serbench: … and %lld more conflicts\n", (long long)more);
}

int cmd_merge(int argc, char **argv)
{
    sbi_merge_opts o = { 0 };
    int json = 0, quiet = 0;
    const char **srcs = calloc((size_t)argc, sizeof *srcs);
    if (!srcs)
        return EXIT_USAGE;
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--into")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "serbench: error: --into needs a folder\n");
                free(srcs);
                return EXIT_USAGE;
            }
            o.into = argv[++i];
        } else if (!strcmp(s, "--dry-run")) {
            o.dry_run = 1;
        } else if (!strcmp(s, "--json")) {
            json = 1;
        } else if (!strcmp(s, "--allow-mixed")) {
            o.allow_mixed = 1;
        } else if (!strcmp(s, "--partial")) {
            o.partial = 1;
        } else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) {
            quiet = 1;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr,
                    "serbench: error: unknown option '%s' for 'merge' (it takes SRC... --into DST "
                    "[--dry-run] [--json] [--allow-mixed] [--partial])\n",
                    s);
            free(srcs);
            return EXIT_USAGE;
        } else {
            srcs[n++] = s;
        }
    }
    if (!o.into || n == 0) {
        fprintf(stderr, "serbench: error: usage: serbench merge SRC... --into DST [--dry-run] "
                        "[--json] [--allow-mixed] [--partial]\n");
        free(srcs);
        return EXIT_USAGE;
    }
    o.srcs = srcs;
    o.n_srcs = n;
    json_t *report = NULL;
    sb_error err = { 0 };
    sb_status st = sbi_merge(&o, &report, &err);
    if (report) {
        if (json) {
            char *text = json_dumps(report, JSON_INDENT(2) | JSON_SORT_KEYS);
            if (text)
                printf("%s\n", text);
            free(text);
        } else if (!quiet || st != SB_OK) {
            print_text(report, stdout);
        }
        print_problems(report);
    }
    json_decref(report);
    free(srcs);
    return st == SB_OK ? EXIT_OK : cli_fail(&err);
}
