/* core/cli/cmd_corpus.c — `serbench corpus CONFIG [--json]`: load every dataset the runs use
 * and print counts by split and class, with the items the plugin flagged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

int cmd_corpus(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    sbi_plan *plan = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (rc)
        goto out;
    sbi_ui ui;
    sbi_ui_init(&ui, a.quiet, a.verbose);
    json_t *all = json_object();
    for (size_t i = 0; i < plan->n_runs && !rc; i++) {
        const sbi_run *r = &plan->runs[i];
        for (size_t k = 0; k < r->n_inst && !rc; k++) {
            const sbi_instance *in = &r->inst[k];
            if (in->kind != SB_KIND_DATASET || json_object_get(all, in->name))
                continue;
            sb_corpus *c = NULL;
            sb_error err = { 0 };
            if (sbi_load_corpus(in, &ui, cli_results_dir(&a, plan), &c, &err) != SB_OK) {
                rc = cli_fail(&err);
                break;
            }
            int K = sb_corpus_n_classes(c);
            json_t *splits = json_object();
            for (size_t u = 0; u < sb_corpus_size(c); u++) {
                const sb_utt *ut = sb_corpus_utt(c, u);
                json_t *s = json_object_get(splits, ut->split);
                if (!s) {
                    s = json_object();
                    json_object_set_new(s, "total", json_integer(0));
                    for (int j = 0; j < K; j++)
                        json_object_set_new(s, sb_corpus_class(c, j), json_integer(0));
                    json_object_set_new(s, "unlabelled", json_integer(0));
                    json_object_set_new(splits, ut->split, s);
                }
                const char *key = ut->label >= 0 ? sb_corpus_class(c, ut->label) : "unlabelled";
                json_object_set_new(s, key,
                                    json_integer(json_integer_value(json_object_get(s, key)) + 1));
                json_object_set_new(
                    s, "total", json_integer(json_integer_value(json_object_get(s, "total")) + 1));
            }
            /* Distinct dialogues and speakers, and audio files that are absent (stat only:
             * loading and this command never decode audio). */
            json_t *dlg = json_object(), *spk = json_object();
            size_t no_audio = 0, missing_audio = 0;
            json_t *missing = json_array();
            for (size_t u = 0; u < sb_corpus_size(c); u++) {
                const sb_utt *ut = sb_corpus_utt(c, u);
                if (ut->dialogue)
                    json_object_set_new(dlg, ut->dialogue, json_true());
                if (ut->speaker)
                    json_object_set_new(spk, ut->speaker, json_true());
                if (!ut->audio) {
                    no_audio++;
                } else if (!sbi_is_file(ut->audio)) {
                    missing_audio++;
                    if (json_array_size(missing) < 1000)
                        json_array_append_new(missing, json_pack("{s:s, s:s}", "utterance", ut->id,
                                                                 "audio", ut->audio));
                }
            }
            json_t *info = json_object();
            for (size_t q = 0; q < sb_corpus_n_info(c); q++) {
                const char *key = NULL;
                const char *val = sb_corpus_info_at(c, q, &key);
                json_object_set_new(info, key, json_string(val));
            }
            size_t n_ratings = 0;
            json_t *raters = json_object(); /* rater id -> utterances rated */
            for (size_t u = 0; u < sb_corpus_size(c); u++) {
                const size_t nr = sb_corpus_n_ratings(c, u);
                n_ratings += nr;
                for (size_t j = 0; j < nr; j++) {
                    const char *who = NULL;
                    sb_corpus_rating(c, u, j, &who);
                    if (!who)
                        continue;
                    json_t *cnt = json_object_get(raters, who);
                    json_object_set_new(raters, who,
                                        json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
                }
            }
            json_t *notes = json_array();
            for (size_t w = 0; w < sb_corpus_n_notes(c); w++) {
                const char *id = NULL;
                const char *msg = sb_corpus_note(c, w, &id);
                json_array_append_new(notes, json_pack("{s:s, s:s}", "utterance", id ? id : "",
                                                       "note", msg ? msg : ""));
            }
            json_t *warn = json_array();
            for (size_t w = 0; w < sb_corpus_n_warnings(c); w++) {
                const char *id = NULL;
                const char *msg = sb_corpus_warning(c, w, &id);
                json_array_append_new(warn, json_pack("{s:s, s:s}", "utterance", id ? id : "",
                                                      "problem", msg ? msg : ""));
            }
            json_t *classes = json_array();
            for (int j = 0; j < K; j++)
                json_array_append_new(classes, json_string(sb_corpus_class(c, j)));
            const char *space = sb_corpus_label_space(c);
            json_object_set_new(
                all, in->name,
                json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:I, "
                          "s:I, s:o}}",
                          "plugin", in->plugin->desc->name, "label_space", space ? space : "",
                          "utterances", (json_int_t)sb_corpus_size(c), "dialogues",
                          (json_int_t)json_object_size(dlg), "speakers",
                          (json_int_t)json_object_size(spk), "ratings", (json_int_t)n_ratings,
                          "raters", raters, "info", info, "classes", classes, "splits", splits,
                          "problems", warn, "notes", notes, "audio", "without_audio",
                          (json_int_t)no_audio, "missing_files", (json_int_t)missing_audio,
                          "missing", missing));
            json_decref(dlg);
            json_decref(spk);
            sb_corpus_destroy(&c);
        }
    }
    if (!rc && a.json) {
        char *s = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
    } else if (!rc) {
        const char *name;
        json_t *d;
        json_object_foreach(all, name, d)
        {
            printf("%s (%s, label space %s): %lld utterances, %lld dialogues, %lld speakers\n",
                   name, json_string_value(json_object_get(d, "plugin")),
                   json_string_value(json_object_get(d, "label_space")),
                   (long long)json_integer_value(json_object_get(d, "utterances")),
                   (long long)json_integer_value(json_object_get(d, "dialogues")),
                   (long long)json_integer_value(json_object_get(d, "speakers")));
            const char *ik;
            json_t *iv;
            json_object_foreach(json_object_get(d, "info"), ik, iv)
                printf("  %s: %s\n", ik, json_string_value(iv));
            const char *sn;
            json_t *s;
            json_object_foreach(json_object_get(d, "splits"), sn, s)
            {
                printf("  %-10s", sn);
                const char *cn;
                json_t *v;
                json_object_foreach(s, cn, v)
                    printf(" %s=%lld", cn, (long long)json_integer_value(v));
                printf("\n");
            }
            json_t *raters = json_object_get(d, "raters");
            if (json_object_size(raters)) {
                printf("  raters (%zu; for the human labeller's rater option and serbench "
                       "agree):",
                       json_object_size(raters));
                const char *rk;
                json_t *rv;
                size_t shown = 0;
                json_object_foreach(raters, rk, rv) if (shown++ < 30)
                    printf(" %s=%lld", rk, (long long)json_integer_value(rv));
                printf("%s\n", shown > 30 ? " ..." : "");
            }
            json_t *probs = json_object_get(d, "problems");
            size_t np = json_array_size(probs);
            for (size_t k = 0; k < np && k < 20; k++)
                printf("  problem: %s: %s\n",
                       json_string_value(json_object_get(json_array_get(probs, k), "utterance")),
                       json_string_value(json_object_get(json_array_get(probs, k), "problem")));
            if (np)
                printf("  %zu problem item%s in all%s\n", np, np == 1 ? "" : "s",
                       np > 20 ? " (all of them with --json)" : "");
            json_t *nts = json_object_get(d, "notes");
            size_t nn = json_array_size(nts);
            for (size_t k = 0; k < nn && k < 20; k++)
                printf("  note: %s: %s\n",
                       json_string_value(json_object_get(json_array_get(nts, k), "utterance")),
                       json_string_value(json_object_get(json_array_get(nts, k), "note")));
            if (nn > 20)
                printf("  %zu notes in all (all of them with --json)\n", nn);
            json_t *au = json_object_get(d, "audio");
            long long na = (long long)json_integer_value(json_object_get(au, "without_audio"));
            long long nm = (long long)json_integer_value(json_object_get(au, "missing_files"));
            for (size_t k = 0; k < json_array_size(json_object_get(au, "missing")) && k < 20; k++) {
                json_t *m = json_array_get(json_object_get(au, "missing"), k);
                printf("  missing audio: %s: %s\n",
                       json_string_value(json_object_get(m, "utterance")),
                       json_string_value(json_object_get(m, "audio")));
            }
            if (nm || na)
                printf("  audio: %lld file%s missing, %lld utterance%s without audio\n", nm,
                       nm == 1 ? "" : "s", na, na == 1 ? "" : "s");
        }
    }
    json_decref(all);
out:
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
