/* serbench/rng.h — a small seeded generator (xoshiro256**, seeded through splitmix64) so
 * that every random stream is reproducible from the run seed and independent of libc. */
#ifndef SERBENCH_RNG_H
#define SERBENCH_RNG_H

#include "common.h"

SB_BEGIN_DECLS

typedef struct sb_rng {
    uint64_t s[4];
} sb_rng;

/* Seed from (seed, stream): distinct streams give independent sequences. */
SB_API void sb_rng_seed(sb_rng *r, uint64_t seed, uint64_t stream);
SB_API uint64_t sb_rng_u64(sb_rng *r);
/* Uniform in [0, 1). */
SB_API double sb_rng_uniform(sb_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
SB_API uint64_t sb_rng_below(sb_rng *r, uint64_t n);
/* Standard normal (Box–Muller). */
SB_API double sb_rng_normal(sb_rng *r);
/* Fisher–Yates shuffle of idx[0..n). */
SB_API void sb_rng_shuffle(sb_rng *r, size_t *idx, size_t n);

SB_END_DECLS

#endif
