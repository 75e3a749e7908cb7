/* plugins/datasets/iemocap/parse.c — line parsers for IEMOCAP's EmoEvaluation and
 * transcription files (formats in docs/datasets.md, "## iemocap"). Hand-written scanners
 * rather than regexes: each failure says which field was expected. */
#include "parse.h"

#include <stdlib.h>
#include <string.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static const char *skip_blank(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

/* Trailing blanks and a CR are not content. */
static int at_end(const char *p)
{
    while (is_blank(*p) || *p == '\r')
        p++;
    return *p == '\0';
}

/* A decimal number: digits, optionally '.' and digits ("6.2901", "006.2901", "3").
 * Stricter than strtod, which would also take signs, exponents, "inf" and hex. Advances
 * *pp past it; returns 0, or -1 when there is no number at *pp. */
static int scan_number(const char **pp, double *out)
{
    const char *p = *pp, *b = p;
    while (is_digit(*p))
        p++;
    if (p == b)
        return -1;
    if (*p == '.' && is_digit(p[1])) {
        p++;
        while (is_digit(*p))
            p++;
    }
    char buf[64];
    size_t n = (size_t)(p - b);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, b, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    *pp = p;
    return 0;
}

/* An utterance id: letters, digits and '_' ("Ses01F_script02_2_F000"). */
static sbi_iem_span scan_id(const char **pp)
{
    const char *p = *pp;
    sbi_iem_span s = { p, 0 };
    while (is_alnum(*p) || *p == '_')
        p++;
    s.n = (size_t)(p - s.p);
    *pp = p;
    return s;
}

/* A run of non-blank characters. */
static sbi_iem_span scan_token(const char **pp)
{
    const char *p = *pp;
    sbi_iem_span s = { p, 0 };
    while (*p && !is_blank(*p) && *p != '\r')
        p++;
    s.n = (size_t)(p - s.p);
    *pp = p;
    return s;
}

#define FAIL(text)                                                                                 \
    do {                                                                                           \
        *why = (text);                                                                             \
        return -1;                                                                                 \
    } while (0)

int sbi_iem_parse_summary(const char *line, sbi_iem_summary *out, const char **why)
{
    const char *p = skip_blank(line);
    memset(out, 0, sizeof *out);
    if (*p++ != '[')
        FAIL("expected '[' opening the time span '[start - end]'");
    p = skip_blank(p);
    if (scan_number(&p, &out->start) != 0)
        FAIL("expected the start time (seconds) after '['");
    p = skip_blank(p);
    if (*p++ != '-')
        FAIL("expected ' - ' between the start and end times");
    p = skip_blank(p);
    if (scan_number(&p, &out->end) != 0)
        FAIL("expected the end time (seconds) after ' - '");
    p = skip_blank(p);
    if (*p++ != ']')
        FAIL("expected ']' after the end time");
    if (!is_blank(*p))
        FAIL("expected a tab between ']' and the utterance id");
    p = skip_blank(p);
    out->id = scan_id(&p);
    if (out->id.n == 0)
        FAIL("expected the utterance id after the time span");
    if (!is_blank(*p))
        FAIL("expected the utterance id (letters, digits and '_') then a tab");
    p = skip_blank(p);
    out->code = scan_token(&p);
    if (out->code.n == 0 || out->code.p[0] == '[')
        FAIL("expected the emotion code (neu, hap, ...) after the utterance id");
    p = skip_blank(p);
    if (*p++ != '[')
        FAIL("expected '[V, A, D]' after the emotion code");
    for (int k = 0; k < 3; k++) {
        p = skip_blank(p);
        if (scan_number(&p, &out->vad[k]) != 0)
            FAIL(k == 0   ? "expected the valence value in '[V, A, D]'"
                 : k == 1 ? "expected the activation value in '[V, A, D]'"
                          : "expected the dominance value in '[V, A, D]'");
        p = skip_blank(p);
        if (k < 2 && *p == ']')
            FAIL("expected three values in '[V, A, D]', found fewer");
        if (*p++ != (k < 2 ? ',' : ']'))
            FAIL(k < 2 ? "expected ',' between the values of '[V, A, D]'"
                       : "expected ']' closing '[V, A, D]'");
    }
    if (!at_end(p))
        FAIL("unexpected text after '[V, A, D]'");
    return 0;
}

/* Trim blanks at both ends of [b, e). */
static sbi_iem_span trimmed(const char *b, const char *e)
{
    while (b < e && (is_blank(*b) || *b == '\r'))
        b++;
    while (e > b && (is_blank(e[-1]) || e[-1] == '\r'))
        e--;
    sbi_iem_span s = { b, (size_t)(e - b) };
    return s;
}

int sbi_iem_parse_rating(const char *line, sbi_iem_rating *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *p = line;
    if (p[0] != 'C' || p[1] != '-')
        FAIL("expected 'C-' opening a categorical rating line");
    p += 2;
    out->rater.p = p;
    while (is_alnum(*p))
        p++;
    out->rater.n = (size_t)(p - out->rater.p);
    if (out->rater.n == 0)
        FAIL("expected the rater id after 'C-' (as in 'C-E2:')");
    if (*p++ != ':')
        FAIL("expected ':' after the rater id (as in 'C-E2:')");
    p = skip_blank(p);
    /* The categories run to the tab before the comment, or to '(' when there is none. */
    const char *e = p;
    while (*e && *e != '\t' && *e != '(')
        e++;
    for (const char *b = p; b < e;) {
        const char *semi = memchr(b, ';', (size_t)(e - b));
        const char *stop = semi ? semi : e;
        sbi_iem_span c = trimmed(b, stop);
        if (c.n > 0) {
            if (out->n_cats == SBI_IEM_MAX_CATS)
                FAIL("more than 16 categories on one rating line");
            out->cats[out->n_cats++] = c;
        }
        b = semi ? semi + 1 : e;
    }
    if (out->n_cats == 0)
        FAIL("expected at least one category after the rater id (as in 'C-E2:\tNeutral;')");
    return 0;
}

int sbi_iem_is_attribute(const char *line)
{
    if (line[0] != 'A' || line[1] != '-')
        return 0;
    const char *p = line + 2;
    while (is_alnum(*p))
        p++;
    return p > line + 2 && *p == ':';
}

int sbi_iem_parse_transcript(const char *line, sbi_iem_transcript *out)
{
    memset(out, 0, sizeof *out);
    const char *p = line;
    out->id = scan_id(&p);
    if (out->id.n == 0 || !is_blank(*p))
        return 0;
    p = skip_blank(p);
    if (*p++ != '[' || scan_number(&p, &out->start) != 0 || *p++ != '-' ||
        scan_number(&p, &out->end) != 0 || *p++ != ']' || *p++ != ':')
        return 0;
    p = skip_blank(p);
    out->text = trimmed(p, p + strlen(p));
    return 1;
}

size_t sbi_iem_dialog_len(const char *id, size_t n)
{
    while (n > 0 && id[n - 1] != '_')
        n--;
    return n > 0 ? n - 1 : 0;
}

char sbi_iem_speaker_letter(const char *id, size_t n)
{
    size_t d = sbi_iem_dialog_len(id, n);
    if (d == 0 || d + 1 >= n)
        return 0;
    return id[d + 1];
}
