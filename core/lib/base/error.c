/* core/lib/base/error.c — status texts and the first-error-wins error object. */
#include <serbench/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_build_config.h"

const char *sb_version(void)
{
    return SB_VERSION;
}

void sb_free(void *p)
{
    free(p);
}

const char *sb_strerror(sb_status code)
{
    switch (code) {
    case SB_OK: return "success";
    case SB_ERR_USAGE: return "usage error";
    case SB_ERR_CONFIG: return "configuration error";
    case SB_ERR_PLUGIN: return "plugin error";
    case SB_ERR_IO: return "input/output error";
    case SB_ERR_FORMAT: return "malformed file";
    case SB_ERR_AUDIO: return "audio error";
    case SB_ERR_NOT_FOUND: return "not found";
    case SB_ERR_INVALID: return "invalid value";
    case SB_ERR_STORE: return "store error";
    case SB_ERR_SCHEMA: return "store schema error";
    case SB_ERR_NOMEM: return "out of memory";
    case SB_ERR_INTERNAL: return "internal error";
    case SB_ERR_CANCELLED: return "cancelled";
    case SB_ERR_NETWORK: return "network error";
    case SB_ERR_API: return "remote API error";
    }
    return "unknown error";
}

sb_status sb_error_set(sb_error *err, sb_status code, const char *where, const char *fmt, ...)
{
    if (!err || err->code != SB_OK)
        return code;
    err->code = code;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void sb_error_clear(sb_error *err)
{
    if (!err)
        return;
    err->code = SB_OK;
    err->where[0] = '\0';
    err->msg[0] = '\0';
}

const char *sb_error_format(const sb_error *err, char *buf, size_t size)
{
    if (!err || err->code == SB_OK)
        snprintf(buf, size, "no error");
    else if (err->where[0])
        snprintf(buf, size, "%s: %s", err->where, err->msg[0] ? err->msg : sb_strerror(err->code));
    else
        snprintf(buf, size, "%s", err->msg[0] ? err->msg : sb_strerror(err->code));
    return buf;
}
