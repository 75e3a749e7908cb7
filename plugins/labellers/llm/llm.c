/* plugins/labellers/llm/llm.c — the `llm` labeller: emotion labels from a chat-completions
 * API (OpenAI, vLLM, Ollama's /v1, llama.cpp's server) for the utterances of a corpus, from
 * their text and dialogue context. This file holds the descriptor, the option table, and
 * create / label / plan / destroy; docs/labellers.md is the user's guide. */
#include "llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sb_option llm_options[] = {
    OAI_OPT_BASE_URL("/chat/completions"),
    { .name = "model",
      .type = SB_OPT_STRING,
      .flags = SB_OPT_REQUIRED,
      .help = "model name sent with every request; pin a dated version (gpt-4o-2024-08-06)" },
    OAI_OPT_API_KEY_ENV,
    OAI_OPT_ORGANIZATION_ENV,
    OAI_OPT_CA_FILE,
    { .name = "prompt",
      .type = SB_OPT_PATH,
      .flags = SB_OPT_REQUIRED,
      .help = "template of the user message, with {{utterance}}, {{context}}, {{labels}}, ... "
              "(docs/labellers.md); relative to the config's folder" },
    { .name = "system",
      .type = SB_OPT_STRING,
      .help = "system prompt text (the answer-format instruction is appended to it)" },
    { .name = "system_file",
      .type = SB_OPT_PATH,
      .help = "file holding the system prompt (instead of system)" },
    { .name = "label_names",
      .type = SB_OPT_MAP,
      .help = "word shown to the model for each class, e.g. {neu: neutral, hap: happy}; "
              "default the class names" },
    { .name = "context_before",
      .type = SB_OPT_INT,
      .def = "0",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 200,
      .help = "previous turns of the dialogue shown as {{context}}" },
    { .name = "context_after",
      .type = SB_OPT_INT,
      .def = "0",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 200,
      .help = "following turns shown as {{next_context}}" },
    { .name = "temperature",
      .type = SB_OPT_FLOAT,
      .def = "0",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 2,
      .help = "sampling temperature, always sent (servers differ in their defaults)" },
    { .name = "top_p",
      .type = SB_OPT_FLOAT,
      .def = "1",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 1,
      .help = "nucleus sampling mass, always sent" },
    { .name = "seed",
      .type = SB_OPT_INT,
      .def = "0",
      .help = "sampling seed, always sent (sample k of self-consistency uses seed+k); labels "
              "belong to the labeller, not to the run, so every seed of a sweep trains on the "
              "same labels: change this to label again" },
    { .name = "max_completion_tokens",
      .type = SB_OPT_INT,
      .def = "20",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 100000,
      .help = "answer length cap; an answer cut there fails (finish_reason length)" },
    { .name = "token_param",
      .type = SB_OPT_ENUM,
      .def = "max_completion_tokens",
      .choices = "max_completion_tokens|max_tokens",
      .help = "field name for the cap: max_tokens for Ollama and older servers" },
    OAI_OPT_TIMEOUT_S,
    OAI_OPT_CONNECT_TIMEOUT_S,
    { .name = "concurrency",
      .type = SB_OPT_INT,
      .def = "8",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 256,
      .help = "requests in flight at once (one curl multi handle, reused connections)" },
    OAI_OPT_RPM,
    { .name = "tpm",
      .type = SB_OPT_FLOAT,
      .def = "0",
      .flags = SB_OPT_HAS_MIN,
      .min = 0,
      .help = "tokens per minute to stay under, estimated as prompt/4 + the completion cap (0 = "
              "no limit)" },
    { .name = "max_retries",
      .type = SB_OPT_INT,
      .def = "6",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 100,
      .help = "retries of one request after 408/409/429/5xx, timeouts and dropped connections" },
    OAI_OPT_BACKOFF_BASE_S,
    OAI_OPT_BACKOFF_MAX_S,
    { .name = "response_format",
      .type = SB_OPT_ENUM,
      .def = "json_schema",
      .choices = "json_schema|json_object|text",
      .help = "json_schema (an enum of the labels), json_object, or text matched to the labels" },
    { .name = "fallback",
      .type = SB_OPT_BOOL,
      .def = "true",
      .help = "after HTTP 400 to json_schema use json_object, then text (remembered per server "
              "and model)" },
    { .name = "logprobs",
      .type = SB_OPT_BOOL,
      .def = "true",
      .help = "ask for logprobs and turn them into a distribution over the labels" },
    { .name = "top_logprobs",
      .type = SB_OPT_INT,
      .def = "10",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0,
      .max = 20,
      .help = "alternatives per token (at most 20)" },
    { .name = "samples",
      .type = SB_OPT_INT,
      .def = "1",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 64,
      .help = "self-consistency: k requests (seeds seed..seed+k-1), the majority label, the "
              "agreement as confidence" },
    { .name = "mode",
      .type = SB_OPT_ENUM,
      .def = "sync",
      .choices = "sync|batch",
      .help = "sync requests, or OpenAI's Batch API (half price, within 24 h)" },
    { .name = "batch_poll_s",
      .type = SB_OPT_FLOAT,
      .def = "30",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 0.01,
      .max = 3600,
      .help = "seconds between polls of a batch" },
    { .name = "batch_max_rounds",
      .type = SB_OPT_INT,
      .def = "3",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 20,
      .help = "batches submitted at most: the first, then resubmissions of missing or failed "
              "lines and re-asks" },
    { .name = "prices",
      .type = SB_OPT_MAP,
      .help = "USD per 1M tokens by model: {input, output, cached_input, batch_input, "
              "batch_output}; without one the cost is unknown" },
    { .name = NULL },
};

static sb_status read_file(const char *path, const char *what, char **out, sb_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_error_set(err, SB_ERR_IO, path, "cannot read the %s: %s", what, strerror(errno));
    oai_buf b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        oai_buf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    size_t len = b.n;
    char *text = oai_buf_take(&b);
    if (bad || !text) {
        free(text);
        return sb_error_set(err, bad ? SB_ERR_IO : SB_ERR_NOMEM, path, "cannot read the %s", what);
    }
    if (strlen(text) != len || !sb_utf8_valid(text, len)) {
        free(text);
        return sb_error_set(err, SB_ERR_FORMAT, path, "the %s is not UTF-8 text", what);
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = 0;
    *out = text;
    return SB_OK;
}

static sb_status read_prices(llm *L, const sb_opts *o, sb_error *err)
{
    const char *where = sb_opts_where(o, "prices");
    json_t *m = json_loads(sb_opts_json(o, "prices"), 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return sb_error_set(err, SB_ERR_CONFIG, where, "prices must be a mapping model → prices");
    }
    static const char *const fields[] = { "input", "output", "cached_input", "batch_input",
                                          "batch_output" };
    const char *model;
    json_t *p;
    sb_status st = SB_OK;
    json_object_foreach(m, model, p)
    {
        if (!json_is_object(p)) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "prices.%s must be a mapping {input, output, cached_input, "
                              "batch_input, batch_output} in USD per 1M tokens",
                              model);
            break;
        }
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v)
        {
            int known = 0;
            for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
                known |= strcmp(k, fields[i]) == 0;
            if (!known) {
                st = sb_error_set(err, SB_ERR_CONFIG, where,
                                  "prices.%s.%s is not a price field; use input, output, "
                                  "cached_input, batch_input, batch_output (USD per 1M tokens)",
                                  model, k);
                break;
            }
            if (!json_is_number(v) || json_number_value(v) < 0) {
                st = sb_error_set(err, SB_ERR_CONFIG, where,
                                  "prices.%s.%s must be a number >= 0 (USD per 1M tokens)", model,
                                  k);
                break;
            }
        }
        if (st != SB_OK)
            break;
        if (!json_object_get(p, "input") || !json_object_get(p, "output")) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "prices.%s needs at least input and output (USD per 1M tokens)",
                              model);
            break;
        }
    }
    json_t *mine = st == SB_OK ? json_object_get(m, L->api.model) : NULL;
    if (mine) {
        L->price.known = 1;
        L->price.input = json_number_value(json_object_get(mine, "input"));
        L->price.output = json_number_value(json_object_get(mine, "output"));
        json_t *v;
        L->price.cached_input =
            (v = json_object_get(mine, "cached_input")) ? json_number_value(v) : L->price.input;
        L->price.batch_input =
            (v = json_object_get(mine, "batch_input")) ? json_number_value(v) : L->price.input / 2;
        L->price.batch_output = (v = json_object_get(mine, "batch_output")) ? json_number_value(v)
                                                                            : L->price.output / 2;
    }
    json_decref(m);
    return st;
}

static void llm_free(llm *L)
{
    if (!L)
        return;
    oai_client_free(&L->api);
    free(L->system);
    llm_template_destroy(&L->tmpl);
    free(L);
}

static sb_status llm_create(const sb_host *host, const sb_opts *o, void **inst, sb_error *err)
{
    *inst = NULL;
    if (host->struct_size < offsetof(sb_host, cache_put) + sizeof host->cache_put)
        return sb_error_set(err, SB_ERR_PLUGIN, NULL,
                            "the llm labeller needs a serbench with plugin ABI 1.1 or newer (a "
                            "response cache in the results store)");
    llm *L = calloc(1, sizeof *L);
    if (!L)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    L->host = host;
    sb_status st = oai_client_init(&L->api, host, o, "/chat/completions", err);
    if (st == SB_OK) {
        L->prompt_path = sb_opts_str(o, "prompt");
        st = llm_template_load(L->prompt_path, &L->tmpl, err);
    }
    if (st == SB_OK && sb_opts_has(o, "system") && sb_opts_has(o, "system_file"))
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(o, "system_file"),
                          "give system (the text) or system_file (a file), not both");
    if (st == SB_OK && sb_opts_has(o, "system")) {
        L->system = strdup(sb_opts_str(o, "system"));
        if (!L->system)
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    if (st == SB_OK && sb_opts_has(o, "system_file"))
        st = read_file(sb_opts_str(o, "system_file"), "system prompt", &L->system, err);
    L->label_names_json = sb_opts_json(o, "label_names");
    L->label_names_where = sb_opts_where(o, "label_names");
    L->before = (int)sb_opts_int(o, "context_before");
    L->after = (int)sb_opts_int(o, "context_after");
    L->temperature = sb_opts_float(o, "temperature");
    L->top_p = sb_opts_float(o, "top_p");
    L->seed = sb_opts_int(o, "seed");
    L->max_tokens = sb_opts_int(o, "max_completion_tokens");
    L->token_param = sb_opts_str(o, "token_param");
    L->api.http.tpm = sb_opts_float(o, "tpm");
    L->api.http.user_agent = "serbench-llm/1";
    L->api.http.answer_kind = "a chat completion";
    const char *rf = sb_opts_str(o, "response_format");
    L->format = !strcmp(rf, "json_object") ? LLM_FMT_JSON_OBJECT
                : !strcmp(rf, "text")      ? LLM_FMT_TEXT
                                           : LLM_FMT_JSON_SCHEMA;
    L->fallback = sb_opts_bool(o, "fallback");
    L->logprobs = sb_opts_bool(o, "logprobs");
    L->top_logprobs = (int)sb_opts_int(o, "top_logprobs");
    L->samples = (int)sb_opts_int(o, "samples");
    L->batch = !strcmp(sb_opts_str(o, "mode"), "batch");
    L->batch_poll_s = sb_opts_float(o, "batch_poll_s");
    L->batch_max_rounds = (int)sb_opts_int(o, "batch_max_rounds");
    if (st == SB_OK)
        st = read_prices(L, o, err);
    if (st != SB_OK) {
        llm_free(L);
        return st;
    }
    *inst = L;
    return SB_OK;
}

static sb_status llm_label(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                           sb_label_sink *sink, sb_error *err)
{
    llm *L = inst;
    if (n_todo == 0)
        return SB_OK;
    sb_status st = oai_client_need_key(&L->api, err);
    if (st != SB_OK)
        return st;
    llm_run r;
    st = llm_run_init(&r, L, corpus, todo, n_todo, sink, err);
    if (st == SB_OK)
        st = oai_client_open(&L->api, L->host, &r.http, err);
    if (st == SB_OK)
        st = L->batch ? llm_run_batch(&r) : llm_run_sync(&r);
    oai_http_destroy(&r.http);
    llm_run_free(&r);
    if (st != SB_OK) { /* every path's message, the batch flow's too: a server may echo a key */
        oai_client_scrub(&L->api, err->msg);
        oai_client_scrub(&L->api, err->where);
    }
    return st;
}

static sb_status llm_plan(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                          char **json, sb_error *err)
{
    llm *L = inst;
    *json = NULL;
    llm_run r;
    sb_status st = llm_run_init(&r, L, corpus, todo, n_todo, NULL, err);
    if (st == SB_OK)
        st = llm_run_plan(&r, json, err);
    llm_run_free(&r);
    return st;
}

static void llm_destroy(void *inst)
{
    llm_free(inst);
}

static const sb_labeller_vtable llm_vtable = {
    .struct_size = sizeof(sb_labeller_vtable),
    .create = llm_create,
    .label = llm_label,
    .destroy = llm_destroy,
    .plan = llm_plan,
};

static const sb_plugin llm_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_LABELLER,
    .name = "llm",
    .version = "1.0.0",
    .summary = "labels from an OpenAI-compatible chat-completions API (OpenAI, vLLM, Ollama, "
               "llama.cpp): prompt templates with dialogue context, schema-checked answers, "
               "logprob confidence, retries, a response cache, cost, Batch API",
    .options = llm_options,
    .vtable = &llm_vtable,
};

SB_PLUGIN_DEFINE(llm_plugin)
