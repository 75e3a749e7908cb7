/* plugins/datasets/meld/meld.c — the `meld` dataset plugin: MELD's three CSVs (RFC 4180,
 * CRLF, both time formats, Utterance_ID gaps, old cp1252/C1 text repaired) joined to the
 * extracted WAV clips found anywhere under audio_root, with the official splits and either
 * the 7 emotions or the 3 sentiments as labels. See docs/datasets.md, "meld". */
#include <serbench/serbench.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meld_common.h"

/* MELD's official label-to-id mappings (README "Labelling"): class i is id i. */
static const char *const emotions[7] = { "neutral", "surprise", "fear", "sadness",
                                         "joy",     "disgust",  "anger" };
static const char *const sentiments[3] = { "neutral", "positive", "negative" };

static const char *const split_names[3] = { "train", "dev", "test" };
/* Folders that hold a split's CSV in the layouts users have (besides the root). */
static const char *const split_dirs[3][2] = { { "train", "train_splits" },
                                              { "dev", "dev_splits_complete" },
                                              { "test", "output_repeated_splits_test" } };

typedef struct loader {
    const sb_host *host;
    const sb_opts *opts;
    sb_corpus *corpus;
    sb_error *err;
    const char *root, *audio_root;
    int sentiment; /* protocol meld-sentiment */
    int repair;
    mc_audio *audio;
    char *csv_path[3];
    size_t rows[3], with_audio, repaired, bad_label;
} loader;

/* The first existing candidate for split s into L->csv_path[s]; else an error listing
 * every place looked at. */
static sb_status find_csv(loader *L, int s)
{
    char name[64];
    char *cand[8];
    int n = 0;
    snprintf(name, sizeof name, "%s_sent_emo.csv", split_names[s]);
    const char *bases[] = { "", "MELD.Raw/", "data/MELD/", "MELD/" };
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        cand[n++] = mc_printf("%s/%s%s", L->root, bases[b], name);
        if (b < 2)
            for (int d = 0; d < 2; d++)
                cand[n++] = mc_printf("%s/%s%s/%s", L->root, bases[b], split_dirs[s][d], name);
    }
    sb_status st = SB_OK;
    for (int i = 0; i < n && st == SB_OK && !L->csv_path[s]; i++) {
        if (!cand[i]) {
            st = sb_error_set(L->err, SB_ERR_NOMEM, L->root, "out of memory");
        } else if (mc_is_file(cand[i])) {
            L->csv_path[s] = cand[i];
            cand[i] = NULL;
        }
    }
    if (st == SB_OK && !L->csv_path[s]) {
        char list[1400];
        size_t len = 0, skip = strlen(L->root) + 1;
        for (int i = 0; i < n && len < sizeof list - 1; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                    cand[i] + skip);
        st = sb_error_set(L->err, SB_ERR_NOT_FOUND, L->root,
                          "MELD's %s not found; looked for (below root) %s. Set `root` (%s) to "
                          "the folder holding train_sent_emo.csv, dev_sent_emo.csv and "
                          "test_sent_emo.csv (MELD.Raw/ of the tarball or data/MELD/ of the "
                          "declare-lab/MELD repository)",
                          name, list, sb_opts_where(L->opts, "root"));
    }
    for (int i = 0; i < n; i++)
        free(cand[i]);
    return st;
}

static int class_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static sb_status load_split(loader *L, int s)
{
    mc_rows *r = NULL;
    sb_status st = mc_rows_open(L->csv_path[s], split_names[s], L->repair, NULL, &r, L->err);
    if (st != SB_OK)
        return st;
    for (;;) {
        mc_row row;
        int eof;
        if ((st = mc_rows_next(r, &row, &eof, L->err)) != SB_OK || eof)
            break;
        char id[64], dialogue[48];
        snprintf(id, sizeof id, "%s/dia%ld_utt%ld", split_names[s], row.dialogue, row.utterance);
        snprintf(dialogue, sizeof dialogue, "%s/dia%ld", split_names[s], row.dialogue);
        int label = L->sentiment ? class_of(sentiments, 3, row.sentiment)
                                 : class_of(emotions, 7, row.emotion);
        char e_emo[80], e_sen[80], meta[512];
        mc_json_str(row.emotion, e_emo, sizeof e_emo);
        mc_json_str(row.sentiment, e_sen, sizeof e_sen);
        int mn = snprintf(meta, sizeof meta,
                          "{\"sentiment\":\"%s\",\"emotion\":\"%s\",\"season\":%ld,"
                          "\"episode\":%ld,\"start_time\":%.3f,\"end_time\":%.3f",
                          e_sen, e_emo, row.season, row.episode, row.start_time, row.end_time);
        if (row.sr_no >= 0)
            mn += snprintf(meta + mn, sizeof meta - (size_t)mn, ",\"sr_no\":%ld", row.sr_no);
        snprintf(meta + mn, sizeof meta - (size_t)mn, "}");

        sb_utt ut;
        sb_utt_init(&ut);
        ut.id = id;
        ut.dialogue = dialogue;
        ut.turn = (int32_t)row.utterance;
        ut.speaker = row.speaker;
        ut.text = row.text;
        ut.split = split_names[s];
        ut.label = label;
        ut.meta = meta;
        ut.audio =
            mc_audio_find(L->audio, L->corpus, id, split_names[s], row.dialogue, row.utterance);
        if ((st = sb_corpus_add(L->corpus, &ut, L->err)) != SB_OK)
            break;
        L->rows[s]++;
        L->with_audio += ut.audio != NULL;
        L->repaired += row.repaired != 0;
        if (label < 0) {
            L->bad_label++;
            sb_corpus_warn_item(L->corpus, id, "%s:%ld: %s '%s' is not one of MELD's %s",
                                L->csv_path[s], row.line, L->sentiment ? "Sentiment" : "Emotion",
                                L->sentiment ? row.sentiment : row.emotion,
                                L->sentiment ? "3 sentiments (neutral, positive, negative)"
                                             : "7 emotions (neutral, surprise, fear, sadness, "
                                               "joy, disgust, anger)");
        }
        if (!L->repair && !sb_utf8_valid(row.text, strlen(row.text)))
            sb_corpus_warn_item(L->corpus, id,
                                "%s:%ld: the text is not valid UTF-8 (an old cp1252 copy of "
                                "MELD?); set repair_text: true",
                                L->csv_path[s], row.line);
        if (L->host->cancelled(L->host)) {
            st = sb_error_set(L->err, SB_ERR_CANCELLED, L->csv_path[s], "cancelled");
            break;
        }
    }
    mc_rows_close(&r);
    return st;
}

static sb_status describe(loader *L)
{
    size_t total = L->rows[0] + L->rows[1] + L->rows[2];
    char notes[600];
    char *layout =
        mc_printf("csv: %s, %s, %s; audio: %s (%zu wav/flac and %zu mp4 clips in "
                  "split folders; %zu of %zu rows with audio)",
                  L->csv_path[0], L->csv_path[1], L->csv_path[2], L->audio_root,
                  mc_audio_n_usable(L->audio), mc_audio_n_mp4(L->audio), L->with_audio, total);
    snprintf(notes, sizeof notes,
             "ids <split>/dia<D>_utt<U>; class ids follow MELD's official mapping; text "
             "repaired in %zu rows (repair_text: %s); %zu rows with a label outside the space",
             L->repaired, L->repair ? "true" : "false", L->bad_label);
    const char *kv[][2] = { { "protocol", L->sentiment ? "meld-sentiment" : "meld-7class" },
                            { "protocol_version", "1" },
                            { "dev_split", "official (dev_sent_emo.csv)" },
                            { "layout", layout ? layout : "?" },
                            { "notes", notes } };
    sb_status st = SB_OK;
    for (size_t i = 0; i < 5 && st == SB_OK; i++)
        st = sb_corpus_set_info(L->corpus, kv[i][0], kv[i][1], L->err);
    free(layout);
    L->host->log(L->host, SB_LOG_INFO,
                 "MELD: %zu train, %zu dev, %zu test rows; %zu with audio; text repaired in %zu",
                 L->rows[0], L->rows[1], L->rows[2], L->with_audio, L->repaired);
    return st;
}

static sb_status meld_load(const sb_host *host, const sb_opts *opts, sb_corpus *corpus,
                           sb_error *err)
{
    loader L = { 0 };
    L.host = host;
    L.opts = opts;
    L.corpus = corpus;
    L.err = err;
    L.root = sb_opts_str(opts, "root");
    L.sentiment = strcmp(sb_opts_str(opts, "protocol"), "meld-sentiment") == 0;
    L.repair = sb_opts_bool(opts, "repair_text");
    L.audio_root = sb_opts_has(opts, "audio_root") ? sb_opts_str(opts, "audio_root") : L.root;
    if (!mc_is_dir(L.root))
        return sb_error_set(err, SB_ERR_NOT_FOUND, sb_opts_where(opts, "root"),
                            "root '%s' is not a folder; set it to the folder holding MELD's "
                            "train/dev/test_sent_emo.csv",
                            L.root ? L.root : "");
    if (L.audio_root != L.root && !mc_is_dir(L.audio_root))
        return sb_error_set(err, SB_ERR_NOT_FOUND, sb_opts_where(opts, "audio_root"),
                            "audio_root '%s' is not a folder; set it to the tree that "
                            "scripts/meld-extract-audio wrote, or leave it out",
                            L.audio_root);
    sb_status st = SB_OK;
    for (int s = 0; s < 3 && st == SB_OK; s++)
        st = find_csv(&L, s);
    if (st == SB_OK)
        st = mc_audio_open(host, L.audio_root, L.audio_root == L.root ? "root" : "audio_root",
                           &L.audio, err);
    if (st == SB_OK)
        st = L.sentiment ? sb_corpus_set_classes(corpus, "meld-sentiment", sentiments, 3, err)
                         : sb_corpus_set_classes(corpus, "meld-7class", emotions, 7, err);
    for (int s = 0; s < 3 && st == SB_OK; s++) {
        st = load_split(&L, s);
        host->progress(host, (uint64_t)s + 1, 3);
    }
    if (st == SB_OK) {
        mc_audio_report_extras(L.audio);
        st = describe(&L);
    }
    mc_audio_close(&L.audio);
    for (int s = 0; s < 3; s++)
        free(L.csv_path[s]);
    return st;
}

static const sb_option meld_options[] = {
    { "root", SB_OPT_PATH, NULL, SB_OPT_REQUIRED, 0, 0, NULL,
      "folder with train/dev/test_sent_emo.csv (at its top, in split folders, MELD.Raw/ or "
      "data/MELD/)" },
    { "audio_root", SB_OPT_PATH, NULL, 0, 0, 0, NULL,
      "the extracted WAV tree (scripts/meld-extract-audio); default: clips are looked for "
      "under root" },
    { "protocol", SB_OPT_ENUM, "meld-7class", 0, 0, 0, "meld-7class|meld-sentiment",
      "meld-7class: the 7 emotions; meld-sentiment: the 3 sentiments; official splits" },
    { "repair_text", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "repair cp1252/C1 bytes and mojibake in Utterance and Speaker" },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL }
};

static const sb_dataset_vtable meld_vtable = {
    .struct_size = sizeof(sb_dataset_vtable),
    .load = meld_load,
};

static const sb_plugin meld_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_DATASET,
    .name = "meld",
    .version = "1.0.0",
    .summary = "MELD (Friends, 13,708 utterances): 7 emotions or 3 sentiments, official splits",
    .options = meld_options,
    .vtable = &meld_vtable,
};

SB_PLUGIN_DEFINE(meld_plugin)
