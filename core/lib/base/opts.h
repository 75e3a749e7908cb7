/* core/lib/base/opts.h — (internal) validating a config block against a plugin's option
 * table, producing the sb_opts a plugin reads and the canonical values hashed into keys. */
#ifndef SBI_OPTS_H
#define SBI_OPTS_H

#include <jansson.h>
#include <serbench/serbench.h>

#include "config.h"

/* Validate MAP `block` against `table` for plugin `plugin` (named in messages). Keys listed
 * in `reserved` (NULL-terminated; e.g. "plugin") belong to the host and are skipped.
 * Unknown keys, wrong types, out-of-range numbers, values outside choices and missing
 * required keys are SB_ERR_CONFIG naming file:line:col, the key, and what is allowed.
 * PATH values are resolved against the folder of the YAML file that set them. */
sb_status sbi_opts_validate(const sb_option *table, const char *plugin, const sbi_node *block,
                            const char *const *reserved, sb_opts **out, sb_error *err);

/* Check a plugin's own table at load time: names well-formed and unique, types known,
 * ENUM has choices, every default valid for its row. */
sb_status sbi_opts_check_table(const sb_option *table, const char *plugin, sb_error *err);

/* Release values made by sbi_opts_validate or sbi_opts_parse; NULLs *o. */
void sbi_opts_destroy(sb_opts **o);

/* The resolved values (defaults filled, unset optional ones absent) as a JSON object:
 * BOOL → true/false, INT → integer, FLOAT → real, STRING/PATH/ENUM → string, LIST → array
 * of strings, MAP → object. Borrowed; lives as long as `o`. */
json_t *sbi_opts_values(const sb_opts *o);

/* "BOOL", "INT", ... for help output. */
const char *sbi_opt_type_name(sb_opt_type t);

#endif
