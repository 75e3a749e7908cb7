/* serbench/hash.h — content hashes for stage keys (XXH3-128 from libxxhash).
 *
 * Keys identify content; they are not a security measure. A digest prints as 32 lowercase
 * hex characters. */
#ifndef SERBENCH_HASH_H
#define SERBENCH_HASH_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

#define SB_HASH_HEX 33 /* 32 hex chars + NUL */

typedef struct sb_hasher sb_hasher;

SB_API sb_hasher *sb_hasher_create(void);
SB_API void sb_hasher_update(sb_hasher *h, const void *data, size_t n);
/* Feed a NUL-terminated string and its terminator (so "ab","c" differs from "a","bc"). */
SB_API void sb_hasher_str(sb_hasher *h, const char *s);
SB_API void sb_hasher_hex(const sb_hasher *h, char out[SB_HASH_HEX]);
SB_API void sb_hasher_destroy(sb_hasher **h);

SB_API void sb_hash_hex(const void *data, size_t n, char out[SB_HASH_HEX]);
/* Hash a file's content (streamed). */
SB_API sb_status sb_hash_file(const char *path, char out[SB_HASH_HEX], sb_error *err);

SB_END_DECLS

#endif
