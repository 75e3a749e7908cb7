/* plugins/labellers/llm/request.c — from an utterance to a stored label: the request body
 * (canonical JSON, so its hash is the response-cache key), the answer's fate (valid, re-ask
 * once, invalid, failed), self-consistency votes, provenance and cost, and the sync mode's
 * callbacks into the HTTP engine. The batch mode (batch.c) reuses everything but the
 * transport. */
#include "llm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bodies and keys --------------------------------------------------------------- */

static const char *format_instruction(llm_format f)
{
    return f == LLM_FMT_TEXT
               ? "Reply with the label only, written exactly as in the list, and nothing else."
               : "Reply with a JSON object {\"label\": \"<label>\"} whose label is one of the "
                 "labels listed, written exactly as in the list, and nothing else.";
}

static char *labels_line(const llm_labels *l)
{
    oai_buf b = { 0 };
    oai_buf_str(&b, "Labels: ");
    for (int k = 0; k < l->n; k++)
        oai_buf_printf(&b, "%s%s", k ? ", " : "", l->names[k]);
    return oai_buf_take(&b);
}

/* The correction turn of a re-ask: why the first answer does not count, the utterance
 * again (quoted, so a server can tell which utterance it is about) and the labels. */
static char *correction(const llm_run *r, const llm_call *call)
{
    const sb_utt *u = sb_corpus_utt(r->c, call->item->utt);
    char *line = labels_line(&r->labels);
    oai_buf b = { 0 };
    oai_buf_printf(&b,
                   "That answer does not count: %s. Answer again for the utterance "
                   "<<<%s>>> with exactly one of the allowed labels.\n%s",
                   call->first_reason ? call->first_reason : "it is not one of the labels",
                   u->text ? u->text : "", line ? line : "Labels:");
    free(line);
    return oai_buf_take(&b);
}

static json_t *message(const char *role, const char *content)
{
    return json_pack("{s:s, s:s}", "role", role, "content", content);
}

/* The request body for the call's current step in format f; *chars gets the length of
 * all message contents (for token estimates). */
static json_t *body_json(const llm_run *r, const llm_call *call, llm_format f, size_t *chars)
{
    const llm *L = r->L;
    json_t *msgs = json_array();
    oai_buf sys = { 0 };
    if (L->system && *L->system)
        oai_buf_printf(&sys, "%s\n\n", L->system);
    oai_buf_str(&sys, format_instruction(f));
    char *sys_text = oai_buf_take(&sys);
    char *fix = call->reask ? correction(r, call) : NULL;
    if (!msgs || !sys_text || (call->reask && (!fix || !call->first_answer))) {
        json_decref(msgs);
        free(sys_text);
        free(fix);
        return NULL;
    }
    *chars = strlen(sys_text) + strlen(call->item->user);
    json_array_append_new(msgs, message("system", sys_text));
    json_array_append_new(msgs, message("user", call->item->user));
    if (call->reask) {
        json_array_append_new(msgs, message("assistant", call->first_answer));
        json_array_append_new(msgs, message("user", fix));
        *chars += strlen(call->first_answer) + strlen(fix);
    }
    free(sys_text);
    free(fix);
    json_t *b = json_object();
    json_object_set_new(b, "model", json_string(L->api.model));
    json_object_set_new(b, "messages", msgs);
    json_object_set_new(b, "temperature", json_real(L->temperature));
    json_object_set_new(b, "top_p", json_real(L->top_p));
    json_object_set_new(b, "seed", json_integer((json_int_t)(L->seed + call->sample)));
    json_object_set_new(b, L->token_param, json_integer((json_int_t)L->max_tokens));
    json_object_set_new(b, "logprobs", json_boolean(L->logprobs));
    if (L->logprobs && L->top_logprobs > 0)
        json_object_set_new(b, "top_logprobs", json_integer(L->top_logprobs));
    if (f == LLM_FMT_JSON_OBJECT) {
        json_object_set_new(b, "response_format", json_pack("{s:s}", "type", "json_object"));
    } else if (f == LLM_FMT_JSON_SCHEMA) {
        json_t *names = json_array();
        for (int k = 0; k < r->labels.n; k++)
            json_array_append_new(names, json_string(r->labels.names[k]));
        json_t *schema = json_pack("{s:s, s:{s:{s:s, s:o}}, s:[s], s:b}", "type", "object",
                                   "properties", "label", "type", "string", "enum", names,
                                   "required", "label", "additionalProperties", 0);
        json_object_set_new(b, "response_format",
                            json_pack("{s:s, s:{s:s, s:b, s:o}}", "type", "json_schema",
                                      "json_schema", "name", "label", "strict", 1, "schema",
                                      schema));
    }
    return b;
}

int llm_call_build(llm_run *r, llm_call *call)
{
    if (call->body && call->body_fmt == r->fmt)
        return 1;
    free(call->body);
    call->body = NULL;
    size_t chars = 0;
    json_t *b = body_json(r, call, r->fmt, &chars);
    call->body = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(b);
    if (!call->body)
        return 0;
    sb_hasher *h = sb_hasher_create();
    if (!h)
        return 0;
    sb_hasher_str(h, "llm-response/1");
    sb_hasher_str(h, r->L->api.base_url);
    sb_hasher_str(h, call->body);
    sb_hasher_hex(h, call->key);
    sb_hasher_destroy(&h);
    call->body_fmt = r->fmt;
    call->looked_up = 0;
    call->job.method = OAI_POST_JSON;
    call->job.url = r->L->api.url;
    call->job.body = call->body;
    call->job.body_len = strlen(call->body);
    call->job.tokens = ceil((double)chars / 4.0) + (double)r->L->max_tokens;
    return 1;
}

/* ---- the cache --------------------------------------------------------------------- */

void llm_call_cache_put(llm_run *r, llm_call *call, json_t *response, const char *request_id,
                        int attempts)
{
    const sb_host *h = r->L->host;
    json_t *env = json_pack("{s:i, s:s?, s:O}", "attempts", attempts, "request_id", request_id,
                            "response", response);
    char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    sb_error e = { 0 };
    if (!text || h->cache_put(h, call->key, text, strlen(text), &e) != SB_OK) {
        if (r->n_puts_failed++ == 0)
            h->log(h, SB_LOG_WARN,
                   "could not store an answer in the response cache (%s); a rerun will ask "
                   "again for what is not labelled",
                   e.msg[0] ? e.msg : "out of memory");
    }
    free(text);
}

int llm_call_from_cache(llm_run *r, llm_call *call)
{
    const sb_host *h = r->L->host;
    for (;;) {
        if (!llm_call_build(r, call)) {
            llm_call_fail(r, call, "out of memory building the request");
            return 1;
        }
        if (call->looked_up)
            return 0;
        call->looked_up = 1;
        char *v = NULL;
        size_t n = 0;
        int got = h->cache_get(h, call->key, &v, &n);
        if (got != 1) {
            free(v);
            return 0;
        }
        json_t *env = json_loadb(v, n, 0, NULL);
        free(v);
        llm_answer a;
        char why[200];
        json_t *resp = json_object_get(env, "response");
        if (!resp || !llm_answer_from_json(resp, &a, why, sizeof why)) {
            h->log(h, SB_LOG_DEBUG, "ignoring an unreadable response-cache entry %s", call->key);
            json_decref(env);
            return 0;
        }
        json_t *att = json_object_get(env, "attempts");
        int attempts = json_is_integer(att) ? (int)json_integer_value(att) : 1;
        r->n_cache_hits++;
        int finished =
            llm_call_answer(r, call, &a, json_string_value(json_object_get(env, "request_id")),
                            attempts, 1, json_is_true(json_object_get(env, "batch")));
        llm_answer_clear(&a);
        json_decref(env);
        if (finished)
            return 1;
    }
}

/* ---- outcomes ---------------------------------------------------------------------- */

double llm_cost(const llm *L, int64_t prompt, int64_t cached, int64_t completion, int batch)
{
    if (!L->price.known)
        return -1;
    if (prompt < 0)
        prompt = 0;
    if (cached < 0)
        cached = 0;
    if (completion < 0)
        completion = 0;
    if (cached > prompt)
        cached = prompt;
    double in = batch ? L->price.batch_input : L->price.input;
    double cin = batch ? L->price.cached_input / 2 : L->price.cached_input;
    double out = batch ? L->price.batch_output : L->price.output;
    return ((double)(prompt - cached) * in + (double)cached * cin + (double)completion * out) / 1e6;
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

static void deliver(llm_run *r, llm_item *it);

static void call_finished(llm_run *r, llm_call *call)
{
    if (--call->item->pending == 0)
        deliver(r, call->item);
}

void llm_call_fail(llm_run *r, llm_call *call, const char *fmt, ...)
{
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    oai_client_vformat(&r->L->api, buf, sizeof buf, fmt, ap);
    va_end(ap);
    call->state = LLM_CALL_FAILED;
    set_str(&call->reason, buf);
    call_finished(r, call);
}

int llm_call_answer(llm_run *r, llm_call *call, const llm_answer *a, const char *request_id,
                    int attempts, int cached, int batch)
{
    const llm *L = r->L;
    call->attempts += attempts;
    int64_t pt = a->prompt_tokens > 0 ? a->prompt_tokens : 0;
    int64_t ct = a->completion_tokens > 0 ? a->completion_tokens : 0;
    int64_t kt = a->cached_tokens > 0 ? a->cached_tokens : 0;
    call->prompt_tokens += pt;
    call->completion_tokens += ct;
    call->cached_tokens += kt;
    if (!cached) {
        double c = llm_cost(L, pt, kt, ct, batch);
        if (c > 0)
            call->cost += c;
        call->all_cached = 0;
    }
    if (request_id)
        snprintf(call->request_id, sizeof call->request_id, "%s", request_id);
    set_str(&call->model, a->model);
    set_str(&call->finish_reason, a->finish_reason);
    set_str(&call->fingerprint, a->system_fingerprint);
    const char *fr = a->finish_reason ? a->finish_reason : "";
    if (strcmp(fr, "length") == 0) {
        llm_call_fail(r, call, "answer cut at %s (%lld)", L->token_param, (long long)L->max_tokens);
        return 1;
    }
    if (a->refusal && *a->refusal) {
        llm_call_fail(r, call, "the model refused: %s", a->refusal);
        return 1;
    }
    if (strcmp(fr, "content_filter") == 0) {
        llm_call_fail(r, call, "the server's content filter withheld the answer");
        return 1;
    }
    if (!a->content) {
        llm_call_fail(r, call, "the answer has no content (finish_reason %s)", fr[0] ? fr : "?");
        return 1;
    }
    char why[400];
    int k = llm_validate(call->body_fmt, &r->labels, a->content, why, sizeof why);
    if (k >= 0) {
        call->state = LLM_CALL_OK;
        call->label = k;
        set_str(&call->raw, a->content);
        if (L->logprobs && a->logprobs) {
            call->dist = malloc((size_t)r->labels.n * sizeof *call->dist);
            if (call->dist &&
                !llm_confidence(call->body_fmt, &r->labels, a->content, a->logprobs, call->dist)) {
                free(call->dist);
                call->dist = NULL;
            }
        }
        call_finished(r, call);
        return 1;
    }
    if (!call->reask) {
        /* Ask once more, with the answer and a correction in the conversation. */
        call->reask = 1;
        set_str(&call->first_answer, a->content);
        set_str(&call->first_reason, why);
        free(call->body);
        call->body = NULL;
        call->looked_up = 0;
        r->n_reasked++;
        L->host->log(L->host, SB_LOG_DEBUG, "utterance %s: %s; asking once more",
                     sb_corpus_utt(r->c, call->item->utt)->id, why);
        return 0;
    }
    call->state = LLM_CALL_INVALID;
    set_str(&call->raw, a->content);
    set_str(&call->reason, why);
    call_finished(r, call);
    return 1;
}

/* ---- delivery ---------------------------------------------------------------------- */

static json_t *detail_json(const llm_run *r, const llm_item *it, const int *votes)
{
    const llm *L = r->L;
    int k = L->samples;
    int attempts = 0, all_cached = 1, reasked = 0;
    int64_t pt = 0, ct = 0, kt = 0;
    double cost = 0;
    const llm_call *last = &it->calls[k - 1];
    for (int s = 0; s < k; s++) {
        const llm_call *c = &it->calls[s];
        attempts += c->attempts;
        all_cached &= c->all_cached;
        reasked |= c->reask;
        pt += c->prompt_tokens;
        ct += c->completion_tokens;
        kt += c->cached_tokens;
        cost += c->cost;
    }
    json_t *d = json_pack("{s:s, s:s?, s:i, s:b, s:s?, s:s?, s:{s:I, s:I, s:I}, s:s, s:b, s:s}",
                          "model", last->model ? last->model : L->api.model, "request_id",
                          last->request_id[0] ? last->request_id : NULL, "attempts", attempts,
                          "cached", all_cached, "finish_reason", last->finish_reason,
                          "system_fingerprint", last->fingerprint, "usage", "prompt_tokens",
                          (json_int_t)pt, "completion_tokens", (json_int_t)ct, "cached_tokens",
                          (json_int_t)kt, "format", llm_format_name(last->body_fmt), "reasked",
                          reasked, "mode", r->batch_mode ? "batch" : "sync");
    if (!d)
        return NULL;
    /* Without a price the cost is unknown (null), even for an answer from the cache, so
     * a stage total never mixes known zeros with unknowns. */
    if (!L->price.known)
        json_object_set_new(d, "cost_usd", json_null());
    else
        json_object_set_new(d, "cost_usd", json_real(all_cached ? 0 : cost));
    if (votes) {
        json_t *v = json_object();
        for (int c = 0; c < r->labels.n; c++)
            if (votes[c])
                json_object_set_new(v, r->labels.names[c], json_integer(votes[c]));
        json_object_set_new(d, "samples", json_integer(k));
        json_object_set_new(d, "votes", v);
    }
    return d;
}

static void deliver(llm_run *r, llm_item *it)
{
    const llm *L = r->L;
    const int k = L->samples, n = r->labels.n;
    if (!r->sink)
        return;
    for (int s = 0; s < k; s++)
        if (it->calls[s].state == LLM_CALL_FAILED) {
            const llm_call *c = &it->calls[s];
            char reason[1400];
            snprintf(reason, sizeof reason, "%s%s%s%s", c->reason ? c->reason : "failed",
                     c->request_id[0] ? " (request id " : "", c->request_id,
                     c->request_id[0] ? ")" : "");
            sb_label_fail(r->sink, it->utt, reason);
            r->n_failed++;
            return;
        }
    int *votes = NULL;
    double *dist = NULL;
    sb_label_result res = { .struct_size = sizeof res, .confidence = -1 };
    if (k == 1) {
        const llm_call *c = &it->calls[0];
        res.status = c->state == LLM_CALL_OK ? SB_LABEL_OK : SB_LABEL_INVALID;
        res.label = c->state == LLM_CALL_OK ? c->label : -1;
        res.dist = c->dist;
        if (c->dist && c->state == LLM_CALL_OK)
            res.confidence = c->dist[c->label];
        res.raw = c->raw;
        res.reason = c->state == LLM_CALL_OK ? NULL : c->reason;
    } else {
        /* Self-consistency: the majority label over the valid samples (ties go to the label
         * a sample gave first), the vote shares as the distribution. */
        votes = calloc((size_t)n, sizeof *votes);
        dist = calloc((size_t)n, sizeof *dist);
        if (!votes || !dist) {
            free(votes);
            free(dist);
            sb_label_fail(r->sink, it->utt, "out of memory");
            r->n_failed++;
            return;
        }
        int valid = 0, best = -1;
        for (int s = 0; s < k; s++)
            if (it->calls[s].state == LLM_CALL_OK) {
                votes[it->calls[s].label]++;
                valid++;
            }
        for (int s = 0; s < k; s++) {
            const llm_call *c = &it->calls[s];
            if (c->state == LLM_CALL_OK && (best < 0 || votes[c->label] > votes[best]))
                best = c->label;
        }
        if (valid == 0) {
            res.status = SB_LABEL_INVALID;
            res.label = -1;
            res.raw = it->calls[0].raw;
            res.reason = it->calls[0].reason;
        } else {
            for (int c = 0; c < n; c++)
                dist[c] = (double)votes[c] / valid;
            res.status = SB_LABEL_OK;
            res.label = best;
            res.dist = dist;
            res.confidence = dist[best];
            for (int s = 0; s < k; s++)
                if (it->calls[s].state == LLM_CALL_OK && it->calls[s].label == best) {
                    res.raw = it->calls[s].raw;
                    break;
                }
        }
    }
    json_t *d = detail_json(r, it, votes);
    char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    res.detail = detail;
    sb_status st = sb_label_deliver(r->sink, it->utt, &res);
    free(detail);
    free(votes);
    free(dist);
    if (st != SB_OK) {
        if (!r->fatal)
            r->fatal = sb_error_set(r->err, st, sb_corpus_utt(r->c, it->utt)->id,
                                    "could not store the label (%s)", sb_strerror(st));
        if (r->http)
            oai_http_stop(r->http);
        return;
    }
    if (res.status == SB_LABEL_OK)
        r->n_ok++;
    else
        r->n_invalid++;
}

/* ---- errors ------------------------------------------------------------------------ */

void llm_run_http_error(llm_run *r, const char *what, const oai_result *res)
{
    const llm *L = r->L;
    char msg[700], type[64], code[64];
    oai_error_parse(res->body, res->len, msg, sizeof msg, type, sizeof type, code, sizeof code);
    oai_client_scrub(&L->api, msg);
    int quota = !strcmp(type, "insufficient_quota") || !strcmp(code, "insufficient_quota");
    char hint[400];
    if (quota)
        snprintf(hint, sizeof hint,
                 "the account's quota is used up: check the plan and billing details of the "
                 "account");
    else if (res->status == 401 && L->api.api_key_env)
        snprintf(hint, sizeof hint,
                 "check the API key in the environment variable %s (api_key_env)",
                 L->api.api_key_env);
    else if (res->status == 401)
        snprintf(hint, sizeof hint,
                 "the server wants an API key: set api_key_env to the name of the environment "
                 "variable that holds it");
    else if (res->status == 403)
        snprintf(hint, sizeof hint, "the key has no access to model %s or to this endpoint",
                 L->api.model);
    else if (res->status == 404)
        snprintf(hint, sizeof hint, "check base_url (%s) and model (%s)", L->api.base_url,
                 L->api.model);
    else if (res->status == 400)
        snprintf(hint, sizeof hint,
                 "the server rejected the request as sent; check the options (e.g. token_param: "
                 "max_tokens for Ollama, response_format, top_logprobs) and `serbench label "
                 "--plan` for the request");
    else
        snprintf(hint, sizeof hint, "this status is not retried");
    char tc[140] = "";
    if (type[0] || code[0])
        snprintf(tc, sizeof tc, " (%s%s%s)", type, type[0] && code[0] ? ", " : "", code);
    if (!r->fatal)
        r->fatal = sb_error_set(
            r->err, SB_ERR_API, L->api.url,
            "%s: HTTP %ld%s: %s%s%s%s. What to do: %s. Labels delivered before this are stored; "
            "the next run asks only for the rest",
            what, res->status, tc, msg[0] ? msg : "(no error message)",
            res->request_id ? " (request id " : "", res->request_id ? res->request_id : "",
            res->request_id ? ")" : "", hint);
    L->host->log(L->host, SB_LOG_ERROR, "HTTP %ld%s from the server%s%s%s; stopping the stage",
                 res->status, tc, res->request_id ? " (request id " : "",
                 res->request_id ? res->request_id : "", res->request_id ? ")" : "");
    if (r->http)
        oai_http_stop(r->http);
}

void llm_run_transport_error(llm_run *r, const char *error)
{
    const llm *L = r->L;
    const char *e = error ? error : "no connection";
    int tls = strstr(e, "SSL") || strstr(e, "certificate");
    r->fatal = sb_error_set(
        r->err, SB_ERR_NETWORK, L->api.url, "%s. What to do: %s", e,
        tls ? "the server's TLS certificate is not trusted; if it is yours (a local server with "
              "its own certificate), set ca_file to the CA certificate that signed it - "
              "verification is never turned off"
            : "check base_url");
    L->host->log(L->host, SB_LOG_ERROR, "%s; stopping the stage", e);
    if (r->http)
        oai_http_stop(r->http);
}

/* ---- the run ----------------------------------------------------------------------- */

static void format_key(const llm *L, char out[SB_HASH_HEX + 16])
{
    char hex[SB_HASH_HEX];
    sb_hasher *h = sb_hasher_create();
    if (!h) {
        out[0] = 0;
        return;
    }
    sb_hasher_str(h, L->api.base_url);
    sb_hasher_str(h, L->api.model);
    sb_hasher_hex(h, hex);
    sb_hasher_destroy(&h);
    snprintf(out, SB_HASH_HEX + 16, "llm-format/1/%s", hex);
}

/* Switch to the next format after a 400, remember it for this server and model. */
static void fall_back(llm_run *r, const oai_result *res)
{
    const llm *L = r->L;
    char msg[400], type[64], code[64];
    oai_error_parse(res->body, res->len, msg, sizeof msg, type, sizeof type, code, sizeof code);
    oai_client_scrub(&L->api, msg);
    llm_format from = r->fmt;
    r->fmt = r->fmt == LLM_FMT_JSON_SCHEMA ? LLM_FMT_JSON_OBJECT : LLM_FMT_TEXT;
    L->host->log(L->host, SB_LOG_WARN,
                 "the server answered HTTP 400 to response_format %s (%s); using %s for the rest "
                 "of this run and for later runs against this server and model (fallback: true)",
                 llm_format_name(from), msg[0] ? msg : "no message", llm_format_name(r->fmt));
    char key[SB_HASH_HEX + 16];
    format_key(L, key);
    const char *name = llm_format_name(r->fmt);
    if (key[0])
        L->host->cache_put(L->host, key, name, strlen(name), NULL);
}

sb_status llm_run_init(llm_run *r, llm *L, const sb_corpus *c, const size_t *todo, size_t n,
                       sb_label_sink *sink, sb_error *err)
{
    memset(r, 0, sizeof *r);
    r->L = L;
    r->c = c;
    r->sink = sink;
    r->err = err;
    r->batch_mode = L->batch;
    sb_status st = llm_labels_build(c, L->label_names_json, L->label_names_where, &r->labels, err);
    if (st == SB_OK && (L->before > 0 || L->after > 0))
        st = llm_dialogues_build(c, &r->dia, err);
    if (st != SB_OK)
        return st;
    r->fmt = L->format;
    if (L->fallback && r->fmt != LLM_FMT_TEXT) {
        char key[SB_HASH_HEX + 16], *v = NULL;
        size_t len = 0;
        format_key(L, key);
        if (key[0] && L->host->cache_get(L->host, key, &v, &len) == 1) {
            llm_format was = r->fmt;
            if (!strcmp(v, "json_object") && r->fmt == LLM_FMT_JSON_SCHEMA)
                r->fmt = LLM_FMT_JSON_OBJECT;
            else if (!strcmp(v, "text"))
                r->fmt = LLM_FMT_TEXT;
            if (r->fmt != was)
                L->host->log(L->host, SB_LOG_INFO,
                             "using response_format %s: this server rejected %s in an earlier "
                             "run (set fallback: false to insist)",
                             llm_format_name(r->fmt), llm_format_name(was));
        }
        free(v);
    }
    r->items = calloc(n + 1, sizeof *r->items);
    if (!r->items)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char why[400];
        char *user = llm_render(L->tmpl, c, r->dia, todo[i], &r->labels, L->before, L->after, why,
                                sizeof why);
        if (!user) {
            r->n_failed++;
            if (sink)
                sb_label_fail(sink, todo[i], why);
            continue;
        }
        llm_item *it = &r->items[r->n_items];
        it->utt = todo[i];
        it->user = user;
        it->pending = L->samples;
        it->calls = calloc((size_t)L->samples, sizeof *it->calls);
        if (!it->calls) {
            free(user);
            it->user = NULL;
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
        for (int s = 0; s < L->samples; s++) {
            llm_call *call = &it->calls[s];
            call->item = it;
            call->sample = s;
            call->all_cached = 1;
            call->label = -1;
            call->job.user = call;
        }
        r->n_items++;
    }
    return SB_OK;
}

void llm_run_free(llm_run *r)
{
    for (size_t i = 0; r->items && i < r->n_items; i++) {
        llm_item *it = &r->items[i];
        for (int s = 0; it->calls && s < r->L->samples; s++) {
            llm_call *c = &it->calls[s];
            free(c->first_answer);
            free(c->first_reason);
            free(c->body);
            free(c->model);
            free(c->finish_reason);
            free(c->fingerprint);
            free(c->dist);
            free(c->raw);
            free(c->reason);
        }
        free(it->calls);
        free(it->user);
    }
    free(r->items);
    llm_dialogues_destroy(&r->dia);
    llm_labels_free(&r->labels);
    memset(r, 0, sizeof *r);
}

/* ---- sync mode --------------------------------------------------------------------- */

static int sync_prepare(void *ctx, oai_job *job)
{
    llm_run *r = ctx;
    llm_call *call = job->user;
    if (r->fatal)
        return 0;
    return !llm_call_from_cache(r, call);
}

static oai_verdict sync_done(void *ctx, oai_job *job, const oai_result *res)
{
    llm_run *r = ctx;
    llm_call *call = job->user;
    const sb_host *h = r->L->host;
    if (res->permanent) {
        if (!r->fatal)
            llm_run_transport_error(r, res->error);
        return OAI_ACCEPT;
    }
    if (res->gave_up || res->status == 0) {
        if (res->request_id)
            snprintf(call->request_id, sizeof call->request_id, "%s", res->request_id);
        llm_call_fail(r, call, "%s", res->error ? res->error : "no answer");
        return OAI_ACCEPT;
    }
    if (res->status >= 200 && res->status < 300) {
        llm_answer a;
        char why[300];
        if (!llm_answer_parse(res->body, res->len, &a, why, sizeof why)) {
            h->log(h, SB_LOG_DEBUG, "unusable answer (%s)%s%s%s; retrying", why,
                   res->request_id ? " (request id " : "", res->request_id ? res->request_id : "",
                   res->request_id ? ")" : "");
            return OAI_RETRY;
        }
        if (r->probing) {
            /* The server takes requests in this format: open up to `concurrency`. */
            r->probing = 0;
            oai_http_set_limit(r->http, r->L->api.http.concurrency);
        }
        llm_call_cache_put(r, call, a.root, res->request_id, job->attempts);
        int finished = llm_call_answer(r, call, &a, res->request_id, job->attempts, 0, 0);
        llm_answer_clear(&a);
        if (!finished && !r->fatal)
            oai_http_submit(r->http, job); /* the re-ask */
        return OAI_ACCEPT;
    }
    if (res->status == 400 && r->L->fallback && call->body_fmt != LLM_FMT_TEXT && !r->fatal) {
        if (call->body_fmt == r->fmt)
            fall_back(r, res);
        oai_http_submit(r->http, job); /* rebuilt in the new format by sync_prepare */
        return OAI_ACCEPT;
    }
    if (!r->fatal)
        llm_run_http_error(r, "the server refused a request", res);
    return OAI_ACCEPT;
}

sb_status llm_run_sync(llm_run *r)
{
    const llm *L = r->L;
    for (size_t i = 0; i < r->n_items; i++)
        for (int s = 0; s < L->samples; s++)
            oai_http_submit(r->http, &r->items[i].calls[s].job);
    /* One request first: a server that rejects the format or the key answers once, not
     * `concurrency` times; answers from the cache are not held back. */
    r->probing = 1;
    oai_http_set_limit(r->http, 1);
    oai_http_cb cb = { sync_prepare, sync_done };
    sb_status st = oai_http_run(r->http, &cb, r, r->err);
    const oai_http_stats *hs = oai_http_get_stats(r->http);
    L->host->log(L->host, SB_LOG_INFO,
                 "%zu requests sent, %zu answers from the response cache, %zu retries (429: %zu, "
                 "5xx: %zu, no answer: %zu, malformed: %zu), %zu re-asked; %zu labelled, %zu "
                 "invalid, %zu failed",
                 hs->sent, r->n_cache_hits, hs->retries, hs->by_status_429, hs->by_status_5xx,
                 hs->by_transport, hs->malformed, r->n_reasked, r->n_ok, r->n_invalid, r->n_failed);
    if (st != SB_OK)
        return st;
    return r->fatal;
}

/* ---- plan -------------------------------------------------------------------------- */

sb_status llm_run_plan(llm_run *r, char **json, sb_error *err)
{
    const llm *L = r->L;
    const sb_host *h = L->host;
    size_t requests = 0, cached = 0;
    double prompt = 0;
    const char *example = NULL;
    for (size_t i = 0; i < r->n_items; i++)
        for (int s = 0; s < L->samples; s++) {
            llm_call *call = &r->items[i].calls[s];
            if (!llm_call_build(r, call))
                return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            char *v = NULL;
            size_t n = 0;
            if (h->cache_get(h, call->key, &v, &n) == 1) {
                cached++;
            } else {
                requests++;
                prompt += call->job.tokens - (double)L->max_tokens;
                if (!example)
                    example = call->body;
            }
            free(v);
        }
    if (!example && r->n_items)
        example = r->items[0].calls[0].body;
    double completion = (double)requests * (double)L->max_tokens;
    json_t *p = json_object();
    json_object_set_new(p, "requests", json_integer((json_int_t)requests));
    json_object_set_new(p, "cached", json_integer((json_int_t)cached));
    json_object_set_new(p, "prompt_tokens", json_real(prompt));
    json_object_set_new(p, "completion_tokens", json_real(completion));
    double cost = llm_cost(L, (int64_t)prompt, 0, (int64_t)completion, L->batch);
    json_object_set_new(p, "cost_usd", cost >= 0 ? json_real(cost) : json_null());
    if (example) {
        json_t *b = json_loads(example, 0, NULL);
        char *pretty = b ? json_dumps(b, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        json_decref(b);
        if (pretty)
            json_object_set_new(p, "example", json_string(pretty));
        free(pretty);
    }
    json_t *notes = json_array();
    char buf[600];
    snprintf(buf, sizeof buf,
             "POST %s, model %s, response_format %s, %s mode; estimates use 4 characters per "
             "token, and completion tokens are the upper bound %s x requests",
             L->api.url, L->api.model, llm_format_name(r->fmt), L->batch ? "batch" : "sync",
             L->token_param);
    json_array_append_new(notes, json_string(buf));
    if (L->temperature == 0)
        json_array_append_new(
            notes, json_string("temperature 0: answers are deterministic only where the server "
                               "honours seed (OpenAI documents seed as best effort)"));
    json_array_append_new(notes, json_string("an answer outside the label set is asked once more; "
                                             "those extra requests are not counted above"));
    if (L->samples > 1) {
        snprintf(buf, sizeof buf,
                 "self-consistency: %d samples per utterance (seeds %lld..%lld), counted above",
                 L->samples, (long long)L->seed, (long long)(L->seed + L->samples - 1));
        json_array_append_new(notes, json_string(buf));
    }
    if (!L->price.known) {
        snprintf(buf, sizeof buf, "no price for model %s under prices: the cost is unknown",
                 L->api.model);
        json_array_append_new(notes, json_string(buf));
    } else if (L->batch) {
        json_array_append_new(notes, json_string("cost at batch prices"));
    }
    if (r->n_failed) {
        snprintf(buf, sizeof buf,
                 "%zu utterances cannot be rendered (no transcript, or a meta field missing) "
                 "and would fail",
                 r->n_failed);
        json_array_append_new(notes, json_string(buf));
    }
    if (L->api.key_missing) {
        snprintf(buf, sizeof buf,
                 "the environment variable %s (api_key_env) is not set: labelling would stop "
                 "before the first request",
                 L->api.api_key_env);
        json_array_append_new(notes, json_string(buf));
    }
    json_object_set_new(p, "notes", notes);
    *json = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return *json ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
}
