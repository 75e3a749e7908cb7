/* plugins/encoders/embeddings/embeddings.h — (internal) the pieces of the embeddings encoder
 * that its unit test calls directly: the request body, the answer parser and the cache key.
 * Nothing here is exported from embeddings.so; the test compiles these files in. */
#ifndef EMBEDDINGS_H
#define EMBEDDINGS_H

#include <serbench/serbench.h>

#include <stddef.h>

/* The request body {"model", "input": [texts], "encoding_format", "dimensions"?} as compact
 * JSON (malloc'ed; NULL when out of memory). dimensions <= 0 leaves the field out. */
char *emb_request_body(const char *model, const char *const *texts, size_t n, int dimensions,
                       int base64);

/* Decode standard base64 (with or without '=' padding) into out[0..cap). Returns the
 * number of bytes, or -1 for a character outside the alphabet or more than cap bytes. */
long emb_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap);

/* What an answer to a request of n texts was. */
typedef enum emb_parse_status {
    EMB_PARSE_OK = 0,
    EMB_PARSE_MALFORMED = 1, /* not a list of n embeddings indexed 0..n-1 (retry) */
    EMB_PARSE_WIDTH = 2      /* well formed, but the vectors are not `dim` wide */
} emb_parse_status;

/* Parse an embeddings list into vec [n, dim] (row i = the item with index i; the data may
 * come in any order). Embeddings may be float arrays or base64 little-endian float32.
 * On EMB_PARSE_MALFORMED, why[] says what is wrong ("2 embeddings for 3 texts"); on
 * EMB_PARSE_WIDTH, *width is the width received. */
emb_parse_status emb_parse(const char *body, size_t len, size_t n, int dim, float *vec, int *width,
                           char *why, size_t why_size);

/* Cache key of one text's vector: a hash of the model, the dimensions sent (0 = none), the
 * width and the text. */
void emb_cache_key(const char *model, int dimensions, int dim, const char *text,
                   char out[SB_HASH_HEX]);

#endif
