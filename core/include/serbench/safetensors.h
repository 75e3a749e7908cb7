/* serbench/safetensors.h — reading and writing safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping tensor names
 * to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte after
 * the header) plus an optional "__metadata__" string map, then the data. The reader maps
 * the file and enforces every rule: header length within the file and below 100 MB, valid
 * JSON object, known dtypes, shapes of non-negative integers whose product times the dtype
 * size equals end - begin without overflow, offsets inside the data area, no overlaps and
 * no gaps (the data area is exactly covered), unique names. A hostile file yields
 * SB_ERR_FORMAT naming the file and the tensor, never a crash. */
#ifndef SERBENCH_SAFETENSORS_H
#define SERBENCH_SAFETENSORS_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

typedef enum sb_dtype {
    SB_DT_F32 = 1,
    SB_DT_F16,
    SB_DT_BF16,
    SB_DT_F64,
    SB_DT_I64,
    SB_DT_I32,
    SB_DT_I16,
    SB_DT_I8,
    SB_DT_U8,
    SB_DT_BOOL
} sb_dtype;

#define SB_ST_MAX_DIMS 8

typedef struct sb_st_tensor {
    const char *name;
    sb_dtype dtype;
    int ndim;
    int64_t shape[SB_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* into the mapping; may be unaligned */
    size_t nbytes;
} sb_st_tensor;

typedef struct sb_st_file sb_st_file;

/* Map and validate `path`. */
SB_API sb_status sb_st_open(const char *path, sb_st_file **out, sb_error *err);
SB_API void sb_st_close(sb_st_file **f);
SB_API size_t sb_st_count(const sb_st_file *f);
/* i-th tensor in file order; borrowed, valid until sb_st_close. */
SB_API const sb_st_tensor *sb_st_at(const sb_st_file *f, size_t i);
/* Tensor by name, or NULL. */
SB_API const sb_st_tensor *sb_st_find(const sb_st_file *f, const char *name);
/* A "__metadata__" value, or NULL. */
SB_API const char *sb_st_metadata(const sb_st_file *f, const char *key);
/* Convert a F32/F16/BF16/F64 tensor to F32 into out[t->numel]. */
SB_API sb_status sb_st_to_f32(const sb_st_tensor *t, float *out, sb_error *err);
SB_API const char *sb_dtype_name(sb_dtype dt);
SB_API size_t sb_dtype_size(sb_dtype dt);

/* Writer: collects tensors (data copied) and metadata, then writes the file to a
 * temporary name in the same folder, fsyncs and renames it into place, so readers see
 * either no file or a complete one. Tensor names must be unique. */
typedef struct sb_st_writer sb_st_writer;
SB_API sb_st_writer *sb_st_writer_create(void);
SB_API sb_status sb_st_writer_add(sb_st_writer *w, const char *name, sb_dtype dtype, int ndim,
                                  const int64_t *shape, const void *data, sb_error *err);
/* Add F32 data stored as F16 (round to nearest even). */
SB_API sb_status sb_st_writer_add_f32_as_f16(sb_st_writer *w, const char *name, int ndim,
                                             const int64_t *shape, const float *data,
                                             sb_error *err);
SB_API sb_status sb_st_writer_meta(sb_st_writer *w, const char *key, const char *value,
                                   sb_error *err);
SB_API sb_status sb_st_writer_commit(sb_st_writer *w, const char *path, sb_error *err);
SB_API void sb_st_writer_destroy(sb_st_writer **w);

SB_END_DECLS

#endif
