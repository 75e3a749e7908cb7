/* plugins/datasets/cmu_mosi/tests/test_cmu_mosi.c — the cmu_mosi plugin through its own
 * descriptor: generated MOSI trees in both layouts (scripts/make-mosi-corpus, made once
 * per build tree) checked clip by clip against the generator's intended.json, the two
 * Acc-2 conventions, half-to-even 7-class bins, and bad input written per test into a
 * fresh temporary folder. */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
    snprintf(g_dir, sizeof g_dir, "%s/sb-mosi-XXXXXX", tmp && *tmp ? tmp : "/tmp");
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

TestSuite(mosi, .init = setup, .fini = teardown);

/* Full path of `rel` in the test folder (static buffer rotation: 4 at a time). */
static const char *tpath(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

static void mkdirs_for(const char *rel)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", tpath(rel));
    for (char *s = sub + strlen(g_dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(sub, 0755);
        *s = '/';
    }
}

static void write_text(const char *rel, const char *text)
{
    mkdirs_for(rel);
    FILE *f = fopen(tpath(rel), "wb");
    cr_assert_not_null(f, "cannot write %s", rel);
    size_t n = strlen(text);
    cr_assert_eq(fwrite(text, 1, n, f), n);
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

/* Lines in the captured log at `level` containing `needle`. */
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

/* Load with options given as YAML text, through the capturing host. */
static sb_status load(const char *yaml, sb_corpus **out, sb_error *err)
{
    g_log_len = 0;
    g_log[0] = '\0';
    const sb_plugin *p = serbench_plugin_v1();
    sb_opts *opts = NULL;
    sb_error_clear(err);
    sb_status st = sbi_opts_parse(p->options, yaml, "test.yaml", &opts, err);
    cr_assert_eq(st, SB_OK, "options did not parse: %s | %s", err->where, err->msg);
    cr_assert_eq(sb_corpus_create("mosi", out, err), SB_OK);
    const sb_dataset_vtable *vt = p->vtable;
    st = vt->load(&g_cap_host, opts, *out, err);
    sbi_opts_destroy(&opts);
    if (st != SB_OK)
        cr_assert_neq(err->code, SB_OK, "status %d but the error object is empty", st);
    return st;
}

/* Options for root = the test folder plus extra YAML lines. */
static const char *opts_here(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "root: \"%s\"\n%s", g_dir, extra ? extra : "");
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

static const sb_utt *utt_by_id(const sb_corpus *c, const char *id)
{
    long i = sb_corpus_find(c, id);
    cr_assert_geq(i, 0, "utterance %s not in the corpus", id);
    return sb_corpus_utt(c, (size_t)i);
}

static const char *class_of(const sb_corpus *c, const sb_utt *u)
{
    return u->label < 0 ? "(none)" : sb_corpus_class(c, u->label);
}

/* An MMSA label.csv in the test folder from data rows "video,clip,text,label,mode" (the
 * empty label_T/A/V and the annotation are filled in), and a WAV stand-in for each clip
 * under Raw/ (the loader only stats audio). */
static void write_mmsa(const char *const *rows)
{
    char *csv = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&csv, &len);
    fputs("video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n", m);
    for (const char *const *r = rows; *r; r++) {
        char video[64], clip[64], text[256], label[64], mode[64];
        cr_assert_eq(
            sscanf(*r, "%63[^,],%63[^,],%255[^,],%63[^,],%63s", video, clip, text, label, mode), 5,
            "bad test row %s", *r);
        fprintf(m, "%s,%s,%s,%s,,,,Neutral,%s\n", video, clip, text, label, mode);
        char wav[256];
        snprintf(wav, sizeof wav, "Raw/%s/%s.wav", video, clip);
        write_text(wav, "RIFF");
    }
    fclose(m);
    write_text("label.csv", csv);
    free(csv);
}

/* ---- generated trees --------------------------------------------------------------- */

/* <build>/test-data/mosi-<layout>, made by scripts/make-mosi-corpus once per build tree
 * (under a lock, into a temporary folder renamed when complete). */
static const char *gen_tree(const char *layout)
{
    static char dir[2][1024];
    int k = strcmp(layout, "sdk") == 0;
    const char *build = getenv("SB_BUILD_ROOT"), *src = getenv("SB_SOURCE_ROOT");
    cr_assert(build && src, "run through meson test (SB_BUILD_ROOT, SB_SOURCE_ROOT)");
    char data[900], lock[1000], want[1100];
    snprintf(data, sizeof data, "%s/test-data", build);
    mkdir(data, 0755);
    snprintf(dir[k], sizeof dir[k], "%s/mosi-%s", data, layout);
    snprintf(want, sizeof want, "%s/intended.json", dir[k]);
    snprintf(lock, sizeof lock, "%s/mosi.lock", data);
    int fd = open(lock, O_CREAT | O_RDWR, 0644);
    cr_assert_geq(fd, 0, "cannot open %s", lock);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    if (access(want, R_OK) != 0) {
        char tmp[1100], cmd[4096];
        snprintf(tmp, sizeof tmp, "%s/mosi-%s.XXXXXX", data, layout);
        cr_assert_not_null(mkdtemp(tmp));
        snprintf(cmd, sizeof cmd, "'%s/scripts/make-mosi-corpus' '%s' --layout %s >/dev/null", src,
                 tmp, layout);
        int rc = system(cmd);
        cr_assert_eq(rc, 0, "make-mosi-corpus failed (%d): %s", rc, cmd);
        cr_assert_eq(rename(tmp, dir[k]), 0, "rename %s -> %s", tmp, dir[k]);
    }
    flock(fd, LOCK_UN);
    close(fd);
    return dir[k];
}

static json_t *intended(const char *tree)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/intended.json", tree);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

static long jint(const json_t *o, const char *a, const char *b, const char *c)
{
    const json_t *x = json_object_get(o, a);
    if (b)
        x = json_object_get(x, b);
    if (c)
        x = json_object_get(x, c);
    cr_assert(json_is_integer(x), "intended.json has no integer %s.%s.%s", a, b ? b : "",
              c ? c : "");
    return (long)json_integer_value(x);
}

/* Per split and class counts of the corpus against intended.json's `conv` table
 * ("has0", "non0", "class7"); "unlabelled" entries count label -1. */
static void expect_counts(const sb_corpus *c, const json_t *want, const char *conv)
{
    static const char *splits[] = { "train", "dev", "test" };
    for (int s = 0; s < 3; s++) {
        long n_split = 0;
        for (size_t i = 0; i < sb_corpus_size(c); i++)
            n_split += strcmp(sb_corpus_utt(c, i)->split, splits[s]) == 0;
        cr_assert_eq(n_split, jint(want, "splits", splits[s], NULL), "%s: %ld clips, want %ld",
                     splits[s], n_split, jint(want, "splits", splits[s], NULL));
        const char *cls;
        json_t *n;
        json_object_foreach(json_object_get(json_object_get(want, conv), splits[s]), cls, n)
        {
            long got = 0;
            int k = strcmp(cls, "unlabelled") == 0 ? -1 : sb_corpus_class_index(c, cls);
            cr_assert(k >= 0 || strcmp(cls, "unlabelled") == 0, "%s: class %s not in the space",
                      conv, cls);
            for (size_t i = 0; i < sb_corpus_size(c); i++) {
                const sb_utt *u = sb_corpus_utt(c, i);
                got += strcmp(u->split, splits[s]) == 0 && u->label == k;
            }
            cr_assert_eq(got, json_integer_value(n), "%s %s/%s: %ld clips, intended %ld", conv,
                         splits[s], cls, got, (long)json_integer_value(n));
        }
    }
}

/* Every clip of intended.json is in the corpus with its split, score and `conv` class. */
static void expect_clips(const sb_corpus *c, const json_t *want, const char *conv)
{
    const json_t *clips = json_object_get(want, "clips");
    cr_assert_eq(sb_corpus_size(c), json_array_size(clips));
    size_t i;
    const json_t *cl;
    json_array_foreach(clips, i, cl)
    {
        const char *id = json_string_value(json_object_get(cl, "id"));
        const sb_utt *u = utt_by_id(c, id);
        cr_assert_str_eq(u->split, json_string_value(json_object_get(cl, "split")), "%s", id);
        double score = json_real_value(json_object_get(cl, "score"));
        /* The file holds Python's repr of the score and jansson reads the same text: the
         * value is exact. */
        cr_assert_eq(u->value, score, "%s: value %.17g, score %.17g", id, u->value, score);
        const json_t *cls = json_object_get(cl, conv);
        if (json_is_null(cls))
            cr_assert_eq(u->label, -1, "%s: score %g must be unlabelled, has %s", id, score,
                         class_of(c, u));
        else
            cr_assert_str_eq(class_of(c, u), json_string_value(cls), "%s (score %.17g)", id, score);
        cr_assert_str_eq(u->dialogue, json_string_value(json_object_get(cl, "video")));
        const json_t *text = json_object_get(cl, "text");
        if (json_is_null(text))
            cr_assert_null(u->text, "%s", id);
        else
            cr_assert_str_eq(u->text, json_string_value(text), "%s", id);
        cr_assert_eq(u->turn, atoi(json_string_value(json_object_get(cl, "clip"))));
        /* meta: the score exactly, the video and the clip as strings. */
        json_error_t je;
        json_t *m = json_loads(u->meta, 0, &je);
        cr_assert_not_null(m, "%s: meta %s: %s", id, u->meta, je.text);
        cr_assert_eq(json_number_value(json_object_get(m, "score")), score, "%s: meta %s", id,
                     u->meta);
        cr_assert_str_eq(json_string_value(json_object_get(m, "video")), u->dialogue);
        cr_assert_str_eq(json_string_value(json_object_get(m, "clip")),
                         json_string_value(json_object_get(cl, "clip")));
        cr_assert_not_null(json_string_value(json_object_get(m, "annotation")), "%s", u->meta);
        json_decref(m);
        /* Real audio on disk for every generated clip. */
        cr_assert_not_null(u->audio, "%s has no audio", id);
        cr_assert_eq(access(u->audio, R_OK), 0, "%s: %s", id, u->audio);
    }
    cr_assert_eq(sb_corpus_n_warnings(c), 0, "a generated tree has audio for every clip");
}

/* ---- the descriptor ---------------------------------------------------------------- */

Test(mosi, descriptor)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_DATASET);
    cr_assert_str_eq(p->name, "cmu_mosi");
    cr_assert_str_eq(p->version, "1.0.0");
    cr_assert_eq(p->abi_minor, SB_ABI_MINOR);
    cr_assert_eq(p->struct_size, sizeof(sb_plugin));
    const sb_dataset_vtable *vt = p->vtable;
    cr_assert_eq(vt->struct_size, sizeof(sb_dataset_vtable));
    sb_opts *o = NULL;
    sb_error err = { 0 };
    cr_assert_neq(sbi_opts_parse(p->options, "protocol: mosi-2class", "t.yaml", &o, &err), SB_OK,
                  "root is required");
    cr_assert_not_null(strstr(err.msg, "root"), "%s", err.msg);
    const char *bad[] = { "root: /x\nlayout: raw", "root: /x\nprotocol: mosi-3class",
                          "root: /x\nacc2: both", "root: /x\nfolds: 5", NULL };
    for (const char **b = bad; *b; b++) {
        sb_error_clear(&err);
        cr_assert_neq(sbi_opts_parse(p->options, *b, "t.yaml", &o, &err), SB_OK, "%s", *b);
    }
    sb_error_clear(&err);
    cr_assert_eq(sbi_opts_parse(p->options, "root: /x", "t.yaml", &o, &err), SB_OK, "%s", err.msg);
    cr_assert_str_eq(sb_opts_str(o, "protocol"), "mosi-2class");
    cr_assert_str_eq(sb_opts_str(o, "acc2"), "non0");
    cr_assert_str_eq(sb_opts_str(o, "layout"), "auto");
    sbi_opts_destroy(&o);
}

Test(mosi, built_module_exports_the_entry_only)
{
    const char *root = getenv("SB_BUILD_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/plugins/datasets/cmu_mosi/cmu_mosi.so", root ? root : "");
    cr_assert(root && access(path, R_OK) == 0, "no %s", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen: %s", dlerror());
    const sb_plugin *(*entry)(void);
    *(void **)&entry = dlsym(h, SB_PLUGIN_ENTRY_NAME);
    cr_assert_not_null(entry, "no [%s] in [%s]", SB_PLUGIN_ENTRY_NAME, path);
    cr_assert_str_eq(entry()->name, "cmu_mosi");
    cr_assert_null(dlsym(h, "sbi_mosi_read_mmsa"), "internal symbols must stay hidden");
    dlclose(h);
}

/* ---- generated trees: both layouts, both Acc-2 conventions, 7 classes -------------- */

static void check_generated(const char *layout, const char *extra, const char *conv)
{
    const char *tree = gen_tree(layout);
    json_t *want = intended(tree);
    char y[4096];
    snprintf(y, sizeof y, "root: \"%s\"\n%s", tree, extra);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &c, &err), &err);
    expect_counts(c, want, conv);
    expect_clips(c, want, conv);
    cr_assert_str_eq(sb_corpus_info(c, "protocol_version"), "1");
    char zeros[32];
    snprintf(zeros, sizeof zeros, "%ld", jint(want, "zero_scores", NULL, NULL));
    cr_assert_str_eq(sb_corpus_info(c, "zero_scores"), zeros);
    cr_assert_not_null(strstr(sb_corpus_info(c, "layout"), layout), "%s",
                       sb_corpus_info(c, "layout"));
    json_decref(want);
    sb_corpus_destroy(&c);
}

Test(mosi, mmsa_non0_counts_as_intended)
{
    check_generated("mmsa", "", "non0"); /* acc2 non0 is the default */
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s\"\n", gen_tree("mmsa"));
    expect_ok(load(y, &c, &err), &err);
    cr_assert_str_eq(sb_corpus_label_space(c), "mosi-2class-non0");
    cr_assert_str_eq(sb_corpus_class(c, 0), "negative");
    cr_assert_str_eq(sb_corpus_class(c, 1), "positive");
    cr_assert_not_null(strstr(sb_corpus_info(c, "acc2"), "the 7 clips with score 0 are kept"), "%s",
                       sb_corpus_info(c, "acc2"));
    cr_assert_not_null(strstr(sb_corpus_info(c, "dev_split"), "mode"));
    cr_assert_eq(log_count("WARN", ""), 0, "no warnings on a clean tree:\n%s", g_log);
    sb_corpus_destroy(&c);
}

Test(mosi, mmsa_has0_counts_as_intended)
{
    check_generated("mmsa", "acc2: has0\n", "has0");
}

Test(mosi, mmsa_7class_counts_as_intended)
{
    check_generated("mmsa", "protocol: mosi-7class\n", "class7");
}

Test(mosi, sdk_non0_counts_as_intended)
{
    const char *tree = gen_tree("sdk");
    char y[2048];
    snprintf(y, sizeof y, "split_file: \"%s/mosi-splits.csv\"\n", tree);
    check_generated("sdk", y, "non0");
}

Test(mosi, sdk_has0_and_7class_counts_as_intended)
{
    const char *tree = gen_tree("sdk");
    char y[2048];
    snprintf(y, sizeof y, "split_file: \"%s/mosi-splits.csv\"\nacc2: has0\n", tree);
    check_generated("sdk", y, "has0");
    snprintf(y, sizeof y, "split_file: \"%s/mosi-splits.csv\"\nprotocol: mosi-7class\n", tree);
    check_generated("sdk", y, "class7");
}

/* Has0 and non0 differ exactly by the score-0 clips: non0 leaves them unlabelled, has0
 * counts them as non-negative; every other clip has the same class index. */
Test(mosi, acc2_conventions_differ_only_at_zero)
{
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s\"\n", gen_tree("mmsa"));
    sb_corpus *a = NULL, *b = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &a, &err), &err);
    snprintf(y, sizeof y, "root: \"%s\"\nacc2: has0\n", gen_tree("mmsa"));
    expect_ok(load(y, &b, &err), &err);
    cr_assert_str_eq(sb_corpus_label_space(b), "mosi-2class-has0");
    cr_assert_str_eq(sb_corpus_class(b, 1), "non-negative");
    size_t zeros = 0;
    for (size_t i = 0; i < sb_corpus_size(a); i++) {
        const sb_utt *x = sb_corpus_utt(a, i), *z = sb_corpus_utt(b, i);
        cr_assert_str_eq(x->id, z->id);
        if (x->value == 0.0) {
            zeros++;
            cr_assert_eq(x->label, -1, "%s", x->id);
            cr_assert_eq(z->label, 1, "%s", z->id);
        } else {
            cr_assert_eq(x->label, z->label, "%s", x->id);
            cr_assert_eq(x->label, x->value < 0 ? 0 : 1, "%s", x->id);
        }
    }
    cr_assert_eq(zeros, 7);
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
}

Test(mosi, regression_value_is_the_score)
{
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s\"\nprotocol: mosi-regression\n", gen_tree("mmsa"));
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &c, &err), &err);
    json_t *want = intended(gen_tree("mmsa"));
    expect_clips(c, want, "class7");
    cr_assert_str_eq(sb_corpus_info(c, "protocol"), "mosi-regression");
    cr_assert_not_null(strstr(sb_corpus_info(c, "target"), "score"));
    json_decref(want);
    sb_corpus_destroy(&c);
}

Test(mosi, sdk_full_recording_span_and_transcripts)
{
    const char *tree = gen_tree("sdk");
    json_t *want = intended(tree);
    const char *full_only = json_string_value(json_object_get(want, "full_only_video"));
    const char *no_text = json_string_value(json_object_get(want, "no_transcript_video"));
    cr_assert(full_only && no_text);
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s\"\nsplit_file: \"%s/mosi-splits.csv\"\n", tree, tree);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &c, &err), &err);
    size_t i, n_full = 0, n_seg = 0;
    const json_t *cl;
    json_array_foreach(json_object_get(want, "clips"), i, cl)
    {
        const sb_utt *u = utt_by_id(c, json_string_value(json_object_get(cl, "id")));
        char path[1400];
        if (strcmp(u->dialogue, full_only) == 0) {
            snprintf(path, sizeof path, "%s/Audio/WAV_16000/Full/%s.wav", tree, full_only);
            cr_assert_str_eq(u->audio, path);
            cr_assert_eq(u->start, json_real_value(json_object_get(cl, "start")), "%s", u->id);
            cr_assert_eq(u->end, json_real_value(json_object_get(cl, "end")), "%s", u->id);
            n_full++;
        } else {
            snprintf(path, sizeof path, "%s/Audio/WAV_16000/Segmented/%s_%s.wav", tree, u->dialogue,
                     json_string_value(json_object_get(cl, "clip")));
            cr_assert_str_eq(u->audio, path);
            cr_assert_eq(u->start, 0.0);
            cr_assert_eq(u->end, -1.0);
            n_seg++;
        }
        if (strcmp(u->dialogue, no_text) == 0)
            cr_assert_null(u->text);
        else
            cr_assert_not_null(u->text);
    }
    cr_assert_gt(n_full, 0);
    cr_assert_gt(n_seg, 0);
    cr_assert_not_null(strstr(sb_corpus_info(c, "dev_split"), "split_file"));
    json_decref(want);
    sb_corpus_destroy(&c);
}

/* Without split_file: splits by video, reproducible, all three present, and said loudly. */
Test(mosi, sdk_without_split_file_splits_by_video)
{
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s\"\n", gen_tree("sdk"));
    sb_corpus *a = NULL, *b = NULL;
    sb_error err = { 0 };
    expect_ok(load(y, &a, &err), &err);
    cr_assert_eq(log_count("WARN", "not the standard folds"), 1, "%s", g_log);
    cr_assert_not_null(strstr(sb_corpus_info(a, "dev_split"), "NOT the standard"));
    expect_ok(load(y, &b, &err), &err);
    size_t per[3] = { 0, 0, 0 };
    for (size_t i = 0; i < sb_corpus_size(a); i++) {
        const sb_utt *x = sb_corpus_utt(a, i);
        cr_assert_str_eq(x->split, sb_corpus_utt(b, i)->split, "reproducible");
        per[strcmp(x->split, "train") == 0 ? 0 : strcmp(x->split, "dev") == 0 ? 1 : 2]++;
        for (size_t j = 0; j < i; j++) {
            const sb_utt *o = sb_corpus_utt(a, j);
            if (strcmp(o->dialogue, x->dialogue) == 0)
                cr_assert_str_eq(o->split, x->split, "video %s in two splits", x->dialogue);
        }
    }
    cr_assert(per[0] > per[2] && per[2] > 0 && per[1] > 0, "%zu / %zu / %zu", per[0], per[1],
              per[2]);
    sb_corpus_destroy(&a);
    sb_corpus_destroy(&b);
}

/* ---- labels ------------------------------------------------------------------------ */

/* 7-class bins are rint(clip(score)): half to even, as numpy's round in MMSA's Acc-7 (C's
 * round() would send 0.5 to 1 and 2.5 to 3). Exact comparisons: integers. */
Test(mosi, seven_classes_round_half_to_even)
{
    static const struct {
        const char *score, *bin;
    } cases[] = {
        { "0.5", "0" },
        { "-0.5", "0" },
        { "1.5", "2" },
        { "-1.5", "-2" },
        { "2.5", "2" },
        { "-2.5", "-2" },
        { "3.0", "3" },
        { "-3", "-3" },
        { "0.49", "0" },
        { "0.51", "1" },
        { "2.6", "3" },
        { "-2.4", "-2" },
        { "0", "0" },
        { "-0.0", "0" },
        { "1.4999999", "1" },
        { "2.5000001", "3" },
        { "1.3333333333333333", "1" },
        { "-0.6666666666666666", "-1" },
    };
    size_t n = sizeof cases / sizeof cases[0];
    char *csv = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&csv, &len);
    fputs("video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n", m);
    for (size_t i = 0; i < n; i++)
        fprintf(m, "v,%zu,t,%s,,,,x,train\n", i, cases[i].score);
    fclose(m);
    write_text("label.csv", csv);
    free(csv);
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here("protocol: mosi-7class\n"), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_label_space(c), "mosi-7class");
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "v$_$%zu", i);
        const sb_utt *u = utt_by_id(c, id);
        cr_assert_str_eq(class_of(c, u), cases[i].bin, "score %s: bin %s, want %s", cases[i].score,
                         class_of(c, u), cases[i].bin);
        cr_assert_eq(u->value, strtod(cases[i].score, NULL));
    }
    sb_corpus_destroy(&c);
}

/* Clip ids are strings: "1", "10" and "01" are three clips; ids are <video>$_$<clip>. */
Test(mosi, clip_ids_are_strings)
{
    write_mmsa((const char *[]){ "vidA,1,one,1.0,train", "vidA,10,ten,-1.0,train",
                                 "vidA,01,oh-one,2.0,test", "vidB,1,b one,0.2,valid", NULL });
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 4);
    cr_assert_str_eq(utt_by_id(c, "vidA$_$1")->text, "one");
    cr_assert_str_eq(utt_by_id(c, "vidA$_$10")->text, "ten");
    cr_assert_str_eq(utt_by_id(c, "vidA$_$01")->text, "oh-one");
    cr_assert_str_eq(utt_by_id(c, "vidB$_$1")->text, "b one");
    cr_assert_str_eq(utt_by_id(c, "vidA$_$10")->audio, tpath("Raw/vidA/10.wav"));
    cr_assert_str_eq(utt_by_id(c, "vidA$_$01")->audio, tpath("Raw/vidA/01.wav"));
    cr_assert_str_eq(utt_by_id(c, "vidA$_$01")->meta,
                     "{\"score\":2,\"annotation\":\"Neutral\",\"video\":\"vidA\",\"clip\":\"01\"}");
    sb_corpus_destroy(&c);
}

Test(mosi, modes_valid_validation_dev_accepted)
{
    write_mmsa((const char *[]){ "v,1,a,1,train", "v,2,b,1,valid", "v,3,c,1,validation",
                                 "v,4,d,1,dev", "v,5,e,1,Test", "v,6,f,1, VALID ", NULL });
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    const char *want[] = { "train", "dev", "dev", "dev", "test", "dev" };
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(sb_corpus_utt(c, i)->split, want[i], "row %zu", i + 2);
    sb_corpus_destroy(&c);

    write_mmsa((const char *[]){ "v,1,a,1,train", "v,2,b,1,holdout", NULL });
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv:3", "'holdout'", "valid", NULL });
    sb_corpus_destroy(&c);
}

/* A full-size file is checked against the standard split. No audio here: the 2199
 * missing files give one summary warning, not 2199 log lines. */
static void write_counts(size_t tr, size_t dv, size_t te)
{
    char *csv = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&csv, &len);
    fputs("video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n", m);
    for (size_t i = 0; i < tr + dv + te; i++)
        fprintf(m, "v%zu,%zu,t,%.1f,,,,x,%s\n", i / 20, i % 20, (double)(i % 7) - 3.0,
                i < tr        ? "train"
                : i < tr + dv ? "valid"
                              : "test");
    fclose(m);
    write_text("label.csv", csv);
    free(csv);
}

Test(mosi, standard_counts_are_checked)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_counts(1284, 229, 686);
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_not_null(strstr(sb_corpus_info(c, "counts"), "the standard split"), "%s",
                       sb_corpus_info(c, "counts"));
    cr_assert_eq(log_count("WARN", "1284 / 229 / 686"), 0, "%s", g_log);
    cr_assert_eq(log_count("WARN", "have no audio file"), 1, "one summary line:\n%.2000s", g_log);
    cr_assert_eq(log_count("WARN", ""), 1, "nothing else:\n%.2000s", g_log);
    cr_assert_eq(sb_corpus_n_warnings(c), 0, "missing audio is not an item problem");
    sb_corpus_destroy(&c);

    write_counts(1285, 228, 686);
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(log_count("WARN", "not the standard 1284 / 229 / 686"), 1, "%s", g_log);
    sb_corpus_destroy(&c);

    write_counts(1281, 229, 685);
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(log_count("WARN", "1281 / 229 / 685, as in some derived copies"), 1, "%s", g_log);
    cr_assert_not_null(strstr(sb_corpus_info(c, "counts"), "derived copy"));
    sb_corpus_destroy(&c);
}

/* ---- audio ------------------------------------------------------------------------- */

Test(mosi, missing_audio_is_null_and_warned_once)
{
    write_mmsa((const char *[]){ "v,1,a,1,train", "v,2,b,-1,train", "v,3,c,0.4,test",
                                 "w,1,d,-2,test", NULL });
    remove(tpath("Raw/v/2.wav"));
    remove(tpath("Raw/w/1.wav"));
    write_text("Raw/w/1.mp4", "video");  /* the video without its extracted audio */
    write_text("Audio/v/3.wav", "RIFF"); /* the other searched folders */
    remove(tpath("Raw/v/3.wav"));
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 4, "clips without audio stay");
    cr_assert_str_eq(utt_by_id(c, "v$_$1")->audio, tpath("Raw/v/1.wav"));
    cr_assert_str_eq(utt_by_id(c, "v$_$3")->audio, tpath("Audio/v/3.wav"));
    cr_assert_null(utt_by_id(c, "v$_$2")->audio);
    cr_assert_null(utt_by_id(c, "w$_$1")->audio);
    /* Not item problems (the clips stay for text stages); the first is described. */
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    const char *msg = sb_corpus_info(c, "audio_first_missing");
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, "v$_$2"), "%s", msg);
    cr_assert_not_null(strstr(msg, "Raw/v/2.wav"), "%s", msg);
    cr_assert_not_null(strstr(msg, "label.csv:3"), "%s", msg);
    cr_assert_null(strstr(msg, ".mp4"), "%s", msg);
    cr_assert_eq(log_count("WARN", "only the .mp4 video"), 1, "%s", g_log);
    cr_assert_eq(log_count("WARN", "2 of 4 clips have no audio file"), 1, "%s", g_log);
    cr_assert_not_null(strstr(sb_corpus_info(c, "audio"), "2 of 4"));
    sb_corpus_destroy(&c);
}

Test(mosi, audio_root_mirrors_raw)
{
    write_mmsa((const char *[]){ "v,1,a,1,train", "v,10,b,-1,test", NULL });
    write_text("x/wavs/v/1.wav", "RIFF");
    write_text("x/wavs/v/10.wav", "RIFF");
    char y[2048];
    snprintf(y, sizeof y, "audio_root: \"%s\"\n", tpath("x/wavs"));
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(y), &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "v$_$1")->audio, tpath("x/wavs/v/1.wav"));
    cr_assert_str_eq(utt_by_id(c, "v$_$10")->audio, tpath("x/wavs/v/10.wav"));
    sb_corpus_destroy(&c);
    /* audio_root replaces the search under root: Raw/ is not looked at. */
    remove(tpath("x/wavs/v/10.wav"));
    expect_ok(load(opts_here(y), &c, &err), &err);
    cr_assert_null(utt_by_id(c, "v$_$10")->audio);
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    sb_corpus_destroy(&c);
}

/* ---- bad input --------------------------------------------------------------------- */

Test(mosi, missing_root_and_wrong_layout)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char y[2048];
    snprintf(y, sizeof y, "root: \"%s/nowhere\"\n", g_dir);
    expect_err(load(y, &c, &err), &err, (const char *[]){ "nowhere", "MOSI folder", NULL });
    cr_assert_eq(err.code, SB_ERR_IO);
    sb_corpus_destroy(&c);

    write_text("afile", "x");
    snprintf(y, sizeof y, "root: \"%s\"\n", tpath("afile"));
    expect_err(load(y, &c, &err), &err, (const char *[]){ "not a folder", NULL });
    sb_corpus_destroy(&c);

    /* An empty folder: the message lists every file looked for. */
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv", "Labels/OpinionLevelSentiment.csv",
                                 "/OpinionLevelSentiment.csv (SDK", NULL });
    cr_assert_eq(err.code, SB_ERR_NOT_FOUND);
    sb_corpus_destroy(&c);

    write_mmsa((const char *[]){ "v,1,a,1,train", NULL });
    expect_err(load(opts_here("layout: sdk\n"), &c, &err), &err,
               (const char *[]){ "layout is sdk", "layout: mmsa", NULL });
    sb_corpus_destroy(&c);

    remove(tpath("label.csv"));
    write_text("OpinionLevelSentiment.csv", "0,1.5,v,1,0.5\n");
    expect_err(load(opts_here("layout: mmsa\n"), &c, &err), &err,
               (const char *[]){ "layout is mmsa", "layout: sdk", NULL });
    sb_corpus_destroy(&c);
    expect_ok(load(opts_here(NULL), &c, &err), &err); /* auto finds the flat SDK file */
    cr_assert_eq(sb_corpus_size(c), 1);
    sb_corpus_destroy(&c);
}

Test(mosi, malformed_scores_name_file_and_line)
{
    static const struct {
        const char *label, *needle;
    } cases[] = {
        { "abc", "'abc' is not a number" }, { "1.5x", "'1.5x' is not a number" },
        { "nan", "'nan' is not a number" }, { "inf", "'inf' is not a number" },
        { " ", "column label is empty" },   { "3.0001", "outside [-3, 3]" },
        { "-4", "outside [-3, 3]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char csv[1024];
        snprintf(csv, sizeof csv,
                 "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n"
                 "v,1,fine,1.2,,,,Positive,train\n"
                 "v,2,\"multi\nline text\",-0.4,,,,Negative,train\n"
                 "v,3,bad,%s,,,,Neutral,test\n",
                 cases[i].label);
        write_text("label.csv", csv);
        sb_corpus *c = NULL;
        sb_error err = { 0 };
        char where[1100];
        snprintf(where, sizeof where, "%s:5", tpath("label.csv"));
        expect_err(load(opts_here(NULL), &c, &err), &err,
                   (const char *[]){ where, cases[i].needle, NULL });
        cr_assert_eq(err.code, SB_ERR_FORMAT);
        sb_corpus_destroy(&c);
    }
}

Test(mosi, duplicate_clips_name_both_lines)
{
    write_mmsa((const char *[]){ "v,1,a,1,train", "v,10,b,1,train", "w,1,c,1,test", "v,10,d,2,test",
                                 NULL });
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char where[1100];
    snprintf(where, sizeof where, "%s:5", tpath("label.csv"));
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ where, "duplicate clip", "'v'", "'10'", "line 3", NULL });
    sb_corpus_destroy(&c);
}

Test(mosi, mmsa_header_and_shape_errors)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("label.csv", "video_id,clip,text,label,mode\nv,1,a,1,train\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv:1", "no column 'clip_id'", "'clip'", NULL });
    sb_corpus_destroy(&c);
    write_text("label.csv", "video_id,clip_id,label,mode\nv,1,1,train\nv,2,1\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv:3", "3 fields", "header has 4", NULL });
    sb_corpus_destroy(&c);
    write_text("label.csv", "video_id,clip_id,label,mode\n,1,1,train\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv:2", "'video_id' is empty", NULL });
    sb_corpus_destroy(&c);
    write_text("label.csv", "video_id,clip_id,label,mode\nv,1,1,train\nv\xff,2,1,test\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "label.csv:3", "not valid UTF-8", NULL });
    sb_corpus_destroy(&c);
    write_text("label.csv", "");
    expect_err(load(opts_here(NULL), &c, &err), &err, (const char *[]){ "empty", NULL });
    sb_corpus_destroy(&c);
    /* Minimal columns and CRLF: fine; split_file does not apply to MMSA. */
    write_text("label.csv", "mode,label,clip_id,video_id\r\ntest,-1,7,v\r\n");
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_utt(c, 0)->id, "v$_$7");
    cr_assert_null(sb_corpus_utt(c, 0)->text);
    sb_corpus_destroy(&c);
    write_text("s.csv", "v,train\n");
    char y[2048];
    snprintf(y, sizeof y, "split_file: \"%s\"\n", tpath("s.csv"));
    expect_err(load(opts_here(y), &c, &err), &err,
               (const char *[]){ "split_file is for the SDK layout", NULL });
    sb_corpus_destroy(&c);
}

Test(mosi, sdk_file_errors)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    char y[2048];
    write_text("Labels/OpinionLevelSentiment.csv", "start,end,video_id,segment_no,label\n"
                                                   "0.5,2.5,v,1,1.4\n"
                                                   "3,4,v,2,-0.2\n"
                                                   "5,6,w,1,oops\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "OpinionLevelSentiment.csv:4", "'oops'", NULL });
    sb_corpus_destroy(&c);
    write_text("Labels/OpinionLevelSentiment.csv", "0.5,2.5,v,1,1.4\n3,4,v,2\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "OpinionLevelSentiment.csv:2", "4 fields", "segment_no", NULL });
    sb_corpus_destroy(&c);
    write_text("Labels/OpinionLevelSentiment.csv", "0.5,x,v,1,1.4\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "OpinionLevelSentiment.csv:1", "'x' is not a time", NULL });
    sb_corpus_destroy(&c);
    write_text("Labels/OpinionLevelSentiment.csv",
               "0.5,2.5,v,1,1.4\n3,4,v,2,-0.2\n5,6,w,1,0\n1,2,v,1,2\n");
    expect_err(load(opts_here(NULL), &c, &err), &err,
               (const char *[]){ "OpinionLevelSentiment.csv:4", "duplicate clip", "line 1", NULL });
    sb_corpus_destroy(&c);

    /* split_file problems: a video without a split, a video in two splits. */
    write_text("Labels/OpinionLevelSentiment.csv", "0.5,2.5,v,1,1.4\n3,4,v,2,-0.2\n5,6,w,1,0\n");
    write_text("s.csv", "video_id,split\nv,train\n");
    snprintf(y, sizeof y, "split_file: \"%s\"\n", tpath("s.csv"));
    expect_err(load(opts_here(y), &c, &err), &err,
               (const char *[]){ "OpinionLevelSentiment.csv:3", "no split for video 'w'", NULL });
    sb_corpus_destroy(&c);
    write_text("s.csv", "v,train\nw,test\nv,valid\n");
    expect_err(load(opts_here(y), &c, &err), &err,
               (const char *[]){ "s.csv:3", "'v'", "line 1", NULL });
    sb_corpus_destroy(&c);
    write_text("s.csv", "v,train\nw,later\n");
    expect_err(load(opts_here(y), &c, &err), &err, (const char *[]){ "s.csv:2", "split", NULL });
    sb_corpus_destroy(&c);
    write_text("s.csv", "v,train\nw,validation\nx,test\n");
    expect_ok(load(opts_here(y), &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "w$_$1")->split, "dev");
    cr_assert_eq(utt_by_id(c, "w$_$1")->label, -1, "score 0 under non0");
    cr_assert_eq(log_count("INFO", "1 of its 3 videos have no clip"), 1, "%s", g_log);
    sb_corpus_destroy(&c);
}

Test(mosi, sdk_transcript_lines)
{
    write_text("Labels/OpinionLevelSentiment.csv", "0.5,2.5,v,1,1.4\n3,4,v,2,-0.2\n3,4,v,10,1\n");
    write_text("Transcript/Segmented/v.annotprocessed",
               "1_DELIM_HELLO THERE\r\n10_DELIM_ten, with a comma \n\njunk line\n");
    write_text("s.csv", "v,test\n");
    char y[2048];
    snprintf(y, sizeof y, "split_file: \"%s\"\n", tpath("s.csv"));
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(y), &c, &err), &err);
    cr_assert_str_eq(utt_by_id(c, "v$_$1")->text, "HELLO THERE");
    cr_assert_str_eq(utt_by_id(c, "v$_$10")->text, "ten, with a comma");
    cr_assert_null(utt_by_id(c, "v$_$2")->text);
    cr_assert_eq(log_count("WARN", "v.annotprocessed:4: 1 non-blank line"), 1, "%s", g_log);
    /* No WAVs at all: Segmented then Full were looked for. */
    cr_assert_eq(sb_corpus_n_warnings(c), 0);
    const char *msg = sb_corpus_info(c, "audio_first_missing");
    cr_assert_not_null(strstr(msg, "Segmented/v_1.wav"), "%s", msg);
    cr_assert_not_null(strstr(msg, "Full/v.wav"), "%s", msg);
    sb_corpus_destroy(&c);
}

Test(mosi, text_that_is_not_utf8_is_repaired)
{
    write_text("label.csv", "video_id,clip_id,text,label,mode\nv,1,it\x92s fine,1,train\n");
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_str_eq(sb_corpus_utt(c, 0)->text, "it\xe2\x80\x99s fine");
    cr_assert_eq(log_count("INFO", "1 transcripts were not valid UTF-8"), 1, "%s", g_log);
    sb_corpus_destroy(&c);
}

/* Empty but well-formed files load as empty corpora (work of size zero). */
Test(mosi, empty_corpora)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    write_text("label.csv",
               "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n");
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 0);
    sb_corpus_destroy(&c);
    remove(tpath("label.csv"));
    write_text("Labels/OpinionLevelSentiment.csv", "");
    expect_ok(load(opts_here(NULL), &c, &err), &err);
    cr_assert_eq(sb_corpus_size(c), 0);
    sb_corpus_destroy(&c);
}

/* ---- robustness -------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *n = (size_t)size;
    return buf;
}

/* Seeded byte mutations of a real label file: every load returns OK or an error with a
 * message, never crashes (the sanitizer build checks memory errors on the way). */
static void mutate_and_load(const char *src, const char *rel, const char *yaml, unsigned seed)
{
    size_t n;
    char *orig = slurp(src, &n);
    static const char alphabet[] = ",\"\n\r$_-.0123456789eE+ \t\xff";
    uint64_t s = 0x9e3779b97f4a7c15ull ^ seed;
    for (int round = 0; round < 150; round++) {
        char *buf = malloc(n + 16);
        memcpy(buf, orig, n);
        size_t len = n;
        int edits = 1 + round % 8;
        for (int e = 0; e < edits && len > 1; e++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(s >> 33) % len;
            int kind = (int)((s >> 20) % 3);
            char ch = alphabet[(s >> 8) % (sizeof alphabet - 1)];
            if (kind == 0)
                buf[at] = ch;
            else if (kind == 1)
                memmove(buf + at, buf + at + 1, len - at - 1), len--;
            else
                memmove(buf + at + 1, buf + at, len - at), buf[at] = ch, len++;
        }
        if (round % 37 == 0)
            len = len / 2; /* truncated */
        buf[len] = '\0';
        mkdirs_for(rel);
        FILE *f = fopen(tpath(rel), "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        free(buf);
        sb_corpus *c = NULL;
        sb_error err = { 0 };
        sb_status st = load(yaml, &c, &err);
        if (st != SB_OK)
            cr_assert(err.msg[0], "round %d: an error without a message", round);
        sb_corpus_destroy(&c);
    }
    free(orig);
}

Test(mosi, mutations_never_crash, .timeout = 240)
{
    char src[1200], y[2400];
    snprintf(src, sizeof src, "%s/label.csv", gen_tree("mmsa"));
    mutate_and_load(src, "label.csv", opts_here("protocol: mosi-7class\n"), 1);
    remove(tpath("label.csv"));
    snprintf(src, sizeof src, "%s/Labels/OpinionLevelSentiment.csv", gen_tree("sdk"));
    snprintf(y, sizeof y, "root: \"%s\"\n", g_dir);
    mutate_and_load(src, "Labels/OpinionLevelSentiment.csv", y, 2);
    snprintf(src, sizeof src, "%s/mosi-splits.csv", gen_tree("sdk"));
    write_text("Labels/OpinionLevelSentiment.csv", "0,1,_vT5gFA_xvw,1,0.5\n");
    snprintf(y, sizeof y, "root: \"%s\"\nsplit_file: \"%s\"\n", g_dir, tpath("s.csv"));
    mutate_and_load(src, "s.csv", y, 3);
}
