/* tests/unit/text/test_csv.c — the RFC 4180 reader of serbench/text.h: quoting, line
 * endings, BOM, blank lines, limits, and errors that name file:line:column. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <serbench/serbench.h>

/* Parse `text` and flatten every record into "f1|f2;f1;..." for compact assertions
 * (fields separated by '|', records ended by ';'). Returns the status of the failing
 * call, or SB_OK. */
static sb_status flatten(const char *text, size_t n, char delim, char *out, size_t size,
                         sb_error *err)
{
    sb_csv *c = NULL;
    sb_error_clear(err);
    sb_status st = sb_csv_open_mem(text, n, "t.csv", delim, &c, err);
    cr_assert_eq(st, SB_OK);
    out[0] = '\0';
    size_t len = 0;
    for (;;) {
        const char *const *f;
        size_t nf;
        int eof;
        st = sb_csv_next(c, &f, &nf, &eof, err);
        if (st != SB_OK || eof)
            break;
        for (size_t i = 0; i < nf; i++)
            len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "|" : "", f[i]);
        len += (size_t)snprintf(out + len, size - len, ";");
        cr_assert_lt(len, size);
    }
    sb_csv_close(&c);
    cr_assert_null(c);
    return st;
}

static void expect(const char *text, const char *want)
{
    char got[4096];
    sb_error e;
    sb_status st = flatten(text, strlen(text), ',', got, sizeof got, &e);
    cr_assert_eq(st, SB_OK, "%s | %s: %s", text, e.where, e.msg);
    cr_assert_str_eq(got, want, "input [%s]", text);
}

static void expect_error(const char *text, const char *where, const char *msg_part)
{
    char got[4096];
    sb_error e;
    sb_status st = flatten(text, strlen(text), ',', got, sizeof got, &e);
    cr_assert_eq(st, SB_ERR_FORMAT, "input [%s] should fail; got [%s]", text, got);
    cr_assert_str_eq(e.where, where, "input [%s]: %s", text, e.msg);
    cr_assert(strstr(e.msg, msg_part), "message '%s' lacks '%s'", e.msg, msg_part);
}

Test(csv, plain_quoted_and_doubled_quotes)
{
    expect("a,b,c\n1,2,3\n", "a|b|c;1|2|3;");
    expect("\"a,b\",\"say \"\"hi\"\"\",c\n", "a,b|say \"hi\"|c;");
    expect("\"\",x,\n", "|x|;");                    /* empty quoted, trailing empty field */
    expect(",,\n", "||;");                          /* three empty fields */
    expect("a\"b,c\n", "a\"b|c;");                  /* a bare quote inside an unquoted field */
    expect("\"\"\"\"\n", "\";");                    /* just a quote */
    expect("x,\"a\r\nb\"\r\ny\r\n", "x|a\r\nb;y;"); /* quoted CRLF kept byte for byte */
}

Test(csv, line_endings_bom_and_final_record)
{
    expect("a,b\r\nc,d\r\n", "a|b;c|d;");
    expect("a,b\nc,d", "a|b;c|d;");     /* no final newline */
    expect("a,\"b\"", "a|b;");          /* ... after a quoted field */
    expect("a,b\r\nc,d\r", "a|b;c|d;"); /* CR at the very end */
    expect("a\rb,c\n", "a\rb|c;");      /* a lone CR is data */
    expect("\xEF\xBB\xBF"
           "id,x\n1,2\n",
           "id|x;1|2;"); /* BOM skipped, not part of "id" */
    expect("", "");
    expect("\xEF\xBB\xBF", "");
    expect("a\n\nb\n", "a;;b;");   /* a blank line is one empty field */
    expect("a\r\n\r\nb", "a;;b;"); /* ... with CRLF too */
}

Test(csv, tab_delimiter)
{
    char got[256];
    sb_error e;
    const char *t = "a\tb,c\t\"d\te\"\n";
    cr_assert_eq(flatten(t, strlen(t), '\t', got, sizeof got, &e), SB_OK);
    cr_assert_str_eq(got, "a|b,c|d\te;");
}

Test(csv, embedded_nul_is_kept_and_binary_safe_length)
{
    const char t[] = "a,b\0c,d\n";
    sb_csv *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_csv_open_mem(t, sizeof t - 1, "nul.csv", ',', &c, &e), SB_OK);
    const char *const *f;
    size_t nf;
    int eof;
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
    cr_assert_eq(nf, 3);
    cr_assert_str_eq(f[1], "b"); /* the NUL ends the C string but not the field */
    cr_assert_str_eq(f[2], "d");
    sb_csv_close(&c);
}

Test(csv, line_numbers_count_quoted_newlines)
{
    const char *t = "h1,h2\n\"multi\nline\",x\nlast,y\n";
    sb_csv *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_csv_open_mem(t, strlen(t), "ln.csv", ',', &c, &e), SB_OK);
    cr_assert_str_eq(sb_csv_name(c), "ln.csv");
    const char *const *f;
    size_t nf;
    int eof;
    long want[] = { 1, 2, 4 };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
        cr_assert_eq(eof, 0);
        cr_assert_eq(sb_csv_line(c), want[i], "record %d", i);
    }
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
    cr_assert_eq(eof, 1);
    cr_assert_eq(nf, 0);
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK); /* eof stays eof */
    cr_assert_eq(eof, 1);
    sb_csv_close(&c);
    sb_csv_close(&c); /* twice is harmless */
}

Test(csv, errors_name_file_line_column)
{
    /* unclosed quote: reported where the quote opened */
    expect_error("a,b\nc,\"open\nmore\n", "t.csv:2:3", "never closed");
    /* text after a closing quote: the column of the offending byte */
    expect_error("a,b\n\"x\"y,z\n", "t.csv:2:4", "after the closing quote");
    expect_error("\"ok\",\"x\" ,z\n", "t.csv:1:9", "field 2");
    /* on a later physical line of a multi-line record */
    expect_error("\"a\nb\"c\n", "t.csv:2:3", "after the closing quote");
}

Test(csv, limits)
{
    /* 4096 fields pass, 4097 fail */
    size_t n = 4097 * 2 + 2;
    char *t = malloc(n);
    size_t k = 0;
    for (int i = 0; i < 4096; i++) {
        t[k++] = 'x';
        t[k++] = i < 4095 ? ',' : '\n';
    }
    t[k] = '\0';
    sb_csv *c = NULL;
    sb_error e = { 0 };
    const char *const *f;
    size_t nf;
    int eof;
    cr_assert_eq(sb_csv_open_mem(t, k, "wide.csv", ',', &c, &e), SB_OK);
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
    cr_assert_eq(nf, 4096);
    sb_csv_close(&c);
    t[k - 1] = ',';
    t[k++] = 'y';
    cr_assert_eq(sb_csv_open_mem(t, k, "wide.csv", ',', &c, &e), SB_OK);
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_ERR_FORMAT);
    cr_assert(strstr(e.msg, "more than 4096 fields"), "%s", e.msg);
    cr_assert_str_eq(e.where, "wide.csv:1:8193"); /* where field 4097 starts */
    sb_csv_close(&c);
    free(t);

    /* a field of exactly 1 MiB passes; one byte more fails, quoted or not */
    size_t big = (size_t)1 << 20;
    for (int quoted = 0; quoted < 2; quoted++) {
        for (size_t extra = 0; extra < 2; extra++) {
            size_t len = big + extra;
            char *b = malloc(len + 8);
            size_t j = 0;
            if (quoted)
                b[j++] = '"';
            memset(b + j, 'z', len);
            j += len;
            if (quoted)
                b[j++] = '"';
            b[j++] = '\n';
            sb_error_clear(&e);
            cr_assert_eq(sb_csv_open_mem(b, j, "big.csv", ',', &c, &e), SB_OK);
            sb_status st = sb_csv_next(c, &f, &nf, &eof, &e);
            if (extra == 0) {
                cr_assert_eq(st, SB_OK, "quoted=%d: %s", quoted, e.msg);
                cr_assert_eq(strlen(f[0]), big);
            } else {
                cr_assert_eq(st, SB_ERR_FORMAT, "quoted=%d", quoted);
                cr_assert(strstr(e.msg, "longer than 1048576 bytes"), "%s", e.msg);
                cr_assert_str_eq(e.where, "big.csv:1:1");
            }
            sb_csv_close(&c);
            free(b);
        }
    }
}

Test(csv, open_errors_name_the_path)
{
    sb_csv *c = (sb_csv *)1;
    sb_error e = { 0 };
    cr_assert_eq(sb_csv_open("/nonexistent/meld/train_sent_emo.csv", ',', &c, &e), SB_ERR_IO);
    cr_assert_null(c);
    cr_assert_str_eq(e.where, "/nonexistent/meld/train_sent_emo.csv");
    sb_error_clear(&e);
    cr_assert_eq(sb_csv_open("/tmp", ',', &c, &e), SB_ERR_IO);
    cr_assert(strstr(e.msg, "folder"), "%s", e.msg);
}

Test(csv, file_round_trip)
{
    char path[] = "/tmp/sb-csv-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *t = "k,v\r\n1,\"a,b\"\r\n";
    cr_assert_eq(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    sb_csv *c = NULL;
    sb_error e = { 0 };
    cr_assert_eq(sb_csv_open(path, ',', &c, &e), SB_OK, "%s", e.msg);
    cr_assert_str_eq(sb_csv_name(c), path);
    const char *const *f;
    size_t nf;
    int eof;
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
    cr_assert_eq(sb_csv_next(c, &f, &nf, &eof, &e), SB_OK);
    cr_assert_eq(nf, 2);
    cr_assert_str_eq(f[1], "a,b");
    sb_csv_close(&c);
    unlink(path);
}

/* Every prefix of a tricky input either parses or fails with SB_ERR_FORMAT naming t.csv:
 * never a crash, never another code (run under ASan in the sanitizer build). */
Test(csv, every_prefix_is_handled)
{
    const char *t = "\xEF\xBB\xBF"
                    "a,\"b\"\"c\r\nd\",e\r\n\"\",,\"x\"\r\n\r\nlast";
    size_t n = strlen(t);
    for (size_t k = 0; k <= n; k++) {
        char out[1024];
        sb_error e;
        sb_status st = flatten(t, k, ',', out, sizeof out, &e);
        cr_assert(st == SB_OK || (st == SB_ERR_FORMAT && strncmp(e.where, "t.csv:", 6) == 0),
                  "prefix %zu: status %d", k, st);
    }
}
