/* plugins/datasets/iemocap/tests/test_iemocap.c — the iemocap plugin: its line parsers on
 * snippets in the release's exact formats, small hand-written trees for ordering and every
 * kind of bad input, the tree scripts/make-iemocap-corpus generated into the build dir
 * (every utterance and every protocol count against what the generator intended), and a
 * full-size label-only tree with IEMOCAP's real per-session code counts. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <serbench/serbench.h>

#include "internal.h"
#include "parse.h"

const sb_plugin *serbench_plugin_v1(void);

/* ---- scaffolding ------------------------------------------------------------------- */

static char g_dir[512];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sb-iemocap-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp failed");
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(parse);
TestSuite(tree, .init = setup, .fini = teardown);
TestSuite(generated);
TestSuite(fullsize, .init = setup, .fini = teardown);

/* Full path of `rel` in the test folder (rotating static buffers: 4 at a time). */
static const char *tpath(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

static void mkdirs_for(const char *path)
{
    char sub[2048];
    cr_assert_lt(strlen(path), sizeof sub);
    memcpy(sub, path, strlen(path) + 1);
    for (char *s = sub + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(sub, 0755);
        *s = '/';
    }
}

static void write_text(const char *rel, const char *text)
{
    const char *p = tpath(rel);
    mkdirs_for(p);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "cannot write %s", p);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* A host that records log lines, so tests can check what was said at which level. */
static char g_log[1 << 16];
static size_t g_log_len;

static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void cap_log(const sb_host *h, sb_log_level level, const char *fmt, ...)
{
    (void)h;
    static const char *tag[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    if (g_log_len + 16 >= sizeof g_log)
        return;
    g_log_len += (size_t)snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "[%s] ",
                                  tag[level <= SB_LOG_DEBUG ? level : SB_LOG_DEBUG]);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_log + g_log_len, sizeof g_log - g_log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        g_log_len += (size_t)n;
    if (g_log_len >= sizeof g_log - 1)
        g_log_len = sizeof g_log - 2;
    g_log[g_log_len++] = '\n';
    g_log[g_log_len] = '\0';
}

static void cap_progress(const sb_host *h, uint64_t done, uint64_t total)
{
    (void)h;
    cr_assert_leq(done, total);
}

static int cap_cancelled(const sb_host *h)
{
    (void)h;
    return 0;
}

/* Dataset plugins do not use the cache, so cache_get/cache_put stay NULL here. */
static const sb_host g_cap_host = { .struct_size = sizeof(sb_host),
                                    .log = cap_log,
                                    .progress = cap_progress,
                                    .cancelled = cap_cancelled,
                                    .cache_dir = "/tmp",
                                    .seed = 1,
                                    .threads = 1 };

/* Load with options given as YAML text, exactly as the host validates them. */
static sb_status load_yaml(const char *yaml, sb_corpus **out, sb_error *err)
{
    const sb_plugin *p = serbench_plugin_v1();
    sb_opts *opts = NULL;
    sb_error_clear(err);
    g_log_len = 0;
    g_log[0] = '\0';
    sb_status st = sbi_opts_parse(p->options, yaml, "test.yaml", &opts, err);
    cr_assert_eq(st, SB_OK, "options did not parse: %s | %s", err->where, err->msg);
    cr_assert_eq(sb_corpus_create("t", out, err), SB_OK);
    const sb_dataset_vtable *vt = p->vtable;
    st = vt->load(&g_cap_host, opts, *out, err);
    sbi_opts_destroy(&opts);
    if (st != SB_OK)
        cr_assert_neq(err->code, SB_OK, "status %d but the error object is empty", st);
    return st;
}

/* Load root (absolute) with extra option lines. */
static sb_status load_root(const char *root, const char *extra, sb_corpus **out, sb_error *err)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "root: \"%s\"\n%s", root, extra ? extra : "");
    return load_yaml(yaml, out, err);
}

static void expect_ok(sb_status st, const sb_error *err)
{
    cr_assert_eq(st, SB_OK, "load failed: %s | %s", err->where, err->msg);
}

/* The error must carry every needle in where+msg. */
static void expect_err(sb_status st, const sb_error *err, const char *const *needles)
{
    cr_assert_neq(st, SB_OK, "load succeeded but should have failed");
    char all[2100];
    snprintf(all, sizeof all, "%s | %s", err->where, err->msg);
    for (const char *const *n = needles; *n; n++)
        cr_assert_not_null(strstr(all, *n), "error '%s' lacks '%s'", all, *n);
}

static const sb_utt *utt_by_id(const sb_corpus *c, const char *id)
{
    long i = sb_corpus_find(c, id);
    cr_assert_geq(i, 0, "utterance %s not in the corpus", id);
    return sb_corpus_utt(c, (size_t)i);
}

static const char *class_of(const sb_corpus *c, const sb_utt *u)
{
    return u->label >= 0 ? sb_corpus_class(c, u->label) : NULL;
}

static int span_is(sbi_iem_span s, const char *want)
{
    return s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

/* ---- the descriptor ---------------------------------------------------------------- */

Test(parse, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_DATASET);
    cr_assert_str_eq(p->name, "iemocap");
    cr_assert_eq(p->abi_minor, SB_ABI_MINOR);
    cr_assert_eq(p->struct_size, sizeof(sb_plugin));
    const sb_dataset_vtable *vt = p->vtable;
    cr_assert_not_null(vt->load);
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_neq(sbi_opts_parse(p->options, "fold: 2", "t.yaml", &o, &err), SB_OK,
                  "root is required");
    cr_assert_not_null(strstr(err.msg, "root"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_neq(sbi_opts_parse(p->options, "root: /x\nfold: 6", "t.yaml", &o, &err), SB_OK);
    sb_error_clear(&err);
    cr_assert_neq(
        sbi_opts_parse(p->options, "root: /x\nprotocol: iemocap-4class", "t.yaml", &o, &err),
        SB_OK);
    sb_error_clear(&err);
    cr_assert_eq(sbi_opts_parse(p->options, "root: /x", "t.yaml", &o, &err), SB_OK, "%s", err.msg);
    cr_assert_str_eq(sb_opts_str(o, "protocol"), "iemocap-4class-loso");
    cr_assert_eq(sb_opts_int(o, "fold"), 1);
    cr_assert_str_eq(sb_opts_str(o, "dev"), "auto");
    cr_assert_eq(sb_opts_has(o, "include_unlabelled"), 0);
    sbi_opts_destroy(&o);
}

/* ---- line parsers on the release's formats (docs/datasets.md, §1.3-1.4) ---------- */

Test(parse, summary_lines_from_the_reference)
{
    sbi_iem_summary s;
    const char *why = NULL;
    cr_assert_eq(sbi_iem_parse_summary("[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t"
                                       "[2.5000, 2.5000, 2.5000]",
                                       &s, &why),
                 0, "%s", why);
    cr_assert_eq(s.start, 6.2901);
    cr_assert_eq(s.end, 8.2357);
    cr_assert(span_is(s.id, "Ses01F_impro01_F000"));
    cr_assert(span_is(s.code, "neu"));
    cr_assert_eq(s.vad[0], 2.5);
    cr_assert_eq(s.vad[1], 2.5);
    cr_assert_eq(s.vad[2], 2.5);

    cr_assert_eq(sbi_iem_parse_summary("[140.2250 - 145.6000]\tSes01F_impro05_F019\tang\t"
                                       "[1.5000, 4.0000, 4.5000]\r",
                                       &s, &why),
                 0, "%s", why);
    cr_assert_eq(s.start, 140.225);
    cr_assert_eq(s.end, 145.6);
    cr_assert(span_is(s.id, "Ses01F_impro05_F019"));
    cr_assert(span_is(s.code, "ang"));
    cr_assert_eq(s.vad[0], 1.5);
    cr_assert_eq(s.vad[1], 4.0);
    cr_assert_eq(s.vad[2], 4.5);

    /* A part-suffixed scripted id, spaces instead of tabs, a trailing blank. */
    cr_assert_eq(sbi_iem_parse_summary("[0.5 - 1]  Ses01F_script02_2_M013 xxx [3.3333, 2, 1.6667] ",
                                       &s, &why),
                 0, "%s", why);
    cr_assert(span_is(s.id, "Ses01F_script02_2_M013"));
    cr_assert(span_is(s.code, "xxx"));
    cr_assert_eq(s.vad[0], 3.3333);
    cr_assert_eq(s.end, 1.0);
}

Test(parse, malformed_summary_lines_say_what_was_expected)
{
    static const struct {
        const char *line, *why;
    } bad[] = {
        { "[6.2901 - 8.2357\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]", "']' after the end" },
        { "[6.2901 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]", "' - '" },
        { "[x - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]", "start time" },
        { "[-1.0 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]", "start time" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu", "'[V, A, D]' after" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\t[2.5, 2.5, 2.5]", "emotion code" },
        { "[6.2901 - 8.2357]", "utterance id" },
        { "[6.2901 - 8.2357]Ses01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]", "tab between" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5]", "three values" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, ]", "dominance" },
        { "[6.2901 - 8.2357]\tSes01F:impro01_F000\tneu\t[2.5, 2.5, 2.5]", "letters, digits" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, , 2.5]", "activation" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5; 2.5; 2.5]", "','" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5", "']' closing" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5] extra", "after '[V" },
        { "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5e0, 2.5, 2.5]", "','" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sbi_iem_summary s;
        const char *why = NULL;
        cr_assert_eq(sbi_iem_parse_summary(bad[i].line, &s, &why), -1, "accepted: %s", bad[i].line);
        cr_assert_not_null(why);
        cr_assert_not_null(strstr(why, bad[i].why), "'%s': why '%s' lacks '%s'", bad[i].line, why,
                           bad[i].why);
    }
}

Test(parse, rating_and_attribute_lines)
{
    sbi_iem_rating r;
    const char *why = NULL;
    cr_assert_eq(sbi_iem_parse_rating("C-E2:\tNeutral;\t()", &r, &why), 0, "%s", why);
    cr_assert(span_is(r.rater, "E2"));
    cr_assert_eq(r.n_cats, 1);
    cr_assert(span_is(r.cats[0], "Neutral"));
    cr_assert_eq(sbi_iem_parse_rating("C-F1:\tNeutral;\t(curious)\r", &r, &why), 0, "%s", why);
    cr_assert(span_is(r.rater, "F1"));
    cr_assert(span_is(r.cats[0], "Neutral"));
    cr_assert_eq(sbi_iem_parse_rating("C-E1:\tAnger;\t()", &r, &why), 0, "%s", why);
    cr_assert(span_is(r.rater, "E1"));
    cr_assert(span_is(r.cats[0], "Anger"));
    /* Several categories, in file order, trimmed; the comment is not a category. */
    cr_assert_eq(sbi_iem_parse_rating("C-E3:\tFrustration; Anger;\t(a; b)", &r, &why), 0, "%s",
                 why);
    cr_assert_eq(r.n_cats, 2);
    cr_assert(span_is(r.cats[0], "Frustration"));
    cr_assert(span_is(r.cats[1], "Anger"));
    cr_assert_eq(sbi_iem_parse_rating("C-E4:\tOther; \t(sarcastic)", &r, &why), 0, "%s", why);
    cr_assert_eq(r.n_cats, 1);
    cr_assert(span_is(r.cats[0], "Other"));
    /* No tab before the comment. */
    cr_assert_eq(sbi_iem_parse_rating("C-E5: Sadness; (tired)", &r, &why), 0, "%s", why);
    cr_assert(span_is(r.cats[0], "Sadness"));

    static const struct {
        const char *line, *why;
    } bad[] = {
        { "C-:\tNeutral;\t()", "rater id" },         { "C-E2\tNeutral;\t()", "':'" },
        { "C-E2:\t;\t()", "at least one category" }, { "C-E2:\t\t()", "at least one category" },
        { "C-E2:", "at least one category" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(sbi_iem_parse_rating(bad[i].line, &r, &why), -1, "accepted: %s", bad[i].line);
        cr_assert_not_null(strstr(why, bad[i].why), "'%s': why '%s' lacks '%s'", bad[i].line, why,
                           bad[i].why);
    }

    cr_assert(sbi_iem_is_attribute("A-E3:\tval 3; act 2; dom  2;\t()"));
    cr_assert(sbi_iem_is_attribute("A-E4:\tval 1; act 4; dom  5;\t(threatening, belligerent)"));
    cr_assert(sbi_iem_is_attribute("A-F1:\tval 3; act 2; dom  1;\t()"));
    cr_assert_not(sbi_iem_is_attribute("A-:\tval 3"));
    cr_assert_not(sbi_iem_is_attribute("A-E3\tval 3"));
    cr_assert_not(sbi_iem_is_attribute("C-E3:\tNeutral;"));
}

Test(parse, transcription_lines)
{
    sbi_iem_transcript t;
    cr_assert_eq(
        sbi_iem_parse_transcript("Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.", &t), 1);
    cr_assert(span_is(t.id, "Ses01F_impro01_F000"));
    cr_assert_eq(t.start, 6.2901);
    cr_assert_eq(t.end, 8.2357);
    cr_assert(span_is(t.text, "Excuse me."));
    cr_assert_eq(sbi_iem_parse_transcript(
                     "Ses01F_impro01_M000 [007.5712-010.4750]: Do you have your forms?  \r", &t),
                 1);
    cr_assert_eq(t.start, 7.5712);
    cr_assert_eq(t.end, 10.475);
    cr_assert(span_is(t.text, "Do you have your forms?"));
    cr_assert_eq(sbi_iem_parse_transcript("Ses01F_script02_2_FXX0 [100.0000-101.5000]:", &t), 1);
    cr_assert(span_is(t.id, "Ses01F_script02_2_FXX0"));
    cr_assert_eq(t.text.n, 0);

    /* Lines the public readers' regex does not match. */
    const char *no[] = { "",
                         "M: [LAUGHTER]",
                         "Ses01F_impro01_F000 [6.2901 - 8.2357]: spaces around the dash",
                         "Ses01F_impro01_F000 [006.2901-008.2357] no colon",
                         "Ses01F_impro01_F000: [006.2901-008.2357]: colon after the id",
                         "[006.2901-008.2357]: no id",
                         NULL };
    for (const char **l = no; *l; l++)
        cr_assert_eq(sbi_iem_parse_transcript(*l, &t), 0, "matched: '%s'", *l);
}

Test(parse, dialog_and_speaker_from_the_utterance_id)
{
    const char *a = "Ses01F_script02_2_F000", *b = "Ses01F_impro01_M013";
    cr_assert_eq(sbi_iem_dialog_len(a, strlen(a)), strlen("Ses01F_script02_2"));
    cr_assert_eq(sbi_iem_speaker_letter(a, strlen(a)), 'F');
    cr_assert_eq(sbi_iem_dialog_len(b, strlen(b)), strlen("Ses01F_impro01"));
    cr_assert_eq(sbi_iem_speaker_letter(b, strlen(b)), 'M', "from the suffix, not Ses01F");
    cr_assert_eq(sbi_iem_dialog_len("noparts", 7), 0);
    cr_assert_eq(sbi_iem_speaker_letter("noparts", 7), 0);
    cr_assert_eq(sbi_iem_speaker_letter("Ses01F_impro01_", 15), 0);
}

/* ---- hand-written trees ------------------------------------------------------------ */

static const char *HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n";

/* A minimal release under g_dir/IEMOCAP_full_release: every session has Ses0NF_impro01
 * with F000 (neu) and M000 (ang) and a transcription. `emo1`/`tr1` replace Session 1's
 * label file and transcription (NULL: the default). Returns the root. */
static const char *make_tree(const char *emo1, const char *tr1)
{
    for (int s = 1; s <= 5; s++) {
        char rel[256], text[2048];
        snprintf(rel, sizeof rel,
                 "IEMOCAP_full_release/Session%d/dialog/EmoEvaluation/"
                 "Ses%02dF_impro01.txt",
                 s, s);
        snprintf(text, sizeof text,
                 "%s[1.0000 - 2.0000]\tSes%02dF_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
                 "C-E2:\tNeutral;\t()\n"
                 "C-E3:\tNeutral;\t()\n"
                 "A-E2:\tval 3; act 2; dom  2;\t()\n"
                 "\n"
                 "[2.5000 - 3.5000]\tSes%02dF_impro01_M000\tang\t[1.5000, 4.0000, 4.5000]\n"
                 "C-E2:\tAnger;\t()\n"
                 "A-E2:\tval 1; act 4; dom  5;\t(threatening, belligerent)\n"
                 "\n",
                 HEADER, s, s);
        write_text(rel, s == 1 && emo1 ? emo1 : text);
        snprintf(rel, sizeof rel,
                 "IEMOCAP_full_release/Session%d/dialog/transcriptions/"
                 "Ses%02dF_impro01.txt",
                 s, s);
        snprintf(text, sizeof text,
                 "Ses%02dF_impro01_F000 [001.0000-002.0000]: Excuse me.\n"
                 "Ses%02dF_impro01_M000 [002.5000-003.5000]: Do you have your forms?\n",
                 s, s);
        write_text(rel, s == 1 && tr1 ? tr1 : text);
    }
    static char root[1024];
    snprintf(root, sizeof root, "%s", tpath("IEMOCAP_full_release"));
    return root;
}

Test(tree, minimal_tree_loads_without_any_audio)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(make_tree(NULL, NULL), "", &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 10);
    cr_assert_str_eq(sb_corpus_label_space(c), "iemocap-4class");
    const char *cls[] = { "neu", "hap", "ang", "sad" };
    cr_assert_eq(sb_corpus_n_classes(c), 4);
    for (int k = 0; k < 4; k++)
        cr_assert_str_eq(sb_corpus_class(c, k), cls[k]);
    const sb_utt *u = utt_by_id(c, "Ses01F_impro01_M000");
    cr_assert_str_eq(u->speaker, "Session1_M", "speaker from the suffix, not from Ses01F");
    cr_assert_str_eq(u->dialogue, "Ses01F_impro01");
    cr_assert_eq(u->turn, 1);
    cr_assert_str_eq(class_of(c, u), "ang");
    cr_assert_str_eq(u->text, "Do you have your forms?");
    cr_assert_str_eq(u->split, "test", "fold 1 tests on Session 1");
    cr_assert_eq(u->start, 0.0);
    cr_assert_eq(u->end, -1.0);
    char want[1200];
    snprintf(want, sizeof want, "%s/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav",
             tpath("IEMOCAP_full_release"));
    cr_assert_str_eq(u->audio, want, "the path is set even though no wav exists");
    cr_assert_str_eq(u->meta, "{\"vad\":[1.5,4,4.5],\"session\":1,\"code\":\"ang\","
                              "\"scripted\":false}");
    cr_assert_eq(sb_corpus_n_ratings(c, (size_t)sb_corpus_find(c, "Ses01F_impro01_F000")), 2);
    /* fold 1, dev speaker: Session2's F speaker. */
    cr_assert_str_eq(utt_by_id(c, "Ses02F_impro01_F000")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "Ses02F_impro01_M000")->split, "train");
    cr_assert_str_eq(utt_by_id(c, "Ses03F_impro01_F000")->split, "train");
    cr_assert_str_eq(sb_corpus_info(c, "protocol"), "iemocap-4class-loso");
    cr_assert_str_eq(sb_corpus_info(c, "protocol_version"), "1");
    cr_assert_not_null(strstr(sb_corpus_info(c, "dev_split"), "Session2_F"));
    cr_assert_not_null(strstr(sb_corpus_info(c, "layout"), "5 dialogues, 10 summary lines"));
    sb_corpus_destroy(&c);
}

Test(tree, parent_folder_of_the_release_is_accepted)
{
    make_tree(NULL, NULL);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(g_dir, "", &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 10);
    cr_assert_not_null(
        strstr(utt_by_id(c, "Ses01F_impro01_F000")->audio, "/IEMOCAP_full_release/Session1/"));
    sb_corpus_destroy(&c);
}

/* Turn order is by start time, whatever order the files list the turns in; a turn only
 * in the transcription is unlabelled context (ERC) with its span of the dialogue wav. */
Test(tree, turn_order_by_start_time_and_transcription_only_turns)
{
    const char *emo = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
                      "[5.0000 - 6.0000]\tSes01F_impro01_M000\tfru\t[2.0000, 3.0000, 3.0000]\n"
                      "C-E1:\tFrustration; Anger;\t()\n"
                      "C-E2:\tFrustration;\t()\n\n"
                      "[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\n"
                      "[3.0000 - 4.0000]\tSes01F_impro01_F001\tsad\t[2.0000, 2.0000, 2.0000]\n";
    const char *tr = "Ses01F_impro01_M000 [005.0000-006.0000]: Third.\n"
                     "Ses01F_impro01_F001 [003.0000-004.0000]: Second.\n"
                     "M: [BREATHING]\n"
                     "Ses01F_impro01_MXX0 [002.2000-002.8000]: Mm-hmm.\n"
                     "Ses01F_impro01_F000 [001.0000-002.0000]: First.\n";
    const char *root = make_tree(emo, tr);
    write_text("IEMOCAP_full_release/Session1/dialog/wav/Ses01F_impro01.wav", "RIFF");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    cr_assert_str_eq(sb_corpus_label_space(c), "iemocap-6class");
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_F000")->turn, 0);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_MXX0")->turn, 1);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_F001")->turn, 2);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_M000")->turn, 3);
    /* Corpus order follows the turns. */
    long i0 = sb_corpus_find(c, "Ses01F_impro01_F000");
    cr_assert_str_eq(sb_corpus_utt(c, (size_t)i0 + 1)->id, "Ses01F_impro01_MXX0");
    const sb_utt *x = utt_by_id(c, "Ses01F_impro01_MXX0");
    cr_assert_eq(x->label, -1);
    cr_assert_str_eq(x->text, "Mm-hmm.");
    cr_assert_str_eq(x->speaker, "Session1_M");
    cr_assert_str_eq(x->split, "train");
    cr_assert_not_null(x->audio);
    cr_assert_not_null(strstr(x->audio, "/Session1/dialog/wav/Ses01F_impro01.wav"));
    cr_assert_eq(x->start, 2.2);
    cr_assert_eq(x->end, 2.8);
    cr_assert_eq(sb_corpus_n_ratings(c, (size_t)sb_corpus_find(c, x->id)), 0);
    cr_assert_str_eq(x->meta, "{\"session\":1,\"transcription_only\":true,\"scripted\":false}");
    /* Several categories: the rating keeps the first, meta keeps all. */
    long m = sb_corpus_find(c, "Ses01F_impro01_M000");
    const char *rater = NULL;
    cr_assert_str_eq(sb_corpus_rating(c, (size_t)m, 0, &rater), "Frustration");
    cr_assert_str_eq(rater, "E1");
    cr_assert_str_eq(sb_corpus_rating(c, (size_t)m, 1, &rater), "Frustration");
    cr_assert_str_eq(rater, "E2");
    cr_assert_not_null(
        strstr(sb_corpus_utt(c, (size_t)m)->meta, "\"multi\":{\"E1\":[\"Frustration\",\"Anger\"]}"),
        "%s", sb_corpus_utt(c, (size_t)m)->meta);
    cr_assert_str_eq(class_of(c, sb_corpus_utt(c, (size_t)m)), "fru");
    cr_assert_str_eq(utt_by_id(c, "Ses01F_impro01_F001")->text, "Second.");
    cr_assert_not_null(strstr(g_log, "1 transcription lines are not turns"), "%s", g_log);
    sb_corpus_destroy(&c);

    /* Without the dialogue wav the context turn has no audio; 4-class leaves it out. */
    remove(tpath("IEMOCAP_full_release/Session1/dialog/wav/Ses01F_impro01.wav"));
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    cr_assert_null(utt_by_id(c, "Ses01F_impro01_MXX0")->audio);
    sb_corpus_destroy(&c);
    expect_ok(load_root(root, "", &c, &err), &err);
    cr_assert_lt(sb_corpus_find(c, "Ses01F_impro01_MXX0"), 0);
    cr_assert_lt(sb_corpus_find(c, "Ses01F_impro01_M000"), 0, "fru is not a 4-class code");
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_F001")->turn, 2, "turns keep their index");
    sb_corpus_destroy(&c);
    /* ...unless asked to keep unlabelled context. */
    expect_ok(load_root(root, "include_unlabelled: true\n", &c, &err), &err);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_M000")->label, -1);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_MXX0")->label, -1);
    sb_corpus_destroy(&c);
}

Test(tree, codes_outside_the_protocol_are_not_in_the_label_space)
{
    const char *emo = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
                      "[1.0000 - 2.0000]\tSes01F_impro01_F000\texc\t[4.0000, 4.0000, 3.0000]\n"
                      "[2.5000 - 3.5000]\tSes01F_impro01_M000\txxx\t[3.0000, 3.0000, 3.0000]\n"
                      "[4.0000 - 5.0000]\tSes01F_impro01_M001\tjoy\t[3.0000, 3.0000, 3.0000]\n";
    const char *root = make_tree(emo, NULL);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "", &c, &err), &err);
    cr_assert_str_eq(class_of(c, utt_by_id(c, "Ses01F_impro01_F000")), "hap", "exc -> hap");
    cr_assert_lt(sb_corpus_find(c, "Ses01F_impro01_M000"), 0);
    cr_assert_lt(sb_corpus_find(c, "Ses01F_impro01_M001"), 0);
    cr_assert_not_null(strstr(g_log, "[WARN] 1 summary lines have codes IEMOCAP does not "
                                     "define (joy)"),
                       "%s", g_log);
    sb_corpus_destroy(&c);
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    cr_assert_str_eq(class_of(c, utt_by_id(c, "Ses01F_impro01_F000")), "exc");
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_M000")->label, -1);
    cr_assert_eq(utt_by_id(c, "Ses01F_impro01_M001")->label, -1);
    cr_assert_not_null(strstr(utt_by_id(c, "Ses01F_impro01_M001")->meta, "\"code\":\"joy\""));
    cr_assert_eq(sb_corpus_size(c), 11);
    sb_corpus_destroy(&c);
    expect_ok(
        load_root(root, "protocol: iemocap-6class-erc\ninclude_unlabelled: false\n", &c, &err),
        &err);
    cr_assert_eq(sb_corpus_size(c), 9);
    sb_corpus_destroy(&c);
}

Test(tree, dev_choices_and_folds)
{
    const char *root = make_tree(NULL, NULL);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    /* fold 4: test Session4; dev speaker = Session5_M (even fold). */
    expect_ok(load_root(root, "fold: 4\n", &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "Ses04F_impro01_F000")->split, "test");
    cr_assert_str_eq(utt_by_id(c, "Ses05F_impro01_M000")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "Ses05F_impro01_F000")->split, "train");
    cr_assert_str_eq(sb_corpus_info(c, "fold"), "4");
    sb_corpus_destroy(&c);
    /* fold 5 wraps: dev = Session1_F. */
    expect_ok(load_root(root, "fold: 5\n", &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "Ses01F_impro01_F000")->split, "dev");
    sb_corpus_destroy(&c);
    expect_ok(load_root(root, "fold: 2\ndev: session\n", &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "Ses03F_impro01_F000")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "Ses03F_impro01_M000")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "Ses02F_impro01_M000")->split, "test");
    sb_corpus_destroy(&c);
    expect_ok(load_root(root, "dev: none\n", &c, &err), &err);
    for (size_t i = 0; i < sb_corpus_size(c); i++)
        cr_assert_str_neq(sb_corpus_utt(c, i)->split, "dev");
    cr_assert_str_eq(sb_corpus_info(c, "dev_split"), "none");
    sb_corpus_destroy(&c);
    /* ERC: 1-4 train, 5 test; last20 takes all of Session 4 here (one dialogue). */
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "Ses04F_impro01_F000")->split, "dev");
    cr_assert_str_eq(utt_by_id(c, "Ses03F_impro01_F000")->split, "train");
    cr_assert_str_eq(utt_by_id(c, "Ses05F_impro01_F000")->split, "test");
    cr_assert_not_null(strstr(sb_corpus_info(c, "dev_split"), "last 20 dialogues of Session 4"));
    cr_assert_str_eq(sb_corpus_info(c, "fold"), "none");
    sb_corpus_destroy(&c);
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\ndev: none\n", &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "Ses04F_impro01_F000")->split, "train");
    sb_corpus_destroy(&c);

    expect_err(load_root(root, "protocol: iemocap-6class-erc\nfold: 3\n", &c, &err), &err,
               (const char *[]){ "test.yaml", "fold 3", "single split", NULL });
    cr_assert_eq(err.code, SB_ERR_CONFIG);
    sb_corpus_destroy(&c);
    expect_err(load_root(root, "protocol: iemocap-6class-erc\ndev: speaker\n", &c, &err), &err,
               (const char *[]){ "whole dialogues", NULL });
    sb_corpus_destroy(&c);
    expect_err(load_root(root, "dev: last20\n", &c, &err), &err,
               (const char *[]){ "last20 belongs to iemocap-6class-erc", NULL });
    sb_corpus_destroy(&c);
}

/* ---- bad input ----------------------------------------------------------------------- */

Test(tree, missing_root)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load_root(tpath("nowhere"), "", &c, &err), &err,
               (const char *[]){ "nowhere", "does not exist", "IEMOCAP_full_release",
                                 "Session1 ... Session5", NULL });
    cr_assert_eq(err.code, SB_ERR_NOT_FOUND);
    sb_corpus_destroy(&c);
    write_text("afile", "x");
    expect_err(load_root(tpath("afile"), "", &c, &err), &err,
               (const char *[]){ "afile", "not a folder", NULL });
    sb_corpus_destroy(&c);
}

Test(tree, folder_that_is_not_iemocap)
{
    write_text("meld/train_sent_emo.csv", "Sr No.,Utterance\n");
    write_text("meld/Session1/readme.txt", "no dialog folder here\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load_root(tpath("meld"), "", &c, &err), &err,
               (const char *[]){ "meld", "not an IEMOCAP release folder",
                                 "Session1/dialog/EmoEvaluation", NULL });
    cr_assert_eq(err.code, SB_ERR_FORMAT);
    sb_corpus_destroy(&c);

    /* Four sessions out of five. */
    const char *root = make_tree(NULL, NULL);
    char p[1200];
    snprintf(p, sizeof p, "rm -r '%s/Session3'", root);
    cr_assert_eq(system(p), 0);
    expect_err(
        load_root(root, "", &c, &err), &err,
        (const char *[]){ "lacks Session3/dialog/EmoEvaluation", "all five sessions", NULL });
    sb_corpus_destroy(&c);
}

/* Malformed label lines stop the load with file:line: skipping one would silently change
 * the protocol counts. */
Test(tree, malformed_summary_line_names_file_and_line)
{
    const char *emo = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
                      "[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
                      "C-E2:\tNeutral;\t()\n\n"
                      "[2.5000 - 3.5000]\tSes01F_impro01_M000\tang\t[1.5000, 4.0000]\n";
    make_tree(emo, NULL);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char where[1200];
    snprintf(where, sizeof where, "%s:6",
             tpath("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"));
    expect_err(load_root(tpath("IEMOCAP_full_release"), "", &c, &err), &err,
               (const char *[]){ where, "malformed summary line", "three values in '[V, A, D]'",
                                 "Ses01F_impro01_M000", NULL });
    cr_assert_eq(err.code, SB_ERR_FORMAT);
    sb_corpus_destroy(&c);
}

Test(tree, malformed_rating_and_stray_lines_name_file_and_line)
{
    static const struct {
        const char *body;
        long line;
        const char *needle;
    } cases[] = {
        { "[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\nC-E2:\t\t()\n", 4,
          "malformed rating line" },
        { "C-E2:\tNeutral;\t()\n[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\n", 3,
          "rating line before any summary line" },
        { "A-E2:\tval 3; act 2; dom  2;\t()\n", 3, "attribute line before" },
        { "[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]\nSes01F_impro01_F000 :Neutral;\n",
          4, "not an EmoEvaluation line" },
        { "[1.0 - 2.0]\tSes01F_impro02_F000\tneu\t[2.5, 2.5, 2.5]\n", 3,
          "does not belong to dialog Ses01F_impro01" },
        { "[1.0 - 2.0]\tSes01F_impro01_X000\tneu\t[2.5, 2.5, 2.5]\n", 3, "speaker is unknown" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char emo[1024];
        snprintf(emo, sizeof emo, "%s%s", HEADER, cases[i].body);
        make_tree(emo, NULL);
        sb_corpus *c = NULL;
        sb_error err = { 0 };
        char where[1200];
        snprintf(where, sizeof where, "%s:%ld",
                 tpath("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"),
                 cases[i].line);
        expect_err(load_root(tpath("IEMOCAP_full_release"), "", &c, &err), &err,
                   (const char *[]){ where, cases[i].needle, NULL });
        sb_corpus_destroy(&c);
    }
}

Test(tree, duplicate_utterance_ids_name_both_files)
{
    const char *root = make_tree(NULL, NULL);
    /* A second label file in Session1 repeating an id of Ses01F_impro01. */
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy.txt",
               "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
               "[1.0000 - 2.0000]\tSes01F_impro01_copy_F000\tneu\t[2.5000, 2.5000, 2.5000]\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "", &c, &err), &err);
    sb_corpus_destroy(&c);
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy.txt",
               "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
               "[1.0000 - 2.0000]\tSes01F_impro01_copy_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
               "[3.0000 - 4.0000]\tSes01F_impro01_copy_F000\tsad\t[2.5000, 2.5000, 2.5000]\n");
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s:3",
             tpath("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy.txt"));
    snprintf(b, sizeof b, "%s:4",
             tpath("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy.txt"));
    expect_err(load_root(root, "", &c, &err), &err,
               (const char *[]){ a, b, "duplicate utterance id Ses01F_impro01_copy_F000", NULL });
    sb_corpus_destroy(&c);

    /* Across files: the same dialog's label file twice in two sessions' folders is caught
     * by the session check; the same id in two files of one folder is caught here. */
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy.txt",
               "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
               "[1.0000 - 2.0000]\tSes01F_impro01_copy_F000\tneu\t[2.5000, 2.5000, 2.5000]\n");
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01_copy_F000.txt",
               "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
               "[1.0000 - 2.0000]\tSes01F_impro01_copy_F000_F000\tneu\t[2.5, 2.5, 2.5]\n");
    expect_ok(load_root(root, "", &c, &err), &err);
    sb_corpus_destroy(&c);
}

/* A stray copy of Session 1's label file in Session 2's folder: the duplicate ids are
 * reported naming both files; a file moved to the wrong session is refused too. */
Test(tree, duplicate_ids_across_two_label_files)
{
    const char *root = make_tree(NULL, NULL);
    const char *emo1 = "IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt";
    const char *copy = "IEMOCAP_full_release/Session2/dialog/EmoEvaluation/Ses01F_impro01.txt";
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tpath(emo1), tpath(copy));
    cr_assert_eq(system(cmd), 0);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s:3", tpath(emo1));
    snprintf(b, sizeof b, "%s:3", tpath(copy));
    expect_err(load_root(root, "", &c, &err), &err,
               (const char *[]){ a, b, "duplicate utterance id Ses01F_impro01_F000", NULL });
    cr_assert_eq(err.code, SB_ERR_FORMAT);
    sb_corpus_destroy(&c);

    /* Moved rather than copied: no duplicate, but the session would be wrong. */
    remove(tpath(emo1));
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01M_impro02.txt",
               "[1.0 - 2.0]\tSes01M_impro02_M000\tsad\t[2.0, 2.0, 2.0]\n");
    expect_err(load_root(root, "", &c, &err), &err,
               (const char *[]){ "Session2/dialog/EmoEvaluation/Ses01F_impro01.txt",
                                 "in Session2's folder but its name says session 1", NULL });
    sb_corpus_destroy(&c);
}

Test(tree, stray_files_in_emoevaluation)
{
    const char *root = make_tree(NULL, NULL);
    /* Skipped: "._" resource forks, non-.txt files, subfolders and their .txt files. */
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt",
               "\x01\x02 not text");
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/notes.md", "whatever\n");
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Categorical/"
               "Ses01F_impro01_e2_cat.txt",
               "Ses01F_impro01_F000 :Neutral; ()\n");
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Self-evaluation/"
               "Ses01F_impro01_f1.txt",
               "garbage\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "", &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 10);
    sb_corpus_destroy(&c);
    /* A .txt that is not a dialog's label file: refused, naming it. */
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/readme.txt", "hello\n");
    expect_err(
        load_root(root, "", &c, &err), &err,
        (const char *[]){ "EmoEvaluation/readme.txt", "not an IEMOCAP label file name", NULL });
    sb_corpus_destroy(&c);
    remove(tpath("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/readme.txt"));
    /* A label file of another session in Session1's folder. */
    write_text("IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses02F_impro09.txt",
               "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n");
    expect_err(load_root(root, "", &c, &err), &err,
               (const char *[]){ "Ses02F_impro09.txt", "its name says session 2", NULL });
    sb_corpus_destroy(&c);
}

Test(tree, transcription_quirks)
{
    const char *tr = "Ses01F_impro01_F000 [001.0000-002.0000]: Caf\xe9 au lait.\r\n"
                     "Ses01F_impro01_F000 [001.0000-002.0000]: A second copy.\r\n"
                     "Ses01F_impro02_F000 [001.0000-002.0000]: Another dialog's turn.\r\n";
    const char *root = make_tree(NULL, tr);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "", &c, &err), &err);
    /* Windows-1252 repaired to UTF-8, CR removed; a second line for an id is reported. */
    cr_assert_str_eq(utt_by_id(c, "Ses01F_impro01_F000")->text, "Caf\xc3\xa9 au lait.");
    cr_assert_null(utt_by_id(c, "Ses01F_impro01_M000")->text);
    cr_assert_not_null(strstr(g_log, "[WARN]"), "%s", g_log);
    cr_assert_not_null(strstr(g_log, "Ses01F_impro01.txt:2: second transcription"), "%s", g_log);
    cr_assert_not_null(strstr(g_log, "1 transcription lines are not turns"), "%s", g_log);
    cr_assert_not_null(strstr(g_log, "1 utterances have no transcription line"), "%s", g_log);
    sb_corpus_destroy(&c);
    /* No transcription file at all: a warning, and no text. */
    remove(tpath("IEMOCAP_full_release/Session1/dialog/transcriptions/Ses01F_impro01.txt"));
    expect_ok(load_root(root, "", &c, &err), &err);
    cr_assert_null(utt_by_id(c, "Ses01F_impro01_F000")->text);
    cr_assert_not_null(strstr(g_log, "no transcription file"), "%s", g_log);
    sb_corpus_destroy(&c);
}

/* ---- the generated tree ------------------------------------------------------------ */

static json_t *g_expected;

static const char *gen_root(void)
{
    static char root[1200];
    const char *dir = getenv("SB_IEMOCAP_GEN");
    const char *js = getenv("SB_IEMOCAP_GEN_JSON");
    if (!dir || !js || access(js, R_OK) != 0)
        cr_skip_test("no generated IEMOCAP tree (needs espeak-ng, sox and python3)");
    snprintf(root, sizeof root, "%s/IEMOCAP_full_release", dir);
    if (!g_expected) {
        json_error_t je;
        g_expected = json_load_file(js, 0, &je);
        cr_assert_not_null(g_expected, "%s:%d: %s", js, je.line, je.text);
    }
    return root;
}

/* Counts [split][class] of labelled utterances; [split][n_classes] = unlabelled. */
static void count_splits(const sb_corpus *c, size_t counts[3][8])
{
    memset(counts, 0, sizeof(size_t[3][8]));
    int nc = sb_corpus_n_classes(c);
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        int s = strcmp(u->split, "train") == 0 ? 0 : strcmp(u->split, "dev") == 0 ? 1 : 2;
        cr_assert(s < 2 || strcmp(u->split, "test") == 0, "split %s", u->split);
        counts[s][u->label >= 0 ? u->label : nc]++;
    }
}

static void expect_counts(const sb_corpus *c, const char *key)
{
    static const char *splits[3] = { "train", "dev", "test" };
    json_t *want = json_object_get(json_object_get(g_expected, "protocols"), key);
    cr_assert_not_null(want, "expected.json has no protocols/%s", key);
    size_t got[3][8];
    count_splits(c, got);
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < sb_corpus_n_classes(c); k++) {
            json_t *n = json_object_get(json_object_get(want, splits[s]), sb_corpus_class(c, k));
            cr_assert(json_is_integer(n), "%s/%s/%s missing", key, splits[s],
                      sb_corpus_class(c, k));
            cr_assert_eq(got[s][k], (size_t)json_integer_value(n),
                         "%s %s %s: plugin %zu, intended %d", key, splits[s], sb_corpus_class(c, k),
                         got[s][k], (int)json_integer_value(n));
        }
}

Test(generated, loso_counts_per_fold_split_and_class_match_the_generator)
{
    const char *root = gen_root();
    for (int fold = 1; fold <= 5; fold++) {
        char extra[64], key[64];
        snprintf(extra, sizeof extra, "fold: %d\n", fold);
        snprintf(key, sizeof key, "iemocap-4class-loso/%d", fold);
        sb_corpus *c = NULL;
        sb_error err = { 0 };
        expect_ok(load_root(root, extra, &c, &err), &err);
        expect_counts(c, key);
        size_t got[3][8];
        count_splits(c, got);
        for (int s = 0; s < 3; s++)
            cr_assert_eq(got[s][4], 0, "no unlabelled items in LOSO by default");
        /* The test fold is the whole 4-class part of one session. */
        char sk[16];
        snprintf(sk, sizeof sk, "Session%d", fold);
        json_t *ps = json_object_get(json_object_get(g_expected, "per_session_codes"), sk);
        size_t want_test = 0;
        const char *four[] = { "neu", "hap", "exc", "ang", "sad" };
        for (int k = 0; k < 5; k++)
            want_test += (size_t)json_integer_value(json_object_get(ps, four[k]));
        cr_assert_eq(got[2][0] + got[2][1] + got[2][2] + got[2][3], want_test, "fold %d", fold);
        sb_corpus_destroy(&c);
    }
}

Test(generated, erc_counts_and_unlabelled_context_match_the_generator)
{
    const char *root = gen_root();
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    expect_counts(c, "iemocap-6class-erc");
    size_t got[3][8];
    count_splits(c, got);
    json_t *unl =
        json_object_get(json_object_get(g_expected, "protocols"), "iemocap-6class-erc/unlabelled");
    static const char *splits[3] = { "train", "dev", "test" };
    for (int s = 0; s < 3; s++)
        cr_assert_eq(got[s][6], (size_t)json_integer_value(json_object_get(unl, splits[s])),
                     "unlabelled in %s", splits[s]);
    /* Every turn of the tree is there, labelled or as context. */
    size_t n_all = json_array_size(json_object_get(g_expected, "utterances"));
    cr_assert_eq(sb_corpus_size(c), n_all);
    cr_assert_not_null(strstr(sb_corpus_info(c, "layout"), "15 dialogues, 240 summary lines"), "%s",
                       sb_corpus_info(c, "layout"));
    cr_assert_not_null(strstr(sb_corpus_info(c, "layout"), "(2 without a summary line)"));
    sb_corpus_destroy(&c);
}

/* Every utterance as the generator wrote it: dialogue, turn (time order, including the
 * scripted dialogues listed by id), speaker from the suffix, text, label, split, V/A/D,
 * ratings in file order, the multi-category rating, audio on disk. */
Test(generated, every_utterance_matches_what_the_generator_wrote)
{
    const char *root = gen_root();
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    json_t *utts = json_object_get(g_expected, "utterances");
    size_t i;
    json_t *e;
    int n_out_of_order = 0, n_multi = 0, n_tr_only = 0, n_m_in_f = 0, n_parts = 0;
    json_array_foreach(utts, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        const sb_utt *u = utt_by_id(c, id);
        size_t ui = (size_t)sb_corpus_find(c, id);
        cr_assert_str_eq(u->dialogue, json_string_value(json_object_get(e, "dialog")));
        cr_assert_eq(u->turn, json_integer_value(json_object_get(e, "turn")), "%s turn", id);
        cr_assert_str_eq(u->speaker, json_string_value(json_object_get(e, "speaker")), "%s", id);
        cr_assert_str_eq(u->text, json_string_value(json_object_get(e, "text")), "%s", id);
        int session = (int)json_integer_value(json_object_get(e, "session"));
        cr_assert_str_eq(u->split, session == 5 ? "test" : session == 4 ? "dev" : "train");
        json_t *code = json_object_get(e, "code");
        int scripted = json_is_true(json_object_get(e, "scripted"));
        char meta[512];
        if (json_is_null(code)) {
            n_tr_only++;
            cr_assert_eq(u->label, -1);
            snprintf(meta, sizeof meta,
                     "{\"session\":%d,\"transcription_only\":true,\"scripted\":%s}", session,
                     scripted ? "true" : "false");
            cr_assert_str_eq(u->meta, meta);
            cr_assert_not_null(u->audio, "%s: the dialogue wav exists", id);
            cr_assert_eq(access(u->audio, R_OK), 0, "%s", u->audio);
            cr_assert_not_null(strstr(u->audio, "/dialog/wav/"));
            /* Times from the transcription (4 decimals): within 5e-5 s. */
            cr_assert_leq(fabs(u->start - json_real_value(json_object_get(e, "start"))), 5e-5);
            cr_assert_leq(fabs(u->end - json_real_value(json_object_get(e, "end"))), 5e-5);
            continue;
        }
        const char *cs = json_string_value(code);
        int want = sb_corpus_class_index(c, cs);
        cr_assert_eq(u->label, want, "%s: %s", id, cs);
        json_t *vad = json_object_get(e, "vad");
        json_t *m = json_loads(u->meta, 0, NULL);
        cr_assert_not_null(m, "%s meta %s", id, u->meta);
        for (size_t k = 0; k < 3; k++) {
            double got = json_number_value(json_array_get(json_object_get(m, "vad"), k));
            double ref = json_number_value(json_array_get(vad, k));
            cr_assert_leq(fabs(got - ref), 1e-9, "%s vad[%zu] %.17g vs %.17g", id, k, got, ref);
        }
        cr_assert_eq(json_integer_value(json_object_get(m, "session")), session);
        cr_assert_str_eq(json_string_value(json_object_get(m, "code")), cs);
        cr_assert_eq(json_is_true(json_object_get(m, "scripted")), scripted, "%s", id);
        json_t *multi = json_object_get(e, "multi");
        if (json_object_size(multi)) {
            n_multi++;
            cr_assert(json_equal(json_object_get(m, "multi"), multi), "%s: %s", id, u->meta);
        } else {
            cr_assert_null(json_object_get(m, "multi"));
        }
        json_decref(m);
        json_t *ratings = json_object_get(e, "ratings");
        cr_assert_eq(sb_corpus_n_ratings(c, ui), json_array_size(ratings), "%s", id);
        for (size_t k = 0; k < json_array_size(ratings); k++) {
            const char *rater = NULL;
            const char *label = sb_corpus_rating(c, ui, k, &rater);
            json_t *r = json_array_get(ratings, k);
            cr_assert_str_eq(rater, json_string_value(json_array_get(r, 0)), "%s #%zu", id, k);
            cr_assert_str_eq(label, json_string_value(json_array_get(r, 1)), "%s #%zu", id, k);
        }
        cr_assert_eq(access(u->audio, R_OK), 0, "%s: %s", id, u->audio);
        char tail[512];
        snprintf(tail, sizeof tail, "/Session%d/sentences/wav/%s/%s.wav", session, u->dialogue, id);
        cr_assert(strlen(u->audio) > strlen(tail) &&
                      strcmp(u->audio + strlen(u->audio) - strlen(tail), tail) == 0,
                  "%s", u->audio);
        cr_assert_eq(u->start, 0.0);
        cr_assert_eq(u->end, -1.0);
        n_out_of_order += json_is_true(json_object_get(e, "listed_out_of_order"));
        n_m_in_f += strstr(id, "F_") && strstr(u->speaker, "_M") ? 1 : 0;
        n_parts += strstr(id, "_script02_2_") != NULL;
    }
    /* The quirks were all exercised. */
    cr_assert_gt(n_out_of_order, 10);
    cr_assert_eq(n_multi, 1);
    cr_assert_eq(n_tr_only, 2);
    cr_assert_gt(n_m_in_f, 10, "M speakers in Ses0xF dialogues");
    cr_assert_gt(n_parts, 10);
    cr_assert_str_eq(utt_by_id(c, "Ses01F_impro01_M000")->speaker, "Session1_M");
    /* The Windows-1252 line reads as UTF-8. */
    int found = 0;
    for (size_t k = 0; k < sb_corpus_size(c); k++) {
        const char *t = sb_corpus_utt(c, k)->text;
        if (t && strstr(t, "caf\xc3\xa9"))
            found++;
    }
    cr_assert_eq(found, 1);
    sb_corpus_destroy(&c);
}

/* The label files the release-style readers must skip are really there. */
Test(generated, tree_has_the_quirks)
{
    const char *root = gen_root();
    char p[1400];
    snprintf(p, sizeof p, "%s/Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt", root);
    cr_assert_eq(access(p, R_OK), 0, "%s", p);
    snprintf(p, sizeof p, "%s/Session1/dialog/EmoEvaluation/Categorical", root);
    struct stat st;
    cr_assert(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "%s", p);
    snprintf(p, sizeof p, "%s/Session3/dialog/EmoEvaluation/Ses03M_script02_2.txt", root);
    cr_assert_eq(access(p, R_OK), 0, "%s", p);
}

/* ---- a full-size label-only tree --------------------------------------------------- */

/* IEMOCAP's per-session code counts: ang/hap/exc/sad/neu as in docs/datasets.md §1.6
 * (5531 = 1085/1023/1151/1031/1241); fru split so that the 6-class test set is 1622 and
 * the whole is 7380; the other codes so that everything sums to 10039 (S5 = 2170). */
static const char *const FS_CODES[] = { "ang", "hap", "exc", "sad", "neu", "fru",
                                        "xxx", "sur", "fea", "oth", "dis" };
static const int FS_COUNTS[5][11] = {
    { 229, 135, 143, 194, 384, 360, 500, 22, 8, 1, 0 },
    { 137, 117, 210, 197, 362, 370, 490, 22, 8, 0, 1 },
    { 240, 135, 151, 305, 320, 380, 497, 22, 8, 1, 0 },
    { 327, 65, 238, 143, 258, 358, 500, 21, 9, 0, 1 },
    { 170, 143, 299, 245, 384, 381, 520, 20, 7, 1, 0 },
};
static const int FS_DIALOGS[5] = { 28, 30, 32, 30, 31 }; /* 151 */

static void write_fullsize(const char *root)
{
    for (int s = 0; s < 5; s++) {
        int n_d = FS_DIALOGS[s];
        /* Round-robin the session's codes over its dialogs. */
        int total = 0;
        for (int k = 0; k < 11; k++)
            total += FS_COUNTS[s][k];
        char **emo = calloc((size_t)n_d, sizeof *emo), **tr = calloc((size_t)n_d, sizeof *tr);
        size_t *emo_n = calloc((size_t)n_d, sizeof *emo_n),
               *tr_n = calloc((size_t)n_d, sizeof *tr_n);
        size_t *emo_cap = calloc((size_t)n_d, sizeof *emo_cap),
               *tr_cap = calloc((size_t)n_d, sizeof *tr_cap);
        int *n_turn = calloc((size_t)n_d, sizeof *n_turn);
        char names[32][64];
        for (int d = 0; d < n_d; d++) {
            if (d % 2)
                snprintf(names[d], sizeof names[d], "Ses%02d%c_script%02d_%d", s + 1,
                         d % 4 < 2 ? 'F' : 'M', d / 4 + 1, d % 3 + 1);
            else
                snprintf(names[d], sizeof names[d], "Ses%02d%c_impro%02d", s + 1,
                         d % 4 < 2 ? 'F' : 'M', d / 2 + 1);
        }
        int code = 0, used = 0;
        for (int u = 0; u < total; u++) {
            while (used == FS_COUNTS[s][code]) {
                code++;
                used = 0;
            }
            used++;
            int d = u % n_d;
            int t = n_turn[d]++;
            char g = t % 2 ? 'M' : 'F';
            char id[96], block[512], line[256];
            snprintf(id, sizeof id, "%s_%c%03d", names[d], g, t / 2);
            double st = 2.0 + 3.0 * t;
            int nb = snprintf(block, sizeof block,
                              "[%.4f - %.4f]\t%s\t%s\t[2.5000, 3.0000, 3.5000]\n"
                              "C-E1:\tNeutral;\t()\nC-E2:\tAnger; Frustration;\t()\n"
                              "C-E3:\tNeutral;\t()\nC-%c1:\tNeutral;\t()\n"
                              "A-E1:\tval 3; act 2; dom  2;\t()\nA-E2:\tval 2; act 3; dom  3;\t()\n"
                              "A-%c1:\tval 3; act 2; dom  1;\t()\n\n",
                              st, st + 2.5, id, FS_CODES[code], g, g);
            int nl = snprintf(line, sizeof line, "%s [%08.4f-%08.4f]: Turn %d of the dialog.\n", id,
                              st, st + 2.5, t);
#define APPEND(buf, n, cap, s, len)                                                                \
    do {                                                                                           \
        if (n[d] + (size_t)(len) + 1 > cap[d]) {                                                   \
            cap[d] = (cap[d] + (size_t)(len) + 1) * 2;                                             \
            buf[d] = realloc(buf[d], cap[d]);                                                      \
            cr_assert_not_null(buf[d]);                                                            \
        }                                                                                          \
        memcpy(buf[d] + n[d], s, (size_t)(len));                                                   \
        n[d] += (size_t)(len);                                                                     \
    } while (0)
            APPEND(emo, emo_n, emo_cap, block, nb);
            APPEND(tr, tr_n, tr_cap, line, nl);
#undef APPEND
        }
        for (int d = 0; d < n_d; d++) {
            char path[1400];
            snprintf(path, sizeof path, "%s/Session%d/dialog/EmoEvaluation/%s.txt", root, s + 1,
                     names[d]);
            mkdirs_for(path);
            FILE *f = fopen(path, "wb");
            cr_assert_not_null(f);
            fputs(HEADER, f);
            fwrite(emo[d], 1, emo_n[d], f);
            fclose(f);
            snprintf(path, sizeof path, "%s/Session%d/dialog/transcriptions/%s.txt", root, s + 1,
                     names[d]);
            mkdirs_for(path);
            f = fopen(path, "wb");
            cr_assert_not_null(f);
            fwrite(tr[d], 1, tr_n[d], f);
            fclose(f);
            free(emo[d]);
            free(tr[d]);
        }
        free(emo);
        free(tr);
        free(emo_n);
        free(tr_n);
        free(emo_cap);
        free(tr_cap);
        free(n_turn);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(fullsize, real_counts_from_a_label_only_tree, .timeout = 120)
{
    const char *root = tpath("IEMOCAP_full_release");
    write_fullsize(root);
    sb_corpus *c = NULL;
    sb_error err = { 0 };

    /* 4-class LOSO: 5531, per session 1085/1023/1151/1031/1241. */
    static const size_t per_session[5] = { 1085, 1023, 1151, 1031, 1241 };
    size_t total = 0;
    double t_loso = 0;
    for (int fold = 1; fold <= 5; fold++) {
        char extra[32];
        snprintf(extra, sizeof extra, "fold: %d\n", fold);
        double t0 = now_s();
        expect_ok(load_root(root, extra, &c, &err), &err);
        t_loso += now_s() - t0;
        size_t got[3][8];
        count_splits(c, got);
        size_t test = got[2][0] + got[2][1] + got[2][2] + got[2][3];
        cr_assert_eq(test, per_session[fold - 1], "fold %d test %zu", fold, test);
        cr_assert_eq(sb_corpus_size(c), 5531);
        total += test;
        if (fold == 1) {
            /* Classes over the whole corpus (all splits). */
            size_t cls[4] = { 0 };
            for (int s = 0; s < 3; s++)
                for (int k = 0; k < 4; k++)
                    cls[k] += got[s][k];
            cr_assert_eq(cls[0], 1708, "neu");
            cr_assert_eq(cls[1], 1636, "hap+exc");
            cr_assert_eq(cls[2], 1103, "ang");
            cr_assert_eq(cls[3], 1084, "sad");
            /* dev = Session2's F speaker, every other turn of Session 2 here. */
            cr_assert_gt(got[1][0] + got[1][1] + got[1][2] + got[1][3], 400);
        }
        sb_corpus_destroy(&c);
    }
    cr_assert_eq(total, 5531);

    /* 6-class ERC: 7380 labelled, 1622 in test, 2659 unlabelled turns as context. */
    double t0 = now_s();
    expect_ok(load_root(root, "protocol: iemocap-6class-erc\n", &c, &err), &err);
    double t_erc = now_s() - t0;
    size_t got[3][8];
    count_splits(c, got);
    size_t lab[3] = { 0 };
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 6; k++)
            lab[s] += got[s][k];
    cr_assert_eq(lab[0] + lab[1] + lab[2], 7380);
    cr_assert_eq(lab[2], 1622);
    cr_assert_eq(got[0][6] + got[1][6] + got[2][6], 2659);
    cr_assert_eq(sb_corpus_size(c), 10039);
    /* dev: the last 20 of Session 4's 30 dialogues in name order, whole dialogues. */
    const char *dev = sb_corpus_info(c, "dev_split");
    cr_assert_not_null(strstr(dev, "(20 here:"), "%s", dev);
    const char *s4[64];
    size_t n_s4 = 0;
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        if (strncmp(u->dialogue, "Ses04", 5) == 0 &&
            (n_s4 == 0 || strcmp(s4[n_s4 - 1], u->dialogue)))
            s4[n_s4++] = u->dialogue; /* the corpus is grouped by dialogue, in name order */
    }
    cr_assert_eq(n_s4, 30);
    for (size_t k = 1; k < n_s4; k++)
        cr_assert_lt(strcmp(s4[k - 1], s4[k]), 0, "dialogues in name order");
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        int in_last20 = 0;
        for (size_t k = n_s4 - 20; k < n_s4; k++)
            in_last20 |= strcmp(u->dialogue, s4[k]) == 0;
        cr_assert_eq(strcmp(u->split, "dev") == 0, in_last20, "%s in %s", u->id, u->split);
    }
    size_t n_ratings = 0;
    for (size_t i = 0; i < sb_corpus_size(c); i++)
        n_ratings += sb_corpus_n_ratings(c, i);
    cr_assert_eq(n_ratings, 4 * 10039);
    cr_assert_not_null(strstr(sb_corpus_info(c, "layout"), "151 dialogues, 10039 summary lines"));
    sb_corpus_destroy(&c);
    cr_log_info("full-size label-only tree (10039 summary lines, 151 dialogues): 4-class "
                "load %.3f s on average, 6-class ERC load %.3f s",
                t_loso / 5, t_erc);
    fprintf(stderr,
            "iemocap full-size load: 4-class %.3f s (mean of 5 folds), 6-class ERC %.3f s\n",
            t_loso / 5, t_erc);
}
