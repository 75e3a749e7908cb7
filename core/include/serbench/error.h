/* serbench/error.h — status codes and the error object.
 *
 * Every fallible SDK function returns an sb_status and, when given a non-NULL sb_error,
 * fills it with a message that names where the problem is (file:line:col, config key,
 * utterance id or path) and what to do about it. The first error recorded wins: later
 * calls to sb_error_set on an already-set object keep the original, as curl's error
 * buffer does, so the root cause is what the user sees. */
#ifndef SERBENCH_ERROR_H
#define SERBENCH_ERROR_H

#include "common.h"

SB_BEGIN_DECLS

/* Codes are grouped by class and their numbers never change. */
typedef enum sb_status {
    SB_OK = 0,

    /* 1x: the user's command line, config or plugins (the CLI exits 2) */
    SB_ERR_USAGE = 10,  /* bad command-line arguments */
    SB_ERR_CONFIG = 11, /* malformed or invalid config */
    SB_ERR_PLUGIN = 12, /* plugin missing, failed to load, wrong ABI, bad descriptor */

    /* 2x: input data */
    SB_ERR_IO = 20,        /* a file could not be read or written */
    SB_ERR_FORMAT = 21,    /* a file was read but its content is malformed */
    SB_ERR_AUDIO = 22,     /* audio missing, corrupt or unusable */
    SB_ERR_NOT_FOUND = 23, /* a named thing (key, utterance, tensor) does not exist */
    SB_ERR_INVALID = 24,   /* an argument or value out of its allowed range */

    /* 3x: stores */
    SB_ERR_STORE = 30,  /* SQLite or feature store failure */
    SB_ERR_SCHEMA = 31, /* store from a newer serbench, or damaged */

    /* 4x: runtime */
    SB_ERR_NOMEM = 40,
    SB_ERR_INTERNAL = 41,  /* a bug in serbench or a plugin */
    SB_ERR_CANCELLED = 42, /* interrupted by the user */

    /* 5x: remote services */
    SB_ERR_NETWORK = 50,
    SB_ERR_API = 51
} sb_status;

/* An error report. Zero-initialise (or sb_error_clear) before use. Plain storage: no
 * allocation, safe to copy, nothing to free. */
typedef struct sb_error {
    sb_status code;  /* SB_OK while nothing has been recorded */
    char where[512]; /* "file.yaml:12:5", "utterance dia3_utt1", a path; may be "" */
    char msg[1536];  /* what went wrong and, where known, what to do */
} sb_error;

/* Static English text for a code; never NULL. */
SB_API const char *sb_strerror(sb_status code);

/* Record an error unless one is already recorded. `err` may be NULL (then nothing is
 * stored). `where` may be NULL. Returns `code`, so `return sb_error_set(...)` reads well. */
SB_API sb_status sb_error_set(sb_error *err, sb_status code, const char *where, const char *fmt,
                              ...) SB_PRINTF(4, 5);

/* Reset to SB_OK with empty text. */
SB_API void sb_error_clear(sb_error *err);

/* Format "where: msg" (or just msg) into buf; returns buf. */
SB_API const char *sb_error_format(const sb_error *err, char *buf, size_t size);

SB_END_DECLS

#endif
