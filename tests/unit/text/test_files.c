/* tests/unit/text/test_files.c — sb_walk_clips and sb_clip_dia_utt: name matching
 * (prefixes, extensions, digits), the split from folder names, order, hidden files, link
 * loops and errors. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <serbench/serbench.h>

Test(clipname, matches_unanchored_dia_utt)
{
    long d = -1, u = -1;
    cr_assert(sb_clip_dia_utt("dia12_utt3.mp4", &d, &u));
    cr_assert_eq(d, 12);
    cr_assert_eq(u, 3);
    cr_assert(sb_clip_dia_utt("final_videos_testdia101_utt0.mp4", &d, &u));
    cr_assert_eq(d, 101);
    cr_assert_eq(u, 0);
    cr_assert(sb_clip_dia_utt("dia1dia7_utt8.wav", &d, &u)); /* the last dia<D> wins */
    cr_assert_eq(d, 7);
    cr_assert(sb_clip_dia_utt("dia007_utt010.flac", &d, &u));
    cr_assert_eq(d, 7);
    cr_assert_eq(u, 10);
    cr_assert(sb_clip_dia_utt("dia1_utt2.WAV", NULL, NULL));
    static const char *no[] = { "dia1_utt2",
                                "dia1_utt2.",
                                "dia_utt2.wav",
                                "dia1_utt.wav",
                                "dia1-utt2.wav",
                                "dia1_utt2x.wav",
                                "dia1_utt2.w-v",
                                "Dia1_utt2.wav",
                                "dia1234567890_utt1.wav",
                                "dia1_utt1234567890.wav",
                                "",
                                "utt2.wav" };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert_not(sb_clip_dia_utt(no[i], NULL, NULL), "'%s' should not match", no[i]);
    cr_assert_not(sb_clip_dia_utt(NULL, NULL, NULL));
}

static char g_root[256];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void mk(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    for (char *s = path + strlen(g_root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs("x", f);
    fclose(f);
}

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/sb-clips-XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
}

static void teardown(void)
{
    nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct seen {
    char lines[64][256];
    int n, stop_after;
} seen;

static int collect(void *ctx, const sb_clip *c, sb_error *err)
{
    (void)err;
    seen *s = ctx;
    cr_assert_eq(c->struct_size, sizeof(sb_clip));
    cr_assert_lt(s->n, 64);
    char want_path[1024];
    snprintf(want_path, sizeof want_path, "%s/%s", g_root, c->rel);
    cr_assert_str_eq(c->path, want_path);
    cr_assert_str_eq(c->name, strrchr(c->path, '/') + 1);
    snprintf(s->lines[s->n++], 256, "%s %s %d %ld %ld %s", c->rel, c->ext, c->rank, c->dialogue,
             c->utterance, c->split ? c->split : "-");
    return s->stop_after && s->n >= s->stop_after;
}

TestSuite(walk, .init = setup, .fini = teardown);

Test(walk, finds_clips_with_splits_in_sorted_order)
{
    mk("MELD.Raw/train/train_splits/dia0_utt0.wav");
    mk("MELD.Raw/train/train_splits/dia0_utt0.mp4");
    mk("MELD.Raw/train/train_splits/dia10_utt1.wav");
    mk("MELD.Raw/train/train_splits/dia2_utt1.wav");
    mk("MELD.Raw/dev_splits_complete/dia1_utt2.MP4");
    mk("MELD.Raw/test/output_repeated_splits_test/final_videos_testdia101_utt0.mp4");
    mk("MELD.Raw/test/output_repeated_splits_test/notes.txt");
    mk("MELD.Raw/test/output_repeated_splits_test/dia3_utt3.txt");
    mk("MELD.Raw/test/output_repeated_splits_test/._dia3_utt4.mp4"); /* macOS fork */
    mk("MELD.Raw/.cache/dia4_utt4.wav");                             /* hidden folder */
    mk("latest/dia5_utt5.wav");                                      /* "latest" is not "test" */
    mk("dia9_utt9.flac"); /* at the root: no folder, no split */
    mk("val/dia6_utt6.wav");
    mk("test/train_splits/dia8_utt8.wav"); /* the deepest folder decides */
    /* a link loop and a second path to the same folder */
    char link[512], target[512];
    snprintf(link, sizeof link, "%s/MELD.Raw/train/train_splits/loop", g_root);
    snprintf(target, sizeof target, "%s/MELD.Raw", g_root);
    cr_assert_eq(symlink(target, link), 0);

    seen s = { .n = 0 };
    sb_error e = { 0 };
    cr_assert_eq(sb_walk_clips(g_root, "wav, flac,.mp4", collect, &s, &e), SB_OK, "%s", e.msg);
    static const char *want[] = {
        "MELD.Raw/dev_splits_complete/dia1_utt2.MP4 mp4 2 1 2 dev",
        ("MELD.Raw/test/output_repeated_splits_test/final_videos_testdia101_utt0.mp4 mp4 2 101 0 "
         "test"),
        "MELD.Raw/train/train_splits/dia0_utt0.mp4 mp4 2 0 0 train",
        "MELD.Raw/train/train_splits/dia0_utt0.wav wav 0 0 0 train",
        "MELD.Raw/train/train_splits/dia10_utt1.wav wav 0 10 1 train",
        "MELD.Raw/train/train_splits/dia2_utt1.wav wav 0 2 1 train",
        "dia9_utt9.flac flac 1 9 9 -",
        "latest/dia5_utt5.wav wav 0 5 5 -",
        "test/train_splits/dia8_utt8.wav wav 0 8 8 train",
        "val/dia6_utt6.wav wav 0 6 6 dev",
    };
    int nw = (int)(sizeof want / sizeof want[0]);
    for (int i = 0; i < s.n && i < nw; i++)
        cr_expect_str_eq(s.lines[i], want[i], "clip %d", i);
    cr_assert_eq(s.n, nw, "found %d clips, want %d (the loop must not repeat MELD.Raw)", s.n, nw);
}

Test(walk, callback_stops_the_walk)
{
    mk("train/dia0_utt0.wav");
    mk("train/dia0_utt1.wav");
    mk("train/dia0_utt2.wav");
    seen s = { .n = 0, .stop_after = 2 };
    sb_error e = { 0 };
    cr_assert_eq(sb_walk_clips(g_root, "wav", collect, &s, &e), SB_ERR_CANCELLED);
    cr_assert_eq(s.n, 2);
    cr_assert_eq(e.code, SB_OK); /* untouched */
}

static int fail_cb(void *ctx, const sb_clip *c, sb_error *err)
{
    (void)ctx;
    return sb_error_set(err, SB_ERR_FORMAT, c->path, "refused") != SB_OK;
}

Test(walk, callback_error_is_returned)
{
    mk("dev/dia0_utt0.wav");
    sb_error e = { 0 };
    cr_assert_eq(sb_walk_clips(g_root, "wav", fail_cb, NULL, &e), SB_ERR_FORMAT);
    cr_assert(strstr(e.where, "dev/dia0_utt0.wav"));
}

Test(walk, errors)
{
    seen s = { .n = 0 };
    sb_error e = { 0 };
    cr_assert_eq(sb_walk_clips("/nonexistent/clips", "wav", collect, &s, &e), SB_ERR_NOT_FOUND);
    cr_assert_str_eq(e.where, "/nonexistent/clips");
    sb_error_clear(&e);
    mk("file.txt");
    char file[512];
    snprintf(file, sizeof file, "%s/file.txt", g_root);
    cr_assert_eq(sb_walk_clips(file, "wav", collect, &s, &e), SB_ERR_IO);
    cr_assert(strstr(e.msg, "not a folder"), "%s", e.msg);
    sb_error_clear(&e);
    cr_assert_eq(sb_walk_clips(g_root, " , ", collect, &s, &e), SB_ERR_INVALID);
    sb_error_clear(&e);
    cr_assert_eq(sb_walk_clips(g_root, NULL, collect, &s, &e), SB_ERR_INVALID);
    cr_assert_eq(s.n, 0);
    if (geteuid() != 0) { /* root reads any folder */
        mk("locked/dia0_utt0.wav");
        char locked[512];
        snprintf(locked, sizeof locked, "%s/locked", g_root);
        chmod(locked, 0);
        sb_error_clear(&e);
        cr_assert_eq(sb_walk_clips(g_root, "wav", collect, &s, &e), SB_ERR_IO);
        cr_assert_str_eq(e.where, locked);
        chmod(locked, 0755);
    }
}

Test(walk, index_prefers_earlier_extensions_and_keys_by_split)
{
    mk("train/train_splits/dia0_utt0.mp4");
    mk("train/train_splits/dia0_utt0.wav"); /* wav beats mp4 though walked later */
    mk("train/train_splits/dia1_utt0.mp4"); /* only mp4 */
    mk("dev/dev_splits_complete/dia0_utt0.wav");
    mk("test/output_repeated_splits_test/final_videos_testdia0_utt0.mp4");
    mk("test/again/dia0_utt0.mp4"); /* same key and rank, later in walk order: shadowed */
    mk("flat/dia7_utt7.wav");       /* no split */
    sb_clip_index *ix = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_clip_index_build(g_root, "WAV,flac,mp4", &ix, &e), SB_OK, "%s", e.msg);
    cr_assert_eq(sb_clip_index_size(ix), 7);
    long k = sb_clip_index_find(ix, "train", 0, 0);
    cr_assert_geq(k, 0);
    cr_assert_str_eq(sb_clip_index_at(ix, (size_t)k)->ext, "wav");
    cr_assert_str_eq(sb_clip_index_at(ix, (size_t)k)->rel, "train/train_splits/dia0_utt0.wav");
    k = sb_clip_index_find(ix, "train", 1, 0);
    cr_assert_str_eq(sb_clip_index_at(ix, (size_t)k)->ext, "mp4");
    k = sb_clip_index_find(ix, "dev", 0, 0);
    cr_assert_str_eq(sb_clip_index_at(ix, (size_t)k)->split, "dev");
    k = sb_clip_index_find(ix, "test", 0, 0);
    cr_assert_str_eq(sb_clip_index_at(ix, (size_t)k)->name,
                     "dia0_utt0.mp4"); /* "again" < "output" */
    cr_assert_eq(sb_clip_index_find(ix, "test", 0, 1), -1);
    cr_assert_eq(sb_clip_index_find(ix, "train", 7, 7), -1);
    k = sb_clip_index_find(ix, NULL, 7, 7);
    cr_assert_geq(k, 0);
    cr_assert_null(sb_clip_index_at(ix, (size_t)k)->split);
    cr_assert_eq(sb_clip_index_find(ix, "other", 0, 0), -1);
    int chosen = 0;
    for (size_t i = 0; i < sb_clip_index_size(ix); i++)
        chosen += sb_clip_index_chosen(ix, i);
    cr_assert_eq(chosen, 5); /* train mp4 dia0_utt0 and one test mp4 are shadowed */
    cr_assert_null(sb_clip_index_at(ix, 7));
    sb_clip_index_destroy(&ix);
    cr_assert_null(ix);
    sb_clip_index_destroy(&ix);

    /* an empty tree indexes nothing and finds nothing */
    char empty[512];
    snprintf(empty, sizeof empty, "%s/flat", g_root);
    cr_assert_eq(sb_clip_index_build(empty, "mp4", &ix, &e), SB_OK);
    cr_assert_eq(sb_clip_index_size(ix), 0);
    cr_assert_eq(sb_clip_index_find(ix, NULL, 7, 7), -1);
    sb_clip_index_destroy(&ix);
    cr_assert_eq(sb_clip_index_build("/nonexistent", "mp4", &ix, &e), SB_ERR_NOT_FOUND);
    cr_assert_null(ix);
}
