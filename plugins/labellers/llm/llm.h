/* plugins/labellers/llm/llm.h — (internal) the pieces of the llm labeller: prompt templates
 * (prompt.c), the libcurl multi engine with retries and pacing (http.c), answer parsing,
 * validation and logprob confidence (answer.c), the request/label state machine shared by
 * the sync and batch modes (request.c) and the Batch API (batch.c). Nothing here is
 * exported from llm.so; the unit tests compile these files in. */
#ifndef LLM_H
#define LLM_H

#include <serbench/serbench.h>

#include "oai_client.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the label words shown to the model (prompt.c) --------------------------------- */

/* names[k] is the word for class k of the corpus's label space (label_names option, or the
 * class name itself). n == sb_corpus_n_classes. */
typedef struct llm_labels {
    int n;
    char **names;
} llm_labels;

/* Build the words from the corpus classes and the label_names mapping (canonical JSON
 * text, "{}" for none). Errors name `where` (the option's location): a key that is not a
 * class, a value that is not a non-empty string, two classes with the same word. */
sb_status llm_labels_build(const sb_corpus *c, const char *map_json, const char *where,
                           llm_labels *out, sb_error *err);
void llm_labels_free(llm_labels *l);

/* ---- prompt templates (prompt.c) --------------------------------------------------- */

typedef struct llm_template llm_template;

/* Parse template text: `{{name}}` (spaces inside the braces allowed) with the variables
 * utterance, speaker, dialogue, turn, labels, labels_list, context, next_context, split
 * and meta.KEY. An unknown variable or an unclosed `{{` is SB_ERR_CONFIG naming
 * "file:line". `file` labels messages. */
sb_status llm_template_parse(const char *text, const char *file, llm_template **out, sb_error *err);
/* Read and parse a template file. */
sb_status llm_template_load(const char *path, llm_template **out, sb_error *err);
void llm_template_destroy(llm_template **t);
/* Nonzero when the template uses the variable (e.g. "context"). */
int llm_template_uses(const llm_template *t, const char *var);

/* Dialogue order of a corpus: for each utterance, its dialogue's utterances sorted by
 * turn (ties by corpus order), so context windows are O(window). */
typedef struct llm_dialogues llm_dialogues;
sb_status llm_dialogues_build(const sb_corpus *c, llm_dialogues **out, sb_error *err);
void llm_dialogues_destroy(llm_dialogues **d);
/* Corpus indices of up to `before` turns preceding utterance u (oldest first) and up to
 * `after` following it, with transcripts; *n_prev / *n_next set. idx needs before+after
 * slots. */
void llm_dialogues_window(const llm_dialogues *d, const sb_corpus *c, size_t u, int before,
                          int after, size_t *idx, size_t *n_prev, size_t *n_next);

/* Render the user message for utterance u. On success a malloc'ed string; on a per-item
 * problem (no transcript, a meta field missing) NULL with the reason in why[]. */
char *llm_render(const llm_template *t, const sb_corpus *c, const llm_dialogues *d, size_t u,
                 const llm_labels *l, int before, int after, char *why, size_t why_size);

/* ---- answers (answer.c) ------------------------------------------------------------ */

typedef enum llm_format {
    LLM_FMT_JSON_SCHEMA = 0,
    LLM_FMT_JSON_OBJECT = 1,
    LLM_FMT_TEXT = 2
} llm_format;

const char *llm_format_name(llm_format f);

/* The fields of a chat completion that labelling uses; pointers borrow from `root`. */
typedef struct llm_answer {
    json_t *root; /* owned reference */
    const char *id, *model, *system_fingerprint, *finish_reason;
    const char *content; /* choices[0].message.content, or NULL */
    const char *refusal; /* choices[0].message.refusal, or NULL */
    json_t *logprobs;    /* choices[0].logprobs.content (array), or NULL */
    int64_t prompt_tokens, completion_tokens, cached_tokens; /* -1 when absent */
} llm_answer;

/* Parse a response body. Returns 1 and fills *a when it is a chat completion (an object
 * with a non-empty choices array whose first entry has a message object), else 0 with a
 * short description in why[] ("not JSON: ...", "no choices"). */
int llm_answer_parse(const char *body, size_t len, llm_answer *a, char *why, size_t why_size);
/* Same for a parsed object (a reference is taken). */
int llm_answer_from_json(json_t *root, llm_answer *a, char *why, size_t why_size);
void llm_answer_clear(llm_answer *a);

/* Validate an answer text against the label words.
 * json_schema / json_object: the text (whitespace-trimmed) must be a JSON object with a
 * string member "label" whose value, trimmed of surrounding whitespace, equals one of the
 * words exactly (case included: the schema's enum and the re-ask name the exact words);
 * other members are ignored.
 * text: surrounding whitespace, quotes and punctuation are stripped and the rest matched
 * to a word case-insensitively; failing that, the answer must contain exactly one of the
 * words as a whole word (case-insensitive).
 * Returns the class index, or -1 with the reason in why[] ("answer 'comfort' is not one
 * of the 7 labels"). */
int llm_validate(llm_format f, const llm_labels *l, const char *content, char *why,
                 size_t why_size);

/* A distribution over the labels from logprobs.content (the reference's recipe): find the
 * token where the label starts (after `{"label":"` in the JSON modes, the first token in
 * text mode), map that token's top_logprobs to labels by prefix, follow the chosen token
 * while it is shared by several labels, split an unchosen shared token's mass evenly,
 * renormalise over the allowed labels. Returns 1 and fills dist[0..l->n) (sums to 1), or 0
 * when the logprobs do not allow it (absent, no label token, no mass on any label). */
int llm_confidence(llm_format f, const llm_labels *l, const char *content, json_t *logprobs,
                   double *dist);

/* ---- the labeller instance and one label/plan call (llm.c, request.c, batch.c) ------- */

/* USD per 1M tokens for the configured model (prices option). */
typedef struct llm_price {
    int known;
    double input, cached_input, output, batch_input, batch_output;
} llm_price;

typedef struct llm {
    const sb_host *host;
    /* url = base_url + "/chat/completions", model, secrets, engine settings */
    oai_client api;
    llm_template *tmpl;
    const char *prompt_path;
    char *system; /* system prompt text, or NULL */
    int before, after;
    double temperature, top_p;
    int64_t seed;
    int64_t max_tokens;
    const char *token_param; /* "max_completion_tokens" or "max_tokens" */
    llm_format format;       /* as configured */
    int fallback, logprobs, top_logprobs, samples;
    int batch;
    double batch_poll_s;
    int batch_max_rounds;
    llm_price price;
    const char *label_names_json, *label_names_where;
} llm;

struct llm_item;

/* One conversation with the model: a sample of an utterance, possibly re-asked once. */
typedef struct llm_call {
    oai_job job;
    struct llm_item *item;
    int sample;
    int reask;          /* 1 once the first answer was out of the label set */
    char *first_answer; /* that answer, replayed in the re-ask */
    char *first_reason;
    char *body; /* the request body (canonical JSON) for the current step, or NULL */
    llm_format body_fmt;
    char key[SB_HASH_HEX]; /* cache key of body */
    int looked_up;         /* the cache was asked for this body */
    int in_batch;          /* batch mode: waiting for a batch line */
    /* provenance, summed over the call's requests */
    int attempts;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    double cost;
    int all_cached;
    char request_id[128];
    char *model, *finish_reason, *fingerprint;
    /* outcome */
    int state; /* LLM_CALL_* */
    int label;
    double *dist; /* [n labels] or NULL */
    char *raw, *reason;
} llm_call;

enum { LLM_CALL_PENDING = 0, LLM_CALL_OK = 1, LLM_CALL_INVALID = 2, LLM_CALL_FAILED = 3 };

typedef struct llm_item {
    size_t utt;
    char *user; /* the rendered user message */
    int pending;
    llm_call *calls; /* [samples] */
} llm_item;

typedef struct llm_run {
    llm *L;
    const sb_corpus *c;
    llm_labels labels;
    llm_dialogues *dia;
    llm_format fmt;      /* current, after any fallback */
    sb_label_sink *sink; /* NULL when planning */
    oai_http *http;
    llm_item *items;
    size_t n_items;
    int batch_mode;
    int probing; /* sync: one request in flight until the first usable answer */
    sb_error *err;
    sb_status fatal; /* first stage-stopping error (also in *err) */
    size_t n_ok, n_invalid, n_failed, n_cache_hits, n_reasked, n_puts_failed;
} llm_run;

/* request.c: prepare a run over todo (labels, dialogue order, rendered prompts, the
 * format remembered from an earlier fallback). Items that cannot be rendered are failed
 * through the sink (or counted, when planning). */
sb_status llm_run_init(llm_run *r, llm *L, const sb_corpus *c, const size_t *todo, size_t n,
                       sb_label_sink *sink, sb_error *err);
void llm_run_free(llm_run *r);
/* Build call->body and its key for the run's current format, if not current already. */
int llm_call_build(llm_run *r, llm_call *call);
/* Look the current body up in the cache and, on a hit, process the stored answer. Loops
 * through a re-ask whose answer is cached too. Returns 1 when the call is finished (or
 * the item done), 0 when a request is needed for call->body. */
int llm_call_from_cache(llm_run *r, llm_call *call);
/* Process a parsed chat completion for the call's current body. `cached`: it came from
 * the cache (cost 0). `batch`: priced at batch prices. Returns 1 when the call finished,
 * 0 when it needs a re-ask (call->body was reset). */
int llm_call_answer(llm_run *r, llm_call *call, const llm_answer *a, const char *request_id,
                    int attempts, int cached, int batch);
/* Store a successful answer in the cache (before delivering). */
void llm_call_cache_put(llm_run *r, llm_call *call, json_t *response, const char *request_id,
                        int attempts);
/* Finish a call with a failure reason (the item fails: asked again next run). */
void llm_call_fail(llm_run *r, llm_call *call, const char *fmt, ...) SB_PRINTF(3, 4);
/* Record a stage-stopping error for a non-retryable HTTP answer. */
void llm_run_http_error(llm_run *r, const char *what, const oai_result *res);
/* Record a stage-stopping transport failure (oai_result.permanent). */
void llm_run_transport_error(llm_run *r, const char *error);
/* The sync mode: all calls through the HTTP engine. */
sb_status llm_run_sync(llm_run *r);
/* The plan JSON. */
sb_status llm_run_plan(llm_run *r, char **json, sb_error *err);
/* The cost of one answer's usage in USD at sync or batch prices; negative without a
 * price. */
double llm_cost(const llm *L, int64_t prompt, int64_t cached, int64_t completion, int batch);

/* batch.c: the Batch API mode. */
sb_status llm_run_batch(llm_run *r);

#endif
