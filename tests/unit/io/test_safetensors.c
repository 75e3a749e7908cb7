/* tests/unit/io/test_safetensors.c — the safetensors reader and writer: round trips of every
 * dtype, F16/BF16/F64 conversions against numpy (numpy-ref.safetensors, made by
 * gen-f16-fixture.py), Python reading a file we wrote (read-check.py), and hostile files that
 * must give SB_ERR_FORMAT naming the file and the tensor, never a crash. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <serbench/serbench.h>

/* ---- helpers ----------------------------------------------------------------------- */

static char tmpdir[512];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sb-st-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp %s", tmpdir);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(tmpdir);
}

TestSuite(st, .init = make_tmpdir, .fini = remove_tmpdir);

static const char *tmp_path(const char *name)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static const char *source_path(const char *rel)
{
    static char p[2048];
    const char *root = getenv("SB_SOURCE_ROOT");
    snprintf(p, sizeof p, "%s/%s", root ? root : ".", rel);
    return p;
}

/* A file with an explicit 8-byte length field, header bytes and data bytes. */
static void write_raw(const char *path, uint64_t hlen, const void *hdr, size_t hdr_bytes,
                      const void *data, size_t data_bytes)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len, 1, 8, f);
    if (hdr_bytes)
        fwrite(hdr, 1, hdr_bytes, f);
    if (data_bytes)
        fwrite(data, 1, data_bytes, f);
    fclose(f);
}

/* A file whose header is `json` (exact length) followed by `data_bytes` bytes of data. */
static void write_json(const char *path, const char *json, size_t data_bytes)
{
    unsigned char data[256] = { 0 };
    cr_assert(data_bytes <= sizeof data);
    write_raw(path, strlen(json), json, strlen(json), data, data_bytes);
}

/* Open must fail with SB_ERR_FORMAT, and the message must name the file (in `where`) and,
 * if given, the tensor. */
static void expect_format_error(const char *path, const char *tensor)
{
    sb_st_file *f = (sb_st_file *)0x1;
    sb_error err = { 0 };
    sb_status st = sb_st_open(path, &f, &err);
    char buf[2200];
    sb_error_format(&err, buf, sizeof buf);
    cr_assert_eq(st, SB_ERR_FORMAT, "expected SB_ERR_FORMAT, got %d: %s", (int)st, buf);
    cr_assert_eq(err.code, SB_ERR_FORMAT);
    cr_assert_null(f, "output must be NULL on failure");
    cr_assert(strstr(err.where, path) != NULL, "where '%s' does not name %s", err.where, path);
    if (tensor) {
        char quoted[256];
        snprintf(quoted, sizeof quoted, "'%s'", tensor);
        cr_assert(strstr(err.msg, quoted) != NULL, "message does not name tensor %s: %s", quoted,
                  buf);
    }
}

static sb_st_file *open_ok(const char *path)
{
    sb_st_file *f = NULL;
    sb_error err = { 0 };
    sb_status st = sb_st_open(path, &f, &err);
    char buf[2200];
    cr_assert_eq(st, SB_OK, "sb_st_open(%s): %s", path, sb_error_format(&err, buf, sizeof buf));
    cr_assert_not_null(f);
    return f;
}

static uint32_t bits32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* ---- round trip -------------------------------------------------------------------- */

static const sb_dtype all_dtypes[] = { SB_DT_F32, SB_DT_F16, SB_DT_BF16, SB_DT_F64, SB_DT_I64,
                                       SB_DT_I32, SB_DT_I16, SB_DT_I8,   SB_DT_U8,  SB_DT_BOOL };
#define N_ALL (sizeof all_dtypes / sizeof all_dtypes[0])

/* Element i of tensor "t.<dtype>" as read-check.py expects it, encoded in `dt`. */
static void fill_pattern(sb_dtype dt, unsigned char *buf, int n)
{
    for (int i = 0; i < n; i++) {
        double f = (i - 7) * 0.25;
        long long k = i - 7;
        switch (dt) {
        case SB_DT_F32: {
            float v = (float)f;
            memcpy(buf + 4 * i, &v, 4);
            break;
        }
        case SB_DT_F64: memcpy(buf + 8 * i, &f, 8); break;
        case SB_DT_F16:
        case SB_DT_BF16: {
            /* (i-7)/4 is exact in both; build the bits from the float */
            uint32_t u = bits32((float)f);
            uint16_t h;
            if (dt == SB_DT_BF16)
                h = (uint16_t)(u >> 16);
            else {
                uint32_t e = (u >> 23) & 0xff, m = u & 0x7fffff;
                h = (uint16_t)(((u >> 16) & 0x8000) | (e ? ((e - 112) << 10) | (m >> 13) : 0));
            }
            memcpy(buf + 2 * i, &h, 2);
            break;
        }
        case SB_DT_I64: {
            int64_t v = k;
            memcpy(buf + 8 * i, &v, 8);
            break;
        }
        case SB_DT_I32: {
            int32_t v = (int32_t)k;
            memcpy(buf + 4 * i, &v, 4);
            break;
        }
        case SB_DT_I16: {
            int16_t v = (int16_t)k;
            memcpy(buf + 2 * i, &v, 2);
            break;
        }
        case SB_DT_I8: {
            int8_t v = (int8_t)k;
            memcpy(buf + i, &v, 1);
            break;
        }
        case SB_DT_U8: buf[i] = (unsigned char)(i * 9 % 256); break;
        case SB_DT_BOOL: buf[i] = i % 3 == 0; break;
        }
    }
}

/* Writes t.<dtype> [2,3,4] for every dtype, then "scalar" and "empty"; returns the path. */
static const char *write_all_dtypes(const char *name)
{
    sb_st_writer *w = sb_st_writer_create();
    cr_assert_not_null(w);
    sb_error err = { 0 };
    int64_t shape[3] = { 2, 3, 4 };
    unsigned char buf[24 * 8];
    for (size_t d = 0; d < N_ALL; d++) {
        char tname[32];
        snprintf(tname, sizeof tname, "t.%s", sb_dtype_name(all_dtypes[d]));
        fill_pattern(all_dtypes[d], buf, 24);
        cr_assert_eq(sb_st_writer_add(w, tname, all_dtypes[d], 3, shape, buf, &err), SB_OK, "%s",
                     err.msg);
    }
    float scalar = 2.5f;
    cr_assert_eq(sb_st_writer_add(w, "scalar", SB_DT_F32, 0, NULL, &scalar, &err), SB_OK);
    int64_t eshape[2] = { 0, 4 };
    cr_assert_eq(sb_st_writer_add(w, "empty", SB_DT_F32, 2, eshape, NULL, &err), SB_OK);
    cr_assert_eq(sb_st_writer_meta(w, "producer", "serbench-test", &err), SB_OK);
    cr_assert_eq(sb_st_writer_meta(w,
                                   "\xc3\xbcn\xc3\xaf"
                                   "code",
                                   "\xe2\x9c\x93", &err),
                 SB_OK);
    const char *path = tmp_path(name);
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    cr_assert_null(w);
    return path;
}

Test(st, round_trip_every_dtype)
{
    const char *path = write_all_dtypes("all.safetensors");
    sb_st_file *f = open_ok(path);
    cr_assert_eq(sb_st_count(f), N_ALL + 2);
    unsigned char buf[24 * 8];
    for (size_t d = 0; d < N_ALL; d++) {
        const sb_st_tensor *t = sb_st_at(f, d); /* file order = order added */
        char tname[32];
        snprintf(tname, sizeof tname, "t.%s", sb_dtype_name(all_dtypes[d]));
        cr_assert_str_eq(t->name, tname);
        cr_assert_eq(sb_st_find(f, tname), t);
        cr_assert_eq(t->dtype, all_dtypes[d]);
        cr_assert_eq(t->ndim, 3);
        cr_assert(t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4);
        cr_assert_eq(t->numel, 24);
        cr_assert_eq(t->nbytes, 24 * sb_dtype_size(all_dtypes[d]));
        fill_pattern(all_dtypes[d], buf, 24);
        cr_assert(memcmp(t->data, buf, t->nbytes) == 0, "%s: bytes differ", tname);
        float out[24];
        sb_error err = { 0 };
        sb_status st = sb_st_to_f32(t, out, &err);
        if (all_dtypes[d] <= SB_DT_F64) {
            cr_assert_eq(st, SB_OK, "%s", err.msg);
            for (int i = 0; i < 24; i++)
                cr_assert_eq(out[i], (i - 7) * 0.25f, "%s[%d] = %g", tname, i, out[i]);
        } else {
            cr_assert_eq(st, SB_ERR_INVALID, "%s: integer to f32 must be refused", tname);
            cr_assert(strstr(err.msg, tname) != NULL, "%s", err.msg);
        }
    }
    const sb_st_tensor *s = sb_st_find(f, "scalar");
    cr_assert_not_null(s);
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(s->numel, 1);
    float sv;
    memcpy(&sv, s->data, 4);
    cr_assert_eq(sv, 2.5f);
    const sb_st_tensor *e = sb_st_find(f, "empty");
    cr_assert(e && e->numel == 0 && e->nbytes == 0 && e->ndim == 2 && e->shape[0] == 0);
    cr_assert_null(sb_st_find(f, "t.f32"));
    cr_assert_null(sb_st_find(f, "nope"));
    cr_assert_null(sb_st_at(f, N_ALL + 2));
    cr_assert_str_eq(sb_st_metadata(f, "producer"), "serbench-test");
    cr_assert_str_eq(sb_st_metadata(f, "\xc3\xbcn\xc3\xaf"
                                       "code"),
                     "\xe2\x9c\x93");
    cr_assert_null(sb_st_metadata(f, "absent"));
    sb_st_close(&f);
    cr_assert_null(f);
    sb_st_close(&f); /* NULL is fine */
}

Test(st, header_is_padded_json_with_spaces)
{
    const char *path = write_all_dtypes("pad.safetensors");
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    unsigned char len[8];
    cr_assert_eq(fread(len, 1, 8, fp), 8u);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | len[i];
    cr_assert_eq(n % 8, 0, "header length %llu not a multiple of 8", (unsigned long long)n);
    char *hdr = malloc(n + 1);
    cr_assert_eq(fread(hdr, 1, n, fp), n);
    hdr[n] = 0;
    fclose(fp);
    size_t end = n;
    while (end > 0 && hdr[end - 1] == ' ')
        end--;
    cr_assert(end > 0 && hdr[end - 1] == '}', "header must end in } then spaces");
    cr_assert(end + 8 > n, "at most 7 spaces of padding");
    cr_assert(strncmp(hdr, "{\"__metadata__\":", 16) == 0, "metadata first: %.40s", hdr);
    free(hdr);
}

Test(st, writer_refuses_bad_tensors)
{
    sb_st_writer *w = sb_st_writer_create();
    sb_error err = { 0 };
    int64_t shape[2] = { 2, 2 }, neg[1] = { -3 };
    float data[4] = { 1, 2, 3, 4 };
    cr_assert_eq(sb_st_writer_add(w, "a", SB_DT_F32, 2, shape, data, &err), SB_OK);
    cr_assert_eq(sb_st_writer_add(w, "a", SB_DT_F32, 2, shape, data, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "'a'"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "b", SB_DT_F32, 1, neg, data, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "__metadata__", SB_DT_F32, 2, shape, data, &err),
                 SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "c", (sb_dtype)99, 2, shape, data, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "d", SB_DT_F32, 9, shape, data, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "bad\xff", SB_DT_F32, 2, shape, data, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_st_writer_add(w, "e", SB_DT_F32, 2, shape, NULL, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    /* the failed adds left the writer intact: one tensor */
    cr_assert_eq(sb_st_writer_commit(w, tmp_path("one.safetensors"), &err), SB_OK, "%s", err.msg);
    sb_st_file *f = open_ok(tmp_path("one.safetensors"));
    cr_assert_eq(sb_st_count(f), 1u);
    sb_st_close(&f);
    sb_st_writer_destroy(&w);
}

Test(st, commit_is_atomic_and_leaves_no_temporaries)
{
    sb_error err = { 0 };
    const char *p = tmp_path("x.safetensors");
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    float one = 1, two = 2;
    sb_st_writer *w = sb_st_writer_create();
    sb_st_writer_add(w, "v", SB_DT_F32, 0, NULL, &one, &err);
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK);
    sb_st_writer_destroy(&w);
    w = sb_st_writer_create();
    sb_st_writer_add(w, "v", SB_DT_F32, 0, NULL, &two, &err);
    sb_st_file *old = open_ok(path); /* a reader holding the old file keeps its view */
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK);
    float v;
    memcpy(&v, sb_st_find(old, "v")->data, 4);
    cr_assert_eq(v, 1.0f);
    sb_st_close(&old);
    sb_st_file *f = open_ok(path);
    memcpy(&v, sb_st_find(f, "v")->data, 4);
    cr_assert_eq(v, 2.0f);
    sb_st_close(&f);
    /* a folder that does not exist: SB_ERR_IO, nothing left behind */
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/no/such/dir/y.safetensors", tmpdir);
    cr_assert_eq(sb_st_writer_commit(w, bad, &err), SB_ERR_IO);
    cr_assert(strstr(err.where, "y.safetensors"), "%s", err.where);
    sb_st_writer_destroy(&w);
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            files++;
            cr_assert_str_eq(e->d_name, "x.safetensors", "stray file %s", e->d_name);
        }
    closedir(d);
    cr_assert_eq(files, 1);
}

Test(st, open_missing_file)
{
    sb_st_file *f = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sb_st_open(tmp_path("absent.safetensors"), &f, &err), SB_ERR_NOT_FOUND);
    cr_assert(strstr(err.where, "absent.safetensors"));
    cr_assert_null(f);
}

/* ---- numpy reference conversions --------------------------------------------------- */

static sb_st_file *open_numpy_ref(void)
{
    return open_ok(source_path("tests/unit/io/numpy-ref.safetensors"));
}

static const sb_st_tensor *need(const sb_st_file *f, const char *name)
{
    const sb_st_tensor *t = sb_st_find(f, name);
    cr_assert_not_null(t, "fixture lacks tensor %s", name);
    return t;
}

/* Our F32 → F16 (through the writer) must give numpy's bits exactly, ties included. */
Test(st, f16_rounding_matches_numpy)
{
    sb_st_file *ref = open_numpy_ref();
    cr_assert_str_eq(sb_st_metadata(ref, "generator"), "gen-f16-fixture.py");
    const sb_st_tensor *in = need(ref, "f32_in"), *want = need(ref, "f16_of_f32");
    cr_assert_eq(in->dtype, SB_DT_F32);
    cr_assert_eq(want->dtype, SB_DT_F16);
    cr_assert_eq(in->numel, want->numel);
    cr_assert_gt(in->numel, 3000);
    size_t n = (size_t)in->numel;
    float *x = malloc(n * sizeof *x);
    sb_error err = { 0 };
    cr_assert_eq(sb_st_to_f32(in, x, &err), SB_OK);
    sb_st_writer *w = sb_st_writer_create();
    int64_t shape[1] = { in->numel };
    cr_assert_eq(sb_st_writer_add_f32_as_f16(w, "h", 1, shape, x, &err), SB_OK);
    cr_assert_eq(sb_st_writer_commit(w, tmp_path("h.safetensors"), &err), SB_OK);
    sb_st_writer_destroy(&w);
    sb_st_file *f = open_ok(tmp_path("h.safetensors"));
    const sb_st_tensor *h = need(f, "h");
    cr_assert_eq(h->dtype, SB_DT_F16);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, (const char *)h->data + 2 * i, 2);
        memcpy(&b, (const char *)want->data + 2 * i, 2);
        if (a != b && bad++ == 0)
            first = i;
    }
    if (bad) {
        uint16_t a, b;
        memcpy(&a, (const char *)h->data + 2 * first, 2);
        memcpy(&b, (const char *)want->data + 2 * first, 2);
        cr_assert_fail(
            "%zu of %zu differ; first at %zu: f32 %a (0x%08x) -> ours 0x%04x, numpy 0x%04x", bad, n,
            first, (double)x[first], bits32(x[first]), a, b);
    }
    free(x);
    sb_st_close(&f);
    sb_st_close(&ref);
}

/* F16, BF16 and F64 → F32 must give numpy's bits exactly (NaN payloads included). */
Test(st, to_f32_matches_numpy)
{
    sb_st_file *ref = open_numpy_ref();
    const char *pairs[3][2] = { { "f16_in", "f32_of_f16" },
                                { "bf16_in", "f32_of_bf16" },
                                { "f64_in", "f32_of_f64" } };
    const sb_dtype dts[3] = { SB_DT_F16, SB_DT_BF16, SB_DT_F64 };
    for (int p = 0; p < 3; p++) {
        const sb_st_tensor *in = need(ref, pairs[p][0]), *want = need(ref, pairs[p][1]);
        cr_assert_eq(in->dtype, dts[p]);
        cr_assert_eq(in->numel, want->numel);
        size_t n = (size_t)in->numel;
        float *got = malloc(n * sizeof *got);
        sb_error err = { 0 };
        cr_assert_eq(sb_st_to_f32(in, got, &err), SB_OK);
        for (size_t i = 0; i < n; i++) {
            uint32_t w;
            memcpy(&w, (const char *)want->data + 4 * i, 4);
            cr_assert_eq(bits32(got[i]), w, "%s[%zu]: ours 0x%08x, numpy 0x%08x", pairs[p][0], i,
                         bits32(got[i]), w);
        }
        free(got);
    }
    sb_st_close(&ref);
}

/* The Python-written file's integer tensors and layout (reference writer order). */
Test(st, reads_python_written_file)
{
    sb_st_file *ref = open_numpy_ref();
    cr_assert_eq(sb_st_count(ref), 15u);
    /* file order is data order: offsets increase */
    const char *prev = NULL;
    for (size_t i = 0; i < sb_st_count(ref); i++) {
        const sb_st_tensor *t = sb_st_at(ref, i);
        if (prev)
            cr_assert((const char *)t->data >= prev, "%s out of order", t->name);
        prev = (const char *)t->data + t->nbytes;
    }
    const sb_st_tensor *t = need(ref, "ints.i32");
    cr_assert(t->dtype == SB_DT_I32 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 4);
    for (int i = 0; i < 12; i++) {
        int32_t v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        cr_assert_eq(v, i * 37 % 251 - 100);
    }
    t = need(ref, "ints.i8");
    for (int i = 0; i < 7; i++)
        cr_assert_eq(((const int8_t *)t->data)[i], i * 37 % 251 - 100);
    t = need(ref, "ints.u8");
    for (int i = 0; i < 9; i++)
        cr_assert_eq(((const uint8_t *)t->data)[i], i * 37 % 251);
    t = need(ref, "ints.i64");
    int64_t v64;
    memcpy(&v64, (const char *)t->data + 8, 8);
    cr_assert_eq(v64, ((int64_t)1 << 62) + 5);
    t = need(ref, "ints.bool");
    cr_assert(t->dtype == SB_DT_BOOL && t->numel == 4);
    cr_assert(((const uint8_t *)t->data)[0] == 1 && ((const uint8_t *)t->data)[1] == 0);
    t = need(ref, "empty");
    cr_assert(t->numel == 0 && t->nbytes == 0 && t->shape[1] == 3);
    sb_st_close(&ref);
}

/* Every half pattern survives F16 → F32 → F16 (NaNs stay NaN). */
Test(st, f16_exhaustive_round_trip)
{
    uint16_t *h = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    sb_error err = { 0 };
    sb_st_writer *w = sb_st_writer_create();
    int64_t shape[1] = { 65536 };
    cr_assert_eq(sb_st_writer_add(w, "h", SB_DT_F16, 1, shape, h, &err), SB_OK);
    cr_assert_eq(sb_st_writer_commit(w, tmp_path("a.safetensors"), &err), SB_OK);
    sb_st_writer_destroy(&w);
    sb_st_file *f = open_ok(tmp_path("a.safetensors"));
    float *x = malloc(65536 * sizeof *x);
    cr_assert_eq(sb_st_to_f32(sb_st_find(f, "h"), x, &err), SB_OK);
    sb_st_close(&f);
    w = sb_st_writer_create();
    cr_assert_eq(sb_st_writer_add_f32_as_f16(w, "h", 1, shape, x, &err), SB_OK);
    cr_assert_eq(sb_st_writer_commit(w, tmp_path("b.safetensors"), &err), SB_OK);
    sb_st_writer_destroy(&w);
    f = open_ok(tmp_path("b.safetensors"));
    const uint16_t *back = sb_st_find(f, "h")->data; /* data follows an 8-aligned header */
    for (uint32_t i = 0; i < 65536; i++) {
        int nan = (i & 0x7c00u) == 0x7c00u && (i & 0x3ffu);
        if (nan)
            cr_assert(isnan(x[i]) && (back[i] & 0x7c00u) == 0x7c00u && (back[i] & 0x3ffu),
                      "0x%04x must stay NaN", i);
        else
            cr_assert_eq(back[i], i, "0x%04x -> %a -> 0x%04x", i, (double)x[i], back[i]);
    }
    sb_st_close(&f);
    free(x);
    free(h);
}

/* ---- Python reads our file ---------------------------------------------------------- */

Test(st, python_reads_our_file)
{
    const char *path = write_all_dtypes("py.safetensors");
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'",
             source_path("tests/unit/io/read-check.py"), path);
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc), "could not run %s", cmd);
    if (WEXITSTATUS(rc) == 77)
        cr_skip_test("numpy not installed for /usr/bin/python3");
    cr_assert_eq(WEXITSTATUS(rc), 0, "read-check.py rejected our file (see stderr)");
}

/* ---- hostile files ------------------------------------------------------------------ */

Test(st, hostile_empty_and_truncated)
{
    const char *p = tmp_path("h.st");
    FILE *f = fopen(p, "wb"); /* empty */
    fclose(f);
    expect_format_error(p, NULL);
    f = fopen(p, "wb");
    fwrite("\x10\x00\x00", 1, 3, f);
    fclose(f);
    expect_format_error(p, NULL);
}

Test(st, hostile_header_length)
{
    const char *p = tmp_path("h.st");
    const char *j = "{}";
    write_raw(p, 1000, j, 2, NULL, 0); /* header length past the end of the file */
    expect_format_error(p, NULL);
    write_raw(p, UINT64_MAX, j, 2, NULL, 0);
    expect_format_error(p, NULL);
    write_raw(p, (uint64_t)200 * 1000 * 1000, j, 2, NULL, 0); /* above the 100 MB limit */
    expect_format_error(p, NULL);
    write_raw(p, 0, NULL, 0, NULL, 0); /* zero-length header is not JSON */
    expect_format_error(p, NULL);
}

Test(st, hostile_not_an_object)
{
    const char *p = tmp_path("h.st");
    write_json(p, "this is not json", 0);
    expect_format_error(p, NULL);
    write_json(p, "[1, 2, 3]", 0);
    expect_format_error(p, NULL);
    write_json(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}} x", 4);
    expect_format_error(p, NULL);
    write_json(p, "{\"t\xff\": {}}", 0); /* invalid UTF-8 */
    expect_format_error(p, NULL);
    write_json(p, "{\"enc.w\": 5}", 0);
    expect_format_error(p, "enc.w");
}

Test(st, hostile_missing_fields)
{
    const char *p = tmp_path("h.st");
    write_json(p, "{\"enc.w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
    expect_format_error(p, "enc.w");
}

Test(st, hostile_dtype)
{
    const char *p = tmp_path("h.st");
    write_json(p, "{\"enc.w\": {\"dtype\": \"F8\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 4);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": 4, \"shape\": [4], \"data_offsets\": [0, 4]}}", 4);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_format_error(p, "enc.w");
}

Test(st, hostile_shape)
{
    const char *p = tmp_path("h.st");
    const char *bad[] = {
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}",
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}",
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}",
        /* numel overflows int64 */
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
        "\"data_offsets\": [0, 4]}}",
        /* numel fits, numel * 4 bytes overflows */
        "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904], "
        "\"data_offsets\": [0, 4]}}",
        "{\"enc.w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,4], \"data_offsets\": [0, "
        "4]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_json(p, bad[i], 4);
        expect_format_error(p, "enc.w");
    }
    /* an integer too big for JSON's int64: a parse error */
    write_json(p,
               "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [99999999999999999999], "
               "\"data_offsets\": [0, 4]}}",
               4);
    expect_format_error(p, NULL);
}

Test(st, hostile_offsets)
{
    const char *p = tmp_path("h.st");
    /* reversed */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4);
    expect_format_error(p, "enc.w");
    /* outside the data area */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
               8);
    expect_format_error(p, "enc.w");
    write_json(p,
               "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
               "[18446744073709551612, 18446744073709551616]}}",
               4);
    expect_format_error(p, NULL);
    /* negative */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}",
               4);
    expect_format_error(p, "enc.w");
    /* wrong arity */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0,4,8]}}",
               8);
    expect_format_error(p, "enc.w");
    /* overlapping */
    write_json(p,
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
               "\"enc.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
               12);
    expect_format_error(p, "enc.w");
    /* a gap */
    write_json(p,
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
               "\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
               12);
    expect_format_error(p, "enc.w");
    /* data area larger than the tensors (trailing bytes) */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8);
    expect_format_error(p, NULL);
    /* numel * size != bytes */
    write_json(p, "{\"enc.w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8);
    expect_format_error(p, "enc.w");
    write_json(p, "{\"enc.w\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}",
               16);
    expect_format_error(p, "enc.w");
}

Test(st, hostile_duplicate_names)
{
    const char *p = tmp_path("h.st");
    write_json(p,
               "{\"encoder.layers.11.attention.k_proj.weight\": {\"dtype\": \"F32\", \"shape\": "
               "[1], \"data_offsets\": [0, 4]}, \"encoder.layers.11.attention.k_proj.weight\": "
               "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
               8);
    expect_format_error(p, "encoder.layers.11.attention.k_proj.weight");
    write_json(p,
               "{\"a\\\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
               "\"a\\\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
               8);
    expect_format_error(p, "a\"b");
    sb_st_file *f = NULL;
    sb_error err = { 0 };
    sb_st_open(p, &f, &err);
    cr_assert(strstr(err.msg, "twice"), "the message must say why: %s", err.msg);
}

Test(st, hostile_metadata)
{
    const char *p = tmp_path("h.st");
    write_json(p, "{\"__metadata__\": {\"format\": 1}}", 0);
    expect_format_error(p, NULL);
    sb_error err = { 0 };
    sb_st_file *f = NULL;
    sb_st_open(p, &f, &err);
    cr_assert(strstr(err.msg, "format") && strstr(err.msg, "__metadata__"), "%s", err.msg);
    write_json(p, "{\"__metadata__\": [\"a\"]}", 0);
    expect_format_error(p, NULL);
    write_json(p, "{\"__metadata__\": {\"format\": {\"nested\": \"x\"}}}", 0);
    expect_format_error(p, NULL);
}

Test(st, zero_size_tensors_are_allowed)
{
    const char *p = tmp_path("z.st");
    write_json(p,
               "{\"__metadata__\": {\"k\": \"v\"}, "
               "\"e1\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [0, 0]}, "
               "\"w\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [0, 4]}, "
               "\"e2\": {\"dtype\": \"BF16\", \"shape\": [3, 0], \"data_offsets\": [4, 4]}}",
               4);
    sb_st_file *f = open_ok(p);
    cr_assert_eq(sb_st_count(f), 3u);
    cr_assert_str_eq(sb_st_at(f, 0)->name, "e1");
    cr_assert_str_eq(sb_st_at(f, 1)->name, "w");
    cr_assert_str_eq(sb_st_at(f, 2)->name, "e2");
    const sb_st_tensor *e = sb_st_find(f, "e2");
    cr_assert(e->numel == 0 && e->nbytes == 0);
    float dummy;
    sb_error err = { 0 };
    cr_assert_eq(sb_st_to_f32(e, &dummy, &err), SB_OK);
    cr_assert_str_eq(sb_st_metadata(f, "k"), "v");
    sb_st_close(&f);
    write_json(p, "{}", 0); /* no tensors at all: valid */
    f = open_ok(p);
    cr_assert_eq(sb_st_count(f), 0u);
    cr_assert_null(sb_st_find(f, "x"));
    sb_st_close(&f);
}

/* Every prefix of a valid file, and every single-byte corruption of its header, must be
 * refused or read cleanly: never a crash (ASan builds check the reads). */
Test(st, hostile_every_truncation_and_byte_flip)
{
    const char *path = write_all_dtypes("src.safetensors");
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    cr_assert_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    const char *p = tmp_path("cut.st");
    for (long cut = 0; cut < size; cut++) {
        fp = fopen(p, "wb");
        fwrite(buf, 1, (size_t)cut, fp);
        fclose(fp);
        expect_format_error(p, NULL);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    static const unsigned char repl[] = { '"', '}', ']', '-', '9', 0, 0xff, ' ' };
    int ok = 0;
    for (uint64_t i = 8; i < 8 + hlen; i++) {
        unsigned char keep = buf[i];
        for (size_t r = 0; r < sizeof repl; r++) {
            buf[i] = repl[r];
            fp = fopen(p, "wb");
            fwrite(buf, 1, (size_t)size, fp);
            fclose(fp);
            sb_st_file *f = NULL;
            sb_error err = { 0 };
            sb_status st = sb_st_open(p, &f, &err);
            cr_assert(st == SB_OK || st == SB_ERR_FORMAT, "byte %llu: status %d",
                      (unsigned long long)i, (int)st);
            if (st == SB_OK && sb_st_count(f) > 0) {
                ok++;
                /* whatever it read must be inside the file */
                for (size_t t = 0; t < sb_st_count(f); t++) {
                    const sb_st_tensor *tt = sb_st_at(f, t);
                    cr_assert((const unsigned char *)tt->data + tt->nbytes <=
                              (const unsigned char *)sb_st_at(f, 0)->data +
                                  (size - 8 - (long)hlen));
                }
            }
            sb_st_close(&f);
        }
        buf[i] = keep;
    }
    cr_assert_gt(ok, 0, "some corruptions (inside names) should still read");
    free(buf);
}
