/* serbench/common.h — visibility macros, the allocator pair every SDK object uses, and
 * the small fixed types shared by all public headers. */
#ifndef SERBENCH_COMMON_H
#define SERBENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define SB_BEGIN_DECLS extern "C" {
#define SB_END_DECLS }
#else
#define SB_BEGIN_DECLS
#define SB_END_DECLS
#endif

/* SB_API marks the public functions of libserbench. */
#define SB_API __attribute__((visibility("default")))

/* SB_EXPORT marks the one symbol a plugin exports (its entry point). */
#define SB_EXPORT __attribute__((visibility("default")))

#define SB_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

SB_BEGIN_DECLS

/* The library's version as "MAJOR.MINOR.PATCH"; static storage. */
SB_API const char *sb_version(void);

/* Memory the SDK hands to a caller (audio buffers, strings) is released with sb_free.
 * sb_free(NULL) does nothing. */
SB_API void sb_free(void *p);

SB_END_DECLS

#endif
