/* core/cli/cmd_plugins.c — `serbench plugins [NAME] [--json]`: what is installed and from
 * where, or one plugin's option table as help. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "loader.h"
#include "opts.h"

static json_t *option_json(const sb_option *o)
{
    json_t *j =
        json_pack("{s:s, s:s, s:b, s:s}", "name", o->name, "type", sbi_opt_type_name(o->type),
                  "required", (o->flags & SB_OPT_REQUIRED) != 0, "help", o->help ? o->help : "");
    if (o->def)
        json_object_set_new(j, "default", json_string(o->def));
    if (o->flags & SB_OPT_HAS_MIN)
        json_object_set_new(j, "min", json_real(o->min));
    if (o->flags & SB_OPT_HAS_MAX)
        json_object_set_new(j, "max", json_real(o->max));
    if (o->choices)
        json_object_set_new(j, "choices", json_string(o->choices));
    return j;
}

static void print_plugin_help(const sbi_plugin *p)
{
    const sb_plugin *d = p->desc;
    printf("%s %s (%s plugin)\n  %s\n  file: %s (%s)\n\noptions:\n", d->name, d->version,
           sb_kind_name(d->kind), d->summary, p->path, p->origin);
    if (!d->options || !d->options->name)
        printf("  (none)\n");
    for (const sb_option *o = d->options; o && o->name; o++) {
        char range[96] = "";
        if ((o->flags & SB_OPT_HAS_MIN) && (o->flags & SB_OPT_HAS_MAX))
            snprintf(range, sizeof range, " [%g..%g]", o->min, o->max);
        else if (o->flags & SB_OPT_HAS_MIN)
            snprintf(range, sizeof range, " [>= %g]", o->min);
        else if (o->flags & SB_OPT_HAS_MAX)
            snprintf(range, sizeof range, " [<= %g]", o->max);
        printf("  %-18s %-7s%s%s%s%s%s%s\n      %s\n", o->name, sbi_opt_type_name(o->type),
               (o->flags & SB_OPT_REQUIRED) ? " required" : "", o->def ? " default: " : "",
               o->def ? o->def : "", range, o->choices ? " one of: " : "",
               o->choices ? o->choices : "", o->help ? o->help : "");
    }
}

int cmd_plugins(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 0, &a);
    sbi_registry *reg = NULL;
    sb_error err = { 0 };
    if (!rc && sbi_registry_create(cli_builtin_plugin_dirs(), NULL, 0, &reg, &err) != SB_OK)
        rc = cli_fail(&err);
    if (rc)
        goto out;
    if (a.n_positional == 1) {
        const sbi_plugin *p = NULL;
        if (sbi_registry_get(reg, a.positional[0], 0, &p, &err) != SB_OK) {
            rc = cli_fail(&err);
            goto out;
        }
        if (a.json) {
            json_t *opts = json_array();
            for (const sb_option *o = p->desc->options; o && o->name; o++)
                json_array_append_new(opts, option_json(o));
            json_t *j =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", p->desc->name, "kind",
                          sb_kind_name(p->desc->kind), "version", p->desc->version, "summary",
                          p->desc->summary, "path", p->path, "origin", p->origin, "options", opts);
            char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
            json_decref(j);
        } else {
            print_plugin_help(p);
        }
        goto out;
    }
    if (a.n_positional > 1) {
        fprintf(stderr, "serbench: error: usage: serbench plugins [NAME] [--json]\n");
        rc = EXIT_USAGE;
        goto out;
    }
    const sbi_plugin **list = NULL;
    size_t n = 0;
    void *broken = NULL;
    sbi_registry_list(reg, &list, &n, &broken, &err);
    if (a.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", list[i]->desc->name,
                               "kind", sb_kind_name(list[i]->desc->kind), "version",
                               list[i]->desc->version, "summary", list[i]->desc->summary, "path",
                               list[i]->path, "origin", list[i]->origin));
        json_t *j = json_pack("{s:o, s:O}", "plugins", arr, "broken", (json_t *)broken);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        for (sb_kind k = SB_KIND_DATASET; k <= SB_KIND_HEAD; k++) {
            printf("%ss:\n", sb_kind_name(k));
            for (size_t i = 0; i < n; i++)
                if (list[i]->desc->kind == k)
                    printf("  %-12s %-8s %s\n               %s (%s)\n", list[i]->desc->name,
                           list[i]->desc->version, list[i]->desc->summary, list[i]->path,
                           list[i]->origin);
        }
        size_t nb = json_array_size(broken);
        for (size_t i = 0; i < nb; i++) {
            json_t *b = json_array_get(broken, i);
            fprintf(stderr, "serbench: warning: %s: %s\n",
                    json_string_value(json_object_get(b, "path")),
                    json_string_value(json_object_get(b, "error")));
        }
        printf("search path:");
        for (size_t i = 0; i < sbi_registry_n_dirs(reg); i++) {
            const char *origin = NULL;
            const char *dir = sbi_registry_dir(reg, i, &origin);
            printf("%s %s (%s)", i ? "," : "", dir, origin);
        }
        printf("\n");
    }
    json_decref(broken);
out:
    sbi_registry_destroy(&reg);
    free(a.overrides);
    free(a.positional);
    return rc;
}
