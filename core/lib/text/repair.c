/* core/lib/text/repair.c — UTF-8 validation and the MELD/MELT encoding repair of
 * serbench/text.h. The text is decoded to code points (bytes that are not UTF-8 read as
 * Windows-1252), then one repair pass is repeated until nothing changes, which makes the
 * repair idempotent by construction. */
#include <serbench/text.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Windows-1252 bytes 0x80..0x9F; 0 where the code page leaves the byte undefined. */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, /* 80-87 */
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,      /* 88-8F */
    0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, /* 90-97 */
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178, /* 98-9F */
};

/* One strict UTF-8 sequence at s[0..n): its length (1-4) and code point, or 0 when the
 * bytes there are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (overlong 2-byte) or F5..FF */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    v = (v << 6) | (s[1] & 0x3Fu);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return len;
}

int sb_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* The byte a code point had if it came from a Windows-1252 decode (C1 code points count
 * as their own byte, as Latin-1 decoders produce them), or -1. */
static int cp1252_byte(uint32_t cp)
{
    if (cp < 0x100)
        return (int)cp;
    for (int i = 0; i < 32; i++)
        if (cp1252_c1[i] == cp)
            return 0x80 + i;
    return -1;
}

static int is_cont(int b)
{
    return b >= 0x80 && b <= 0xBF;
}

/* The code point a lone character stands for: C1 controls through Windows-1252 (the
 * undefined five stay), no-break space as a space. */
static uint32_t fix_single(uint32_t cp)
{
    if (cp >= 0x80 && cp <= 0x9F && cp1252_c1[cp - 0x80])
        return cp1252_c1[cp - 0x80];
    if (cp == 0xA0)
        return 0x20;
    return cp;
}

/* MELT's lossy mojibake: "â€X" with the "â" gone. Only the pairs seen (or of the same
 * family), since "€" followed by other punctuation can be real text. */
static uint32_t lossy_pair(uint32_t next)
{
    switch (next) {
    case 0x2122: return 0x2019; /* €™ → ’ */
    case 0x00A6: return 0x2026; /* €¦ → … */
    case 0x0153: return 0x201C; /* €œ → “ */
    case 0x201C: return 0x2013; /* €“ → – */
    case 0x201D: return 0x2014; /* €” → — */
    case 0x02DC: return 0x2018; /* €˜ → ‘ */
    case 0x009D: return 0x201D; /* € + U+009D → ” */
    default: return 0;
    }
}

/* One repair pass over in[0..n) into out (room for n); returns the output length. */
static size_t repair_pass(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = in[i];
        if (c == 0xE2 && i + 2 < n) { /* "â" + 2: a 3-byte sequence E2 xx yy */
            int b1 = cp1252_byte(in[i + 1]), b2 = cp1252_byte(in[i + 2]);
            if (is_cont(b1) && is_cont(b2)) {
                out[o++] = fix_single(0x2000u | ((uint32_t)(b1 & 0x3F) << 6) | (b2 & 0x3Fu));
                i += 3;
                continue;
            }
        }
        if ((c == 0xC2 || c == 0xC3) && i + 1 < n) { /* "Â"/"Ã" + 1: Latin-1 */
            int b1 = cp1252_byte(in[i + 1]);
            if (is_cont(b1)) {
                out[o++] = fix_single(((c & 0x1Fu) << 6) | (b1 & 0x3Fu));
                i += 2;
                continue;
            }
        }
        if (c == 0x20AC && i + 1 < n) {
            uint32_t r = lossy_pair(in[i + 1]);
            if (r) {
                out[o++] = r;
                i += 2;
                continue;
            }
        }
        out[o++] = fix_single(c);
        i++;
    }
    return o;
}

static size_t utf8_put(uint32_t cp, char *d)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *sb_text_repair(const char *s, size_t n, int *changed)
{
    if (changed)
        *changed = 0;
    if (!s)
        n = 0;
    const unsigned char *u = (const unsigned char *)s;
    uint32_t *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return NULL;
    }
    /* 1. decode; a byte that starts no well-formed sequence is a Windows-1252 character
     *    (the five undefined bytes become the C1 code point of the same value) */
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (k) {
            a[m++] = cp;
            i += k;
        } else {
            unsigned byte = u[i++];
            a[m++] = byte >= 0x80 && byte <= 0x9F && cp1252_c1[byte - 0x80] ? cp1252_c1[byte - 0x80]
                                                                            : byte;
        }
    }
    /* 2-4. repeat the pass to a fixed point: every pass after the first that changes
     *      anything undoes a mojibake sequence, which shortens the text, so this ends */
    for (;;) {
        size_t m2 = repair_pass(a, m, b);
        int same = m2 == m && memcmp(a, b, m * sizeof *a) == 0;
        uint32_t *t = a;
        a = b;
        b = t;
        m = m2;
        if (same)
            break;
    }
    free(b);
    size_t bytes = 0;
    char tmp[4];
    for (size_t i = 0; i < m; i++)
        bytes += utf8_put(a[i], tmp);
    char *out = malloc(bytes + 1);
    if (!out) {
        free(a);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < m; i++)
        o += utf8_put(a[i], out + o);
    out[o] = '\0';
    free(a);
    if (changed)
        *changed = o != n || (n && memcmp(out, s, n) != 0);
    return out;
}
