/* core/lib/io/safetensors.c — the safetensors reader (mmap + a strict header check, so a
 * hostile file is an SB_ERR_FORMAT naming file and tensor, never a crash) and the writer
 * (header padded to 8 bytes, data in the order added, tmp file + fsync + rename). */
#include <serbench/safetensors.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this file assumes a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* ---- dtypes -------------------------------------------------------------------------- */

static const struct {
    sb_dtype dt;
    const char *name;
    size_t size;
} dtypes[] = {
    { SB_DT_F32, "F32", 4 },   { SB_DT_F16, "F16", 2 }, { SB_DT_BF16, "BF16", 2 },
    { SB_DT_F64, "F64", 8 },   { SB_DT_I64, "I64", 8 }, { SB_DT_I32, "I32", 4 },
    { SB_DT_I16, "I16", 2 },   { SB_DT_I8, "I8", 1 },   { SB_DT_U8, "U8", 1 },
    { SB_DT_BOOL, "BOOL", 1 },
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *sb_dtype_name(sb_dtype dt)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt)
            return dtypes[i].name;
    return "?";
}

size_t sb_dtype_size(sb_dtype dt)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt)
            return dtypes[i].size;
    return 0;
}

static int dtype_from_name(const char *s, sb_dtype *dt)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, s) == 0) {
            *dt = dtypes[i].dt;
            return 0;
        }
    return -1;
}

/* ---- half-precision conversions ------------------------------------------------------ */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* IEEE binary16 → binary32, exact for every input (subnormals, inf, NaN payload kept). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return f32_from_bits(sign);
        /* subnormal: man · 2^-24, exact in float */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/* binary32 → binary16, round to nearest, ties to even; overflow → inf; NaN stays NaN with
 * the top payload bits kept (a payload that truncates to 0 becomes 1), as numpy's
 * astype(float16) does. */
static uint16_t f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) {
        if (man == 0)
            return sign | 0x7c00u;
        uint16_t m = (uint16_t)(man >> 13);
        return sign | 0x7c00u | (m ? m : 1u);
    }
    int e = (int)exp - 127 + 15; /* biased half exponent */
    if (e >= 0x1f)
        return sign | 0x7c00u;
    if (e <= 0) {
        /* result is subnormal (or zero): value = (1.man) · 2^(exp-127); half subnormal
         * unit is 2^-24, so the mantissa with implicit bit is shifted right by 14 - e. */
        if (e < -10)
            return sign; /* below half the smallest subnormal: rounds to 0 */
        uint32_t m = man | 0x800000u;
        int shift = 14 - e;
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return sign | (uint16_t)q; /* q may carry into the exponent: that is correct */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++; /* carry may reach inf: correct */
    return sign | (uint16_t)q;
}

static float bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* ---- reader -------------------------------------------------------------------------- */

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct sb_st_file {
    char *path;
    void *map;
    size_t map_size;
    sb_st_tensor *tensors; /* file order: sorted by data offset */
    size_t n;
    size_t *by_name; /* indices into tensors, sorted by name, for sb_st_find */
    st_meta *meta;
    size_t n_meta;
};

void sb_st_close(sb_st_file **fp)
{
    if (!fp || !*fp)
        return;
    sb_st_file *f = *fp;
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    if (f->map)
        munmap(f->map, f->map_size);
    free(f->path);
    free(f);
    *fp = NULL;
}

size_t sb_st_count(const sb_st_file *f)
{
    return f ? f->n : 0;
}

const sb_st_tensor *sb_st_at(const sb_st_file *f, size_t i)
{
    return f && i < f->n ? &f->tensors[i] : NULL;
}

const sb_st_tensor *sb_st_find(const sb_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sb_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *sb_st_metadata(const sb_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

/* Offsets of one tensor while validating: begin/end relative to the data area. */
typedef struct st_span {
    uint64_t begin, end;
    size_t idx; /* header order, to keep the sort stable for zero-size tensors */
} st_span;

static int cmp_span(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* qsort has no context argument; the name index sorts pointers to the tensors instead. */
static int cmp_tensor_name(const void *a, const void *b)
{
    const sb_st_tensor *x = *(const sb_st_tensor *const *)a;
    const sb_st_tensor *y = *(const sb_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* jansson reports a duplicate key at the byte after its closing quote; recover the key
 * text from there so the message can name the tensor. Returns a malloc'd string or NULL. */
static char *duplicate_key_name(const char *hdr, size_t len, int position)
{
    if (position < 2 || (size_t)position > len || hdr[position - 1] != '"')
        return NULL;
    size_t close = (size_t)position - 1;
    size_t open = close;
    while (open > 0) {
        open--;
        if (hdr[open] == '"') {
            size_t bs = 0;
            while (open >= bs + 1 && hdr[open - bs - 1] == '\\')
                bs++;
            if (bs % 2 == 0)
                break;
        }
    }
    if (hdr[open] != '"' || open == close)
        return NULL;
    json_t *s = json_loadb(hdr + open, close - open + 1, JSON_DECODE_ANY, NULL);
    char *out = NULL;
    if (json_is_string(s))
        out = strdup(json_string_value(s));
    json_decref(s);
    return out;
}

/* Read a non-negative JSON integer; -1 on anything else. */
static int json_u64(const json_t *j, uint64_t *out)
{
    if (!json_is_integer(j))
        return -1;
    json_int_t v = json_integer_value(j);
    if (v < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Validate one tensor entry `name` → `info`, filling t (except data) and span. */
static sb_status parse_tensor(const char *path, const char *name, json_t *info, sb_st_tensor *t,
                              st_span *span, sb_error *err)
{
    if (!json_is_object(info))
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': header entry is not a JSON object", name);
    json_t *jd = json_object_get(info, "dtype");
    json_t *js = json_object_get(info, "shape");
    json_t *jo = json_object_get(info, "data_offsets");
    if (!jd || !js || !jo)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': missing \"%s\" in its header entry", name,
                            !jd   ? "dtype"
                            : !js ? "shape"
                                  : "data_offsets");
    if (!json_is_string(jd) || dtype_from_name(json_string_value(jd), &t->dtype) != 0)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': unknown dtype %s%s%s (known: F32 F16 BF16 F64 I64 "
                            "I32 I16 I8 U8 BOOL)",
                            name, json_is_string(jd) ? "'" : "",
                            json_is_string(jd) ? json_string_value(jd) : "(not a string)",
                            json_is_string(jd) ? "'" : "");
    if (!json_is_array(js))
        return sb_error_set(err, SB_ERR_FORMAT, path, "tensor '%s': shape is not an array", name);
    size_t nd = json_array_size(js);
    if (nd > SB_ST_MAX_DIMS)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': %zu dimensions, at most %d are supported", name, nd,
                            SB_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t d = 0; d < nd; d++) {
        uint64_t v;
        if (json_u64(json_array_get(js, d), &v) != 0)
            return sb_error_set(err, SB_ERR_FORMAT, path,
                                "tensor '%s': shape[%zu] is not a non-negative integer", name, d);
        t->shape[d] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
            return sb_error_set(err, SB_ERR_FORMAT, path,
                                "tensor '%s': the element count of its shape overflows", name);
    }
    t->numel = (int64_t)numel;
    uint64_t need;
    if (__builtin_mul_overflow(numel, (uint64_t)sb_dtype_size(t->dtype), &need))
        return sb_error_set(err, SB_ERR_FORMAT, path, "tensor '%s': its size in bytes overflows",
                            name);
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        json_u64(json_array_get(jo, 0), &span->begin) != 0 ||
        json_u64(json_array_get(jo, 1), &span->end) != 0)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': data_offsets must be [begin, end], two "
                            "non-negative integers",
                            name);
    if (span->end < span->begin)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': data_offsets [%llu, %llu] are reversed", name,
                            (unsigned long long)span->begin, (unsigned long long)span->end);
    if (span->end - span->begin != need)
        return sb_error_set(err, SB_ERR_FORMAT, path,
                            "tensor '%s': shape and dtype %s need %llu bytes but data_offsets "
                            "[%llu, %llu] span %llu",
                            name, sb_dtype_name(t->dtype), (unsigned long long)need,
                            (unsigned long long)span->begin, (unsigned long long)span->end,
                            (unsigned long long)(span->end - span->begin));
    t->nbytes = (size_t)need;
    return SB_OK;
}

static sb_status parse_metadata(sb_st_file *f, json_t *m, sb_error *err)
{
    if (!json_is_object(m))
        return sb_error_set(err, SB_ERR_FORMAT, f->path,
                            "\"__metadata__\" must be an object mapping strings to strings");
    size_t n = json_object_size(m);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta)
        return sb_error_set(err, SB_ERR_NOMEM, f->path, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v))
            return sb_error_set(err, SB_ERR_FORMAT, f->path,
                                "\"__metadata__\" value of '%s' is not a string", k);
        st_meta *e = &f->meta[f->n_meta];
        e->key = strdup(k);
        e->value = strdup(json_string_value(v));
        f->n_meta++;
        if (!e->key || !e->value)
            return sb_error_set(err, SB_ERR_NOMEM, f->path, "out of memory");
    }
    return SB_OK;
}

/* Everything after the mapping: header JSON → tensors, spans checked, data pointers set. */
static sb_status parse_header(sb_st_file *f, const char *hdr, uint64_t hlen, uint64_t data_size,
                              const unsigned char *data, sb_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key) {
            char *dup = duplicate_key_name(hdr, (size_t)hlen, jerr.position);
            sb_error_set(err, SB_ERR_FORMAT, f->path,
                         "tensor '%s': the name appears twice in the header", dup ? dup : "?");
            free(dup);
            return SB_ERR_FORMAT;
        }
        return sb_error_set(err, SB_ERR_FORMAT, f->path,
                            "header is not valid JSON (%s, at byte %d of the header); not a "
                            "safetensors file, or a damaged one",
                            jerr.text, jerr.position);
    }
    sb_status st = SB_OK;
    st_span *spans = NULL;
    if (!json_is_object(root)) {
        st = sb_error_set(err, SB_ERR_FORMAT, f->path, "header is JSON but not an object");
        goto out;
    }
    size_t n_all = json_object_size(root);
    f->tensors = calloc(n_all ? n_all : 1, sizeof *f->tensors);
    spans = calloc(n_all ? n_all : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        st = sb_error_set(err, SB_ERR_NOMEM, f->path, "out of memory");
        goto out;
    }
    const char *name;
    json_t *info;
    json_object_foreach(root, name, info)
    {
        if (strcmp(name, "__metadata__") == 0) {
            if ((st = parse_metadata(f, info, err)) != SB_OK)
                goto out;
            continue;
        }
        sb_st_tensor *t = &f->tensors[f->n];
        st_span *sp = &spans[f->n];
        if ((st = parse_tensor(f->path, name, info, t, sp, err)) != SB_OK)
            goto out;
        if (sp->end > data_size) {
            st = sb_error_set(err, SB_ERR_FORMAT, f->path,
                              "tensor '%s': data_offsets [%llu, %llu] reach past the data "
                              "area of %llu bytes (file truncated?)",
                              name, (unsigned long long)sp->begin, (unsigned long long)sp->end,
                              (unsigned long long)data_size);
            goto out;
        }
        if (!(t->name = strdup(name))) {
            st = sb_error_set(err, SB_ERR_NOMEM, f->path, "out of memory");
            goto out;
        }
        sp->idx = f->n;
        f->n++;
    }

    /* File order = data order. Exact cover: spans sorted by begin must chain from 0 to
     * data_size with no gap and no overlap. */
    qsort(spans, f->n, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const char *tn = f->tensors[spans[i].idx].name;
        if (spans[i].begin < at) {
            st = sb_error_set(err, SB_ERR_FORMAT, f->path,
                              "tensor '%s': data_offsets [%llu, %llu] overlap the previous "
                              "tensor, which ends at %llu",
                              tn, (unsigned long long)spans[i].begin,
                              (unsigned long long)spans[i].end, (unsigned long long)at);
            goto out;
        }
        if (spans[i].begin > at) {
            st = sb_error_set(err, SB_ERR_FORMAT, f->path,
                              "tensor '%s': data_offsets start at %llu, leaving a gap of %llu "
                              "unused bytes before it",
                              tn, (unsigned long long)spans[i].begin,
                              (unsigned long long)(spans[i].begin - at));
            goto out;
        }
        at = spans[i].end;
    }
    if (at != data_size) {
        st = sb_error_set(err, SB_ERR_FORMAT, f->path,
                          "the tensors cover %llu bytes of data but the file holds %llu after "
                          "the header (trailing garbage)",
                          (unsigned long long)at, (unsigned long long)data_size);
        goto out;
    }
    sb_st_tensor *sorted = malloc((f->n ? f->n : 1) * sizeof *sorted);
    f->by_name = malloc((f->n ? f->n : 1) * sizeof *f->by_name);
    const sb_st_tensor **ptrs = malloc((f->n ? f->n : 1) * sizeof *ptrs);
    if (!sorted || !f->by_name || !ptrs) {
        free(sorted);
        free(ptrs);
        st = sb_error_set(err, SB_ERR_NOMEM, f->path, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n; i++) {
        sorted[i] = f->tensors[spans[i].idx];
        sorted[i].data = data + spans[i].begin;
    }
    free(f->tensors);
    f->tensors = sorted;
    for (size_t i = 0; i < f->n; i++)
        ptrs[i] = &f->tensors[i];
    qsort(ptrs, f->n, sizeof *ptrs, cmp_tensor_name);
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = (size_t)(ptrs[i] - f->tensors);
    free(ptrs);
out:
    free(spans);
    json_decref(root);
    return st;
}

sb_status sb_st_open(const char *path, sb_st_file **out, sb_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_st_open: NULL argument");
    sb_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    }
    sb_status st = SB_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = sb_error_set(err, errno == ENOENT ? SB_ERR_NOT_FOUND : SB_ERR_IO, path,
                          "cannot open: %s", strerror(errno));
        goto fail;
    }
    struct stat sbuf;
    if (fstat(fd, &sbuf) != 0) {
        st = sb_error_set(err, SB_ERR_IO, path, "cannot stat: %s", strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sbuf.st_mode)) {
        st = sb_error_set(err, SB_ERR_IO, path, "not a regular file");
        close(fd);
        goto fail;
    }
    uint64_t size = (uint64_t)sbuf.st_size;
    if (size < 8) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "%s (%llu bytes): too short for a safetensors file, which starts "
                          "with an 8-byte header length",
                          size == 0 ? "empty file" : "truncated file", (unsigned long long)size);
        close(fd);
        goto fail;
    }
    if (size > SIZE_MAX) {
        st = sb_error_set(err, SB_ERR_IO, path, "file too large to map");
        close(fd);
        goto fail;
    }
    f->map_size = (size_t)size;
    f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        st = sb_error_set(err, SB_ERR_IO, path, "cannot map: %s", strerror(errno));
        goto fail;
    }
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "header length %llu exceeds the 100 MB limit (not a safetensors "
                          "file?)",
                          (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > size - 8) {
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "header length %llu runs past the end of the %llu-byte file "
                          "(truncated?)",
                          (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    if ((st = parse_header(f, (const char *)p + 8, hlen, size - 8 - hlen, p + 8 + hlen, err)) !=
        SB_OK)
        goto fail;
    *out = f;
    return SB_OK;
fail:
    sb_st_close(&f);
    return st;
}

sb_status sb_st_to_f32(const sb_st_tensor *t, float *out, sb_error *err)
{
    if (!t || (!out && t->numel > 0))
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_st_to_f32: NULL argument");
    const unsigned char *src = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case SB_DT_F32:
        if (n)
            memcpy(out, src, n * 4);
        return SB_OK;
    case SB_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return SB_OK;
    case SB_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = bf16_to_f32(h);
        }
        return SB_OK;
    case SB_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        return SB_OK;
    default:
        return sb_error_set(err, SB_ERR_INVALID, t->name,
                            "tensor '%s' has dtype %s; only F32, F16, BF16 and F64 convert "
                            "to F32",
                            t->name, sb_dtype_name(t->dtype));
    }
}

/* ---- writer -------------------------------------------------------------------------- */

typedef struct st_entry {
    char *name;
    sb_dtype dtype;
    int ndim;
    int64_t shape[SB_ST_MAX_DIMS];
    void *data;
    size_t nbytes;
} st_entry;

struct sb_st_writer {
    st_entry *e;
    size_t n, cap;
    st_meta *meta;
    size_t n_meta, cap_meta;
};

sb_st_writer *sb_st_writer_create(void)
{
    return calloc(1, sizeof(sb_st_writer));
}

void sb_st_writer_destroy(sb_st_writer **wp)
{
    if (!wp || !*wp)
        return;
    sb_st_writer *w = *wp;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    free(w->e);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w);
    *wp = NULL;
}

/* Checks shared by both add functions; reserves the slot and returns it with the shape
 * set and nbytes computed, data still NULL. */
static sb_status writer_slot(sb_st_writer *w, const char *name, sb_dtype dtype, int ndim,
                             const int64_t *shape, st_entry **slot, sb_error *err)
{
    if (!w || !name)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_st_writer_add: NULL argument");
    json_t *js = json_string(name); /* NULL when the name is not valid UTF-8 */
    json_decref(js);
    if (!js || name[0] == '\0' || strcmp(name, "__metadata__") == 0)
        return sb_error_set(err, SB_ERR_INVALID, name,
                            "invalid tensor name '%s' (must be non-empty UTF-8 and not "
                            "\"__metadata__\")",
                            name);
    if (sb_dtype_size(dtype) == 0)
        return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': unknown dtype %d", name,
                            (int)dtype);
    if (ndim < 0 || ndim > SB_ST_MAX_DIMS || (ndim > 0 && !shape))
        return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': ndim %d outside [0, %d]", name,
                            ndim, SB_ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': shape[%d] = %lld < 0",
                                name, d, (long long)shape[d]);
        if (__builtin_mul_overflow(numel, (uint64_t)shape[d], &numel))
            return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': shape overflows", name);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)sb_dtype_size(dtype), &nbytes) ||
        nbytes > (uint64_t)SIZE_MAX / 2)
        return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': too large", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return sb_error_set(err, SB_ERR_INVALID, name,
                                "tensor '%s' was already added to this file", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        st_entry *ne = realloc(w->e, cap * sizeof *ne);
        if (!ne)
            return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory");
        w->e = ne;
        w->cap = cap;
    }
    st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = shape[d];
    e->nbytes = (size_t)nbytes;
    e->name = strdup(name);
    e->data = malloc(e->nbytes ? e->nbytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory");
    }
    *slot = e;
    return SB_OK;
}

sb_status sb_st_writer_add(sb_st_writer *w, const char *name, sb_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, sb_error *err)
{
    st_entry *e = NULL;
    sb_status st = writer_slot(w, name, dtype, ndim, shape, &e, err);
    if (st != SB_OK)
        return st;
    if (e->nbytes && !data) {
        free(e->name);
        free(e->data);
        return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': NULL data", name);
    }
    if (e->nbytes)
        memcpy(e->data, data, e->nbytes);
    w->n++;
    return SB_OK;
}

sb_status sb_st_writer_add_f32_as_f16(sb_st_writer *w, const char *name, int ndim,
                                      const int64_t *shape, const float *data, sb_error *err)
{
    st_entry *e = NULL;
    sb_status st = writer_slot(w, name, SB_DT_F16, ndim, shape, &e, err);
    if (st != SB_OK)
        return st;
    size_t n = e->nbytes / 2;
    if (n && !data) {
        free(e->name);
        free(e->data);
        return sb_error_set(err, SB_ERR_INVALID, name, "tensor '%s': NULL data", name);
    }
    unsigned char *dst = e->data;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = f32_to_f16(data[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
    w->n++;
    return SB_OK;
}

sb_status sb_st_writer_meta(sb_st_writer *w, const char *key, const char *value, sb_error *err)
{
    if (!w || !key || !value)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_st_writer_meta: NULL argument");
    json_t *jk = json_string(key), *jv = json_string(value);
    int ok = jk && jv;
    json_decref(jk);
    json_decref(jv);
    if (!ok)
        return sb_error_set(err, SB_ERR_INVALID, key, "metadata key and value must be valid UTF-8");
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return sb_error_set(err, SB_ERR_NOMEM, key, "out of memory");
            free(w->meta[i].value);
            w->meta[i].value = v; /* later value wins */
            return SB_OK;
        }
    if (w->n_meta == w->cap_meta) {
        size_t cap = w->cap_meta ? 2 * w->cap_meta : 8;
        st_meta *nm = realloc(w->meta, cap * sizeof *nm);
        if (!nm)
            return sb_error_set(err, SB_ERR_NOMEM, key, "out of memory");
        w->meta = nm;
        w->cap_meta = cap;
    }
    st_meta *m = &w->meta[w->n_meta];
    m->key = strdup(key);
    m->value = strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return sb_error_set(err, SB_ERR_NOMEM, key, "out of memory");
    }
    w->n_meta++;
    return SB_OK;
}

/* The header JSON: "__metadata__" first (as the reference writer does), then the tensors
 * in the order added with consecutive offsets. Returns a malloc'd string or NULL. */
static char *writer_header(const sb_st_writer *w)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    int bad = 0;
    if (w->n_meta) {
        json_t *m = json_object();
        bad |= !m || json_object_set_new(root, "__metadata__", m) != 0;
        for (size_t i = 0; !bad && i < w->n_meta; i++)
            bad |= json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value)) != 0;
    }
    uint64_t at = 0;
    for (size_t i = 0; !bad && i < w->n; i++) {
        const st_entry *e = &w->e[i];
        json_t *t = json_object(), *shape = json_array(), *off = json_array();
        bad |= !t || !shape || !off;
        if (bad) {
            json_decref(t);
            json_decref(shape);
            json_decref(off);
            break;
        }
        for (int d = 0; d < e->ndim; d++)
            bad |= json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) != 0;
        bad |= json_array_append_new(off, json_integer((json_int_t)at)) != 0;
        at += e->nbytes;
        bad |= json_array_append_new(off, json_integer((json_int_t)at)) != 0;
        bad |= json_object_set_new(t, "dtype", json_string(sb_dtype_name(e->dtype))) != 0;
        bad |= json_object_set_new(t, "shape", shape) != 0;
        bad |= json_object_set_new(t, "data_offsets", off) != 0;
        bad |= json_object_set_new(root, e->name, t) != 0;
    }
    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

/* Open a fresh temporary file next to `path`; 0644 before umask, like any new file. */
static int open_tmp(const char *path, char *tmp, size_t size)
{
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(tmp, size, "%s.tmp.%ld.%u", path, (long)getpid(), i);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

sb_status sb_st_writer_commit(sb_st_writer *w, const char *path, sb_error *err)
{
    if (!w || !path)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_st_writer_commit: NULL argument");
    char *hdr = writer_header(w);
    if (!hdr)
        return sb_error_set(err, SB_ERR_NOMEM, path, "cannot build the header");
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8;
    char *buf = malloc(8 + padded);
    if (!buf) {
        free(hdr);
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xffu);
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(hdr);

    size_t tlen = strlen(path) + 64;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(buf);
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    }
    sb_status st = SB_OK;
    int fd = open_tmp(path, tmp, tlen);
    if (fd < 0) {
        st = sb_error_set(err, SB_ERR_IO, path, "cannot create a temporary file beside it: %s",
                          strerror(errno));
        goto out;
    }
    int bad = sbi_write_all(fd, buf, 8 + padded);
    for (size_t i = 0; !bad && i < w->n; i++)
        bad = sbi_write_all(fd, w->e[i].data, w->e[i].nbytes);
    if (bad || fsync(fd) != 0) {
        st = sb_error_set(err, SB_ERR_IO, tmp, "cannot write: %s", strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        st = sb_error_set(err, SB_ERR_IO, tmp, "cannot write: %s", strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        st = sb_error_set(err, SB_ERR_IO, path, "cannot rename %s into place: %s", tmp,
                          strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* Make the rename itself durable; failure here loses nothing already visible. */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
out:
    free(tmp);
    free(buf);
    return st;
}
