/* plugins/datasets/manifest/tests/test_manifest.c — the manifest plugin through its own
 * descriptor: options parsed as the host does, files written to a fresh temporary folder
 * per test, CSV checked against Python's csv writer (fixtures/tricky.*), and a seeded
 * mutation run that must never crash. */
#include <criterion/criterion.h>

#include "shared_data.h"

#include <dlfcn.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <serbench/serbench.h>

#include "internal.h"

const sb_plugin *serbench_plugin_v1(void);

/* ---- scaffolding ------------------------------------------------------------------- */

static char g_dir[512];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sb-manifest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
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

TestSuite(manifest, .init = setup, .fini = teardown);

/* Full path of `rel` in the test folder (static buffer rotation: 4 at a time). */
static const char *tpath(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

static void write_bytes(const char *rel, const char *data, size_t n)
{
    FILE *f = fopen(tpath(rel), "wb");
    cr_assert_not_null(f, "cannot write %s", rel);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *rel, const char *text)
{
    write_bytes(rel, text, strlen(text));
}

static void touch_audio(const char *rel)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", tpath(rel));
    for (char *s = sub + strlen(g_dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(sub, 0755);
        *s = '/';
    }
    write_text(rel, "RIFF");
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

/* Count of lines in the captured log at `level` containing `needle`. */
static int log_count(const char *level, const char *needle)
{
    int n = 0;
    char tag[16];
    snprintf(tag, sizeof tag, "[%s] ", level);
    for (const char *p = g_log; (p = strstr(p, tag)); p++) {
        const char *eol = strchr(p, '\n');
        const char *hit = strstr(p, needle);
        if (hit && (!eol || hit < eol))
            n++;
    }
    return n;
}

/* Load with options given as YAML text ("%s" in it is replaced by the manifest path). */
static sb_status load_host(const sb_host *host, const char *yaml, sb_corpus **out, sb_error *err)
{
    const sb_plugin *p = serbench_plugin_v1();
    sb_opts *opts = NULL;
    sb_error_clear(err);
    sb_status st = sbi_opts_parse(p->options, yaml, "test.yaml", &opts, err);
    cr_assert_eq(st, SB_OK, "options did not parse: %s | %s", err->where, err->msg);
    cr_assert_eq(sb_corpus_create("t", out, err), SB_OK);
    const sb_dataset_vtable *vt = p->vtable;
    st = vt->load(host, opts, *out, err);
    sbi_opts_destroy(&opts);
    if (st != SB_OK)
        cr_assert_neq(err->code, SB_OK, "status %d but the error object is empty", st);
    return st;
}

static sb_status load(const char *yaml, sb_corpus **out, sb_error *err)
{
    return load_host(sbi_test_host(1, 1), yaml, out, err);
}

/* Options for a manifest file in the test folder plus extra YAML lines. */
static const char *opts_for(const char *rel, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "path: \"%s\"\n%s", tpath(rel), extra ? extra : "");
    return buf;
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

static int streq_null(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static const sb_utt *utt_by_id(const sb_corpus *c, const char *id)
{
    long i = sb_corpus_find(c, id);
    cr_assert_geq(i, 0, "utterance %s not in the corpus", id);
    return sb_corpus_utt(c, (size_t)i);
}

static void expect_same_corpus(const sb_corpus *a, const sb_corpus *b)
{
    cr_assert_eq(sb_corpus_size(a), sb_corpus_size(b), "sizes %zu vs %zu", sb_corpus_size(a),
                 sb_corpus_size(b));
    cr_assert_eq(sb_corpus_n_classes(a), sb_corpus_n_classes(b));
    for (int k = 0; k < sb_corpus_n_classes(a); k++)
        cr_assert_str_eq(sb_corpus_class(a, k), sb_corpus_class(b, k));
    for (size_t i = 0; i < sb_corpus_size(a); i++) {
        const sb_utt *x = sb_corpus_utt(a, i), *y = sb_corpus_utt(b, i);
        cr_assert_str_eq(x->id, y->id, "row %zu", i);
#define SAME_STR(f)                                                                                \
    cr_assert(streq_null(x->f, y->f), "%s: " #f " '%s' vs '%s'", x->id, x->f ? x->f : "(null)",    \
              y->f ? y->f : "(null)")
        SAME_STR(dialogue);
        SAME_STR(speaker);
        SAME_STR(audio);
        SAME_STR(text);
        SAME_STR(split);
#undef SAME_STR
        cr_assert_eq(x->turn, y->turn, "%s: turn", x->id);
        cr_assert_eq(x->channel, y->channel, "%s: channel", x->id);
        cr_assert_eq(x->label, y->label, "%s: label", x->id);
        /* Both sides parse the same decimal text (or its %.17g round trip): exact. */
        cr_assert_eq(x->start, y->start, "%s: start %.17g vs %.17g", x->id, x->start, y->start);
        cr_assert_eq(x->end, y->end, "%s: end %.17g vs %.17g", x->id, x->end, y->end);
        cr_assert((isnan(x->value) && isnan(y->value)) || x->value == y->value,
                  "%s: value %.17g vs %.17g", x->id, x->value, y->value);
    }
}

/* ---- the descriptor ---------------------------------------------------------------- */

Test(manifest, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_DATASET);
    cr_assert_str_eq(p->name, "manifest");
    cr_assert_str_eq(p->version, "1.0.0");
    cr_assert_eq(p->abi_minor, SB_ABI_MINOR);
    cr_assert_eq(p->struct_size, sizeof(sb_plugin));
    const sb_dataset_vtable *vt = p->vtable;
    cr_assert_eq(vt->struct_size, sizeof(sb_dataset_vtable));
    cr_assert_not_null(vt->load);
    /* path is required: the host refuses a block without it. */
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_neq(sbi_opts_parse(p->options, "format: csv", "t.yaml", &o, &err), SB_OK);
    cr_assert_not_null(strstr(err.msg, "path"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_neq(sbi_opts_parse(p->options, "path: /x.csv\nformat: xml", "t.yaml", &o, &err),
                  SB_OK);
}

/* The built module exports its entry point and nothing else of ours. */
Test(manifest, built_module_exports_the_entry_only)
{
    const char *root = getenv("SB_BUILD_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/plugins/datasets/manifest/manifest.so", root ? root : "");
    if (!root || access(path, R_OK) != 0)
        cr_skip_test("no %s", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen: %s", dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(h, SB_PLUGIN_ENTRY_NAME);
    cr_assert_not_null(entry, "no [%s] in [%s]", SB_PLUGIN_ENTRY_NAME, path);
    const sb_plugin *p = entry();
    cr_assert_str_eq(p->name, "manifest");
    cr_assert_str_eq(p->version, "1.0.0");
    cr_assert_null(dlsym(h, "manifest_load"), "internal symbols must stay hidden");
    dlclose(h);
}

/* ---- CSV against JSON Lines -------------------------------------------------------- */

/* fixtures/tricky.csv was written by Python's csv module (QUOTE_MINIMAL, CRLF, BOM) and
 * fixtures/tricky.jsonl by json from the same rows (tests/make_fixtures.py). */
Test(manifest, csv_and_jsonl_fixtures_give_identical_corpora)
{
    sb_corpus *a = NULL, *b = NULL;
    sb_error err = { 0 };
    char y[2048];
    snprintf(y, sizeof y, "path: \"%s/tricky.csv\"\ncheck_audio: false\n", SB_MANIFEST_FIXTURES);
    expect_ok(load(y, &a, &err), &err);
    snprintf(y, sizeof y, "path: \"%s/tricky.jsonl\"\ncheck_audio: false\n", SB_MANIFEST_FIXTURES);
    expect_ok(load(y, &b, &err), &err);
    cr_assert_eq(sb_corpus_size(a), 60);
    expect_same_corpus(a, b);

    /* Spot checks against the generator's rows. */
    const sb_utt *u = utt_by_id(a, "utt001");
    cr_assert_str_eq(u->text, ";\t;\n,z  x\xc3\xa9"
                              "b\na'\xc2\xa0\n\t \xc3\xa9");
    cr_assert_str_eq(u->speaker, "Ross, Dr.");
    cr_assert_str_eq(u->split, "test");
    cr_assert_eq(u->turn, 3);
    cr_assert_eq(u->label, -1);
    u = utt_by_id(a, "utt002");
    cr_assert_str_eq(u->speaker, "M \"Joey\"");
    cr_assert_str_eq(sb_corpus_class(a, u->label), "sad", "label ' sad ' is trimmed");
    cr_assert_eq(u->start, 35.939);
    cr_assert_eq(u->end, 42.948);
    cr_assert_eq(u->value, 1e-07);
    u = utt_by_id(a, "s4"); /* no id, no span: the audio stem */
    cr_assert_eq(u->channel, 0);
    cr_assert_eq(u->turn, 17);
    u = utt_by_id(a, "s6_63"); /* no id, span from 63.0 s */
    cr_assert_eq(u->end, 63.17);
    char want[1100];
    snprintf(want, sizeof want, "%s/wav/s6.flac", SB_MANIFEST_FIXTURES);
    cr_assert_str_eq(u->audio, want, "'./' is dropped when joining");
    cr_assert_str_eq(utt_by_id(a, "utt005")->audio, "/data/abs/s5.wav");

    /* Inferred classes: sorted distinct labels. */
    cr_assert_eq(sb_corpus_n_classes(a), 4);
    const char *want_cls[] = { "ang", "hap", "neu", "sad" };
    for (int k = 0; k < 4; k++)
        cr_assert_str_eq(sb_corpus_class(a, k), want_cls[k]);
    cr_assert_str_eq(sb_corpus_label_space(a), "manifest");
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
}

Test(manifest, small_csv_and_jsonl_with_renames_agree)
{
    write_text("m.csv", "wav_path,emotion,part,who,t0,t1,sess,idx,words,score,ch\n"
                        "a.wav,hap,train,F,0.5,2.25,d1,0,hi there,0.75,1\n"
                        "b.wav,,dev,M,,,d1,1,,,\n");
    write_text("m.jsonl",
               "{\"wav_path\":\"a.wav\",\"emotion\":\"hap\",\"part\":\"train\",\"who\":\"F\","
               "\"t0\":0.5,\"t1\":2.25,\"sess\":\"d1\",\"idx\":0,\"words\":\"hi there\","
               "\"score\":0.75,\"ch\":1}\n"
               "{\"wav_path\":\"b.wav\",\"emotion\":null,\"part\":\"dev\",\"who\":\"M\","
               "\"sess\":\"d1\",\"idx\":1}\n");
    const char *cols = "check_audio: false\nclasses: [neu, hap]\n"
                       "columns: {audio: wav_path, label: emotion, split: part, speaker: who, "
                       "start: t0, end: t1, dialogue: sess, turn: idx, text: words, "
                       "value: score, channel: ch}\n";
    sb_corpus *a = NULL, *b = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("m.csv", cols), &a, &err), &err);
    expect_ok(load(opts_for("m.jsonl", cols), &b, &err), &err);
    expect_same_corpus(a, b);
    cr_assert_eq(sb_corpus_size(a), 2);
    const sb_utt *u = sb_corpus_utt(a, 0);
    cr_assert_str_eq(u->id, "a_0.5");
    cr_assert_str_eq(u->audio, tpath("a.wav"));
    cr_assert_eq(u->label, 1);
    cr_assert_eq(u->channel, 1);
    cr_assert_eq(u->value, 0.75);
    cr_assert_str_eq(u->dialogue, "d1");
    u = sb_corpus_utt(a, 1);
    cr_assert_str_eq(u->id, "b");
    cr_assert_eq(u->label, -1);
    cr_assert_eq(u->end, -1.0);
    cr_assert_null(u->text);
    cr_assert(isnan(u->value));
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
}

/* ---- CSV syntax -------------------------------------------------------------------- */

Test(manifest, quoting)
{
    write_text("q.csv",
               "id,audio,split,text,speaker\n"
               "u1,a.wav,train,\"a, b\",x\n"                   /* delimiter inside quotes */
               "u2,a.wav,train,\"she said \"\"no\"\"\",\"\"\n" /* doubled quotes; "" is empty */
               "u3,a.wav,train,\"two\nlines\",y\n"             /* embedded LF */
               "u4,a.wav,train,\"crlf\r\ninside\",y\n"         /* embedded CRLF → LF */
               "u5,a.wav,train,5'11\" tall,y\n"                /* quote in an unquoted field */
               "\"u6\",\"a.wav\",\"train\",\"\"\"\",\"z\"\n"); /* a lone quote character */
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("q.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 6);
    cr_assert_str_eq(utt_by_id(c, "u1")->text, "a, b");
    cr_assert_str_eq(utt_by_id(c, "u2")->text, "she said \"no\"");
    cr_assert_null(utt_by_id(c, "u2")->speaker);
    cr_assert_str_eq(utt_by_id(c, "u3")->text, "two\nlines");
    cr_assert_str_eq(utt_by_id(c, "u4")->text, "crlf\r\ninside"); /* kept as written (RFC 4180) */
    cr_assert_str_eq(utt_by_id(c, "u5")->text, "5'11\" tall");
    cr_assert_str_eq(utt_by_id(c, "u6")->text, "\"");
    sb_corpus_destroy(&c);
}

Test(manifest, line_numbers_count_embedded_newlines)
{
    /* Line 4 starts a record whose quoted text spans lines 4-6; the bad row is on line 7. */
    write_text("l.csv", "id,audio,split,text\n"
                        "u1,a.wav,train,x\n"
                        "\n"
                        "u2,a.wav,train,\"one\ntwo\nthree\"\n"
                        "u3,a.wav,train\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char where[1100];
    snprintf(where, sizeof where, "%s:7", tpath("l.csv"));
    expect_err(load(opts_for("l.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ where, "3 fields", "header", "has 4", NULL });
    cr_assert_eq(err.code, SB_ERR_FORMAT);
    sb_corpus_destroy(&c);
}

Test(manifest, quote_errors)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("u.csv", "id,audio,split,text\nu1,a.wav,train,\"never closed\nu2,b.wav,dev,x\n");
    expect_err(load(opts_for("u.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "u.csv:2", "never closed", "field 4", NULL });
    sb_corpus_destroy(&c);
    write_text("t.csv", "id,audio,split,text\nu1,a.wav,train,\"closed\" late\n");
    expect_err(load(opts_for("t.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "t.csv:2", "after the closing quote", "field 4", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, bom_is_stripped)
{
    write_text("b.csv", "\xEF\xBB\xBFid,audio,split\nu1,a.wav,train\n");
    write_text("b.jsonl", "\xEF\xBB\xBF{\"id\":\"u1\",\"audio\":\"a.wav\",\"split\":\"train\"}\n");
    sb_corpus *a = NULL, *b = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("b.csv", "check_audio: false\n"), &a, &err), &err);
    expect_ok(load(opts_for("b.jsonl", "check_audio: false\n"), &b, &err), &err);
    cr_assert_str_eq(sb_corpus_utt(a, 0)->id, "u1", "the BOM must not stick to 'id'");
    expect_same_corpus(a, b);
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
}

Test(manifest, crlf_and_lf_agree)
{
    write_text("lf.csv", "id,audio,split,label\nu1,a.wav,train,hap\nu2,b.wav,dev,sad\n");
    write_text("crlf.csv",
               "id,audio,split,label\r\nu1,a.wav,train,hap\r\nu2,b.wav,dev,sad\r\n\r\n");
    write_text("nolast.csv", "id,audio,split,label\r\nu1,a.wav,train,hap\r\nu2,b.wav,dev,sad");
    sb_corpus *a = NULL, *b = NULL, *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("lf.csv", "check_audio: false\n"), &a, &err), &err);
    expect_ok(load(opts_for("crlf.csv", "check_audio: false\n"), &b, &err), &err);
    expect_ok(load(opts_for("nolast.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_class(b, 1), "sad", "no \\r left on the last column");
    expect_same_corpus(a, b);
    expect_same_corpus(a, c);
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
    sb_corpus_destroy(&c);
}

Test(manifest, tsv_by_extension)
{
    write_text("m.tsv", "id\taudio\tsplit\ttext\nu1\ta.wav\ttrain\tcomma, kept\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("m.tsv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_utt(c, 0)->text, "comma, kept");
    sb_corpus_destroy(&c);
}

Test(manifest, format_option_and_unknown_extension)
{
    write_text("m.txt", "{\"id\":\"u1\",\"audio\":\"a.wav\",\"split\":\"train\"}\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load(opts_for("m.txt", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "m.txt", "format", NULL });
    sb_corpus_destroy(&c);
    expect_ok(load(opts_for("m.txt", "check_audio: false\nformat: jsonl\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 1);
    sb_corpus_destroy(&c);
}

/* ---- paths, spans, ids ------------------------------------------------------------- */

Test(manifest, relative_and_absolute_audio_paths)
{
    touch_audio("sub/wav/a.wav");
    touch_audio("abs/b.wav");
    char m[4096];
    snprintf(m, sizeof m, "id,audio,split\nu1,wav/a.wav,train\nu2,./wav/a.wav,dev\nu3,%s,test\n",
             tpath("abs/b.wav"));
    mkdir(tpath("sub"), 0755);
    write_text("sub/m.csv", m);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("sub/m.csv", NULL), &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "u1")->audio, tpath("sub/wav/a.wav"));
    cr_assert_str_eq(utt_by_id(c, "u2")->audio, tpath("sub/wav/a.wav"));
    cr_assert_str_eq(utt_by_id(c, "u3")->audio, tpath("abs/b.wav"));
    cr_assert_eq(sb_corpus_n_warnings(c), 0, "all three files exist");
    sb_corpus_destroy(&c);
}

Test(manifest, spans_and_derived_ids)
{
    write_text("s.csv", "audio,start,end,split\n"
                        "long/rec1.wav,0,2.5,train\n"
                        "long/rec1.wav,2.5,4,train\n"
                        "long/rec1.wav,12.125,,train\n"
                        "long/rec2.wav,,3,train\n"
                        "long/rec3.flac,,,dev\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("s.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 5);
    const sb_utt *u = utt_by_id(c, "rec1_0");
    cr_assert_eq(u->start, 0.0);
    cr_assert_eq(u->end, 2.5);
    u = utt_by_id(c, "rec1_2.5");
    cr_assert_eq(u->start, 2.5);
    cr_assert_eq(u->end, 4.0);
    u = utt_by_id(c, "rec1_12.125");
    cr_assert_eq(u->end, -1.0, "no end: to the end of the file");
    u = utt_by_id(c, "rec2_0");
    cr_assert_eq(u->end, 3.0);
    u = utt_by_id(c, "rec3");
    cr_assert_eq(u->start, 0.0);
    cr_assert_eq(u->end, -1.0);
    sb_corpus_destroy(&c);

    write_text("bad.csv", "audio,start,end,split\nr.wav,3,2,train\n");
    expect_err(load(opts_for("bad.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "bad.csv:2", "'end'", "not after start", NULL });
    sb_corpus_destroy(&c);
    write_text("neg.csv", "audio,start,split\nr.wav,-1,train\n");
    expect_err(load(opts_for("neg.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "neg.csv:2", "'start'", "negative", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, duplicate_id_names_both_lines)
{
    write_text("d.csv", "id,audio,split\nu1,a.wav,train\nu2,b.wav,train\n\nu1,c.wav,dev\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load(opts_for("d.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "d.csv:5", "duplicate id 'u1'", "line 2", NULL });
    sb_corpus_destroy(&c);
    /* Derived ids: same file twice without spans. */
    write_text("e.jsonl", "{\"audio\":\"x/a.wav\",\"split\":\"train\"}\n"
                          "{\"audio\":\"y/a.wav\",\"split\":\"train\"}\n");
    expect_err(load(opts_for("e.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "e.jsonl:2", "duplicate id 'a'", "line 1", "id column", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, missing_audio_is_a_warning)
{
    touch_audio("here.wav");
    write_text("w.csv", "id,audio,split\nu1,here.wav,train\nu2,gone.wav,train\nu3,.,dev\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    g_log_len = 0;
    g_log[0] = '\0';
    expect_ok(load_host(&g_cap_host, opts_for("w.csv", "check_audio: true\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 3, "items stay; the host leaves out warned ones");
    cr_assert_eq(sb_corpus_n_warnings(c), 2);
    const char *id = NULL;
    const char *msg = sb_corpus_warning(c, 0, &id);
    cr_assert_str_eq(id, "u2");
    cr_assert_not_null(strstr(msg, tpath("gone.wav")), "%s", msg);
    cr_assert_not_null(strstr(msg, "w.csv:3"), "%s", msg);
    msg = sb_corpus_warning(c, 1, &id);
    cr_assert_str_eq(id, "u3");
    cr_assert_not_null(strstr(msg, "not a regular file"), "%s", msg);
    cr_assert_eq(log_count("WARN", "2 of 3 audio files"), 1, "log:\n%s", g_log);
    sb_corpus_destroy(&c);
    /* check_audio: false (the default) looks at nothing: the feature stage checks. */
    expect_ok(load(opts_for("w.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    sb_corpus_destroy(&c);
    expect_ok(load(opts_for("w.csv", NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    sb_corpus_destroy(&c);
}

/* ---- labels ------------------------------------------------------------------------ */

Test(manifest, classes_given_keep_their_order)
{
    write_text("c.csv", "id,audio,split,label\nu1,a.wav,train,sad\nu2,a.wav,train,neu\n"
                        "u3,a.wav,train,\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    g_log_len = 0;
    g_log[0] = '\0';
    expect_ok(load_host(&g_cap_host,
                        opts_for("c.csv", "check_audio: false\nclasses: [neu, hap, sad, ang]\n"
                                          "label_space: iemocap-4class\n"),
                        &c, &err),
              &err);
    cr_assert_eq(sb_corpus_n_classes(c), 4);
    cr_assert_str_eq(sb_corpus_class(c, 1), "hap", "unused classes stay in the space");
    cr_assert_str_eq(sb_corpus_label_space(c), "iemocap-4class");
    cr_assert_eq(utt_by_id(c, "u1")->label, 2);
    cr_assert_eq(utt_by_id(c, "u2")->label, 0);
    cr_assert_eq(utt_by_id(c, "u3")->label, -1, "empty label = unlabelled");
    cr_assert_eq(log_count("INFO", "classes not set"), 0);
    sb_corpus_destroy(&c);
}

Test(manifest, classes_inferred_are_sorted_and_logged)
{
    write_text("c.csv", "id,audio,split,label\nu1,a.wav,train,sad\nu2,a.wav,train,neu\n"
                        "u3,a.wav,train,ang\nu4,a.wav,dev,sad\nu5,a.wav,dev,\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    g_log_len = 0;
    g_log[0] = '\0';
    expect_ok(load_host(&g_cap_host, opts_for("c.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_n_classes(c), 3);
    cr_assert_str_eq(sb_corpus_class(c, 0), "ang");
    cr_assert_str_eq(sb_corpus_class(c, 1), "neu");
    cr_assert_str_eq(sb_corpus_class(c, 2), "sad");
    cr_assert_eq(utt_by_id(c, "u1")->label, 2);
    cr_assert_eq(utt_by_id(c, "u3")->label, 0);
    cr_assert_eq(utt_by_id(c, "u5")->label, -1);
    cr_assert_eq(log_count("INFO", "classes not set"), 1, "log:\n%s", g_log);
    cr_assert_eq(log_count("INFO", "'ang', 'neu', 'sad'"), 1, "log:\n%s", g_log);
    sb_corpus_destroy(&c);
}

Test(manifest, no_labels_at_all_is_a_regression_corpus)
{
    write_text("r.jsonl", "{\"audio\":\"a.wav\",\"split\":\"train\",\"value\":-1.5}\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_for("r.jsonl", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(sb_corpus_n_classes(c), 0);
    cr_assert_eq(sb_corpus_utt(c, 0)->value, -1.5);
    cr_assert_eq(sb_corpus_utt(c, 0)->label, -1);
    sb_corpus_destroy(&c);
}

Test(manifest, unknown_label_is_an_error)
{
    write_text("c.csv", "id,audio,split,label\nu1,a.wav,train,neu\nu2,a.wav,train,happy\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load(opts_for("c.csv", "check_audio: false\nclasses: [neu, hap]\n"), &c, &err), &err,
               (const char *[]){ "c.csv:3", "'happy'", "'neu', 'hap'", NULL });
    sb_corpus_destroy(&c);
}

/* ---- bad files ----------------------------------------------------------------------- */

Test(manifest, wrong_field_count)
{
    write_text("f.csv", "id,audio,split\nu1,a.wav,train\nu2,a.wav,train,extra\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load(opts_for("f.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "f.csv:3", "4 fields", "has 3", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, malformed_json_line)
{
    write_text("j.jsonl", "{\"audio\":\"a.wav\",\"split\":\"train\",\"id\":\"u1\"}\n"
                          "\n"
                          "{\"audio\":\"b.wav\",\"split\":\"train\",\"id\":\"u2\"\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_err(load(opts_for("j.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "j.jsonl:3", "malformed JSON", "'}' expected", NULL });
    sb_corpus_destroy(&c);
    write_text("arr.json", "[{\"audio\":\"a.wav\",\"split\":\"train\"}]\n");
    expect_err(load(opts_for("arr.json", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "arr.json:1", "JSON array", NULL });
    sb_corpus_destroy(&c);
    write_text("n.jsonl", "42\n");
    expect_err(load(opts_for("n.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "n.jsonl:1", "a number", "object", NULL });
    sb_corpus_destroy(&c);
    write_text("o.jsonl", "{\"audio\":\"a.wav\",\"split\":\"train\",\"label\":{\"x\":1}}\n");
    expect_err(load(opts_for("o.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "o.jsonl:1", "'label'", "an object", NULL });
    sb_corpus_destroy(&c);
    write_text("dup.jsonl", "{\"audio\":\"a.wav\",\"audio\":\"b.wav\",\"split\":\"train\"}\n");
    expect_err(load(opts_for("dup.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "dup.jsonl:1", "duplicate", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, bad_numbers_name_the_column)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("n.csv", "audio,start,split\na.wav,1.2.3,train\n");
    expect_err(load(opts_for("n.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "n.csv:2", "column 'start'", "'1.2.3'", NULL });
    sb_corpus_destroy(&c);
    write_text("t.jsonl", "{\"audio\":\"a.wav\",\"split\":\"train\",\"idx\":\"2x\"}\n");
    expect_err(load(opts_for("t.jsonl", "check_audio: false\ncolumns: {turn: idx}\n"), &c, &err),
               &err, (const char *[]){ "t.jsonl:1", "column 'idx' (field turn)", "'2x'", NULL });
    sb_corpus_destroy(&c);
    write_text("i.csv", "audio,channel,split\na.wav,1.5,train\n");
    expect_err(load(opts_for("i.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "i.csv:2", "'channel'", "whole number", NULL });
    sb_corpus_destroy(&c);
    write_text("v.csv", "audio,value,split\na.wav,nan,train\n");
    expect_err(load(opts_for("v.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "v.csv:2", "'value'", "finite", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, missing_required_column)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("a.csv", "id,wav,split\nu1,a.wav,train\n");
    expect_err(load(opts_for("a.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "a.csv:1", "no column 'audio'", "'id', 'wav', 'split'", NULL });
    sb_corpus_destroy(&c);
    write_text("s.csv", "id,audio\nu1,a.wav\n");
    expect_err(load(opts_for("s.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "s.csv:1", "'split'", "split_default", NULL });
    sb_corpus_destroy(&c);
    /* ...which split_default fixes, also for an empty cell. */
    expect_ok(load(opts_for("s.csv", "check_audio: false\nsplit_default: test\n"), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_utt(c, 0)->split, "test");
    sb_corpus_destroy(&c);
    write_text("e.csv", "id,audio,split\nu1,a.wav,train\nu2,b.wav,\n");
    expect_err(load(opts_for("e.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "e.csv:3", "'split'", "empty", NULL });
    sb_corpus_destroy(&c);
    write_text("j.jsonl", "{\"id\":\"u1\",\"split\":\"train\"}\n");
    expect_err(load(opts_for("j.jsonl", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "j.jsonl:1", "no key 'audio'", NULL });
    sb_corpus_destroy(&c);
    write_text("k.csv", "id,audio,split\nu1,,train\n");
    expect_err(load(opts_for("k.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "k.csv:2", "'audio'", "empty", NULL });
    sb_corpus_destroy(&c);
}

Test(manifest, columns_renames)
{
    write_text("r.csv", "utt,wav_path,emotion,set,audio\nu1,a.wav,hap,train,ignored.wav\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    g_log_len = 0;
    g_log[0] = '\0';
    expect_ok(load_host(&g_cap_host,
                        opts_for("r.csv", "check_audio: false\ncolumns: {id: utt, audio: "
                                          "wav_path, label: emotion, split: set}\n"),
                        &c, &err),
              &err);
    const sb_utt *u = utt_by_id(c, "u1");
    cr_assert_str_eq(u->audio, tpath("a.wav"), "the renamed column wins over 'audio'");
    cr_assert_str_eq(sb_corpus_class(c, u->label), "hap");
    cr_assert_str_eq(u->split, "train");
    /* The unread column is mentioned once, at DEBUG. */
    cr_assert_eq(log_count("DEBUG", "'audio'"), 1, "log:\n%s", g_log);
    sb_corpus_destroy(&c);
    /* A rename from a field that does not exist is a config error naming the key. */
    expect_err(load(opts_for("r.csv", "columns: {wav: wav_path}\n"), &c, &err), &err,
               (const char *[]){ "test.yaml", "'wav' is not a field", NULL });
    cr_assert_eq(err.code, SB_ERR_CONFIG);
    sb_corpus_destroy(&c);
}

Test(manifest, unknown_columns_logged_once_at_debug)
{
    write_text("u.jsonl",
               "{\"audio\":\"a.wav\",\"split\":\"train\",\"mood\":\"x\",\"id\":\"1\"}\n"
               "{\"audio\":\"b.wav\",\"split\":\"train\",\"mood\":\"y\",\"id\":\"2\"}\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    g_log_len = 0;
    g_log[0] = '\0';
    expect_ok(load_host(&g_cap_host, opts_for("u.jsonl", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(log_count("DEBUG", "'mood'"), 1, "log:\n%s", g_log);
    cr_assert_eq(sb_corpus_size(c), 2);
    sb_corpus_destroy(&c);
}

Test(manifest, empty_manifests)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("h.csv", "id,audio,split,label\r\n");
    expect_ok(load(opts_for("h.csv", NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 0);
    sb_corpus_destroy(&c);
    write_text("h.jsonl", "\n\n");
    expect_ok(load(opts_for("h.jsonl", NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 0);
    sb_corpus_destroy(&c);
    write_text("z.csv", "");
    expect_err(load(opts_for("z.csv", NULL), &c, &err), &err,
               (const char *[]){ "z.csv", "is empty", "header row", NULL });
    sb_corpus_destroy(&c);
    expect_err(load(opts_for("nothere.csv", NULL), &c, &err), &err,
               (const char *[]){ "nothere.csv", "cannot open", NULL });
    cr_assert_eq(err.code, SB_ERR_IO);
    sb_corpus_destroy(&c);
}

Test(manifest, hostile_bytes)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_bytes("nul.csv", "id,audio,split\nu1,a\0.wav,train\n", 30);
    expect_err(load(opts_for("nul.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "nul.csv:2", "NUL", NULL });
    sb_corpus_destroy(&c);
    write_text("l1.csv", "id,audio,split,text\nu1,a.wav,train,caf\xe9\n");
    expect_err(load(opts_for("l1.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "l1.csv:2", "'text'", "UTF-8", NULL });
    sb_corpus_destroy(&c);
    /* A field just over 1 MiB. */
    size_t n = ((size_t)1 << 20) + 64;
    char *big = malloc(n + 64);
    cr_assert_not_null(big);
    int k = sprintf(big, "id,audio,split,text\nu1,a.wav,train,\"");
    memset(big + k, 'x', n);
    strcpy(big + k + n, "\"\n");
    write_text("big.csv", big);
    expect_err(load(opts_for("big.csv", "check_audio: false\n"), &c, &err), &err,
               (const char *[]){ "big.csv:2", "longer than 1048576 bytes", NULL });
    sb_corpus_destroy(&c);
    /* ...and just under it is fine. */
    memset(big + k, 'y', ((size_t)1 << 20) - 10);
    strcpy(big + k + ((size_t)1 << 20) - 10, "\"\n");
    write_text("big2.csv", big);
    expect_ok(load(opts_for("big2.csv", "check_audio: false\n"), &c, &err), &err);
    cr_assert_eq(strlen(sb_corpus_utt(c, 0)->text), ((size_t)1 << 20) - 10);
    sb_corpus_destroy(&c);
    free(big);
}

/* ---- a real file ------------------------------------------------------------------- */

/* MELD's dev CSV (CRLF, quoted commas and quotes, UTF-8 punctuation) read through renames;
 * the numbers were counted with Python's csv module. */
Test(manifest, real_meld_dev_csv)
{
    const char *shared = getenv("SB_SHARED_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/meld/dev_sent_emo.csv", shared ? shared : "");
    if (!shared || access(path, R_OK) != 0)
        SB_MISSING_SHARED("no %s", path);
    char y[2048];
    snprintf(y, sizeof y,
             "path: \"%s\"\ncheck_audio: false\nsplit_default: dev\n"
             "columns: {id: \"Sr No.\", audio: Utterance_ID, label: Emotion, speaker: Speaker,"
             " text: Utterance, dialogue: Dialogue_ID, turn: Utterance_ID}\n",
             path);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 1109);
    const char *cls[] = { "anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise" };
    const size_t want[] = { 153, 22, 40, 163, 470, 111, 150 };
    size_t count[7] = { 0 }, text_bytes = 0;
    cr_assert_eq(sb_corpus_n_classes(c), 7);
    for (int k = 0; k < 7; k++)
        cr_assert_str_eq(sb_corpus_class(c, k), cls[k]);
    for (size_t i = 0; i < sb_corpus_size(c); i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        cr_assert_geq(u->label, 0);
        count[u->label]++;
        text_bytes += strlen(u->text);
    }
    for (int k = 0; k < 7; k++)
        cr_assert_eq(count[k], want[k], "%s: %zu, want %zu", cls[k], count[k], want[k]);
    cr_assert_eq(text_bytes, 45566);
    cr_assert_str_eq(utt_by_id(c, "1")->text,
                     "Oh my God, he\xe2\x80\x99s lost it. He\xe2\x80\x99s totally lost it.");
    cr_assert_str_eq(utt_by_id(c, "96")->text,
                     "\"Wanted. Female roommate, non-smoker, non-ugly.\" Nice!");
    const sb_utt *u = utt_by_id(c, "1178");
    cr_assert_str_eq(u->speaker, "Monica");
    cr_assert_str_eq(u->dialogue, "113");
    cr_assert_eq(u->turn, 13);
    sb_corpus_destroy(&c);
}

/* ---- mutations ------------------------------------------------------------------------ */

static const char k_seed_csv[] =
    "\xEF\xBB\xBFid,audio,start,end,channel,label,value,split,speaker,dialogue,turn,text\r\n"
    "u1,a.wav,0.5,2.25,0,hap,0.25,train,F,d1,0,\"hello, \"\"world\"\"\"\r\n"
    "u2,sub/b.wav,,,,sad,,dev,M,d1,1,\"two\r\nlines\"\r\n"
    ",c.flac,1,3,,neu,-1,test,,d2,0,plain\r\n"
    "u4,/abs/d.wav,,,1,,,train,\"Ross, Dr.\",,,\"\"\r\n";

static const char k_seed_jsonl[] =
    "{\"id\":\"u1\",\"audio\":\"a.wav\",\"start\":0.5,\"end\":2.25,\"label\":\"hap\","
    "\"split\":\"train\",\"text\":\"hello, \\\"world\\\"\"}\n"
    "{\"audio\":\"c.flac\",\"start\":1,\"end\":3,\"label\":\"neu\",\"split\":\"test\","
    "\"turn\":2,\"value\":-1.5}\n"
    "\n"
    "{\"id\":\"u4\",\"audio\":\"/abs/d.wav\",\"channel\":1,\"split\":\"dev\"}\n";

/* Mutate buf[0..*n) in place (capacity cap): a few byte flips, insertions of characters
 * that matter to the parsers, deletions and chunk copies. */
static void mutate(sb_rng *r, char *buf, size_t *n, size_t cap)
{
    static const char spicy[] = { '"',        ',',        '\n',      '\r', '\0',       '\t',
                                  ' ',        '.',        '-',       '1',  'e',        '{',
                                  '}',        ':',        '[',       '\\', (char)0xFF, (char)0xC3,
                                  (char)0xEF, (char)0xBB, (char)0xBF };
    int m = 1 + (int)sb_rng_below(r, 8);
    for (int k = 0; k < m; k++) {
        size_t pos = *n ? (size_t)sb_rng_below(r, *n) : 0;
        char ch =
            sb_rng_below(r, 4) ? spicy[sb_rng_below(r, sizeof spicy)] : (char)sb_rng_below(r, 256);
        switch (sb_rng_below(r, 5)) {
        case 0: /* replace */
            if (*n)
                buf[pos] = ch;
            break;
        case 1: /* insert */
            if (*n + 1 < cap) {
                memmove(buf + pos + 1, buf + pos, *n - pos);
                buf[pos] = ch;
                (*n)++;
            }
            break;
        case 2: /* delete */
            if (*n) {
                memmove(buf + pos, buf + pos + 1, *n - pos - 1);
                (*n)--;
            }
            break;
        case 3: { /* copy a chunk over another place (duplicates quotes, rows) */
            size_t len = 1 + (size_t)sb_rng_below(r, 24);
            size_t from = *n ? (size_t)sb_rng_below(r, *n) : 0;
            if (from + len <= *n && *n + len < cap) {
                memmove(buf + pos + len, buf + pos, *n - pos);
                memmove(buf + pos, buf + (from >= pos ? from + len : from), len);
                *n += len;
            }
            break;
        }
        default: /* truncate */ *n = pos; break;
        }
    }
}

static void fuzz_run(const char *seed_text, const char *name, int iterations, uint64_t seed)
{
    sb_rng r;
    sb_rng_seed(&r, seed, 0);
    char buf[4096];
    size_t n_ok = 0, n_err = 0, n_utts = 0;
    touch_audio("a.wav");
    for (int it = 0; it < iterations; it++) {
        size_t n = strlen(seed_text);
        memcpy(buf, seed_text, n);
        mutate(&r, buf, &n, sizeof buf);
        write_bytes(name, buf, n);
        sb_corpus *c = NULL;
        sb_error err = { 0 };
        /* Options vary too: inferred vs given classes, a split default. */
        const char *extra = (it % 3 == 0)   ? "classes: [neu, hap, sad]\n"
                            : (it % 3 == 1) ? "split_default: train\n"
                                            : "check_audio: false\n";
        sb_status st = load_host(&g_cap_host, opts_for(name, extra), &c, &err);
        g_log_len = 0;
        if (st == SB_OK) {
            n_ok++;
            for (size_t i = 0; i < sb_corpus_size(c); i++) {
                const sb_utt *u = sb_corpus_utt(c, i);
                cr_assert(u->id && *u->id && u->audio && u->audio[0] == '/' && u->split,
                          "iteration %d: incomplete utterance %zu", it, i);
                cr_assert(u->label >= -1 && u->label < sb_corpus_n_classes(c));
                cr_assert(u->end < 0 || u->end > u->start);
            }
            n_utts += sb_corpus_size(c);
        } else {
            n_err++;
            cr_assert(err.msg[0] != '\0', "iteration %d: error %d without a message", it, st);
            cr_assert(st == SB_ERR_FORMAT || st == SB_ERR_CONFIG,
                      "iteration %d: unexpected status %d (%s)", it, st, err.msg);
        }
        sb_corpus_destroy(&c);
    }
    cr_log_info("%s: %d mutations: %zu loaded (%zu utterances), %zu rejected", name, iterations,
                n_ok, n_utts, n_err);
    /* Both outcomes must occur, or the mutations are not exercising the parser. */
    cr_assert_gt(n_ok, (size_t)iterations / 20, "only %zu of %d loaded", n_ok, iterations);
    cr_assert_gt(n_err, (size_t)iterations / 20, "only %zu of %d rejected", n_err, iterations);
}

Test(manifest, csv_mutations_never_crash, .timeout = 240)
{
    fuzz_run(k_seed_csv, "fz.csv", 2000, 0x5eed);
}

Test(manifest, jsonl_mutations_never_crash, .timeout = 240)
{
    fuzz_run(k_seed_jsonl, "fz.jsonl", 1000, 0x15071);
}
