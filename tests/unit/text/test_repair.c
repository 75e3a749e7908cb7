/* tests/unit/text/test_repair.c — UTF-8 validation and the MELD/MELT encoding repair:
 * the repair table item by item, what must stay unchanged, idempotence, and the property
 * that every real MELD utterance, damaged the two ways older copies are, repairs back. */
#include <criterion/criterion.h>

#include "shared_data.h"
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

/* ---- UTF-8 validity ------------------------------------------------------------------ */

Test(utf8, valid_sequences)
{
    static const char *ok[] = {
        "",
        "plain ascii",
        "caf\xC3\xA9",      /* é, 2 bytes */
        "\xE2\x80\x99",     /* ’, 3 bytes */
        "\xF0\x9F\x98\x80", /* U+1F600, 4 bytes */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF, the last code point */
        "\xED\x9F\xBF",     /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",     /* U+E000, just above */
        "\xC2\x80",         /* U+0080, smallest 2-byte */
        "\xE0\xA0\x80",     /* U+0800, smallest 3-byte */
        "\xF0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xC2\x92",         /* a C1 control is valid UTF-8 */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert(sb_utf8_valid(ok[i], strlen(ok[i])), "case %zu should be valid", i);
    cr_assert(sb_utf8_valid("a\0b", 3)); /* NUL is U+0000 */
}

Test(utf8, invalid_sequences)
{
    static const char *bad[] = {
        "\xC0\x80",         /* overlong NUL */
        "\xC1\xBF",         /* overlong 2-byte */
        "\xE0\x80\x80",     /* overlong 3-byte */
        "\xE0\x9F\xBF",     /* overlong U+07FF */
        "\xF0\x80\x80\x80", /* overlong 4-byte */
        "\xF0\x8F\xBF\xBF", /* overlong U+FFFF */
        "\xED\xA0\x80",     /* U+D800, a surrogate */
        "\xED\xBF\xBF",     /* U+DFFF */
        "\xF4\x90\x80\x80", /* U+110000 */
        "\xF5\x80\x80\x80", /* lead byte beyond F4 */
        "\xFF",
        "\xFE",
        "\x80",         /* lone continuation */
        "don\x92t",     /* a raw Windows-1252 byte */
        "\xE2\x80",     /* truncated 3-byte */
        "\xF0\x9F\x98", /* truncated 4-byte */
        "\xC3",         /* truncated 2-byte at the end */
        "\xE2\x80x",    /* continuation replaced by ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(sb_utf8_valid(bad[i], strlen(bad[i])), "case %zu should be invalid", i);
    /* the length is honoured: a valid prefix of an invalid string is valid */
    cr_assert(sb_utf8_valid("ab\xFF", 2));
    cr_assert_not(sb_utf8_valid("\xE2\x80\x99", 2));
}

/* ---- the repair table ------------------------------------------------------------------ */

typedef struct rcase {
    const char *what, *in, *want;
} rcase;

/* ’ “ ” — – … ‘ é as UTF-8, for readability */
#define RSQ "\xE2\x80\x99"
#define LSQ "\xE2\x80\x98"
#define LDQ "\xE2\x80\x9C"
#define RDQ "\xE2\x80\x9D"
#define EMD "\xE2\x80\x94"
#define END "\xE2\x80\x93"
#define ELL "\xE2\x80\xA6"
#define EACU "\xC3\xA9"

static const rcase table[] = {
    /* 1. bytes that are not UTF-8 read as Windows-1252 */
    { "raw 0x92", "don\x92t", "don" RSQ "t" },
    { "raw 0x85", "well\x85", "well" ELL },
    { "raw 0x91/0x92", "\x91hi\x92", LSQ "hi" RSQ },
    { "raw 0x93/0x94", "\x93hi\x94", LDQ "hi" RDQ },
    { "raw 0x96",
      "a\x96"
      "b",
      "a" END "b" },
    { "raw 0x97",
      "a\x97"
      "b",
      "a" EMD "b" },
    { "raw 0x80",
      "\x80"
      "5",
      "\xE2\x82\xAC"
      "5" },
    { "raw 0xE9 (Latin-1 letter)", "caf\xE9!", "caf" EACU "!" },
    { "raw 0xA0",
      "a\xA0"
      "b",
      "a b" },
    { "raw undefined 0x81 kept as U+0081",
      "a\x81"
      "b",
      "a\xC2\x81"
      "b" },
    { "truncated UTF-8 read byte by byte", "x\xE2\x80", "x\xC3\xA2\xE2\x82\xAC" },
    /* 2. C1 control code points through Windows-1252 (PR #28's map and the rest) */
    { "U+0092", "don\xC2\x92t", "don" RSQ "t" },
    { "U+0085", "so\xC2\x85", "so" ELL },
    { "U+0091", "\xC2\x91x", LSQ "x" },
    { "U+0093 U+0094", "\xC2\x93x\xC2\x94", LDQ "x" RDQ },
    { "U+0096",
      "1\xC2\x96"
      "2",
      "1" END "2" },
    { "U+0097",
      "a\xC2\x97"
      "b",
      "a" EMD "b" },
    { "U+0080", "\xC2\x80", "\xE2\x82\xAC" },
    { "U+0099", "TM\xC2\x99", "TM\xE2\x84\xA2" },
    { "U+00A0", "Okay?\xC2\xA0 That", "Okay?  That" },
    { "U+009D (undefined) stays",
      "a\xC2\x9D"
      "b",
      "a\xC2\x9D"
      "b" },
    /* 3. mojibake of UTF-8 read as Windows-1252 */
    { "a-euro-tm", "It\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2s", "It" RSQ "s" },
    { "a-euro-oe", "\xC3\xA2\xE2\x82\xAC\xC5\x93hi", LDQ "hi" },
    { "a-euro-U+009D", "hi\xC3\xA2\xE2\x82\xAC\xC2\x9D", "hi" RDQ },
    { "a-euro-rdq",
      "a\xC3\xA2\xE2\x82\xAC\xE2\x80\x9D"
      "b",
      "a" EMD "b" },
    { "a-euro-ldq",
      "a\xC3\xA2\xE2\x82\xAC\xE2\x80\x9C"
      "b",
      "a" END "b" },
    { "a-euro-brokenbar", "so\xC3\xA2\xE2\x82\xAC\xC2\xA6", "so" ELL },
    { "a-euro-tilde", "\xC3\xA2\xE2\x82\xAC\xCB\x9Cx", LSQ "x" },
    { "a-euro + C1 U+0099", "\xC3\xA2\xE2\x82\xAC\xC2\x99", RSQ },
    { "A-tilde-copyright", "caf\xC3\x83\xC2\xA9", "caf" EACU },
    { "A-tilde-diaeresis", "\xC3\x83\xC2\xA8", "\xC3\xA8" },
    { "A-tilde-per-mille", "\xC3\x83\xE2\x80\xB0", "\xC3\x89" },    /* É */
    { "A-tilde + no-break space", "\xC3\x83\xC2\xA0", "\xC3\xA0" }, /* à */
    { "A-circumflex-pound",
      "\xC3\x82\xC2\xA3"
      "5",
      "\xC2\xA3"
      "5" },
    { "A-circumflex + no-break space",
      "a\xC3\x82\xC2\xA0"
      "b",
      "a b" },
    { "A-circumflex-rsquo (old C1 file read as cp1252)", "don\xC3\x82\xE2\x80\x99t",
      "don" RSQ "t" },
    { "A-circumflex + U+0092", "don\xC3\x82\xC2\x92t", "don" RSQ "t" },
    { "twice mojibake",
      "I\xC3\x83\xC2\xA2\xC3\xA2\xE2\x80\x9A\xC2\xAC\xC3\xA2\xE2\x80\x9E\xC2\xA2m", "I" RSQ "m" },
    { "raw cp1252 bytes of the mojibake", "It\xE2\x80\x99s", "It" RSQ "s" },
    /* 4. the lossy forms in MELT */
    { "euro-tm", "It can\xE2\x82\xAC\xE2\x84\xA2t be me", "It can" RSQ "t be me" },
    { "euro-brokenbar", "well\xE2\x82\xAC\xC2\xA6", "well" ELL },
    { "euro-oe", "\xE2\x82\xAC\xC5\x93hi", LDQ "hi" },
    { "euro-ldq",
      "a\xE2\x82\xAC\xE2\x80\x9C"
      "b",
      "a" END "b" },
    { "euro-rdq (MELT: Italy\xE2\x82\xAC\xE2\x80\x9DPlease)", "Italy\xE2\x82\xAC\xE2\x80\x9DPlease",
      "Italy" EMD "Please" },
    { "euro-tilde", "\xE2\x82\xAC\xCB\x9Cx", LSQ "x" },
    /* mixed: several kinds in one string */
    { "mixed", "Nestl\xC3\x83\xC2\xA9\xC2\x92s\x85 can\xE2\x82\xAC\xE2\x84\xA2t",
      "Nestl" EACU RSQ "s" ELL " can" RSQ "t" },
};

Test(repair, table_item_by_item)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int changed = -1;
        char *out = sb_text_repair(table[i].in, strlen(table[i].in), &changed);
        cr_assert_not_null(out);
        cr_assert_str_eq(out, table[i].want, "case '%s'", table[i].what);
        int differs = strcmp(table[i].in, table[i].want) != 0;
        cr_assert_eq(changed, differs, "case '%s': changed flag", table[i].what);
        cr_assert(sb_utf8_valid(out, strlen(out)), "case '%s': output not UTF-8", table[i].what);
        /* idempotent */
        int again = -1;
        char *out2 = sb_text_repair(out, strlen(out), &again);
        cr_assert_str_eq(out2, out, "case '%s' not idempotent", table[i].what);
        cr_assert_eq(again, 0);
        sb_free(out2);
        sb_free(out);
    }
}

Test(repair, clean_text_unchanged)
{
    static const char *keep[] = {
        "",
        "Oh my God, you guys! \"Quoted\", 100% (ok).",
        "don" RSQ "t " LDQ "stop" RDQ " " EMD " wait" ELL " " LSQ "x" RSQ " 1" END "2",
        "caf" EACU " na\xC3\xAFve r\xC3\xB3"
        "le \xC3\xB1"
        "and\xC3\xBA \xC3\xA2me",                  /* é ï ó ñ ú â */
        "5\xE2\x82\xAC each; 10 \xE2\x82\xAC" ELL, /* euro + ellipsis is not in the list */
        "\xE2\x82\xAC"
        "5",                                               /* a lone euro */
        "S\xC3\x83O PAULO",                                /* Ã + a plain letter */
        "end with \xC3\x83",                               /* Ã at the end */
        "end with \xC3\xA2\xE2\x82\xAC",                   /* â€ at the end (no third) */
        "\xC3\x82 alone",                                  /* Â + space */
        "\xF0\x9F\x98\x80 emoji \xE4\xB8\xAD\xE6\x96\x87", /* 4-byte and CJK */
        "\xC2\xA9 2024 \xC2\xAE",                          /* © ® without a lead */
        "tab\tnewline\nCR\r",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        int changed = -1;
        char *out = sb_text_repair(keep[i], strlen(keep[i]), &changed);
        cr_assert_str_eq(out, keep[i], "case %zu changed", i);
        cr_assert_eq(changed, 0, "case %zu", i);
        sb_free(out);
    }
    /* NULL with n == 0 is the empty string */
    char *e = sb_text_repair(NULL, 0, NULL);
    cr_assert_str_eq(e, "");
    sb_free(e);
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Random valid UTF-8 from a pool that excludes every trigger of the repair (C1, U+00A0,
 * Â Ã â and €): the repair must return it unchanged. */
Test(repair, random_clean_utf8_unchanged)
{
    static const char *pool[] = { "a",
                                  "Z",
                                  " ",
                                  ",",
                                  "'",
                                  "\"",
                                  "\n",
                                  "\t",
                                  "0",
                                  RSQ,
                                  LSQ,
                                  LDQ,
                                  RDQ,
                                  EMD,
                                  END,
                                  ELL,
                                  EACU,
                                  "\xC3\xB1",
                                  "\xC2\xA9",
                                  "\xC2\xBF",
                                  "\xC3\x80", /* ñ © ¿ À */
                                  "\xCB\x9C",
                                  "\xC5\x93",
                                  "\xE2\x84\xA2",
                                  "\xC2\xA6", /* ˜ œ ™ ¦ */
                                  "\xF0\x9F\x8E\x89",
                                  "\xE4\xB8\xAD",
                                  "\xD0\x96" };
    const size_t np = sizeof pool / sizeof pool[0];
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    char buf[512];
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = 0, k = rnd(&seed) % 40;
        for (size_t j = 0; j < k; j++) {
            const char *p = pool[rnd(&seed) % np];
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        buf[len] = '\0';
        int changed = -1;
        char *out = sb_text_repair(buf, len, &changed);
        cr_assert_str_eq(out, buf, "iteration %d changed clean text", iter);
        cr_assert_eq(changed, 0);
        sb_free(out);
    }
}

/* Arbitrary bytes, biased towards the bytes of the damage: output is valid UTF-8 and a
 * second repair changes nothing. */
Test(repair, random_bytes_idempotent_and_valid)
{
    static const unsigned char bias[] = { 0xC3, 0xA2, 0xE2, 0x82, 0xAC, 0x84, 0x80, 0x99, 0x9D,
                                          0xC2, 0x92, 0xA0, 0x83, 0xA9, 0xC5, 0x93, 0x94, 0xA6,
                                          0xCB, 0x9C, 'a',  ' ',  0xF0, 0xED, 0xFF, 0x00 };
    uint64_t seed = 12345;
    unsigned char buf[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rnd(&seed) % sizeof buf;
        for (size_t j = 0; j < len; j++) {
            uint64_t r = rnd(&seed);
            buf[j] = (r & 3) ? bias[(r >> 8) % sizeof bias] : (unsigned char)(r >> 16);
        }
        int ch1 = -1, ch2 = -1;
        char *once = sb_text_repair((const char *)buf, len, &ch1);
        cr_assert_not_null(once);
        /* embedded NULs pass through: compare by the decoded byte count of `once` */
        size_t n1 = strlen(once);
        cr_assert(sb_utf8_valid(once, n1), "iteration %d: output not UTF-8", iter);
        if (memchr(buf, 0, len)) {
            sb_free(once);
            continue; /* the C-string output stops at the first NUL */
        }
        char *twice = sb_text_repair(once, n1, &ch2);
        cr_assert_str_eq(twice, once, "iteration %d: not idempotent", iter);
        cr_assert_eq(ch2, 0);
        if (!sb_utf8_valid((const char *)buf, len))
            cr_assert_eq(ch1, 1, "iteration %d: invalid input reported unchanged", iter);
        sb_free(twice);
        sb_free(once);
    }
}

/* ---- the property over real MELD ------------------------------------------------------- */

static const uint16_t c1_table[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

/* Re-encode valid UTF-8 `s` the way old copies are: form 0 = raw Windows-1252 bytes where
 * the character has one (UTF-8 otherwise); form 1 = those bytes read as Latin-1 and written
 * as UTF-8 (the pre-2020 MELD files: ’ is U+0092). Returns the number of characters that
 * were re-encoded. */
static size_t damage(const char *s, int form, char *out, size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, count = 0;
    while (*u) {
        unsigned cp;
        size_t k;
        if (u[0] < 0x80) {
            cp = u[0];
            k = 1;
        } else if ((u[0] & 0xE0) == 0xC0) {
            cp = ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu);
            k = 2;
        } else if ((u[0] & 0xF0) == 0xE0) {
            cp = ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
            k = 3;
        } else {
            cp = 0x110000; /* 4-byte: no cp1252 form */
            k = 4;
        }
        int byte = -1;
        if (cp >= 0xA0 && cp <= 0xFF)
            byte = (int)cp;
        for (int i = 0; i < 32 && byte < 0 && cp >= 0x100; i++)
            if (c1_table[i] == cp)
                byte = 0x80 + i;
        if (byte < 0) {
            memcpy(out + o, u, k);
            o += k;
        } else {
            count++;
            if (form == 0) {
                out[o++] = (char)byte;
            } else {
                out[o++] = (char)(0xC0 | (byte >> 6));
                out[o++] = (char)(0x80 | (byte & 0x3F));
            }
        }
        u += k;
    }
    out[o] = '\0';
    *out_len = o;
    return count;
}

static int has_damage(const char *s)
{
    if (strstr(s, "\xC3\xA2\xE2\x82\xAC") || strstr(s, "\xE2\x82\xAC\xE2\x84\xA2") ||
        strstr(s, "\xC3\x83") || strstr(s, "\xC2\xA0"))
        return 1;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++)
        if (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F)
            return 1;
    return 0;
}

Test(repair, real_meld_rows_repair_back_from_old_forms)
{
    const char *root = getenv("SB_SHARED_DATA");
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/meld/train_sent_emo.csv", root ? root : "");
    if (!root || access(probe, R_OK) != 0)
        SB_MISSING_SHARED("no real MELD CSVs at %s", probe);
    static const char *files[] = { "train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv" };
    size_t rows = 0, touched = 0, chars = 0;
    char dmg[8192];
    for (int f = 0; f < 3; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/meld/%s", root, files[f]);
        sb_csv *c = NULL;
        sb_error e = { 0 };
        cr_assert_eq(sb_csv_open(path, ',', &c, &e), SB_OK, "%s: %s", e.where, e.msg);
        const char *const *fl;
        size_t nf;
        int eof;
        cr_assert_eq(sb_csv_next(c, &fl, &nf, &eof, &e), SB_OK); /* header */
        for (;;) {
            cr_assert_eq(sb_csv_next(c, &fl, &nf, &eof, &e), SB_OK, "%s: %s", e.where, e.msg);
            if (eof)
                break;
            cr_assert_eq(nf, 11, "%s:%ld", path, sb_csv_line(c));
            const char *text = fl[1];
            size_t tn = strlen(text);
            cr_assert(sb_utf8_valid(text, tn));
            cr_assert_not(has_damage(text), "%s:%ld already damaged", path, sb_csv_line(c));
            rows++;
            /* the current text is clean: repair leaves it alone */
            int changed = -1;
            char *same = sb_text_repair(text, tn, &changed);
            cr_assert_str_eq(same, text, "%s:%ld changed by repair", path, sb_csv_line(c));
            cr_assert_eq(changed, 0);
            sb_free(same);
            cr_assert_lt(tn * 2 + 1, sizeof dmg);
            for (int form = 0; form < 2; form++) {
                size_t dn;
                size_t k = damage(text, form, dmg, &dn);
                if (form == 0) {
                    chars += k;
                    touched += k > 0;
                }
                char *back = sb_text_repair(dmg, dn, &changed);
                cr_assert_str_eq(back, text, "%s:%ld form %d did not repair back", path,
                                 sb_csv_line(c), form);
                cr_assert_eq(changed, strcmp(dmg, text) != 0); /* é is the same in form 1 */
                sb_free(back);
            }
        }
        sb_csv_close(&c);
    }
    cr_assert_eq(rows, 13708);
    /* not vacuous: Python counts 3805 rows with 5491 non-ASCII characters, all in cp1252 */
    cr_assert_eq(touched, 3805);
    cr_assert_eq(chars, 5491);
    fprintf(stderr,
            "repair property: %zu MELD rows, %zu with cp1252 characters (%zu characters), "
            "both damaged forms repaired back\n",
            rows, touched, chars);
}
