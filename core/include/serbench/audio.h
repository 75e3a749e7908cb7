/* serbench/audio.h — reading audio as mono float at a chosen rate.
 *
 * libsndfile reads the container (WAV, FLAC, OGG/Vorbis, MP3 where libsndfile has it),
 * channels are downmixed by averaging (or one is selected), and libsoxr resamples to the
 * target rate with its high-quality preset. Thread-safe; when several opens fail at the
 * same moment, the libsndfile reason quoted in a message may be another thread's (the path
 * and serbench's own checks are always exact). */
#ifndef SERBENCH_AUDIO_H
#define SERBENCH_AUDIO_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

/* Load [start, end) seconds of `path` (end < 0: to the end of the file) as mono float
 * samples in [-1, 1] at `rate` Hz. channel >= 0 selects one channel, -1 averages all.
 * On success *samples (release with sb_free) holds *n samples; *n may be 0 only if the
 * requested span is empty, which is reported as SB_ERR_AUDIO instead.
 * Errors (SB_ERR_AUDIO, SB_ERR_IO) name the path and libsndfile's reason: missing file,
 * unreadable format, span past the end, channel out of range. */
SB_API sb_status sb_audio_load(const char *path, double start, double end, int channel, int rate,
                               float **samples, size_t *n, sb_error *err);

/* Read only the header of `path`: its native sample rate, channel count and duration.
 * Errors as sb_audio_load's. Any output pointer may be NULL. */
SB_API sb_status sb_audio_probe(const char *path, int *rate, int *channels, double *seconds,
                                sb_error *err);

/* Resample n samples from rate `in_rate` to `out_rate` (libsoxr, HQ). *out is released
 * with sb_free. in_rate == out_rate copies. */
SB_API sb_status sb_audio_resample(const float *in, size_t n, int in_rate, int out_rate,
                                   float **out, size_t *out_n, sb_error *err);

SB_END_DECLS

#endif
