/* serbench/options.h — a plugin's option table and the validated values it receives.
 *
 * The option table is the single source of truth for a plugin's configuration: the host
 * validates each config block against it (unknown keys, types, ranges, allowed values,
 * required keys), prints `serbench plugins NAME` help from it, fills defaults from it and
 * hashes the resolved values into stage keys. A plugin therefore never parses YAML and
 * never sees an invalid value. */
#ifndef SERBENCH_OPTIONS_H
#define SERBENCH_OPTIONS_H

#include "common.h"

SB_BEGIN_DECLS

typedef enum sb_opt_type {
    SB_OPT_BOOL = 1,   /* true/false */
    SB_OPT_INT = 2,    /* 64-bit integer; range checked with min/max */
    SB_OPT_FLOAT = 3,  /* double; range checked with min/max */
    SB_OPT_STRING = 4, /* free text */
    SB_OPT_PATH = 5,   /* a path, resolved against the folder of the YAML file that set it;
                          when it names a regular file, its content is part of stage keys */
    SB_OPT_ENUM = 6,   /* one of `choices` */
    SB_OPT_LIST = 7,   /* a sequence of scalars (or the scalar "all"); items from `choices`
                          if given */
    SB_OPT_MAP = 8     /* a free-form mapping handed to the plugin as canonical JSON */
} sb_opt_type;

/* Flags for sb_option.flags. */
#define SB_OPT_REQUIRED 0x1u /* the key must be set (then `def` is ignored) */
#define SB_OPT_HAS_MIN 0x2u  /* value >= min (INT, FLOAT; LIST: length >= min) */
#define SB_OPT_HAS_MAX 0x4u  /* value <= max */
#define SB_OPT_SECRET_ENV                                                                          \
    0x8u /* STRING holding the *name* of an environment variable                                   \
            with a secret; the variable's value never enters logs,                                 \
            keys, results or errors */

/* One row of an option table. Tables are arrays terminated by a row with name == NULL.
 * All strings have static storage. */
typedef struct sb_option {
    const char *name; /* key in the config block: [a-z][a-z0-9_]* */
    sb_opt_type type;
    const char *def;     /* default, written as it would be in YAML; NULL = unset */
    unsigned flags;      /* SB_OPT_* flags */
    double min, max;     /* honoured with SB_OPT_HAS_MIN / SB_OPT_HAS_MAX */
    const char *choices; /* ENUM (required) and LIST (optional): "a|b|c" */
    const char *help;    /* one sentence, shown by `serbench plugins NAME` */
} sb_option;

/* Validated option values, owned by the host, valid for the lifetime of the plugin
 * instance (or the call) they were passed to. Read-only and thread-safe. */
typedef struct sb_opts sb_opts;

/* Getters. `name` must be a row of the plugin's own table of the right type; asking for
 * anything else returns 0 / NULL (a plugin bug, not a user error). Unset optional values
 * (no default) read as 0 / NULL; use sb_opts_has to tell them apart. */
SB_API int sb_opts_has(const sb_opts *o, const char *name);
SB_API int sb_opts_bool(const sb_opts *o, const char *name);
SB_API int64_t sb_opts_int(const sb_opts *o, const char *name);
SB_API double sb_opts_float(const sb_opts *o, const char *name);
/* STRING, PATH (absolute after resolution) and ENUM. Borrowed pointer. */
SB_API const char *sb_opts_str(const sb_opts *o, const char *name);
/* LIST: number of items and item i as text. A LIST given as the scalar "all" has one
 * item, "all". Borrowed pointer. */
SB_API size_t sb_opts_list_len(const sb_opts *o, const char *name);
SB_API const char *sb_opts_list_item(const sb_opts *o, const char *name, size_t i);
/* MAP: canonical JSON text of the mapping ("{}" when unset). Borrowed pointer. */
SB_API const char *sb_opts_json(const sb_opts *o, const char *name);
/* Where the value came from ("exp.yaml:12:5", or "default"); for a plugin's own error
 * messages about a value that validates but does not work (a missing file). Borrowed. */
SB_API const char *sb_opts_where(const sb_opts *o, const char *name);

SB_END_DECLS

#endif
