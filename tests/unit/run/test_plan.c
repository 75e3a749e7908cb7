/* tests/unit/run/test_plan.c — config → runs: canonical configs, run and group ids,
 * sweeps × seeds, implicit instances, reference errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static char builtin[4096];
static char dir[64];

static void setup(void)
{
    const char *root = getenv("SB_BUILD_ROOT");
    cr_assert(root);
    snprintf(builtin, sizeof builtin,
             "%s/plugins/datasets/manifest:%s/plugins/labellers/human:%s/plugins/encoders/fbank:"
             "%s/plugins/heads/linear",
             root, root, root, root);
    snprintf(dir, sizeof dir, "/tmp/sbplanXXXXXX");
    cr_assert(mkdtemp(dir));
}

static const char *BASE = "datasets:\n"
                          "  d: {plugin: manifest, path: m.csv}\n"
                          "  unused: {plugin: manifest, path: other.csv}\n"
                          "heads:\n"
                          "  lin: {plugin: linear, epochs: 7}\n"
                          "experiment:\n"
                          "  train: {dataset: d}\n"
                          "  test: {dataset: d}\n"
                          "  encoder: fbank\n"
                          "  head: lin\n";

static sbi_plan *load(const char *text, const char *const *ov, size_t nov, sb_error *err)
{
    char path[128];
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    sbi_plan *p = NULL;
    sbi_plan_load(path, ov, nov, builtin, &p, err);
    return p;
}

Test(plan, resolves_defaults_and_ids, .init = setup)
{
    sb_error err = { 0 };
    sbi_plan *p = load(BASE, NULL, 0, &err);
    cr_assert(p, "%s: %s", err.where, err.msg);
    cr_assert_eq(p->n_runs, 1);
    sbi_run *r = &p->runs[0];
    cr_assert_eq(r->seed, 1);
    cr_assert_str_eq(r->train.split, "train");
    cr_assert_str_eq(r->train.labels, "human");
    cr_assert_str_eq(r->tests[0].name, "d/test");
    cr_assert_eq(r->n_metrics, 4);
    /* The canonical config holds only used instances, with versions and defaults. */
    json_t *ds = json_object_get(r->config, "datasets");
    cr_assert(json_object_get(ds, "d"));
    cr_assert_null(json_object_get(ds, "unused"));
    json_t *lin = json_object_get(json_object_get(r->config, "heads"), "lin");
    cr_assert_str_eq(json_string_value(json_object_get(lin, "plugin")), "linear");
    cr_assert(json_string_value(json_object_get(lin, "version")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(lin, "options"), "epochs")), 7);
    cr_assert(json_object_get(json_object_get(lin, "options"), "lr"), "default lr filled");
    cr_assert(json_object_get(json_object_get(r->config, "encoders"), "fbank"), "implicit encoder");
    char id1[SB_HASH_HEX];
    strcpy(id1, r->run_id);
    sbi_plan_destroy(&p);

    /* Same config, same id; an unused block changed: same id; a used option: new id. */
    p = load(BASE, NULL, 0, &err);
    cr_assert_str_eq(p->runs[0].run_id, id1);
    sbi_plan_destroy(&p);
    const char *ov1[] = { "datasets.unused.path=elsewhere.csv" };
    p = load(BASE, ov1, 1, &err);
    cr_assert(p, "%s", err.msg);
    cr_assert_str_eq(p->runs[0].run_id, id1);
    sbi_plan_destroy(&p);
    const char *ov2[] = { "heads.lin.epochs=8" };
    p = load(BASE, ov2, 1, &err);
    cr_assert(p, "%s", err.msg);
    cr_assert_str_neq(p->runs[0].run_id, id1);
    sbi_plan_destroy(&p);
    /* Writing a default explicitly does not change the id. */
    const char *ov3[] = { "heads.lin.lr=1.0e-3" };
    p = load(BASE, ov3, 1, &err);
    cr_assert(p, "%s", err.msg);
    cr_assert_str_eq(p->runs[0].run_id, id1);
    sbi_plan_destroy(&p);
}

Test(plan, sweep_times_seeds, .init = setup)
{
    char text[2048];
    snprintf(text, sizeof text, "%sseeds: [1, 2]\nsweep:\n  heads.lin.epochs: [3, 5, 9]\n", BASE);
    sb_error err = { 0 };
    sbi_plan *p = load(text, NULL, 0, &err);
    cr_assert(p, "%s: %s", err.where, err.msg);
    cr_assert_eq(p->n_runs, 6);
    /* Seeds vary fastest; runs of one sweep point share a group id. */
    cr_assert_eq(p->runs[0].seed, 1);
    cr_assert_eq(p->runs[1].seed, 2);
    cr_assert_str_eq(p->runs[0].group_id, p->runs[1].group_id);
    cr_assert_str_neq(p->runs[0].run_id, p->runs[1].run_id);
    cr_assert_str_neq(p->runs[1].group_id, p->runs[2].group_id);
    char *label = sbi_run_label(p, &p->runs[4]);
    cr_assert_str_eq(label, "epochs=9");
    free(label);
    for (size_t i = 0; i < 6; i++)
        for (size_t j = i + 1; j < 6; j++)
            cr_assert_str_neq(p->runs[i].run_id, p->runs[j].run_id);
    sbi_plan_destroy(&p);
}

Test(plan, reference_errors, .init = setup)
{
    sb_error err = { 0 };
    const char *ov[] = { "experiment.head=lni" };
    sbi_plan *p = load(BASE, ov, 1, &err);
    cr_assert_null(p);
    cr_assert_eq(err.code, SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "'lni' is neither defined under heads: nor an installed head plugin"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "Did you mean 'lin'?"), "%s", err.msg);

    sb_error e2 = { 0 };
    const char *ov2[] = { "experiment.train.dataset=dd" };
    p = load(BASE, ov2, 1, &e2);
    cr_assert_null(p);
    cr_assert(strstr(e2.msg, "Did you mean 'd'?"), "%s", e2.msg);

    sb_error e3 = { 0 };
    const char *ov3[] = { "experiment.tset=1" };
    p = load(BASE, ov3, 1, &e3);
    cr_assert_null(p);
    cr_assert(strstr(e3.msg, "unknown key 'tset' in experiment (did you mean 'test'?)"), "%s",
              e3.msg);
    cr_assert(strstr(e3.where, "<command line>"), "%s", e3.where);

    sb_error e4 = { 0 };
    p = load("datasets: {}\n", NULL, 0, &e4);
    cr_assert_null(p);
    cr_assert(strstr(e4.msg, "needs an 'experiment:'"), "%s", e4.msg);

    sb_error e5 = { 0 };
    const char *ov5[] = { "experiment.encoder=linear" };
    p = load(BASE, ov5, 1, &e5);
    cr_assert_null(p);
    cr_assert(strstr(e5.msg, "plugin linear is a head plugin, not an encoder"), "%s", e5.msg);
}

/* A top-level seed: was accepted and then replaced by the seeds: value (default 1). */
Test(plan, top_level_seed_is_an_error, .init = setup)
{
    char text[2048];
    snprintf(text, sizeof text, "%sseed: 5\n", BASE);
    sb_error err = { 0 };
    sbi_plan *p = load(text, NULL, 0, &err);
    cr_assert_null(p, "seed: 5 was accepted (as seed %lld)", p ? (long long)p->runs[0].seed : 0);
    cr_assert_eq(err.code, SB_ERR_CONFIG);
    cr_assert(strstr(err.where, "c.yaml:11:1"), "%s", err.where);
    cr_assert(strstr(err.msg, "seeds: [5]"), "%s", err.msg);

    sb_error e2 = { 0 };
    const char *ov[] = { "seed=7" };
    p = load(BASE, ov, 1, &e2);
    cr_assert_null(p);
    cr_assert(strstr(e2.where, "<command line>:0:1"), "%s", e2.where);
    cr_assert(strstr(e2.msg, "seeds: [7]"), "%s", e2.msg);
}

/* Sweep points that resolve to the same run (values that read alike, or a swept key no run
 * uses) were all kept: trained again and counted as extra seeds. The plan keeps the first of
 * each run id, numbers the kept runs 0.. in order, and says so once. */
Test(plan, duplicate_runs_are_dropped, .init = setup)
{
    char text[2048];
    snprintf(text, sizeof text,
             "%sseeds: [1, 2]\nsweep:\n  heads.lin.lr: [1e-3, 1.0e-2, 0.001, 0.0010]\n", BASE);
    sb_error err = { 0 };
    const char *lr[] = { "heads.lin.lr=1e-4" }; /* a swept key must be in the config */
    sbi_plan *p = load(text, lr, 1, &err);
    cr_assert(p, "%s: %s", err.where, err.msg);
    cr_assert_eq(p->n_runs, 4, "%zu runs", p->n_runs);
    for (size_t i = 0; i < p->n_runs; i++) {
        cr_assert_eq(p->runs[i].index, i, "kept runs are numbered in order");
        cr_assert_eq(p->runs[i].seed, (int64_t)(i % 2 + 1));
        for (size_t j = i + 1; j < p->n_runs; j++)
            cr_assert_str_neq(p->runs[i].run_id, p->runs[j].run_id);
    }
    char *label = sbi_run_label(p, &p->runs[2]);
    cr_assert_str_eq(label, "lr=0.01", "the first occurrence is kept, in expansion order");
    free(label);
    cr_assert(p->warnings && p->warnings[0] && !p->warnings[1], "one warning");
    const char *w = p->warnings[0];
    cr_assert(strstr(w, "4 of 8 runs"), "%s", w);
    cr_assert(strstr(w, "heads.lin.lr=0.001, seed 1"), "%s", w);
    cr_assert(strstr(w, "heads.lin.lr=1e-3, seed 1"), "%s", w);
    char id_dup[SB_HASH_HEX], id_one[SB_HASH_HEX];
    cr_assert_eq(sbi_plan_config_id(p, id_dup, &err), SB_OK);
    sbi_plan_destroy(&p);

    /* The config id is that of the config without the duplicates. */
    snprintf(text, sizeof text, "%sseeds: [1, 2]\nsweep:\n  heads.lin.lr: [1e-3, 1.0e-2]\n", BASE);
    p = load(text, lr, 1, &err);
    cr_assert(p, "%s", err.msg);
    cr_assert_null(p->warnings);
    cr_assert_eq(sbi_plan_config_id(p, id_one, &err), SB_OK);
    cr_assert_str_eq(id_dup, id_one);
    sbi_plan_destroy(&p);

    /* A swept option of an instance only some runs use: the lin2 runs repeat. */
    snprintf(text, sizeof text,
             "%ssweep:\n  experiment.head: [lin, lin2]\n  heads.lin.epochs: [3, 5]\n", BASE);
    const char *lin2[] = { "heads.lin2={plugin: linear}" };
    p = load(text, lin2, 1, &err);
    cr_assert(p, "%s", err.msg);
    cr_assert_eq(p->n_runs, 3);
    label = sbi_run_label(p, &p->runs[2]);
    cr_assert_str_eq(label, "head=lin2, epochs=3");
    free(label);
    cr_assert(strstr(p->warnings[0], "1 of 4 runs"), "%s", p->warnings[0]);
    cr_assert(strstr(p->warnings[0], "'experiment.head=lin2, heads.lin.epochs=5, seed 1' is the "
                                     "run of 'experiment.head=lin2, heads.lin.epochs=3, seed 1'"),
              "%s", p->warnings[0]);
    sbi_plan_destroy(&p);
}
