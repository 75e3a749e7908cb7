/* plugins/common/oai_client.h — (internal) the configuration every plugin that calls an
 * OpenAI-compatible API reads the same way: base_url and model, the API key and organization
 * from the environment variables the config names, ca_file and the engine's timeout,
 * concurrency and retry options (oai_client.c); the option-table entries that declare them;
 * and wiping those secrets out of messages. Compiled into each such plugin; nothing here is
 * exported. */
#ifndef OAI_CLIENT_H
#define OAI_CLIENT_H

#include "oai_http.h"

#include <serbench/serbench.h>

#include <stdarg.h>
#include <stddef.h>

/* ---- option-table entries ---------------------------------------------------------- */

/* One entry each of a plugin's static option table, for the options that mean the same in
 * every such plugin (same type, default, bounds and help), so that a plugin keeps its own
 * order (which --help prints) with one definition: `OAI_OPT_CA_FILE,`. The options
 * oai_client_init reads that have no macro (model, concurrency, max_retries) differ in
 * default or help between the plugins, and each plugin declares them itself. */

/* base_url; endpoint is the path the requests go to, a string literal ("/embeddings"). */
#define OAI_OPT_BASE_URL(endpoint)                                                                 \
    {                                                                                              \
        .name = "base_url", .type = SB_OPT_STRING, .flags = SB_OPT_REQUIRED,                       \
        .help =                                                                                    \
            "API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (requests go "   \
            "to {base_url}" endpoint ")"                                                           \
    }
#define OAI_OPT_API_KEY_ENV                                                                        \
    {                                                                                              \
        .name = "api_key_env", .type = SB_OPT_STRING, .flags = SB_OPT_SECRET_ENV,                  \
        .help = "name of the environment variable holding the API key (never the key itself); "    \
                "leave out for a local server without authentication"                              \
    }
#define OAI_OPT_ORGANIZATION_ENV                                                                   \
    {                                                                                              \
        .name = "organization_env", .type = SB_OPT_STRING, .flags = SB_OPT_SECRET_ENV,             \
        .help = "name of the environment variable holding an OpenAI organization id (optional)"    \
    }
#define OAI_OPT_CA_FILE                                                                            \
    {                                                                                              \
        .name = "ca_file", .type = SB_OPT_PATH,                                                    \
        .help = "CA bundle for TLS (PEM); verification is always on, this only changes what it "   \
                "trusts"                                                                           \
    }
#define OAI_OPT_TIMEOUT_S                                                                          \
    {                                                                                              \
        .name = "timeout_s", .type = SB_OPT_FLOAT, .def = "60",                                    \
        .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, .min = 0.05, .max = 3600,                        \
        .help = "whole-request timeout in seconds (a timeout is retried)"                          \
    }
#define OAI_OPT_CONNECT_TIMEOUT_S                                                                  \
    {                                                                                              \
        .name = "connect_timeout_s", .type = SB_OPT_FLOAT, .def = "10",                            \
        .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, .min = 0.05, .max = 600,                         \
        .help = "connection timeout in seconds"                                                    \
    }
#define OAI_OPT_BACKOFF_BASE_S                                                                     \
    {                                                                                              \
        .name = "backoff_base_s", .type = SB_OPT_FLOAT, .def = "1.0",                              \
        .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, .min = 0, .max = 600,                            \
        .help = "first backoff cap in seconds when the server gives no retry-after"                \
    }
#define OAI_OPT_BACKOFF_MAX_S                                                                      \
    {                                                                                              \
        .name = "backoff_max_s", .type = SB_OPT_FLOAT, .def = "60",                                \
        .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, .min = 0, .max = 3600,                           \
        .help = "largest backoff cap in seconds"                                                   \
    }
#define OAI_OPT_RPM                                                                                \
    {                                                                                              \
        .name = "rpm", .type = SB_OPT_FLOAT, .def = "0", .flags = SB_OPT_HAS_MIN, .min = 0,        \
        .help = "requests per minute to stay under (0 = no limit of our own)"                      \
    }

/* ---- the client configuration ------------------------------------------------------ */

typedef struct oai_client {
    char *base_url;     /* without a trailing '/' */
    char *url;          /* base_url + the endpoint */
    char *model;        /* not empty */
    char *api_key;      /* from the environment; wiped by oai_client_free; NULL = none */
    char *organization; /* same */
    /* the variable api_key_env names (borrowed from the options, which outlive the
       instance), or NULL */
    const char *api_key_env;
    int key_missing; /* api_key_env names a variable that is unset or empty */
    /* timeout_s, connect_timeout_s, concurrency, rpm, max_retries, backoff_base_s,
       backoff_max_s and ca_file (borrowed like api_key_env); tpm, user_agent and answer_kind
       are the plugin's to set; api_key and organization stay NULL (oai_client_open adds
       them). */
    oai_http_cfg http;
} oai_client;

/* Read the options base_url, model, api_key_env, organization_env, ca_file, timeout_s,
 * connect_timeout_s, concurrency, rpm, max_retries, backoff_base_s and backoff_max_s (all
 * must be in the plugin's table) into a zeroed *c; `endpoint` ("/chat/completions") is
 * appended to base_url to make c->url. The first problem is an error naming the option:
 * base_url not http(s)://, an empty model, api_key_env or organization_env holding
 * something that is not a variable name (the value is not echoed), an unreadable ca_file;
 * SB_ERR_NOMEM. An api_key_env naming an unset variable is not an error here: key_missing
 * is set, and oai_client_need_key reports it when a request is due (a fully cached run
 * needs no key). An unset organization_env variable is a warning through host->log. On
 * error *c may hold allocations: call oai_client_free either way. */
sb_status oai_client_init(oai_client *c, const sb_host *host, const sb_opts *o,
                          const char *endpoint, sb_error *err);

/* Wipe the secrets and free what oai_client_init allocated; *c is zeroed. */
void oai_client_free(oai_client *c);

/* SB_OK when a request may be sent: no key is configured, or it is set. Otherwise the
 * SB_ERR_CONFIG error that the variable api_key_env names is not set. */
sb_status oai_client_need_key(const oai_client *c, sb_error *err);

/* Create the HTTP engine (oai_http_create) from c->http with the API key and organization.
 * *out is the caller's, destroyed with oai_http_destroy. */
sb_status oai_client_open(const oai_client *c, const sb_host *host, oai_http **out, sb_error *err);

/* Replace every occurrence of the API key or the organization (when 4 characters or
 * longer) in the NUL-terminated text by "***", in place. */
void oai_client_scrub(const oai_client *c, char *text);

/* vsnprintf into buf[0..size) (truncated, always NUL-terminated; size > 0), then
 * oai_client_scrub: for any message that may quote a server's answer or a URL. */
void oai_client_vformat(const oai_client *c, char *buf, size_t size, const char *fmt, va_list ap)
    SB_PRINTF(4, 0);

#endif
