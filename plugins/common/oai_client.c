/* plugins/common/oai_client.c — reading the options every OpenAI-compatible plugin shares
 * (oai_client.h): the endpoint URL, the model, the secrets from the environment (never from
 * the config itself), ca_file and the HTTP engine's settings; and keeping the secrets out of
 * messages. */
#include "oai_client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An environment variable's name: [A-Za-z_][A-Za-z0-9_]*. A value that is not one is
 * most likely a key pasted in by mistake, and is never echoed. */
static int env_name_ok(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* The value of the environment variable that option `opt` names: *name = the name (NULL
 * when the option is absent or empty), *value = a copy of the value (NULL when unset or
 * empty, with *missing = 1). */
static sb_status read_env(const sb_opts *o, const char *opt, const char **name, char **value,
                          int *missing, sb_error *err)
{
    *name = NULL;
    *value = NULL;
    if (!sb_opts_has(o, opt) || !sb_opts_str(o, opt) || !*sb_opts_str(o, opt))
        return SB_OK;
    const char *n = sb_opts_str(o, opt);
    if (!env_name_ok(n))
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(o, opt),
                            "%s must be the NAME of an environment variable (like "
                            "OPENAI_API_KEY), not a secret itself; the value given is not a "
                            "variable name (not shown). Put the secret in the environment",
                            opt);
    *name = n;
    const char *v = getenv(n);
    if (!v || !*v) {
        *missing = 1;
        return SB_OK;
    }
    *value = strdup(v);
    return *value ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
}

sb_status oai_client_init(oai_client *c, const sb_host *host, const sb_opts *o,
                          const char *endpoint, sb_error *err)
{
    sb_status st = SB_OK;
    const char *url = sb_opts_str(o, "base_url");
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(o, "base_url"),
                          "base_url '%s' must start with https:// (or http:// for a local "
                          "server)",
                          url);
    if (st == SB_OK) {
        size_t size = ul + strlen(endpoint) + 1;
        c->base_url = strndup(url, ul);
        c->url = malloc(size);
        c->model = strdup(sb_opts_str(o, "model"));
        if (!c->base_url || !c->url || !c->model)
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        else
            snprintf(c->url, size, "%s%s", c->base_url, endpoint);
    }
    if (st == SB_OK && !*c->model)
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(o, "model"), "model is empty");
    if (st == SB_OK)
        st = read_env(o, "api_key_env", &c->api_key_env, &c->api_key, &c->key_missing, err);
    const char *org_env = NULL;
    int org_missing = 0;
    if (st == SB_OK)
        st = read_env(o, "organization_env", &org_env, &c->organization, &org_missing, err);
    if (st == SB_OK && org_missing)
        host->log(host, SB_LOG_WARN,
                  "organization_env names %s, which is not set; sending no organization", org_env);
    if (st == SB_OK && sb_opts_has(o, "ca_file") && access(sb_opts_str(o, "ca_file"), R_OK) != 0)
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(o, "ca_file"),
                          "ca_file %s cannot be read: %s", sb_opts_str(o, "ca_file"),
                          strerror(errno));
    c->http.timeout_s = sb_opts_float(o, "timeout_s");
    c->http.connect_timeout_s = sb_opts_float(o, "connect_timeout_s");
    c->http.concurrency = (int)sb_opts_int(o, "concurrency");
    c->http.rpm = sb_opts_float(o, "rpm");
    c->http.max_retries = (int)sb_opts_int(o, "max_retries");
    c->http.backoff_base_s = sb_opts_float(o, "backoff_base_s");
    c->http.backoff_max_s = sb_opts_float(o, "backoff_max_s");
    c->http.ca_file = sb_opts_has(o, "ca_file") ? sb_opts_str(o, "ca_file") : NULL;
    return st;
}

void oai_client_free(oai_client *c)
{
    if (c->api_key)
        memset(c->api_key, 0, strlen(c->api_key));
    if (c->organization)
        memset(c->organization, 0, strlen(c->organization));
    free(c->api_key);
    free(c->organization);
    free(c->base_url);
    free(c->url);
    free(c->model);
    memset(c, 0, sizeof *c);
}

sb_status oai_client_need_key(const oai_client *c, sb_error *err)
{
    if (!c->key_missing)
        return SB_OK;
    return sb_error_set(err, SB_ERR_CONFIG, "api_key_env",
                        "the environment variable %s named by api_key_env is not set (or "
                        "empty); export it with the API key, or leave api_key_env out for a "
                        "server without authentication",
                        c->api_key_env);
}

sb_status oai_client_open(const oai_client *c, const sb_host *host, oai_http **out, sb_error *err)
{
    oai_http_cfg cfg = c->http;
    cfg.api_key = c->api_key;
    cfg.organization = c->organization;
    return oai_http_create(&cfg, host, out, err);
}

void oai_client_scrub(const oai_client *c, char *text)
{
    const char *const secrets[2] = { c->api_key, c->organization };
    oai_scrub(secrets, text);
}

void oai_client_vformat(const oai_client *c, char *buf, size_t size, const char *fmt, va_list ap)
{
    vsnprintf(buf, size, fmt, ap);
    oai_client_scrub(c, buf);
}
