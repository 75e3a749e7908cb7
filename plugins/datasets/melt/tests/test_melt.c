/* plugins/datasets/melt/tests/test_melt.c — the melt plugin through its own descriptor:
 * the real MELT files (7024 / 1794 rows, the 3 out-of-schema LLM labels under each policy,
 * both gold columns, the dev carve, repaired text equal to MELD's), the generated MELT pair
 * joined to the generated MELD clips, and bad input. */
#include "meld_testutil.h"

#include <dlfcn.h>

TestSuite(melt, .init = tu_setup, .fini = tu_teardown);

static const char *real_root(void)
{
    static char buf[1024];
    const char *d = getenv("SB_SHARED_DATA");
    if (!d)
        SB_MISSING_SHARED("SB_SHARED_DATA is not set%s", "");
    snprintf(buf, sizeof buf, "%s/melt", d);
    if (access(buf, R_OK) != 0)
        SB_MISSING_SHARED("no real MELT files at %s", buf);
    return buf;
}

static const char *opts_root(const char *root, const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "root: \"%s\"\n%s", root, extra ? extra : "");
    return buf;
}

/* Count per class of the gold label over MELD split `msplit` ("train" covers train+dev). */
static size_t count_file_label(const sb_corpus *c, const char *msplit, const char *cls)
{
    int k = sb_corpus_class_index(c, cls);
    cr_assert_geq(k, 0);
    size_t n = 0, len = strlen(msplit);
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        n += strncmp(u->id, msplit, len) == 0 && u->id[len] == '/' && u->label == k;
    }
    return n;
}

static const char *const cls7[7] = { "neutral", "joy",  "surprise", "anger",
                                     "disgust", "fear", "sadness" };

Test(melt, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_DATASET);
    cr_assert_str_eq(p->name, "melt");
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_neq(sbi_opts_parse(p->options, "labels: llm", "t.yaml", &o, &err), SB_OK);
    cr_assert_not_null(strstr(err.msg, "root"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_neq(sbi_opts_parse(p->options, "root: /x\ndev_fraction: 0.9", "t.yaml", &o, &err),
                  SB_OK);
    sb_error_clear(&err);
    cr_assert_neq(
        sbi_opts_parse(p->options, "root: /x\ninvalid_llm_label: keep", "t.yaml", &o, &err), SB_OK);
}

/* ---- the real files ---------------------------------------------------------------------- */

Test(melt, real_human_labels_counts_and_dev)
{
    sb_corpus *c = NULL;
    sb_error e;
    expect_ok(load_yaml(opts_root(real_root(), NULL), &c, &e), &e);
    cr_assert_eq(sb_corpus_size(c), 7024 + 1794);
    /* dev: rule melt-dev/1 at 0.1 takes 106 dialogues, 705 rows (>= round(702.4)) */
    cr_assert_eq(count_split(c, "dev"), 705);
    cr_assert_eq(count_split(c, "train"), 7024 - 705);
    cr_assert_eq(count_split(c, "test"), 1794);
    cr_assert_str_eq(sb_corpus_label_space(c), "meld-7class");
    /* MELD's Emotion on MELT rows (reference/papers.md) */
    static const size_t tr[7] = { 3172, 1244, 763, 852, 215, 208, 570 };
    static const size_t te[7] = { 825, 262, 167, 269, 59, 42, 170 };
    for (int k = 0; k < 7; k++) {
        cr_expect_eq(count_file_label(c, "train", cls7[k]), tr[k], "train %s", cls7[k]);
        cr_expect_eq(count_file_label(c, "test", cls7[k]), te[k], "test %s", cls7[k]);
    }
    /* gold is human: the 3 odd LLM labels are no item problem, but are logged by id */
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    cr_assert(log_has("WARN", (const char *[]){ "meld_test.csv: 3 llm_label values",
                                                "frustration (test/dia12_utt4)",
                                                "frustration (test/dia100_utt19)",
                                                "comfort (test/dia207_utt0)", NULL }),
              "%s", g_log);
    char b[64];
    const sb_utt *u = utt_by_id(c, "test/dia207_utt0");
    cr_assert_str_eq(meta_get(u, "llm_label", b, sizeof b), "comfort");
    cr_assert_str_eq(meta_get(u, "emotion", b, sizeof b), "sadness");
    cr_assert_str_eq(sb_corpus_class(c, u->label), "sadness");
    cr_assert_eq(sb_corpus_n_ratings(c, (size_t)sb_corpus_find(c, "test/dia207_utt0")), 2);
    /* dev holds whole dialogues: 106 of them, and no dialogue has rows in both (rows of a
     * dialogue are contiguous in the file, so a window of 40 rows covers one) */
    size_t nd = 0;
    const char *last = "";
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *x = sb_corpus_utt(c, i);
        if (strcmp(x->split, "dev") == 0 && strcmp(x->dialogue, last) != 0) {
            last = x->dialogue;
            nd++;
        }
    }
    cr_assert_eq(nd, 106);
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *x = sb_corpus_utt(c, i);
        if (strcmp(x->split, "train") != 0)
            continue;
        for (size_t j = i + 1; j < sb_corpus_size(c) && j < i + 40; j++) {
            const sb_utt *y = sb_corpus_utt(c, j);
            if (strcmp(y->dialogue, x->dialogue) == 0)
                cr_assert_str_eq(y->split, "train", "%s split across train and dev", x->dialogue);
        }
    }
    /* the first dev dialogues of the rule (checked against a Python implementation) */
    cr_assert_str_eq(utt_by_id(c, "train/dia1_utt0")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "train/dia7_utt0")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "train/dia0_utt0")->split, "train");
    cr_assert_str_eq(sb_corpus_info(c, "protocol"), "melt");
    cr_assert_not_null(strstr(sb_corpus_info(c, "dev_split"), "106 dialogues, 705 rows"));
    sb_corpus_destroy(&c);
}

Test(melt, real_llm_labels_under_each_policy)
{
    const char *root = real_root();
    static const size_t tr[7] = { 2519, 1578, 1209, 464, 473, 418, 363 };
    static const size_t te[7] = { 659, 388, 302, 126, 123, 103, 90 };
    sb_corpus *c = NULL;
    sb_error e;
    /* invalid (default): kept with no label, each reported by id */
    expect_ok(load_yaml(opts_root(root, "labels: llm\n"), &c, &e), &e);
    cr_assert_eq(sb_corpus_size(c), 8818);
    for (int k = 0; k < 7; k++) {
        cr_expect_eq(count_file_label(c, "train", cls7[k]), tr[k], "train %s", cls7[k]);
        cr_expect_eq(count_file_label(c, "test", cls7[k]), te[k], "test %s", cls7[k]);
    }
    cr_assert_eq(sb_corpus_n_notes(c), 3);
    static const char *odd[3][2] = { { "test/dia12_utt4", "frustration" },
                                     { "test/dia100_utt19", "frustration" },
                                     { "test/dia207_utt0", "comfort" } };
    for (int i = 0; i < 3; i++) {
        const char *w = note_for(c, odd[i][0]);
        cr_assert(w && strstr(w, odd[i][1]) && strstr(w, "meld_test.csv:"), "%s: %s", odd[i][0],
                  w ? w : "(none)");
        cr_assert_eq(utt_by_id(c, odd[i][0])->label, -1);
    }
    char b[64];
    cr_assert_str_eq(meta_get(utt_by_id(c, "test/dia12_utt4"), "emotion", b, sizeof b), "anger");
    cr_assert(strstr(sb_corpus_info(c, "notes"), "3 kept as invalid"));
    sb_corpus_destroy(&c);

    /* drop: the three rows are left out, nothing else changes */
    expect_ok(load_yaml(opts_root(root, "labels: llm\ninvalid_llm_label: drop\n"), &c, &e), &e);
    cr_assert_eq(sb_corpus_size(c), 8815);
    cr_assert_eq(count_split(c, "test"), 1791);
    cr_assert_eq(count_split(c, "dev"), 705);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    cr_assert_eq(sb_corpus_find(c, "test/dia207_utt0"), -1);
    cr_assert(log_has("WARN", (const char *[]){ "3 llm_label values", "drop", NULL }), "%s", g_log);
    sb_corpus_destroy(&c);
    /* drop applies with human gold too, so both label choices see the same items */
    expect_ok(load_yaml(opts_root(root, "invalid_llm_label: drop\n"), &c, &e), &e);
    cr_assert_eq(sb_corpus_size(c), 8815);
    sb_corpus_destroy(&c);

    /* map */
    expect_ok(load_yaml(opts_root(root, "labels: llm\ninvalid_llm_label: map\n"
                                        "llm_label_map: {frustration: anger, comfort: neutral}\n"),
                        &c, &e),
              &e);
    cr_assert_eq(sb_corpus_size(c), 8818);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    cr_assert_eq(count_file_label(c, "test", "anger"), 126 + 2);
    cr_assert_eq(count_file_label(c, "test", "neutral"), 659 + 1);
    const sb_utt *u = utt_by_id(c, "test/dia12_utt4");
    cr_assert_str_eq(meta_get(u, "llm_label", b, sizeof b), "anger");
    cr_assert_str_eq(meta_get(u, "llm_label_raw", b, sizeof b), "frustration");
    cr_assert(strstr(sb_corpus_info(c, "notes"), "3 mapped"));
    sb_corpus_destroy(&c);

    /* map without an entry for a label that occurs: a config error naming it */
    expect_err(load_yaml(opts_root(root, "labels: llm\ninvalid_llm_label: map\n"
                                         "llm_label_map: {frustration: anger}\n"),
                         &c, &e),
               SB_ERR_CONFIG, &e,
               (const char *[]){ "test.yaml", "'comfort'", "meld_test.csv:",
                                 "not in "
                                 "llm_label_map",
                                 NULL });
    sb_corpus_destroy(&c);
    /* a map value outside the 7 emotions, a key inside them */
    expect_err(load_yaml(opts_root(root, "invalid_llm_label: map\n"
                                         "llm_label_map: {comfort: calm}\n"),
                         &c, &e),
               SB_ERR_CONFIG, &e, (const char *[]){ "'comfort' maps to calm", NULL });
    sb_corpus_destroy(&c);
    expect_err(load_yaml(opts_root(root, "invalid_llm_label: map\n"
                                         "llm_label_map: {joy: neutral}\n"),
                         &c, &e),
               SB_ERR_CONFIG, &e, (const char *[]){ "'joy' is already one of", NULL });
    sb_corpus_destroy(&c);
    /* a map given with another policy is reported as unused */
    expect_ok(load_yaml(opts_root(root, "llm_label_map: {comfort: neutral}\n"), &c, &e), &e);
    cr_assert(log_has("WARN", (const char *[]){ "llm_label_map", "not used", NULL }), "%s", g_log);
    sb_corpus_destroy(&c);
}

Test(melt, real_dev_fraction)
{
    const char *root = real_root();
    sb_corpus *c = NULL;
    sb_error e;
    expect_ok(load_yaml(opts_root(root, "dev_fraction: 0\n"), &c, &e), &e);
    cr_assert_eq(count_split(c, "dev"), 0);
    cr_assert_eq(count_split(c, "train"), 7024);
    cr_assert(strstr(sb_corpus_info(c, "dev_split"), "none"));
    sb_corpus_destroy(&c);
    expect_ok(load_yaml(opts_root(root, "dev_fraction: 0.2\n"), &c, &e), &e);
    cr_assert_eq(count_split(c, "dev"), 1415); /* 201 dialogues, >= round(1404.8) */
    /* nested: the 0.1 dev is a subset of the 0.2 dev (the same order, taken further) */
    cr_assert_str_eq(utt_by_id(c, "train/dia1_utt0")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "train/dia7_utt0")->split, "dev");
    sb_corpus_destroy(&c);
}

/* Text with '"' removed and ’ ‘ as ASCII '. */
static void fold_release(const char *s, char *out, size_t size)
{
    size_t n = 0;
    while (*s && n + 1 < size) {
        if (*s == '"') {
            s++;
        } else if (strncmp(s, "\xE2\x80\x99", 3) == 0 || strncmp(s, "\xE2\x80\x98", 3) == 0) {
            out[n++] = '\'';
            s += 3;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
}

/* Rows whose MELT text is another line than MELD's (MELD's transcript there is cut short
 * or is a stage direction). */
static int is_rewritten(const char *id)
{
    static const char *const ids[] = { "train/dia404_utt15", "train/dia556_utt6",
                                       "train/dia610_utt5", "train/dia739_utt14",
                                       "train/dia849_utt3" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (strcmp(id, ids[i]) == 0)
            return 1;
    return 0;
}

/* Repaired MELT text: no damage left, and equal to MELD's current text for the same id up
 * to what the release changed on purpose (the meld plugin is loaded from the build tree). */
Test(melt, real_text_repaired_equals_meld)
{
    const char *root = real_root();
    sb_corpus *c = NULL;
    sb_error e;
    expect_ok(load_yaml(opts_root(root, NULL), &c, &e), &e);
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const char *t = sb_corpus_utt(c, i)->text, *id = sb_corpus_utt(c, i)->id;
        cr_assert(sb_utf8_valid(t, strlen(t)));
        cr_assert_null(strstr(t, "\xE2\x82\xAC"), "%s: euro sign left: %s", id, t);
        cr_assert_null(strstr(t, "\xC3\x83"), "%s: A-tilde left: %s", id, t);
        cr_assert_null(strstr(t, "\xC2\xA0"), "%s: no-break space left: %s", id, t);
    }
    cr_assert_str_eq(utt_by_id(c, "train/dia158_utt1")->text,
                     "It can\xE2\x80\x99t be me, I\xE2\x80\x99m standing right here.");
    cr_assert_str_eq(utt_by_id(c, "train/dia613_utt6")->text, "Nestl\xC3\xA9 Toll House?");
    cr_assert_str_eq(utt_by_id(c, "train/dia796_utt12")->text,
                     "Tulsa is Italy\xE2\x80\x94Please don\xE2\x80\x99t make me go  there!");
    cr_assert(strstr(utt_by_id(c, "test/dia86_utt3")->text, "saut\xC3\xA9"));

    /* MELD through its own plugin */
    const char *b = getenv("SB_BUILD_ROOT");
    char so[1024], mroot[1100];
    snprintf(so, sizeof so, "%s/plugins/datasets/meld/meld.so", b ? b : "");
    snprintf(mroot, sizeof mroot, "%s/../meld", root);
    if (!b || access(so, R_OK) != 0 || access(mroot, R_OK) != 0)
        cr_skip_test("no %s or %s", so, mroot);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "%s", dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(h, SB_PLUGIN_ENTRY_NAME);
    cr_assert_not_null(entry);
    const sb_plugin *mp = entry();
    sb_opts *o = NULL;
    char y[1200];
    snprintf(y, sizeof y, "root: \"%s\"\n", mroot);
    cr_assert_eq(sbi_opts_parse(mp->options, y, "m.yaml", &o, &e), SB_OK);
    sb_corpus *m = NULL;
    cr_assert_eq(sb_corpus_create("meld", &m, &e), SB_OK);
    cr_assert_eq(((const sb_dataset_vtable *)mp->vtable)->load(&g_cap_host, o, m, &e), SB_OK, "%s",
                 e.msg);
    sbi_opts_destroy(&o);
    /* MELT's release differs from MELD's text in two ways that are not encoding damage:
     * some '"' characters are gone, and meld_test.csv has ASCII ' for MELD's ’ and ‘.
     * Apart from those, the repaired text must be MELD's exactly. */
    size_t same = 0, release = 0, rewritten = 0, differ = 0;
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *x = sb_corpus_utt(c, i);
        long k = sb_corpus_find(m, x->id);
        cr_assert_geq(k, 0, "%s is not a MELD id", x->id);
        const sb_utt *y2 = sb_corpus_utt(m, (size_t)k);
        cr_assert_eq(x->label, y2->label, "%s: Emotion differs from MELD", x->id);
        if (strcmp(x->text, y2->text) == 0) {
            same++;
            continue;
        }
        char a[2048], bb[2048];
        fold_release(x->text, a, sizeof a);
        fold_release(y2->text, bb, sizeof bb);
        if (strcmp(a, bb) == 0) {
            release++;
        } else if (is_rewritten(x->id)) {
            rewritten++;
        } else {
            differ++;
            cr_log_error("%s: MELT '%s' vs MELD '%s'", x->id, x->text, y2->text);
        }
    }
    fprintf(stderr,
            "melt: of %zu repaired texts %zu equal MELD's, %zu equal it up to the release's "
            "dropped '\"' and ASCII apostrophes, %zu are lines MELT rewrote, %zu differ "
            "otherwise\n",
            same + release + rewritten + differ, same, release, rewritten, differ);
    cr_assert_eq(differ, 0);
    cr_assert_eq(rewritten, 5);
    sb_corpus_destroy(&m);
    dlclose(h);
    sb_corpus_destroy(&c);
}

/* ---- the generated pair ------------------------------------------------------------------ */

static expected_row g_exp[400];

Test(melt, generated_pair_joined_to_generated_clips)
{
    const char *gen = meld_corpus();
    size_t n = read_expected(gen, g_exp, 400);
    char opts[4096];
    snprintf(opts, sizeof opts,
             "root: \"%s/melt\"\nmeld_audio_root: \"%s/MELD.Raw\"\nlabels: llm\n"
             "invalid_llm_label: map\nllm_label_map: {frustration: anger, comfort: neutral}\n",
             gen, gen);
    sb_corpus *c = NULL;
    sb_error e;
    expect_ok(load_yaml(opts, &c, &e), &e);
    size_t in_melt = 0, with_audio = 0, warned = 0, mapped = 0;
    for (size_t i = 0; i < n; i++) {
        const expected_row *x = &g_exp[i];
        long k = sb_corpus_find(c, x->id);
        if (strcmp(x->melt, "-") == 0) {
            cr_assert_eq(k, -1, "%s is not in MELT", x->id);
            continue;
        }
        in_melt++;
        cr_assert_geq(k, 0, "%s missing", x->id);
        const sb_utt *u = sb_corpus_utt(c, (size_t)k);
        cr_assert_str_eq(u->text, x->text, "%s: the lossy mojibake was not repaired", x->id);
        char b[64];
        cr_assert_str_eq(meta_get(u, "emotion", b, sizeof b), x->emotion);
        if (strcmp(x->llm, "frustration") == 0 || strcmp(x->llm, "comfort") == 0) {
            mapped++;
            cr_assert_str_eq(meta_get(u, "llm_label_raw", b, sizeof b), x->llm);
        } else {
            cr_assert_str_eq(sb_corpus_class(c, u->label), x->llm, "%s", x->id);
        }
        int ok_clip = strcmp(x->clip, "ok") == 0 || strcmp(x->clip, "prefixed") == 0;
        if (ok_clip) {
            cr_assert_not_null(u->audio, "%s", x->id);
            with_audio++;
        } else {
            cr_assert_null(u->audio, "%s", x->id);
            cr_assert_not_null(note_for(c, x->id), "%s (%s) not reported", x->id, x->clip);
            warned++;
        }
    }
    cr_assert_eq(sb_corpus_size(c), in_melt);
    cr_assert_eq(mapped, 2);
    cr_assert_eq(sb_corpus_n_notes(c), warned);
    cr_assert_gt(with_audio, 50);
    fprintf(stderr, "melt (generated): %zu rows, %zu with audio, %zu reported\n", in_melt,
            with_audio, warned);
    sb_corpus_destroy(&c);

    /* without meld_audio_root: text only, no item problems */
    snprintf(opts, sizeof opts, "root: \"%s/melt\"\n", gen);
    expect_ok(load_yaml(opts, &c, &e), &e);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    cr_assert(log_has("INFO", (const char *[]){ "no meld_audio_root", NULL }), "%s", g_log);
    sb_corpus_destroy(&c);
}

/* ---- bad input --------------------------------------------------------------------------------
 */

#define HDR                                                                                        \
    "filename,Sr_No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,"         \
    "Episode,StartTime,EndTime,llm_label\n"
#define ROW(d, u)                                                                                  \
    "dia" #d "_utt" #u ".wav,1,Hi there you,joey,joy,positive," #d "," #u                          \
    ",1,1,\"00:00:01,000\",\"00:00:02,000\",joy\n"

Test(melt, bad_input)
{
    sb_corpus *c = NULL;
    sb_error e;
    expect_err(load_yaml(opts_root("/nonexistent/melt", NULL), &c, &e), SB_ERR_NOT_FOUND, &e,
               (const char *[]){ "/nonexistent/melt", "not a folder", NULL });
    sb_corpus_destroy(&c);

    write_text("a/meld_train.csv", HDR ROW(0, 0));
    expect_err(load_yaml(opts_root(tpath("a"), NULL), &c, &e), SB_ERR_NOT_FOUND, &e,
               (const char *[]){ "meld_test.csv not found", "meltdataset/meld_test.csv", NULL });
    sb_corpus_destroy(&c);

    write_text("a/meld_test.csv", HDR ROW(0, 0));
    expect_ok(load_yaml(opts_root(tpath("a"), NULL), &c, &e), &e);
    cr_assert_eq(sb_corpus_size(c), 2);
    /* one train row: round(0.1 x 1) = 0 rows of dev */
    cr_assert_str_eq(utt_by_id(c, "train/dia0_utt0")->split, "train");
    sb_corpus_destroy(&c);

    /* a header without llm_label (a MELD file given as MELT) */
    write_text("a/meld_test.csv", "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,"
                                  "Utterance_ID,Season,Episode,StartTime,EndTime\n");
    expect_err(load_yaml(opts_root(tpath("a"), NULL), &c, &e), SB_ERR_FORMAT, &e,
               (const char *[]){ "meld_test.csv:1", "lacks columns filename, llm_label", NULL });
    sb_corpus_destroy(&c);

    /* filename that does not match the ids */
    write_text("a/meld_test.csv", HDR ROW(0, 0) "dia3_utt1.wav,1,Hi there you,joey,joy,positive,"
                                                "3,2,1,1,\"00:00:01,000\",\"00:00:02,000\",joy\n");
    expect_err(
        load_yaml(opts_root(tpath("a"), NULL), &c, &e), SB_ERR_FORMAT, &e,
        (const char *[]){ "meld_test.csv:3", "filename 'dia3_utt1.wav'", "dia3_utt2.wav", NULL });
    sb_corpus_destroy(&c);

    /* a duplicate key names both lines */
    write_text("a/meld_test.csv", HDR ROW(5, 1) ROW(5, 2) ROW(5, 1));
    expect_err(load_yaml(opts_root(tpath("a"), NULL), &c, &e), SB_ERR_FORMAT, &e,
               (const char *[]){ "meld_test.csv:4", "appears twice in test: at line 2", NULL });
    sb_corpus_destroy(&c);

    /* a malformed row */
    write_text("a/meld_test.csv", HDR "dia0_utt0.wav,1,\"open\n");
    expect_err(load_yaml(opts_root(tpath("a"), NULL), &c, &e), SB_ERR_FORMAT, &e,
               (const char *[]){ "meld_test.csv:2:17", "never closed", NULL });
    sb_corpus_destroy(&c);

    write_text("a/meld_test.csv", HDR ROW(0, 0));
    char opts[2048];
    snprintf(opts, sizeof opts, "root: \"%s\"\nmeld_audio_root: /nonexistent/wav\n", tpath("a"));
    expect_err(load_yaml(opts, &c, &e), SB_ERR_NOT_FOUND, &e,
               (const char *[]){ "meld_audio_root", "/nonexistent/wav", NULL });
    sb_corpus_destroy(&c);
}
