/* tests/unit/base/test_base.c — errors, hashes, the RNG and the corpus table. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <serbench/serbench.h>

Test(error, first_error_wins)
{
    sb_error e = { 0 };
    cr_assert_eq(sb_error_set(&e, SB_ERR_IO, "a.wav", "first %d", 1), SB_ERR_IO);
    cr_assert_eq(sb_error_set(&e, SB_ERR_CONFIG, "b", "second"), SB_ERR_CONFIG);
    cr_assert_eq(e.code, SB_ERR_IO);
    cr_assert_str_eq(e.msg, "first 1");
    char buf[128];
    cr_assert_str_eq(sb_error_format(&e, buf, sizeof buf), "a.wav: first 1");
    sb_error_clear(&e);
    cr_assert_eq(e.code, SB_OK);
    cr_assert_eq(sb_error_set(NULL, SB_ERR_IO, NULL, "x"), SB_ERR_IO); /* NULL is allowed */
    cr_assert_str_eq(sb_strerror(SB_ERR_SCHEMA), "store schema error");
}

Test(hash, streaming_equals_one_shot_and_separates_fields)
{
    char a[SB_HASH_HEX], b[SB_HASH_HEX], c[SB_HASH_HEX];
    sb_hash_hex("hello world", 11, a);
    sb_hasher *h = sb_hasher_create();
    sb_hasher_update(h, "hello ", 6);
    sb_hasher_update(h, "world", 5);
    sb_hasher_hex(h, b);
    sb_hasher_destroy(&h);
    cr_assert_str_eq(a, b);
    cr_assert_eq(strlen(a), 32);
    h = sb_hasher_create();
    sb_hasher_str(h, "ab");
    sb_hasher_str(h, "c");
    sb_hasher_hex(h, b);
    sb_hasher_destroy(&h);
    h = sb_hasher_create();
    sb_hasher_str(h, "a");
    sb_hasher_str(h, "bc");
    sb_hasher_hex(h, c);
    sb_hasher_destroy(&h);
    cr_assert_str_neq(b, c);
}

Test(rng, reproducible_streams_and_ranges)
{
    sb_rng r1, r2, r3;
    sb_rng_seed(&r1, 42, 0);
    sb_rng_seed(&r2, 42, 0);
    sb_rng_seed(&r3, 42, 1);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = sb_rng_u64(&r1), y = sb_rng_u64(&r2), z = sb_rng_u64(&r3);
        same &= x == y;
        differ |= x != z;
    }
    cr_assert(same);
    cr_assert(differ);
    double s = 0, s2 = 0;
    int counts[7] = { 0 };
    for (int i = 0; i < 70000; i++) {
        double u = sb_rng_uniform(&r1);
        cr_assert(u >= 0 && u < 1);
        counts[sb_rng_below(&r1, 7)]++;
        double n = sb_rng_normal(&r1);
        s += n;
        s2 += n * n;
    }
    for (int k = 0; k < 7; k++)
        cr_assert(abs(counts[k] - 10000) < 500, "bucket %d has %d", k, counts[k]);
    cr_assert(fabs(s / 70000) < 0.02 && fabs(s2 / 70000 - 1) < 0.03);
    size_t idx[50];
    for (size_t i = 0; i < 50; i++)
        idx[i] = i;
    sb_rng_shuffle(&r1, idx, 50);
    int seen[50] = { 0 }, moved = 0;
    for (size_t i = 0; i < 50; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 50; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_gt(moved, 30);
}

Test(corpus, build_find_and_reject)
{
    sb_corpus *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_corpus_create("demo", &c, &e), SB_OK);
    const char *classes[] = { "neu", "hap", "ang" };
    cr_assert_eq(sb_corpus_set_classes(c, "iemocap-3", classes, 3, &e), SB_OK);
    char id[32];
    for (int i = 0; i < 3000; i++) { /* grows the index several times */
        sb_utt u;
        sb_utt_init(&u);
        snprintf(id, sizeof id, "utt%04d", i);
        u.id = id;
        u.audio = "/x.wav";
        u.split = i % 2 ? "train" : "test";
        u.label = i % 3;
        cr_assert_eq(sb_corpus_add(c, &u, &e), SB_OK, "%s", e.msg);
    }
    cr_assert_eq(sb_corpus_size(c), 3000);
    cr_assert_eq(sb_corpus_find(c, "utt2999"), 2999);
    cr_assert_eq(sb_corpus_find(c, "nope"), -1);
    cr_assert_eq(sb_corpus_class_index(c, "ang"), 2);
    cr_assert_str_eq(sb_corpus_utt(c, 5)->split, "train");
    cr_assert(isnan(sb_corpus_utt(c, 5)->value));
    sb_utt u;
    sb_utt_init(&u);
    u.id = "utt0001";
    u.audio = "/x.wav";
    u.split = "train";
    cr_assert_eq(sb_corpus_add(c, &u, &e), SB_ERR_INVALID);
    cr_assert(strstr(e.msg, "duplicate"), "%s", e.msg);
    cr_assert(strstr(e.where, "utt0001"));
    sb_error_clear(&e);
    u.id = "new";
    u.label = 3;
    cr_assert_eq(sb_corpus_add(c, &u, &e), SB_ERR_INVALID);
    sb_error_clear(&e);
    u.label = -1;
    u.start = 2.0;
    u.end = 1.0;
    cr_assert_eq(sb_corpus_add(c, &u, &e), SB_ERR_INVALID);
    sb_error_clear(&e);
    u.end = -1;
    u.split = NULL;
    cr_assert_eq(sb_corpus_add(c, &u, &e), SB_ERR_INVALID);
    sb_corpus_warn_item(c, "utt0002", "missing %s", "file");
    const char *wid = NULL;
    cr_assert_str_eq(sb_corpus_warning(c, 0, &wid), "missing file");
    cr_assert_str_eq(wid, "utt0002");
    const char *dup[] = { "a", "a" };
    sb_corpus *c2 = NULL;
    sb_corpus_create("x", &c2, &e);
    sb_error_clear(&e);
    cr_assert_eq(sb_corpus_set_classes(c2, "s", dup, 2, &e), SB_ERR_INVALID);
    sb_corpus_destroy(&c2);
    sb_corpus_destroy(&c);
    cr_assert_null(c);
}

Test(corpus, ratings_info_meta_and_text_only)
{
    sb_corpus *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_corpus_create("iem", &c, &e), SB_OK);
    const char *classes[] = { "neu", "ang" };
    sb_corpus_set_classes(c, "s", classes, 2, &e);
    const char *ids[] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        sb_utt u;
        sb_utt_init(&u);
        u.id = ids[i];
        u.split = "train";
        u.audio = i == 2 ? NULL : "/x.wav"; /* text-only item */
        u.meta = i == 0 ? "{\"vad\": [2.5, 3, 1], \"code\": \"exc\"}" : NULL;
        cr_assert_eq(sb_corpus_add(c, &u, &e), SB_OK, "%s", e.msg);
    }
    cr_assert_null(sb_corpus_utt(c, 2)->audio);
    cr_assert(strstr(sb_corpus_utt(c, 0)->meta, "\"vad\""));
    sb_utt bad;
    sb_utt_init(&bad);
    bad.id = "d";
    bad.split = "train";
    bad.meta = "[1, 2]";
    cr_assert_eq(sb_corpus_add(c, &bad, &e), SB_ERR_INVALID);
    cr_assert(strstr(e.msg, "meta is not a JSON object"), "%s", e.msg);
    sb_error_clear(&e);
    bad.meta = NULL;
    bad.audio = "";
    cr_assert_eq(sb_corpus_add(c, &bad, &e), SB_ERR_INVALID);
    sb_error_clear(&e);

    cr_assert_eq(sb_corpus_add_rating(c, "a", "E1", "Neutral", &e), SB_OK);
    cr_assert_eq(sb_corpus_add_rating(c, "a", "E2", "Anger", &e), SB_OK);
    cr_assert_eq(sb_corpus_add_rating(c, "c", "E1", "Frustration", &e), SB_OK);
    cr_assert_eq(sb_corpus_add_rating(c, "a", "E3", "late", &e), SB_ERR_INTERNAL);
    sb_error_clear(&e);
    cr_assert_eq(sb_corpus_add_rating(c, "zz", "E1", "x", &e), SB_ERR_NOT_FOUND);
    cr_assert_eq(sb_corpus_n_ratings(c, 0), 2);
    cr_assert_eq(sb_corpus_n_ratings(c, 1), 0);
    cr_assert_eq(sb_corpus_n_ratings(c, 2), 1);
    const char *rater = NULL;
    cr_assert_str_eq(sb_corpus_rating(c, 0, 1, &rater), "Anger");
    cr_assert_str_eq(rater, "E2");
    cr_assert_str_eq(sb_corpus_rating(c, 2, 0, &rater), "Frustration");
    cr_assert_null(sb_corpus_rating(c, 1, 0, &rater));

    cr_assert_eq(sb_corpus_set_info(c, "protocol", "iemocap-4class-loso", &e), SB_OK);
    cr_assert_eq(sb_corpus_set_info(c, "fold", "1", &e), SB_OK);
    cr_assert_eq(sb_corpus_set_info(c, "fold", "2", &e), SB_OK);
    cr_assert_eq(sb_corpus_n_info(c), 2);
    cr_assert_str_eq(sb_corpus_info(c, "fold"), "2");
    const char *key = NULL;
    cr_assert_str_eq(sb_corpus_info_at(c, 0, &key), "iemocap-4class-loso");
    cr_assert_str_eq(key, "protocol");
    cr_assert_null(sb_corpus_info(c, "nope"));
    sb_corpus_destroy(&c);
}
