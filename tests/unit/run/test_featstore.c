/* tests/unit/run/test_featstore.c — the feature store's writer journal and frames: a writer
 * that dies (a forked child that exits without destroying it) loses nothing it added; a torn
 * tail or a damaged record ends the replay there; replay is idempotent; a live writer's
 * journal is left alone; frames round-trip as F32 and as F16 (round to nearest even). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "featstore.h"
#include "util.h"

#define ENC "0123456789abcdef0123456789abcdef"

static char root[64];
static sbi_store *S;

static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/sbfeatXXXXXX");
    cr_assert_not_null(mkdtemp(root));
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(root, &S, &err), SB_OK, "%s", err.msg);
}

static void teardown(void)
{
    sbi_store_close(&S);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!strncmp(root, "/tmp/sbfeat", 11))
        cr_expect_eq(system(cmd), 0);
}

TestSuite(featstore, .init = setup, .fini = teardown);

static const sbi_feat_layout POOLED = { 2, 3, 0, 0 };

/* Item k: key "%032x" of k+1, pooled values k*10 + j, frames k + t/8 + l/2 + c/4 (T = k+1). */
static void key_of(int k, char out[SB_HASH_HEX])
{
    snprintf(out, SB_HASH_HEX, "%032x", k + 1);
}

static void vec_of(int k, float v[6])
{
    for (int j = 0; j < 6; j++)
        v[j] = (float)(k * 10 + j) + 0.25f;
}

static float *frames_of(int k, const sbi_feat_layout *lay, size_t *T)
{
    *T = (size_t)k + 1;
    size_t n = (size_t)lay->n_layers * *T * (size_t)lay->frame_dim;
    float *f = malloc(n * sizeof *f);
    size_t i = 0;
    for (int l = 0; l < lay->n_layers; l++)
        for (size_t t = 0; t < *T; t++)
            for (int c = 0; c < lay->frame_dim; c++)
                f[i++] = (float)k + (float)t / 8.0f + (float)l / 2.0f + (float)c / 4.0f +
                         1.0f / 3.0f; /* 1/3 is not exact in F16 */
    return f;
}

static sbi_feat_writer *writer(sbi_store *s, const sbi_feat_layout *lay)
{
    sbi_feat_writer *w = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_feat_writer_create(s, ENC, "{\"plugin\":\"t\"}", lay, &w, &err), SB_OK,
                 "%s: %s", err.where, err.msg);
    return w;
}

static void add(sbi_feat_writer *w, int k, const sbi_feat_layout *lay)
{
    char key[SB_HASH_HEX];
    float v[6];
    key_of(k, key);
    vec_of(k, v);
    size_t T = 0;
    float *f = lay->frame_dim ? frames_of(k, lay, &T) : NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_feat_writer_add(w, key, v, f, T, &err), SB_OK, "%s", err.msg);
    free(f);
}

/* A writer in a child process that adds items [0, n) and exits without destroying it (as
 * SIGKILL would leave it: nothing flushed, the journal unlocked by the kernel). */
static void die_after(int n, const sbi_feat_layout *lay)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sbi_store *s = NULL;
        if (sbi_store_open(root, &s, NULL) != SB_OK)
            _exit(3);
        sbi_feat_writer *w = NULL;
        if (sbi_feat_writer_create(s, ENC, "{}", lay, &w, NULL) != SB_OK)
            _exit(4);
        for (int k = 0; k < n; k++) {
            char key[SB_HASH_HEX];
            float v[16] = { 0 }; /* room for any layout used here */
            key_of(k, key);
            vec_of(k, v);
            size_t T = 0;
            float *f = lay->frame_dim ? frames_of(k, lay, &T) : NULL;
            if (sbi_feat_writer_add(w, key, v, f, T, NULL) != SB_OK)
                _exit(5);
            free(f);
        }
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

static int n_indexed(void)
{
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sbi_store_prepare(S, "SELECT count(*) FROM features", &q, NULL), SB_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Paths of the journals (journal-*.bin) in the encoder's folder; returns the count. */
static int journals(char paths[][400], int max)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/features/%s", root, ENC);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "journal-", 8) || !strncmp(de->d_name, ".journal-", 9)) {
            if (n < max)
                snprintf(paths[n], 400, "%s/%s", dir, de->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static void expect_items(int from, int to, int present)
{
    sbi_feat_reader *r = NULL;
    cr_assert_eq(sbi_feat_reader_create(S, ENC, 2, 3, &r, NULL), SB_OK);
    for (int k = from; k < to; k++) {
        char key[SB_HASH_HEX];
        float want[6], got[6];
        key_of(k, key);
        vec_of(k, want);
        sb_error err = { 0 };
        sb_status st = sbi_feat_read(r, key, got, &err);
        if (!present) {
            cr_expect_eq(st, SB_ERR_NOT_FOUND, "item %d should not be stored", k);
            continue;
        }
        cr_assert_eq(st, SB_OK, "item %d: %s", k, err.msg);
        cr_expect_arr_eq(got, want, sizeof got, "item %d", k);
    }
    sbi_feat_reader_destroy(&r);
}

static off_t file_size(const char *p)
{
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    return st.st_size;
}

Test(featstore, writer_flushes_and_removes_its_journal)
{
    sbi_feat_writer *w = writer(S, &POOLED);
    char j[4][400];
    cr_assert_eq(journals(j, 4), 1, "the live writer has one journal");
    cr_expect_eq(file_size(j[0]), 32, "header only");
    for (int k = 0; k < 3; k++)
        add(w, k, &POOLED);
    cr_expect_gt(file_size(j[0]), 32, "items are journalled as they are added");
    cr_expect_eq(n_indexed(), 0);
    sb_error err = { 0 };
    cr_assert_eq(sbi_feat_writer_flush(w, &err), SB_OK, "%s", err.msg);
    cr_expect_eq(n_indexed(), 3);
    cr_expect_eq(file_size(j[0]), 32, "truncated once indexed");
    sbi_feat_writer_destroy(&w);
    cr_expect_null(w);
    cr_expect_eq(journals(j, 4), 0, "destroy removes the journal");
    expect_items(0, 3, 1);
}

Test(featstore, dead_writer_is_recovered_once)
{
    die_after(5, &POOLED);
    cr_expect_eq(n_indexed(), 0, "nothing was flushed");
    char j[4][400];
    cr_assert_eq(journals(j, 4), 1);
    char keep[420];
    snprintf(keep, sizeof keep, "%s/journal.copy", root);
    char cmd[900];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", j[0], keep);
    cr_assert_eq(system(cmd), 0);

    sbi_feat_writer *w = writer(S, &POOLED);
    sbi_feat_recovery r = sbi_feat_writer_recovery(w);
    cr_expect_eq(r.items, 5);
    cr_expect_eq(r.journals, 1);
    cr_expect_eq(r.torn, 0);
    cr_expect_eq(n_indexed(), 5);
    expect_items(0, 5, 1);
    sbi_feat_writer_destroy(&w);
    cr_expect_eq(journals(j, 4), 0, "the replayed journal is removed");

    /* The same journal again (a recoverer that died before removing it): every item is
     * already indexed, so nothing is written twice. */
    char again[300];
    snprintf(again, sizeof again, "%s/features/%s/journal-again1.bin", root, ENC);
    cr_assert_eq(rename(keep, again), 0);
    w = writer(S, &POOLED);
    r = sbi_feat_writer_recovery(w);
    cr_expect_eq(r.items, 0, "already indexed");
    cr_expect_eq(r.journals, 1);
    cr_expect_eq(n_indexed(), 5);
    sbi_feat_writer_destroy(&w);
    cr_expect_eq(journals(j, 4), 0);
    w = writer(S, &POOLED);
    cr_expect_eq(sbi_feat_writer_recovery(w).journals, 0, "nothing left to recover");
    sbi_feat_writer_destroy(&w);
}

Test(featstore, torn_tail_ends_the_replay)
{
    die_after(3, &POOLED);
    char j[4][400];
    cr_assert_eq(journals(j, 4), 1);
    /* A record is 44 + 6*4 + 32 = 100 bytes: cut the third one in half. */
    off_t size = file_size(j[0]);
    cr_assert_eq(size, 32 + 3 * 100);
    cr_assert_eq(truncate(j[0], size - 50), 0);
    sbi_feat_writer *w = writer(S, &POOLED);
    sbi_feat_recovery r = sbi_feat_writer_recovery(w);
    cr_expect_eq(r.items, 2);
    cr_expect_eq(r.torn, 1);
    expect_items(0, 2, 1);
    expect_items(2, 3, 0);
    sbi_feat_writer_destroy(&w);
    cr_expect_eq(journals(j, 4), 0);
}

Test(featstore, bad_checksum_ends_the_replay)
{
    die_after(3, &POOLED);
    char j[4][400];
    cr_assert_eq(journals(j, 4), 1);
    /* Flip one bit of the second record's pooled floats: the record's XXH3 no longer matches,
     * so the replay keeps the first record only (never a damaged or later one). */
    FILE *f = fopen(j[0], "r+b");
    cr_assert_not_null(f);
    long at = 32 + 100 + 44 + 5;
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
    sbi_feat_writer *w = writer(S, &POOLED);
    sbi_feat_recovery r = sbi_feat_writer_recovery(w);
    cr_expect_eq(r.items, 1);
    cr_expect_eq(r.torn, 1);
    expect_items(0, 1, 1);
    expect_items(1, 3, 0);
    sbi_feat_writer_destroy(&w);
}

Test(featstore, live_writer_journal_is_left_alone)
{
    int go[2], ready[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sbi_store *s = NULL;
        sbi_feat_writer *w = NULL;
        if (sbi_store_open(root, &s, NULL) ||
            sbi_feat_writer_create(s, ENC, "{}", &POOLED, &w, NULL))
            _exit(3);
        for (int k = 0; k < 4; k++) {
            char key[SB_HASH_HEX];
            float v[6];
            key_of(k, key);
            vec_of(k, v);
            if (sbi_feat_writer_add(w, key, v, NULL, 0, NULL))
                _exit(4);
        }
        char b = 1;
        if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
            _exit(5);
        _exit(0); /* dies holding unflushed items */
    }
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1);
    /* The child is alive and holds its journal's lock: a second writer must not touch it. */
    sbi_feat_writer *w = writer(S, &POOLED);
    sbi_feat_recovery r = sbi_feat_writer_recovery(w);
    cr_expect_eq(r.journals, 0, "a live writer's journal was replayed");
    cr_expect_eq(n_indexed(), 0);
    char j[4][400];
    cr_expect_eq(journals(j, 4), 2, "both writers' journals exist");
    sbi_feat_writer_destroy(&w);
    cr_expect_eq(journals(j, 4), 1, "the child's journal is still there");
    cr_assert_eq(write(go[1], &b, 1), 1);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Now it is dead: the next writer recovers its four items. */
    w = writer(S, &POOLED);
    cr_expect_eq(sbi_feat_writer_recovery(w).items, 4);
    expect_items(0, 4, 1);
    sbi_feat_writer_destroy(&w);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

Test(featstore, foreign_journal_is_an_error_naming_it)
{
    sbi_feat_writer *w = writer(S, &POOLED);
    sbi_feat_writer_destroy(&w);
    char p[256];
    snprintf(p, sizeof p, "%s/features/%s/journal-foreign.bin", root, ENC);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs("this is not a journal, but long enough to have a header", f);
    fclose(f);
    sb_error err = { 0 };
    cr_expect_eq(sbi_feat_writer_create(S, ENC, "{}", &POOLED, &w, &err), SB_ERR_STORE);
    cr_expect_null(w);
    cr_expect(strstr(err.where, "journal-foreign.bin"), "%s", err.where);
    cr_expect(strstr(err.msg, "not a serbench feature journal; delete the file"), "%s", err.msg);
    /* A journal of the same encoder key but another layout is refused the same way. */
    unlink(p);
    const sbi_feat_layout other = { 2, 4, 0, 0 };
    die_after(1, &other);
    sb_error_clear(&err);
    cr_expect_eq(sbi_feat_writer_create(S, ENC, "{}", &POOLED, &w, &err), SB_ERR_STORE);
    cr_expect(strstr(err.msg, "another layout (n_layers 2, dim 4"), "%s", err.msg);
}

Test(featstore, stillborn_journal_is_removed)
{
    char p[256];
    snprintf(p, sizeof p, "%s/features/%s", root, ENC);
    cr_assert_eq(sbi_mkdir_p(p, NULL), SB_OK);
    snprintf(p, sizeof p, "%s/features/%s/.journal-abcdef.new", root, ENC);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs("SBJRNL01", f);
    fclose(f);
    sbi_feat_writer *w = writer(S, &POOLED);
    cr_expect_neq(access(p, F_OK), 0, "a journal that was never named is removed");
    sbi_feat_writer_destroy(&w);
}

static uint16_t f16_bits(float x)
{
    /* Reference conversion in double with explicit round-half-even, normal range only. */
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    double a = fabs((double)x);
    int e = (int)floor(log2(a));
    double m = a / ldexp(1.0, e) - 1.0; /* [0, 1) */
    double q = m * 1024.0;
    double fl = floor(q);
    double r = q - fl;
    uint32_t man = (uint32_t)fl;
    if (r > 0.5 || (r == 0.5 && (man & 1u)))
        man++;
    if (man == 1024) {
        man = 0;
        e++;
    }
    return (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)man);
}

static void check_frames(const sbi_feat_layout *lay, int n)
{
    sbi_feat_reader *r = NULL;
    cr_assert_eq(sbi_feat_reader_create(S, ENC, lay->n_layers, lay->dim, &r, NULL), SB_OK);
    for (int k = 0; k < n; k++) {
        char key[SB_HASH_HEX];
        key_of(k, key);
        size_t T;
        float *want = frames_of(k, lay, &T);
        const sb_st_tensor *t = NULL;
        sb_error err = { 0 };
        cr_assert_eq(sbi_feat_read_frames(r, key, lay->frame_dim, &t, &err), SB_OK, "%s", err.msg);
        cr_assert_not_null(t, "item %d has no frames", k);
        cr_expect_eq(t->dtype, lay->frame_bits == 16 ? SB_DT_F16 : SB_DT_F32);
        cr_expect_eq(t->ndim, 3);
        cr_expect_eq(t->shape[0], lay->n_layers);
        cr_expect_eq(t->shape[1], (int64_t)T);
        cr_expect_eq(t->shape[2], lay->frame_dim);
        size_t nel = (size_t)lay->n_layers * T * (size_t)lay->frame_dim;
        for (size_t i = 0; i < nel; i++) {
            if (lay->frame_bits == 16) {
                uint16_t h;
                memcpy(&h, (const char *)t->data + 2 * i, 2);
                cr_expect_eq(h, f16_bits(want[i]), "item %d [%zu]: %04x vs %04x (%g)", k, i, h,
                             f16_bits(want[i]), (double)want[i]);
            } else {
                float g;
                memcpy(&g, (const char *)t->data + 4 * i, 4);
                cr_expect_eq(g, want[i], "item %d [%zu]", k, i);
            }
        }
        free(want);
    }
    sbi_feat_reader_destroy(&r);
}

Test(featstore, frames_round_trip_f32_and_f16)
{
    const sbi_feat_layout f32 = { 2, 3, 5, 32 };
    sbi_feat_writer *w = writer(S, &f32);
    for (int k = 0; k < 4; k++)
        add(w, k, &f32);
    cr_assert_eq(sbi_feat_writer_flush(w, NULL), SB_OK);
    sbi_feat_writer_destroy(&w);
    check_frames(&f32, 4);
    expect_items(0, 4, 1);
    /* An item without frames in a frames layout is refused. */
    w = writer(S, &f32);
    float v[6] = { 0 };
    sb_error err = { 0 };
    cr_expect_eq(sbi_feat_writer_add(w, ENC, v, NULL, 0, &err), SB_ERR_INVALID);
    sbi_feat_writer_destroy(&w);
}

Test(featstore, frames_survive_a_dead_writer_as_f16)
{
    const sbi_feat_layout f16 = { 2, 3, 4, 16 };
    die_after(6, &f16);
    sbi_feat_writer *w = writer(S, &f16);
    cr_expect_eq(sbi_feat_writer_recovery(w).items, 6);
    sbi_feat_writer_destroy(&w);
    check_frames(&f16, 6);
    /* An item stored without frames reads as no frames; an unknown item is not found. */
    w = writer(S, &POOLED);
    add(w, 10, &POOLED);
    cr_assert_eq(sbi_feat_writer_flush(w, NULL), SB_OK);
    sbi_feat_writer_destroy(&w);
    sbi_feat_reader *r = NULL;
    cr_assert_eq(sbi_feat_reader_create(S, ENC, 2, 3, &r, NULL), SB_OK);
    const sb_st_tensor *t = (const sb_st_tensor *)1;
    char key[SB_HASH_HEX];
    key_of(10, key);
    cr_expect_eq(sbi_feat_read_frames(r, key, 4, &t, NULL), SB_OK);
    cr_expect_null(t);
    cr_expect_eq(sbi_feat_read_frames(r, "ffffffffffffffffffffffffffffffff", 4, &t, NULL),
                 SB_ERR_NOT_FOUND);
    /* Asking for another frame width is a store error naming the tensor. */
    key_of(0, key);
    sb_error err = { 0 };
    cr_expect_eq(sbi_feat_read_frames(r, key, 5, &t, &err), SB_ERR_STORE);
    cr_expect(strstr(err.where, ".frames"), "%s", err.where);
    sbi_feat_reader_destroy(&r);
}

Test(featstore, many_items_make_several_chunks)
{
    /* 150 items: chunks of 64 are committed as they fill; a dead writer's replay of the
     * rest commits in chunks as well. */
    die_after(150, &POOLED);
    cr_expect_eq(n_indexed(), 128, "two full chunks were committed before the death");
    sbi_feat_writer *w = writer(S, &POOLED);
    cr_expect_eq(sbi_feat_writer_recovery(w).items, 22);
    sbi_feat_writer_destroy(&w);
    cr_expect_eq(n_indexed(), 150);
    expect_items(0, 150, 1);
}
