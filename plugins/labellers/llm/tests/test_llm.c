/* plugins/labellers/llm/tests/test_llm.c — the llm labeller's pure parts: templates and
 * their errors, dialogue context, label words, answer validation and text matching, the
 * logprob confidence on crafted responses, retry delays, Go durations, error bodies, and
 * the request bodies, cache keys and plan through the descriptor. The HTTP paths run
 * against the test server in tests/integration/llm.sh. */
#include "llm.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

const sb_plugin *serbench_plugin_v1(void);

/* ---- fixtures ---------------------------------------------------------------------- */

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sbllm.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    sbi_test_cache_clear();
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
    sbi_test_cache_clear();
}

TestSuite(llm, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A small corpus: one dialogue with turns added out of order, an utterance without text,
 * one without a dialogue. Classes neu, joy, sad, sadness (two words sharing a prefix). */
static sb_corpus *make_corpus(void)
{
    sb_corpus *c = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sb_corpus_create("t", &c, &err), SB_OK);
    const char *cls[] = { "neu", "joy", "sad", "sadness" };
    cr_assert_eq(sb_corpus_set_classes(c, "test-4", cls, 4, &err), SB_OK);
    struct {
        const char *id, *dia;
        int turn;
        const char *spk, *text, *meta;
    } rows[] = {
        { "d1_u2", "d1", 2, "Ross", "We were on a break!", "{\"season\":3,\"show\":\"Friends\"}" },
        { "d1_u0", "d1", 0, "Rachel", "Hi.", NULL },
        { "d1_u1", "d1", 1, "Ross", NULL, NULL }, /* no transcript */
        { "d1_u3", "d1", 3, "Rachel", "Unbelievable.", NULL },
        { "d1_u4", "d1", 4, NULL, "Okay...", NULL },
        { "x", NULL, -1, "Joey", "How you doin'?", NULL },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sb_utt u;
        sb_utt_init(&u);
        u.id = rows[i].id;
        u.dialogue = rows[i].dia;
        u.turn = rows[i].turn;
        u.speaker = rows[i].spk;
        u.text = rows[i].text;
        u.meta = rows[i].meta;
        u.split = "test";
        u.label = 0;
        cr_assert_eq(sb_corpus_add(c, &u, &err), SB_OK, "%s", err.msg);
    }
    return c;
}

static llm_labels words(int n, const char *const *names)
{
    llm_labels l = { n, calloc((size_t)n, sizeof(char *)) };
    for (int i = 0; i < n; i++)
        l.names[i] = strdup(names[i]);
    return l;
}

/* ---- templates --------------------------------------------------------------------- */

Test(llm, template_renders_every_variable)
{
    sb_corpus *c = make_corpus();
    llm_template *t = NULL;
    sb_error err = { 0 };
    cr_assert_eq(llm_template_parse("[{{context}}]\n{{ speaker }} in {{dialogue}}#{{turn}} "
                                    "({{split}}, S{{meta.season}} {{meta.show}}): "
                                    "<<<{{utterance}}>>>\n[{{next_context}}]\nLabels: {{labels}}\n"
                                    "{{labels_list}}",
                                    "p.txt", &t, &err),
                 SB_OK, "%s", err.msg);
    llm_dialogues *d = NULL;
    cr_assert_eq(llm_dialogues_build(c, &d, &err), SB_OK);
    const char *names[] = { "neutral", "joy", "sad", "sadness" };
    llm_labels l = words(4, names);
    char why[300];
    char *s = llm_render(t, c, d, 0, &l, 5, 1, why, sizeof why);
    cr_assert_not_null(s, "%s", why);
    /* Previous turns oldest first, the turn without transcript skipped, the target
     * excluded; one following turn. */
    cr_assert_str_eq(s, "[Rachel: Hi.]\nRoss in d1#2 (test, S3 Friends): <<<We were on a "
                        "break!>>>\n[Rachel: Unbelievable.]\nLabels: neutral, joy, sad, sadness\n"
                        "neutral\njoy\nsad\nsadness");
    free(s);
    llm_labels_free(&l);
    llm_dialogues_destroy(&d);
    llm_template_destroy(&t);
    sb_corpus_destroy(&c);
}

Test(llm, template_errors_name_file_and_line)
{
    llm_template *t = NULL;
    sb_error err = { 0 };
    cr_assert_eq(
        llm_template_parse("line one\n<<<{{utterance}}>>>\nsay {{emotion}}\n", "p.txt", &t, &err),
        SB_ERR_CONFIG);
    cr_assert_str_eq(err.where, "p.txt:3");
    cr_assert_not_null(strstr(err.msg, "unknown template variable '{{emotion}}'"), "%s", err.msg);
    cr_assert_null(t);
    sb_error_clear(&err);
    cr_assert_eq(llm_template_parse("a {{utterance\n}}", "q.txt", &t, &err), SB_ERR_CONFIG);
    cr_assert_str_eq(err.where, "q.txt:1");
    cr_assert_not_null(strstr(err.msg, "not closed"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(llm_template_parse("no target here {{labels}}", "r.txt", &t, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "{{utterance}}"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(llm_template_parse("{{meta.}} {{utterance}}", "s.txt", &t, &err), SB_ERR_CONFIG);
    sb_error_clear(&err);
    cr_assert_eq(llm_template_load("/nonexistent/p.txt", &t, &err), SB_ERR_IO);
    cr_assert_str_eq(err.where, "/nonexistent/p.txt");
}

Test(llm, render_fails_items_it_cannot_render)
{
    sb_corpus *c = make_corpus();
    llm_template *t = NULL;
    sb_error err = { 0 };
    cr_assert_eq(llm_template_parse("{{utterance}} {{meta.season}}", "p", &t, &err), SB_OK);
    const char *names[] = { "a", "b", "c", "d" };
    llm_labels l = words(4, names);
    char why[300];
    cr_assert_null(llm_render(t, c, NULL, 2, &l, 0, 0, why, sizeof why));
    cr_assert_not_null(strstr(why, "no transcript"), "%s", why);
    cr_assert_null(llm_render(t, c, NULL, 1, &l, 0, 0, why, sizeof why));
    cr_assert_not_null(strstr(why, "meta.season"), "%s", why);
    llm_template_destroy(&t);
    /* No dialogue, no speaker: "(none)" and "?". */
    cr_assert_eq(llm_template_parse("{{context}}|{{speaker}}|{{utterance}}", "p", &t, &err), SB_OK);
    llm_dialogues *d = NULL;
    cr_assert_eq(llm_dialogues_build(c, &d, &err), SB_OK);
    char *s = llm_render(t, c, d, 5, &l, 3, 0, why, sizeof why);
    cr_assert_str_eq(s, "(none)|Joey|How you doin'?");
    free(s);
    s = llm_render(t, c, d, 3, &l, 1, 0, why, sizeof why);
    cr_assert_str_eq(s, "Ross: We were on a break!|Rachel|Unbelievable.");
    free(s);
    s = llm_render(t, c, d, 1, &l, 3, 0, why, sizeof why); /* the first turn */
    cr_assert_str_eq(s, "(none)|Rachel|Hi.");
    free(s);
    s = llm_render(t, c, d, 4, &l, 2, 0, why, sizeof why);
    cr_assert_str_eq(s, "Ross: We were on a break!\nRachel: Unbelievable.|?|Okay...");
    free(s);
    llm_dialogues_destroy(&d);
    llm_template_destroy(&t);
    llm_labels_free(&l);
    sb_corpus_destroy(&c);
}

Test(llm, label_words_from_the_mapping)
{
    sb_corpus *c = make_corpus();
    llm_labels l;
    sb_error err = { 0 };
    cr_assert_eq(llm_labels_build(c, "{\"neu\":\"neutral\"}", "x.yaml:3:5", &l, &err), SB_OK);
    cr_assert_str_eq(l.names[0], "neutral");
    cr_assert_str_eq(l.names[3], "sadness");
    llm_labels_free(&l);
    cr_assert_eq(llm_labels_build(c, "{\"happy\":\"joy\"}", "x.yaml:3:5", &l, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "'happy' is not a class"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(llm_labels_build(c, "{\"neu\":\"Joy\"}", "x.yaml:3:5", &l, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "both be shown"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(llm_labels_build(c, "{\"neu\":\"a, b\"}", "x.yaml:3:5", &l, &err), SB_ERR_CONFIG);
    sb_corpus_destroy(&c);
}

/* ---- validation -------------------------------------------------------------------- */

static const char *const meld7[] = { "neutral", "surprise", "fear", "sadness",
                                     "joy",     "disgust",  "anger" };

Test(llm, validate_json_answers)
{
    llm_labels l = words(7, meld7);
    char why[300];
    cr_assert_eq(llm_validate(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"joy\"}", why, sizeof why), 4);
    cr_assert_eq(llm_validate(LLM_FMT_JSON_OBJECT, &l, "  {\"label\": \" anger \", \"why\": 1}\n",
                              why, sizeof why),
                 6);
    /* Case must match in the JSON modes (the enum and the re-ask name the exact words). */
    cr_assert_eq(llm_validate(LLM_FMT_JSON_OBJECT, &l, "{\"label\":\"Joy\"}", why, sizeof why), -1);
    cr_assert_str_eq(why, "answer 'Joy' is not one of the 7 labels");
    cr_assert_eq(llm_validate(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"comfort\"}", why, sizeof why),
                 -1);
    cr_assert_str_eq(why, "answer 'comfort' is not one of the 7 labels");
    cr_assert_eq(llm_validate(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"jo", why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "not a JSON object"), "%s", why);
    cr_assert_eq(llm_validate(LLM_FMT_JSON_OBJECT, &l, "joy", why, sizeof why), -1);
    cr_assert_eq(llm_validate(LLM_FMT_JSON_OBJECT, &l, "{\"label\":3}", why, sizeof why), -1);
    cr_assert_eq(llm_validate(LLM_FMT_JSON_OBJECT, &l, NULL, why, sizeof why), -1);
    llm_labels_free(&l);
}

Test(llm, validate_text_answers)
{
    llm_labels l = words(7, meld7);
    char why[300];
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "joy", why, sizeof why), 4);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, " \"Joy.\"\n", why, sizeof why), 4);
    cr_assert_eq(
        llm_validate(LLM_FMT_TEXT, &l, "\xe2\x80\x9cSURPRISE\xe2\x80\x9d!", why, sizeof why), 1);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "The emotion is anger.", why, sizeof why), 6);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "Label: **Fear**", why, sizeof why), 2);
    /* Not a whole word: "joyful" is not "joy". */
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "joyful", why, sizeof why), -1);
    cr_assert_str_eq(why, "answer 'joyful' is not one of the 7 labels");
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "joy or anger", why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "names 2 labels (joy, anger)"), "%s", why);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "comfort", why, sizeof why), -1);
    llm_labels_free(&l);
    /* A label inside a longer label's words does not count twice. */
    const char *sent[] = { "positive", "very positive", "negative" };
    l = words(3, sent);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "I'd say very positive", why, sizeof why), 1);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "Very Positive.", why, sizeof why), 1);
    cr_assert_eq(llm_validate(LLM_FMT_TEXT, &l, "positive", why, sizeof why), 0);
    llm_labels_free(&l);
}

/* ---- confidence -------------------------------------------------------------------- */

/* A logprobs.content list: tokens given as "text|logprob" with alternatives after '/',
 * e.g. "{\"|0", "label|0", "\":\"|0", "joy|-0.2/sad:-2/ang:-3", "\"}|0". */
static json_t *lp(const char *const *toks, size_t n, int with_bytes)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", toks[i]);
        char *alts = strchr(buf, '/');
        if (alts)
            *alts++ = 0;
        char *bar = strrchr(buf, '|');
        *bar = 0;
        json_t *t = json_object();
        json_object_set_new(t, "token", json_string(buf));
        json_object_set_new(t, "logprob", json_real(atof(bar + 1)));
        if (with_bytes) {
            json_t *b = json_array();
            for (const char *p = buf; *p; p++)
                json_array_append_new(b, json_integer((unsigned char)*p));
            json_object_set_new(t, "bytes", b);
        }
        json_t *top = json_array();
        json_t *self = json_pack("{s:s, s:f}", "token", buf, "logprob", atof(bar + 1));
        json_array_append_new(top, self);
        for (char *s = alts; s && *s;) {
            char *next = strchr(s, '/');
            if (next)
                *next++ = 0;
            char *colon = strrchr(s, ':');
            *colon = 0;
            json_array_append_new(top,
                                  json_pack("{s:s, s:f}", "token", s, "logprob", atof(colon + 1)));
            s = next;
        }
        json_object_set_new(t, "top_logprobs", top);
        json_array_append_new(a, t);
    }
    return a;
}

#define NT(a) (sizeof(a) / sizeof((a)[0]))

Test(llm, confidence_from_the_label_token)
{
    llm_labels l = words(7, meld7);
    const char *toks[] = { "{\"|0", "label|0", "\":\"|0",
                           "joy|-0.22314355/neut:-1.897120/ang:-3.5/xyz:-1", "\"}|0" };
    json_t *a = lp(toks, NT(toks), 1);
    double d[7];
    cr_assert(llm_confidence(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"joy\"}", a, d));
    double pj = exp(-0.22314355), pn = exp(-1.897120), pa = exp(-3.5);
    double z = pj + pn + pa; /* "xyz" is no label: renormalised away */
    cr_assert_float_eq(d[4], pj / z, 1e-9);
    cr_assert_float_eq(d[0], pn / z, 1e-9);
    cr_assert_float_eq(d[6], pa / z, 1e-9);
    cr_assert_float_eq(d[1] + d[2] + d[3] + d[5], 0, 1e-12);
    json_decref(a);
    /* Without bytes (token strings only), and a token that carries the opening quote with
     * the label: the quote is matched off the alternatives. */
    const char *toks2[] = { "{\"|0", "label|0", "\":|0", " \"jo|-0.1/ \"ang:-2.4/ \"fe:-9999",
                            "y|0",   "\"}|0" };
    a = lp(toks2, NT(toks2), 0);
    cr_assert(llm_confidence(LLM_FMT_JSON_OBJECT, &l, "{\"label\": \"joy\"}", a, d));
    z = exp(-0.1) + exp(-2.4);
    cr_assert_float_eq(d[4], exp(-0.1) / z, 1e-9);
    cr_assert_float_eq(d[6], exp(-2.4) / z, 1e-9);
    cr_assert_float_eq(d[2], 0, 1e-12); /* -9999: "very unlikely" */
    json_decref(a);
    llm_labels_free(&l);
}

Test(llm, confidence_when_labels_share_the_first_token)
{
    /* "sad" and "sadness" share the token "sad": the chosen path is followed to the next
     * token, whose alternatives split its mass; an unchosen shared token ("neu" for
     * "neutral"/"neutralish") is split evenly. */
    const char *names[] = { "sad", "sadness", "neutral", "neutralish", "joy" };
    llm_labels l = words(5, names);
    const char *toks[] = {
        "{\"|0", "label|0", "\":\"|0", "sad|-0.5/neu:-1.5/joy:-2", "ness|-0.3/\"}:-1.4", "\"}|0"
    };
    json_t *a = lp(toks, NT(toks), 1);
    double d[5];
    cr_assert(llm_confidence(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"sadness\"}", a, d));
    double ps = exp(-0.5), pn = exp(-1.5), pj = exp(-2);
    double z = ps * (exp(-0.3) + exp(-1.4)) + pn + pj;
    cr_assert_float_eq(d[1], ps * exp(-0.3) / z, 1e-9);
    cr_assert_float_eq(d[0], ps * exp(-1.4) / z, 1e-9);
    cr_assert_float_eq(d[2], pn / 2 / z, 1e-9);
    cr_assert_float_eq(d[3], pn / 2 / z, 1e-9);
    cr_assert_float_eq(d[4], pj / z, 1e-9);
    json_decref(a);
    llm_labels_free(&l);
}

Test(llm, confidence_in_text_mode_and_when_it_cannot_be_had)
{
    llm_labels l = words(7, meld7);
    const char *toks[] = { "Joy|-0.4/ Neutral:-1.2/anger:-2.2", ".|0" };
    json_t *a = lp(toks, NT(toks), 1);
    double d[7];
    cr_assert(llm_confidence(LLM_FMT_TEXT, &l, "Joy.", a, d));
    double z = exp(-0.4) + exp(-1.2) + exp(-2.2);
    cr_assert_float_eq(d[4], exp(-0.4) / z, 1e-9);
    cr_assert_float_eq(d[0], exp(-1.2) / z, 1e-9);
    json_decref(a);
    /* Tokens that do not spell the content, no label token, no logprobs at all. */
    const char *bad[] = { "{\"|0", "label|0", "\":\"|0", "sad|-0.1", "\"}|0" };
    a = lp(bad, NT(bad), 1);
    cr_assert_not(llm_confidence(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"joy\"}", a, d));
    cr_assert_not(llm_confidence(LLM_FMT_JSON_SCHEMA, &l, "{\"x\":\"sad\"}", a, d));
    json_decref(a);
    cr_assert_not(llm_confidence(LLM_FMT_JSON_SCHEMA, &l, "{\"label\":\"joy\"}", NULL, d));
    llm_labels_free(&l);
}

/* ---- answers and errors ------------------------------------------------------------ */

Test(llm, parse_chat_completions)
{
    const char *ok =
        "{\"id\":\"chatcmpl-1\",\"model\":\"m\",\"system_fingerprint\":\"fp\","
        "\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"label\\\""
        ":\\\"joy\\\"}\",\"refusal\":null},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    llm_answer a;
    char why[200];
    cr_assert(llm_answer_parse(ok, strlen(ok), &a, why, sizeof why), "%s", why);
    cr_assert_str_eq(a.content, "{\"label\":\"joy\"}");
    cr_assert_null(a.refusal);
    cr_assert_str_eq(a.finish_reason, "stop");
    cr_assert_str_eq(a.system_fingerprint, "fp");
    cr_assert_eq(a.prompt_tokens, 12);
    cr_assert_eq(a.completion_tokens, 5);
    cr_assert_eq(a.cached_tokens, 4);
    llm_answer_clear(&a);
    const char *refusal = "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"No.\"}}]}";
    cr_assert(llm_answer_parse(refusal, strlen(refusal), &a, why, sizeof why));
    cr_assert_null(a.content);
    cr_assert_str_eq(a.refusal, "No.");
    cr_assert_eq(a.prompt_tokens, -1);
    llm_answer_clear(&a);
    cr_assert_not(llm_answer_parse("<html>oops", 10, &a, why, sizeof why));
    cr_assert_not_null(strstr(why, "not JSON"), "%s", why);
    cr_assert_not(llm_answer_parse("{\"choices\":[]}", 14, &a, why, sizeof why));
    cr_assert_not(llm_answer_parse("[1,2]", 5, &a, why, sizeof why));
}

Test(llm, error_bodies_in_both_shapes)
{
    char msg[200], type[64], code[64];
    const char *openai = "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":"
                         "\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}";
    oai_error_parse(openai, strlen(openai), msg, sizeof msg, type, sizeof type, code, sizeof code);
    cr_assert_str_eq(msg, "You exceeded your current quota");
    cr_assert_str_eq(type, "insufficient_quota");
    cr_assert_str_eq(code, "insufficient_quota");
    const char *vllm = "{\"object\":\"error\",\"message\":\"model crashed\",\"type\":"
                       "\"InternalServerError\",\"param\":null,\"code\":500}";
    oai_error_parse(vllm, strlen(vllm), msg, sizeof msg, type, sizeof type, code, sizeof code);
    cr_assert_str_eq(msg, "model crashed");
    cr_assert_str_eq(code, "500");
    const char *plain = "{\"error\":\"model 'x' not found\"}";
    oai_error_parse(plain, strlen(plain), msg, sizeof msg, type, sizeof type, code, sizeof code);
    cr_assert_str_eq(msg, "model 'x' not found");
    oai_error_parse("garbage", 7, msg, sizeof msg, type, sizeof type, code, sizeof code);
    cr_assert_str_eq(msg, "");
}

Test(llm, which_failures_are_retried)
{
    const char *quota = "{\"error\":{\"type\":\"insufficient_quota\",\"code\":null}}";
    const char *rate = "{\"error\":{\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}";
    cr_assert_not(oai_retryable(429, quota, strlen(quota), -1));
    cr_assert(oai_retryable(429, rate, strlen(rate), -1));
    cr_assert(oai_retryable(429, "", 0, -1));
    cr_assert(oai_retryable(408, "", 0, -1));
    cr_assert(oai_retryable(409, "", 0, -1));
    cr_assert(oai_retryable(500, "", 0, -1));
    cr_assert(oai_retryable(503, "", 0, -1));
    for (long s = 400; s <= 404; s++)
        cr_assert_not(oai_retryable(s, "", 0, -1), "%ld", s);
    cr_assert_not(oai_retryable(503, "", 0, 0)); /* x-should-retry: false */
    cr_assert(oai_retryable(400, "", 0, 1));     /* x-should-retry: true */
}

/* ---- retry delays and durations ---------------------------------------------------- */

Test(llm, retry_delay_follows_the_server_then_backs_off)
{
    int64_t now = 1700000000;
    cr_assert_float_eq(oai_retry_delay(0, "1500", NULL, now, 1, 60, 0.5), 1.5, 1e-12);
    cr_assert_float_eq(oai_retry_delay(3, "250", "7", now, 1, 60, 0.5), 0.25, 1e-12);
    cr_assert_float_eq(oai_retry_delay(0, NULL, "7", now, 1, 60, 0.5), 7, 1e-12);
    cr_assert_float_eq(oai_retry_delay(0, NULL, "2.5", now, 1, 60, 0.5), 2.5, 1e-12);
    cr_assert_float_eq(oai_retry_delay(0, NULL, "120", now, 1, 60, 0.5), 120, 1e-12);
    /* An HTTP date 30 s ahead; a date over 120 s ahead, seconds over 120: no retry. */
    char date[64];
    time_t t = (time_t)now + 30;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert_float_eq(oai_retry_delay(0, NULL, date, now, 1, 60, 0.5), 30, 1e-9);
    t = (time_t)now + 600;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert_lt(oai_retry_delay(0, NULL, date, now, 1, 60, 0.5), 0);
    cr_assert_lt(oai_retry_delay(0, NULL, "121", now, 1, 60, 0.5), 0);
    cr_assert_lt(oai_retry_delay(0, "120001", NULL, now, 1, 60, 0.5), 0);
    /* A date in the past, zero, garbage: backoff. Full jitter: u * min(max, base*2^n). */
    t = (time_t)now - 5;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert_float_eq(oai_retry_delay(2, NULL, date, now, 1, 60, 0.5), 2, 1e-12);
    cr_assert_float_eq(oai_retry_delay(2, "0", "soon", now, 1, 60, 0.5), 2, 1e-12);
    for (int n = 0; n < 12; n++) {
        double cap = fmin(60, pow(2, n));
        cr_assert_float_eq(oai_retry_delay(n, NULL, NULL, now, 1, 60, 0), 0, 1e-12);
        double hi = oai_retry_delay(n, NULL, NULL, now, 1, 60, 0.999999);
        cr_assert(hi < cap && hi > cap * 0.9999, "n=%d: %g vs cap %g", n, hi, cap);
    }
    cr_assert_float_eq(oai_retry_delay(1, NULL, NULL, now, 0.01, 60, 0.5), 0.01, 1e-12);
    /* Jittered values spread over [0, cap). */
    sb_rng rng;
    sb_rng_seed(&rng, 1, 2);
    double lo = 1e9, top = 0;
    for (int i = 0; i < 1000; i++) {
        double d = oai_retry_delay(3, NULL, NULL, now, 1, 60, sb_rng_uniform(&rng));
        lo = fmin(lo, d);
        top = fmax(top, d);
    }
    cr_assert(lo >= 0 && lo < 0.1 && top < 8 && top > 7.9, "%g..%g", lo, top);
}

Test(llm, go_durations)
{
    double s;
    cr_assert(oai_go_duration("1s", &s));
    cr_assert_float_eq(s, 1, 1e-12);
    cr_assert(oai_go_duration("6m0s", &s));
    cr_assert_float_eq(s, 360, 1e-12);
    cr_assert(oai_go_duration("20ms", &s));
    cr_assert_float_eq(s, 0.02, 1e-12);
    cr_assert(oai_go_duration("1h2m3.5s", &s));
    cr_assert_float_eq(s, 3723.5, 1e-9);
    cr_assert(oai_go_duration("0", &s));
    cr_assert_float_eq(s, 0, 1e-12);
    cr_assert(oai_go_duration("250us", &s));
    cr_assert_float_eq(s, 250e-6, 1e-15);
    cr_assert(oai_go_duration("1.5m", &s));
    cr_assert_float_eq(s, 90, 1e-12);
    const char *bad[] = { "", "5", "1x", "s", "1s2", "m1s", "1 s", ".s", NULL };
    for (int i = 0; bad[i]; i++)
        cr_assert_not(oai_go_duration(bad[i], &s), "'%s'", bad[i]);
    cr_assert_not(oai_go_duration(NULL, &s));
}

Test(llm, rate_limit_headers_hold_requests_until_the_reset)
{
    cr_assert_float_eq(oai_ratelimit_wait("0", "1s"), 1, 1e-12);
    cr_assert_float_eq(oai_ratelimit_wait("0", "6m0s"), 120, 1e-12); /* capped */
    cr_assert_float_eq(oai_ratelimit_wait("0", "20ms"), 0.02, 1e-12);
    cr_assert_float_eq(oai_ratelimit_wait("3", "1s"), 0, 0);  /* some left */
    cr_assert_float_eq(oai_ratelimit_wait("0", "bad"), 0, 0); /* unparsable reset */
    cr_assert_float_eq(oai_ratelimit_wait(NULL, "1s"), 0, 0);
    cr_assert_float_eq(oai_ratelimit_wait("", "1s"), 0, 0);
}

/* ---- through the descriptor -------------------------------------------------------- */

static sb_status make(const char *yaml, void **inst, sb_opts **o, sb_error *err)
{
    const sb_plugin *p = serbench_plugin_v1();
    *inst = NULL;
    *o = NULL;
    sb_status st = sbi_opts_parse(p->options, yaml, "t.yaml", o, err);
    if (st != SB_OK)
        return st;
    const sb_labeller_vtable *vt = p->vtable;
    return vt->create(sbi_test_host(7, 1), *o, inst, err);
}

static void unmake(void **inst, sb_opts **o)
{
    const sb_labeller_vtable *vt = serbench_plugin_v1()->vtable;
    if (*inst)
        vt->destroy(*inst);
    *inst = NULL;
    sbi_opts_destroy(o);
}

Test(llm, descriptor_and_option_errors)
{
    const sb_plugin *p = serbench_plugin_v1();
    cr_assert_eq(p->kind, SB_KIND_LABELLER);
    cr_assert_str_eq(p->name, "llm");
    const sb_labeller_vtable *vt = p->vtable;
    cr_assert_not_null(vt->plan);
    void *inst;
    sb_opts *o;
    sb_error err = { 0 };
    const char *prompt = write_file("p.txt", "<<<{{utterance}}>>>\nLabels: {{labels}}\n");
    char y[1024];
    /* Required keys. */
    cr_assert_neq(make("model: m\n", &inst, &o, &err), SB_OK);
    cr_assert_not_null(strstr(err.msg, "base_url"), "%s", err.msg);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* A key pasted into api_key_env is refused and not echoed. */
    snprintf(y, sizeof y,
             "base_url: http://127.0.0.1:9/v1\nmodel: m\nprompt: %s\napi_key_env: "
             "sk-SECRETSECRET123",
             prompt);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "NAME of an environment variable"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "SECRET"), "%s", err.msg);
    cr_assert_null(strstr(err.where, "SECRET"), "%s", err.where);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* A base_url that is not http(s). */
    snprintf(y, sizeof y, "base_url: ftp://x\nmodel: m\nprompt: %s", prompt);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* A template with an unknown variable, named with its line. */
    const char *badp = write_file("bad.txt", "ok\n{{utterance}} {{mood}}\n");
    snprintf(y, sizeof y, "base_url: http://h/v1\nmodel: m\nprompt: %s", badp);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.where, "bad.txt:2"), "%s", err.where);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* Prices with a typo. */
    snprintf(y, sizeof y, "base_url: http://h/v1\nmodel: m\nprompt: %s\nprices: {m: {inptu: 1}}",
             prompt);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "prices.m.inptu"), "%s", err.msg);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* ca_file must be readable (TLS verification itself is never turned off). */
    snprintf(y, sizeof y,
             "base_url: https://h/v1\nmodel: m\nprompt: %s\nca_file: /nonexistent/ca.pem", prompt);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "ca_file /nonexistent/ca.pem cannot be read"), "%s",
                       err.msg);
    unmake(&inst, &o);
    sb_error_clear(&err);
    /* system and system_file exclude each other; system_file is read. */
    const char *sysf = write_file("sys.txt", "You label emotions.\n");
    snprintf(y, sizeof y, "base_url: http://h/v1\nmodel: m\nprompt: %s\nsystem: x\nsystem_file: %s",
             prompt, sysf);
    cr_assert_eq(make(y, &inst, &o, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "not both"), "%s", err.msg);
    unmake(&inst, &o);
    sb_error_clear(&err);
    snprintf(y, sizeof y, "base_url: http://h/v1\nmodel: m\nprompt: %s\nsystem_file: %s", prompt,
             sysf);
    cr_assert_eq(make(y, &inst, &o, &err), SB_OK, "%s", err.msg);
    cr_assert_str_eq(((llm *)inst)->system, "You label emotions.");
    unmake(&inst, &o);
    /* An unset key variable: create works (plan can run), label stops and names it. */
    unsetenv("SB_LLM_TEST_UNSET_KEY");
    snprintf(y, sizeof y,
             "base_url: http://h/v1\nmodel: m\nprompt: %s\napi_key_env: SB_LLM_TEST_UNSET_KEY",
             prompt);
    cr_assert_eq(make(y, &inst, &o, &err), SB_OK, "%s", err.msg);
    sb_corpus *c = make_corpus();
    size_t todo[] = { 0 };
    cr_assert_eq(vt->label(inst, c, todo, 1, NULL, &err), SB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "SB_LLM_TEST_UNSET_KEY"), "%s", err.msg);
    unmake(&inst, &o);
    sb_corpus_destroy(&c);
}

Test(llm, request_bodies_keys_and_plan)
{
    setenv("SB_LLM_TEST_KEY", "sk-test-FAKEKEY-0123456789", 1);
    const char *prompt =
        write_file("p.txt", "{{context}}\n<<<{{utterance}}>>>\nLabels: {{labels}}\n");
    char y[1024];
    snprintf(y, sizeof y,
             "base_url: http://127.0.0.1:9/v1/\nmodel: gpt-x\nprompt: %s\napi_key_env: "
             "SB_LLM_TEST_KEY\ncontext_before: 1\nseed: 40\nlabel_names: {neu: neutral}\n"
             "prices: {gpt-x: {input: 2.5, output: 10}}\nsamples: 2\nsystem: Be brief.",
             prompt);
    void *inst;
    sb_opts *o;
    sb_error err = { 0 };
    cr_assert_eq(make(y, &inst, &o, &err), SB_OK, "%s", err.msg);
    llm *L = inst;
    sb_corpus *c = make_corpus();
    size_t todo[] = { 0, 2, 3 }; /* 2 has no transcript */
    llm_run r;
    cr_assert_eq(llm_run_init(&r, L, c, todo, 3, NULL, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(r.n_items, 2);
    cr_assert_eq(r.n_failed, 1);
    llm_call *c0 = &r.items[0].calls[0], *c1 = &r.items[0].calls[1];
    cr_assert(llm_call_build(&r, c0));
    cr_assert(llm_call_build(&r, c1));
    json_t *b = json_loads(c0->body, 0, NULL);
    cr_assert_not_null(b);
    /* Sampling fields always sent; seed + sample; the schema's enum; no key anywhere. */
    cr_assert(json_is_real(json_object_get(b, "temperature")));
    cr_assert_float_eq(json_real_value(json_object_get(b, "temperature")), 0, 0);
    cr_assert_float_eq(json_real_value(json_object_get(b, "top_p")), 1, 0);
    cr_assert_eq(json_integer_value(json_object_get(b, "seed")), 40);
    cr_assert_eq(json_integer_value(json_object_get(b, "max_completion_tokens")), 20);
    cr_assert(json_is_true(json_object_get(b, "logprobs")));
    cr_assert_eq(json_integer_value(json_object_get(b, "top_logprobs")), 10);
    json_t *rf = json_object_get(b, "response_format");
    cr_assert_str_eq(json_string_value(json_object_get(rf, "type")), "json_schema");
    json_t *js = json_object_get(rf, "json_schema");
    cr_assert_str_eq(json_string_value(json_object_get(js, "name")), "label");
    cr_assert(json_is_true(json_object_get(js, "strict")));
    json_t *schema = json_object_get(js, "schema");
    cr_assert(json_is_false(json_object_get(schema, "additionalProperties")));
    json_t *en =
        json_object_get(json_object_get(json_object_get(schema, "properties"), "label"), "enum");
    cr_assert_eq(json_array_size(en), 4);
    cr_assert_str_eq(json_string_value(json_array_get(en, 0)), "neutral");
    json_t *msgs = json_object_get(b, "messages");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                     "Rachel: Hi.\n<<<We were on a break!>>>\nLabels: neutral, joy, sad, "
                     "sadness\n");
    const char *sys = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
    cr_assert_eq(strncmp(sys, "Be brief.\n\nReply with a JSON object", 35), 0, "%s", sys);
    json_decref(b);
    cr_assert_null(strstr(c0->body, "FAKEKEY"));
    b = json_loads(c1->body, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(b, "seed")), 41);
    json_decref(b);
    /* Canonical: sorted keys, so the text (and key) is stable; the key depends on the body
     * and the base_url. */
    cr_assert_lt(strstr(c0->body, "\"logprobs\"") - c0->body,
                 strstr(c0->body, "\"messages\"") - c0->body);
    cr_assert_str_neq(c0->key, c1->key);
    char k0[SB_HASH_HEX];
    memcpy(k0, c0->key, sizeof k0);
    r.fmt = LLM_FMT_TEXT;
    cr_assert(llm_call_build(&r, c0));
    cr_assert_str_neq(c0->key, k0);
    cr_assert_null(strstr(c0->body, "response_format"));
    r.fmt = LLM_FMT_JSON_SCHEMA;
    cr_assert(llm_call_build(&r, c0));
    cr_assert_str_eq(c0->key, k0);
    /* The plan: 4 requests (2 items x 2 samples), then one of them cached. */
    char *plan = NULL;
    cr_assert_eq(llm_run_plan(&r, &plan, &err), SB_OK);
    json_t *p = json_loads(plan, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(p, "requests")), 4, "%s", plan);
    cr_assert_eq(json_integer_value(json_object_get(p, "cached")), 0);
    cr_assert_float_eq(json_number_value(json_object_get(p, "completion_tokens")), 80, 1e-9);
    double pt = json_number_value(json_object_get(p, "prompt_tokens"));
    cr_assert_gt(pt, 40);
    cr_assert_float_eq(json_number_value(json_object_get(p, "cost_usd")),
                       (pt * 2.5 + 80 * 10) / 1e6, 1e-9);
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(p, "example")), "\n  \"messages\""));
    cr_assert_null(strstr(plan, "FAKEKEY"));
    json_decref(p);
    free(plan);
    cr_assert_eq(sbi_test_cache_put(NULL, c0->key, "{}", 2, &err), SB_OK);
    cr_assert_eq(llm_run_plan(&r, &plan, &err), SB_OK);
    p = json_loads(plan, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(p, "requests")), 3, "%s", plan);
    cr_assert_eq(json_integer_value(json_object_get(p, "cached")), 1);
    json_decref(p);
    free(plan);
    llm_run_free(&r);
    unmake(&inst, &o);
    sb_corpus_destroy(&c);
}

Test(llm, cost_from_usage)
{
    llm L = { 0 };
    cr_assert_lt(llm_cost(&L, 1000, 0, 10, 0), 0); /* no price: unknown */
    L.price = (llm_price){ 1, 2.5, 1.25, 10, 1.25, 5 };
    cr_assert_float_eq(llm_cost(&L, 1000, 200, 10, 0), (800 * 2.5 + 200 * 1.25 + 10 * 10) / 1e6,
                       1e-15);
    cr_assert_float_eq(llm_cost(&L, 1000, 0, 10, 1), (1000 * 1.25 + 10 * 5) / 1e6, 1e-15);
}

Test(llm, shipped_prompts_parse_and_follow_the_conventions)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    const char *names[] = { "meld7-context.txt", "merits-sentiment.txt", "iemocap4.txt" };
    for (size_t i = 0; i < NT(names); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/configs/prompts/%s", root, names[i]);
        llm_template *t = NULL;
        sb_error err = { 0 };
        cr_assert_eq(llm_template_load(path, &t, &err), SB_OK, "%s: %s", path, err.msg);
        cr_assert(llm_template_uses(t, "labels"), "%s", path);
        FILE *f = fopen(path, "r");
        char text[4096] = "";
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        /* The test server's conventions: the target quoted as <<<...>>>, a Labels: line. */
        cr_assert_not_null(strstr(text, "<<<{{utterance}}>>>"), "%s", path);
        cr_assert_not_null(strstr(text, "\nLabels: {{labels}}"), "%s", path);
        llm_template_destroy(&t);
    }
}
