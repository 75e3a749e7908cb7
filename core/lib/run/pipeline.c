/* core/lib/run/pipeline.c — plan execution (pipeline.h): the stages, their caches in
 * memory for one invocation, the plugin host, and the per-run train/predict/score. */
#include "pipeline.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include "audio/audio_native.h"
#include "featstore.h"
#include "sb_build_config.h"
#include "util.h"

#include "stage.h"

static void log_info(ctx *c, const char *fmt, ...) SB_PRINTF(2, 3);
static void log_info(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbi_ui_logv(c->ui, SB_LOG_INFO, NULL, fmt, ap);
    va_end(ap);
}

/* ---- corpora ----------------------------------------------------------------------- */

sb_status sbi_load_corpus(const sbi_instance *in, const sbi_ui *ui, const char *cache_root,
                          sb_corpus **out, sb_error *err)
{
    *out = NULL;
    sb_host h;
    host_priv hp;
    char cache[4096];
    sb_status st = sbi_host_init(&h, &hp, ui, NULL, cache_root, in, 0, 1, cache, sizeof cache, err);
    if (st != SB_OK)
        return st;
    sb_corpus *c = NULL;
    st = sb_corpus_create(in->name, &c, err);
    if (st != SB_OK)
        return st;
    const sb_dataset_vtable *vt = in->plugin->desc->vtable;
    sb_error e = { 0 };
    st = vt->load(&h, in->opts, c, &e);
    if (st != SB_OK) {
        if (!e.code)
            sb_error_set(&e, st, in->name, "dataset plugin %s failed without a message",
                         in->plugin->desc->name);
        if (err)
            *err = e;
        sb_corpus_destroy(&c);
        return st;
    }
    if (sb_corpus_n_classes(c) < 1 && sb_corpus_size(c) > 0) {
        sb_corpus_destroy(&c);
        return sb_error_set(err, SB_ERR_PLUGIN, in->name,
                            "dataset plugin %s declared no label space", in->plugin->desc->name);
    }
    *out = c;
    return SB_OK;
}

static void hash_utt(sb_hasher *h, const sb_utt *u)
{
    char num[128];
    sb_hasher_str(h, u->id);
    sb_hasher_str(h, u->dialogue);
    sb_hasher_str(h, u->speaker);
    sb_hasher_str(h, u->audio);
    sb_hasher_str(h, u->text);
    sb_hasher_str(h, u->split);
    sb_hasher_str(h, u->meta);
    snprintf(num, sizeof num, "%d|%.17g|%.17g|%d|%d|%.17g", (int)u->turn, u->start, u->end,
             (int)u->channel, (int)u->label, u->value);
    sb_hasher_str(h, num);
}

static sb_status get_corpus(ctx *c, const sbi_instance *in, corpus_entry **out, sb_error *err)
{
    for (size_t i = 0; i < c->n_corpora; i++)
        if (strcmp(c->corpora[i]->inst_key, in->key) == 0) {
            *out = c->corpora[i];
            return SB_OK;
        }
    double t0 = sbi_now();
    sb_corpus *corp = NULL;
    sb_status st = sbi_load_corpus(in, c->ui, c->store->root, &corp, err);
    if (st != SB_OK)
        return st;
    corpus_entry **ne = realloc(c->corpora, (c->n_corpora + 1) * sizeof *ne);
    corpus_entry *e = ne ? calloc(1, sizeof *e) : NULL;
    if (!ne || !e) {
        free(e);
        if (ne)
            c->corpora = ne;
        sb_corpus_destroy(&corp);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    c->corpora = ne;
    snprintf(e->inst_key, sizeof e->inst_key, "%s", in->key);
    e->c = corp;
    e->skip_missing_audio = in->skip_missing_audio;
    size_t n = sb_corpus_size(corp);
    e->excluded = calloc(n + 1, 1);
    e->item_keys = calloc(n + 1, sizeof *e->item_keys);
    e->item_state = calloc(n + 1, 1);
    if (!e->excluded || !e->item_keys || !e->item_state) {
        free(e->excluded);
        free(e->item_keys);
        free(e->item_state);
        free(e);
        sb_corpus_destroy(&corp);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    c->corpora[c->n_corpora++] = e;
    sb_hasher *h = sb_hasher_create();
    char *canon = json_dumps(in->canon, JSON_COMPACT | JSON_SORT_KEYS);
    sb_hasher_str(h, "corpus/1");
    sb_hasher_str(h, canon);
    free(canon);
    sb_hasher_str(h, sb_corpus_label_space(corp));
    for (int k = 0; k < sb_corpus_n_classes(corp); k++)
        sb_hasher_str(h, sb_corpus_class(corp, k));
    for (size_t i = 0; i < n; i++)
        hash_utt(h, sb_corpus_utt(corp, i));
    sb_hasher_hex(h, e->key);
    sb_hasher_destroy(&h);
    size_t nw = sb_corpus_n_warnings(corp);
    for (size_t i = 0; i < nw; i++) {
        const char *id = NULL;
        const char *msg = sb_corpus_warning(corp, i, &id);
        long k = id ? sb_corpus_find(corp, id) : -1;
        if (k >= 0)
            e->excluded[k] = 1;
        if (i < 20)
            sbi_ui_log(c->ui, SB_LOG_WARN, in->name, "utterance %s: %s (left out)", id ? id : "?",
                       msg);
    }
    if (nw > 20)
        sbi_ui_log(c->ui, SB_LOG_WARN, in->name, "... and %zu more problems with single items",
                   nw - 20);
    c->item_failures += nw;
    log_info(c, "corpus %s: %zu utterances, %d classes (%s), loaded in %.2f s", in->name, n,
             sb_corpus_n_classes(corp),
             sb_corpus_label_space(corp) ? sb_corpus_label_space(corp) : "-", sbi_now() - t0);
    *out = e;
    return SB_OK;
}

int sbi_split_matches(const char *wanted, const char *split)
{
    return strcmp(wanted, "all") == 0 || strcmp(wanted, split) == 0;
}

/* Items of corpus e in `split` (or every item for the reserved name "all"), as indices;
 * checks the split is not empty. */
static sb_status split_items(const corpus_entry *e, const char *split, const char *what,
                             size_t **idx, size_t *n, sb_error *err)
{
    size_t total = sb_corpus_size(e->c), k = 0;
    size_t *v = malloc((total + 1) * sizeof *v);
    if (!v)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < total; i++)
        if (sbi_split_matches(split, sb_corpus_utt(e->c, i)->split))
            v[k++] = i;
    if (k == 0) {
        /* Name the splits that exist. */
        sbi_buf b = { 0 };
        for (size_t i = 0; i < total; i++) {
            const char *s = sb_corpus_utt(e->c, i)->split;
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(sb_corpus_utt(e->c, j)->split, s) == 0;
            if (!seen)
                sbi_buf_printf(&b, "%s%s", b.len ? ", " : "", s);
        }
        sb_status st = sb_error_set(err, SB_ERR_CONFIG, what,
                                    "dataset %s has no utterances in split '%s' (its splits: %s)",
                                    sb_corpus_name(e->c), split, b.s ? b.s : "none");
        sbi_buf_free(&b);
        free(v);
        return st;
    }
    *idx = v;
    *n = k;
    return SB_OK;
}

/* ---- features ---------------------------------------------------------------------- */

typedef sb_status (*frames_fn)(void *inst, const float **out, size_t *T, sb_error *err);

/* The vtable's frames call (ABI 1.1), or NULL for a plugin without one or built against 1.0. */
static frames_fn encoder_frames_fn(const sb_encoder_vtable *vt)
{
    return vt->struct_size >= offsetof(sb_encoder_vtable, frames) + sizeof vt->frames ? vt->frames
                                                                                      : NULL;
}

typedef sb_status (*fit_fn)(void *inst, const char *const *texts, size_t n, sb_error *err);
typedef sb_status (*encode_text_fn)(void *inst, const char *const *texts, size_t n, float *out,
                                    sb_error *err);

/* The vtable's fit and encode_text calls (ABI 1.2), or NULL. */
static fit_fn encoder_fit_fn(const sb_encoder_vtable *vt)
{
    return vt->struct_size >= offsetof(sb_encoder_vtable, fit) + sizeof vt->fit ? vt->fit : NULL;
}

static encode_text_fn encoder_text_fn(const sb_encoder_vtable *vt)
{
    return vt->struct_size >= offsetof(sb_encoder_vtable, encode_text) + sizeof vt->encode_text
               ? vt->encode_text
               : NULL;
}

/* Fit a text encoder instance on the fit set, as the ABI says: once, before anything else. */
static sb_status fit_instance(const sbi_instance *in, fit_fn fit, void *inst, const fit_set *fs,
                              sb_error *err)
{
    if (!fs || fs->n == 0)
        return sb_error_set(err, SB_ERR_CONFIG, in->name,
                            "text encoder %s is fitted on the training split's transcripts, and "
                            "%s has none; use a corpus with transcripts (a text column)",
                            in->name, fs ? fs->what : "the training split");
    sb_error e = { 0 };
    sb_status st = fit(inst, (const char *const *)fs->texts, fs->n, &e);
    if (st != SB_OK)
        return sb_error_set(err, st, in->name, "fitting on %zu transcripts of %s: %s%s%s", fs->n,
                            fs->what, e.where, e.where[0] ? ": " : "",
                            e.msg[0] ? e.msg : sb_strerror(st));
    return SB_OK;
}

/* The encoder entry of instance `in` (info, fingerprint and store key), created on first
 * use. A text encoder with fit is fitted on `fit` first, and has one entry per fit set. */
static sb_status get_encoder(ctx *c, const sbi_instance *in, const fit_set *fit, enc_entry **out,
                             sb_error *err)
{
    for (size_t i = 0; i < c->n_encs; i++)
        if (strcmp(c->encs[i]->inst_key, in->key) == 0 &&
            (!c->encs[i]->fitted || (fit && strcmp(c->encs[i]->fit_key, fit->key) == 0))) {
            *out = c->encs[i];
            return SB_OK;
        }
    /* Create once to learn info and fingerprint. */
    const sb_encoder_vtable *vt = in->plugin->desc->vtable;
    sb_host host;
    host_priv hp;
    char cache[4096];
    sb_status st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, in, 0, c->threads,
                                 cache, sizeof cache, err);
    void *inst = NULL;
    sb_error e = { 0 };
    enc_entry ne;
    memset(&ne, 0, sizeof ne);
    ne.info.struct_size = sizeof ne.info;
    char fp[128] = "";
    if (st == SB_OK)
        st = vt->create(&host, in->opts, &inst, &e);
    if (st == SB_OK)
        st = vt->info(inst, &ne.info, &e);
    const int is_text = st == SB_OK && ne.info.input == SB_INPUT_TEXT;
    if (st == SB_OK && ne.info.input != SB_INPUT_AUDIO && !is_text)
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name, "encoder plugin %s reports input=%d",
                          in->plugin->desc->name, ne.info.input);
    if (st == SB_OK && is_text && !encoder_text_fn(vt))
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name,
                          "encoder plugin %s reads text but has no encode_text call",
                          in->plugin->desc->name);
    if (st == SB_OK && !is_text && !vt->encode)
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name,
                          "encoder plugin %s reads audio but has no encode call",
                          in->plugin->desc->name);
    if (st == SB_OK && is_text && encoder_fit_fn(vt)) {
        st = fit_instance(in, encoder_fit_fn(vt), inst, fit, &e);
        if (st == SB_OK) {
            ne.fitted = 1;
            snprintf(ne.fit_key, sizeof ne.fit_key, "%s", fit->key);
            snprintf(ne.fit_what, sizeof ne.fit_what, "%s", fit->what);
        }
    }
    if (st == SB_OK && vt->fingerprint)
        st = vt->fingerprint(inst, fp, &e);
    if (inst)
        vt->destroy(inst);
    if (st == SB_OK && is_text)
        ne.info.sample_rate = 0, ne.info.frame_dim = 0;
    if (st == SB_OK &&
        (ne.info.n_layers < 1 || ne.info.dim < 1 || (!is_text && ne.info.sample_rate < 1000)))
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name,
                          "encoder plugin %s reports n_layers=%d dim=%d sample_rate=%d",
                          in->plugin->desc->name, ne.info.n_layers, ne.info.dim,
                          ne.info.sample_rate);
    if (st == SB_OK &&
        (ne.info.frame_dim < 0 ||
         (ne.info.frame_dim > 0 && ne.info.frame_bits != 16 && ne.info.frame_bits != 32)))
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name,
                          "encoder plugin %s reports frame_dim=%d frame_bits=%d (frame_dim >= 0; "
                          "frame_bits 16 or 32)",
                          in->plugin->desc->name, ne.info.frame_dim, ne.info.frame_bits);
    if (st == SB_OK && ne.info.frame_dim > 0 && !encoder_frames_fn(vt))
        st = sb_error_set(&e, SB_ERR_PLUGIN, in->name,
                          "encoder plugin %s reports frame_dim=%d but has no frames call",
                          in->plugin->desc->name, ne.info.frame_dim);
    if (ne.info.frame_dim == 0)
        ne.info.frame_bits = 0;
    if (st != SB_OK) {
        if (err)
            *err = e;
        return st;
    }
    fp[sizeof fp - 1] = '\0';
    sb_hasher *h = sb_hasher_create();
    char *canon = json_dumps(in->canon, JSON_COMPACT | JSON_SORT_KEYS);
    sb_hasher_str(h, "encoder/1");
    sb_hasher_str(h, canon);
    sb_hasher_str(h, fp);
    if (ne.fitted) /* older keys stay as they were for encoders without fit */
        sb_hasher_str(h, ne.fit_key);
    sb_hasher_hex(h, ne.key);
    sb_hasher_destroy(&h);
    free(canon);
    snprintf(ne.inst_key, sizeof ne.inst_key, "%s", in->key);
    enc_entry **arr = realloc(c->encs, (c->n_encs + 1) * sizeof *arr);
    enc_entry *en = arr ? malloc(sizeof *en) : NULL;
    if (arr)
        c->encs = arr;
    if (!en)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (!arr)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    *en = ne;
    c->encs[c->n_encs++] = en;
    *out = en;
    return SB_OK;
}

static sb_status item_key(ctx *c, corpus_entry *ce, size_t i, int rate, sb_error *err)
{
    if (ce->item_state[i])
        return ce->item_state[i] == 1 ? SB_OK : SB_ERR_AUDIO;
    const sb_utt *u = sb_corpus_utt(ce->c, i);
    if (!u->audio) {
        ce->item_state[i] = 2;
        const char *note = sb_corpus_item_note(ce->c, i);
        return sb_error_set(err, SB_ERR_AUDIO, u->id, "the corpus has no audio file for it%s%s",
                            note ? ": " : "", note ? note : "");
    }
    char fh[SB_HASH_HEX];
    sb_status st = sbi_store_file_hash(c->store, u->audio, fh, err);
    if (st != SB_OK) {
        ce->item_state[i] = 2;
        return st;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "item/1|%s|%.17g|%.17g|%d|%d", fh, u->start, u->end, (int)u->channel,
             rate);
    sb_hash_hex(buf, strlen(buf), ce->item_keys[i]);
    ce->item_state[i] = 1;
    return SB_OK;
}

static void record_item_failure(ctx *c, const char *stage_key, const sb_utt *u, const char *why)
{
    sqlite3_stmt *q = NULL;
    if (sbi_store_prepare(c->store, "INSERT OR REPLACE INTO item_failures VALUES(?1,?2,?3)", &q,
                          NULL) == SB_OK) {
        sqlite3_bind_text(q, 1, stage_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, u->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, why, -1, SQLITE_STATIC);
        sbi_store_step_done(c->store, q, NULL);
        sqlite3_finalize(q);
    }
}

/* Utterances whose audio is missing or unreadable, gathered during one feature stage and
 * then handled by the dataset's on_missing_audio policy. */
typedef struct audio_problems {
    sbi_buf first; /* the first few "id (reason)" for the message */
    size_t n;
    const char *what; /* "no readable audio", or "no transcript" for a text encoder */
} audio_problems;

static void audio_problem(ctx *c, const sbi_instance *enc, const char *enc_key, corpus_entry *ce,
                          size_t i, const char *why, audio_problems *ap)
{
    const sb_utt *u = sb_corpus_utt(ce->c, i);
    if (ap->n < 5)
        sbi_buf_printf(&ap->first, "%s%s (%s)", ap->n ? "; " : "", u->id, why);
    ap->n++;
    if (ce->skip_missing_audio) {
        char reason[700];
        snprintf(reason, sizeof reason, "skipped (on_missing_audio: skip): %s", why);
        if (ap->n <= 20)
            sbi_ui_log(c->ui, SB_LOG_WARN, enc->name, "utterance %s: %s", u->id, reason);
        record_item_failure(c, enc_key, u, reason); /* a skip by policy: not a failure */
        c->skipped++;
    }
}

/* Apply the policy once the stage has stored all it could. */
static sb_status audio_policy(ctx *c, corpus_entry *ce, audio_problems *ap, sb_error *err)
{
    sb_status st = SB_OK;
    if (ap->n && ce->skip_missing_audio && ap->n > 20)
        sbi_ui_log(c->ui, SB_LOG_WARN, sb_corpus_name(ce->c),
                   "... %zu utterances in all left out for missing or unreadable audio", ap->n);
    if (ap->n && !ce->skip_missing_audio)
        st = sb_error_set(err, SB_ERR_AUDIO, sb_corpus_name(ce->c),
                          "%zu utterance%s ha%s %s: %s%s. Fix or extract the "
                          "%s, or set on_missing_audio: skip in datasets.%s to leave them "
                          "out (they are then counted in each run's record)",
                          ap->n, ap->n == 1 ? "" : "s", ap->n == 1 ? "s" : "ve",
                          ap->what ? ap->what : "no readable audio", ap->first.s ? ap->first.s : "",
                          ap->n > 5 ? "; ..." : "",
                          ap->what && strstr(ap->what, "transcript") ? "transcripts" : "audio",
                          sb_corpus_name(ce->c));
    sbi_buf_free(&ap->first);
    ap->n = 0;
    return st;
}

/* A batch of a text encoder failed for one item when err->where says "text N". */
static int text_item_error(const sb_error *e)
{
    return strncmp(e->where, "text ", 5) == 0 && e->where[5] >= '0' && e->where[5] <= '9';
}

/* Encode the transcripts of items todo[0..nt) of fe's corpus with a text encoder, 256 per
 * call, storing each batch before the next. When a call fails for one item (err->where
 * "text N"), the batch is encoded again item by item so a bad transcript costs only itself;
 * any other failure stops the stage (finished batches stay stored). */
static sb_status encode_texts(ctx *c, const sbi_run *r, const sbi_instance *in, const enc_entry *ee,
                              const fit_set *fit, feat_entry *fe, sbi_feat_writer *w,
                              const size_t *todo, size_t nt, const char *desc, sb_error *err)
{
    enum { BATCH = 256 };
    const sb_encoder_vtable *vt = in->plugin->desc->vtable;
    const encode_text_fn enc = encoder_text_fn(vt);
    const size_t width = (size_t)fe->n_layers * (size_t)fe->dim;
    sb_host host;
    host_priv hp;
    char cache[4096];
    sb_error e = { 0 };
    void *inst = NULL;
    float *buf = malloc(BATCH * width * sizeof *buf);
    sb_status st = buf ? SB_OK : sb_error_set(&e, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK)
        st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, in, (uint64_t)r->seed,
                           c->threads, cache, sizeof cache, &e);
    if (st == SB_OK)
        st = vt->create(&host, in->opts, &inst, &e);
    if (st == SB_OK && ee->fitted)
        st = fit_instance(in, encoder_fit_fn(vt), inst, fit, &e);
    sbi_progress prog;
    sbi_progress_start(&prog, c->ui, desc, nt);
    size_t done = 0, failed = 0;
    for (size_t k = 0; st == SB_OK && k < nt; k += BATCH) {
        if (sbi_cancel_requested) {
            st = sb_error_set(&e, SB_ERR_CANCELLED, desc, "interrupted; rerun to resume");
            break;
        }
        size_t nb = nt - k < BATCH ? nt - k : BATCH;
        const char *texts[BATCH];
        for (size_t j = 0; j < nb; j++)
            texts[j] = sb_corpus_utt(fe->ce->c, todo[k + j])->text;
        sb_error be = { 0 };
        sb_status bs = enc(inst, texts, nb, buf, &be);
        if (bs != SB_OK && !text_item_error(&be)) {
            st = sb_error_set(&e, bs, in->name, "%s%s%s", be.where, be.where[0] ? ": " : "",
                              be.msg[0] ? be.msg : sb_strerror(bs));
            break;
        }
        for (size_t j = 0; st == SB_OK && j < nb; j++) {
            size_t i = todo[k + j];
            const sb_utt *u = sb_corpus_utt(fe->ce->c, i);
            float *row = buf + j * width;
            sb_error ie = be;
            sb_status is = bs;
            if (bs != SB_OK) {
                memset(&ie, 0, sizeof ie);
                is = enc(inst, &texts[j], 1, row, &ie);
            }
            for (size_t d = 0; is == SB_OK && d < width; d++)
                if (!isfinite(row[d]))
                    is = sb_error_set(&ie, SB_ERR_PLUGIN, NULL, "encoder produced NaN/Inf");
            if (is != SB_OK) {
                sbi_ui_log(c->ui, SB_LOG_WARN, in->name, "utterance %s: %s (left out)", u->id,
                           ie.msg[0] ? ie.msg : sb_strerror(is));
                record_item_failure(c, ee->key, u, ie.msg);
                c->item_failures++;
                failed++;
                continue;
            }
            memcpy(fe->x + i * width, row, width * sizeof *row);
            st = sbi_feat_writer_add(w, fe->keys[i], row, NULL, 0, &e);
            fe->have[i] = 1;
            done++;
        }
        sbi_progress_update(&prog, done + failed);
    }
    sb_status fst = sbi_feat_writer_flush(w, st == SB_OK ? &e : NULL);
    if (st == SB_OK)
        st = fst;
    if (inst)
        vt->destroy(inst);
    free(buf);
    if (st != SB_OK) {
        if (err)
            *err = e;
        return st;
    }
    char summary[200];
    snprintf(summary, sizeof summary, "%zu transcripts encoded, %zu failed", done, failed);
    sbi_progress_finish(&prog, summary);
    return SB_OK;
}

/* Ensure features of encoder `in` (fitted on `fit` when it is a text encoder with fit) for
 * items idx[0..n) of corpus ce; fills a feat_entry. */
static sb_status get_features(ctx *c, const sbi_run *r, const sbi_instance *in, corpus_entry *ce,
                              const size_t *idx, size_t n, const fit_set *fit, feat_entry **out,
                              sb_error *err)
{
    enc_entry *ee = NULL;
    sb_status st = get_encoder(c, in, fit, &ee, err);
    if (st != SB_OK)
        return st;
    const int text = ee->info.input == SB_INPUT_TEXT;
    feat_entry *fe = NULL;
    for (size_t i = 0; i < c->n_feats && !fe; i++)
        if (strcmp(c->feats[i]->enc_key, ee->key) == 0 && c->feats[i]->ce == ce)
            fe = c->feats[i];
    size_t total = sb_corpus_size(ce->c);
    int L = ee->info.n_layers, D = ee->info.dim;
    size_t width = (size_t)L * (size_t)D;
    if (!fe) {
        feat_entry **arr = realloc(c->feats, (c->n_feats + 1) * sizeof *arr);
        if (!arr)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        c->feats = arr;
        fe = calloc(1, sizeof *fe);
        if (!fe)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        snprintf(fe->enc_key, sizeof fe->enc_key, "%s", ee->key);
        fe->ce = ce;
        fe->n_layers = L;
        fe->dim = D;
        fe->modality = ee->info.input;
        if (ee->fitted)
            snprintf(fe->fit_what, sizeof fe->fit_what, "%s", ee->fit_what);
        fe->x = calloc((total ? total : 1) * width, sizeof(float));
        fe->have = calloc(total + 1, 1);
        fe->keys = ce->item_keys;
        if (text) {
            /* a transcript's key is its text: the same words give the same features */
            fe->keys = fe->text_keys = calloc(total + 1, sizeof *fe->text_keys);
            for (size_t i = 0; fe->keys && i < total; i++) {
                const char *t = sb_corpus_utt(ce->c, i)->text;
                char *k = sbi_asprintf("text/1|%s", t ? t : "");
                if (k)
                    sb_hash_hex(k, strlen(k), fe->keys[i]);
                free(k);
            }
        }
        if (!fe->x || !fe->have || !fe->keys) {
            free(fe->x);
            free(fe->have);
            free(fe->text_keys);
            free(fe);
            return sb_error_set(err, SB_ERR_NOMEM, NULL,
                                "out of memory for features of %zu utterances × %zu floats", total,
                                width);
        }
        c->feats[c->n_feats++] = fe;
    }
    *out = fe;
    /* 0. the writer: it first commits what interrupted extractions of this encoder left in
     * their journals, so the read pass below finds those items */
    sbi_feat_writer *w = NULL;
    char *enc_json = json_dumps(in->canon, JSON_COMPACT | JSON_SORT_KEYS);
    const sbi_feat_layout lay = { L, D, ee->info.frame_dim, ee->info.frame_bits };
    st = enc_json ? sbi_feat_writer_create(c->store, ee->key, enc_json, &lay, &w, err)
                  : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    free(enc_json);
    if (st != SB_OK)
        return st;
    const sbi_feat_recovery rcv = sbi_feat_writer_recovery(w);
    if (rcv.journals)
        log_info(c, "features %s: recovered %zu item%s from %zu interrupted extraction%s%s",
                 in->name, rcv.items, rcv.items == 1 ? "" : "s", rcv.journals,
                 rcv.journals == 1 ? "" : "s",
                 rcv.torn ? " (a journal ended in a torn record: the items after it are "
                            "encoded again)"
                          : "");
    /* 1. read what the store has; list what must be computed */
    sbi_feat_reader *rd = NULL;
    st = sbi_feat_reader_create(c->store, ee->key, L, D, &rd, err);
    if (st != SB_OK) {
        sbi_feat_writer_destroy(&w);
        return st;
    }
    audio_problems ap = { .what = text ? "no transcript" : "no readable audio" };
    size_t *todo = malloc((n + 1) * sizeof *todo), nt = 0, cached = 0;
    if (!todo) {
        sbi_feat_reader_destroy(&rd);
        sbi_feat_writer_destroy(&w);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        if (fe->have[i] || ce->excluded[i] ||
            !sbi_item_in_shard(sb_corpus_utt(ce->c, i)->id, c->o->items_i, c->o->items_n))
            continue;
        sb_error e = { 0 };
        if (text && !sb_corpus_utt(ce->c, i)->text) {
            audio_problem(c, in, ee->key, ce, i, "the corpus has no transcript for it", &ap);
            continue;
        }
        if (!text && item_key(c, ce, i, ee->info.sample_rate, &e) != SB_OK) {
            if (ce->item_state[i] == 2 && e.code) {
                char why[2200];
                snprintf(why, sizeof why, "%s%s%s",
                         strcmp(e.where, sb_corpus_utt(ce->c, i)->id) ? e.where : "",
                         strcmp(e.where, sb_corpus_utt(ce->c, i)->id) && e.where[0] ? ": " : "",
                         e.msg);
                audio_problem(c, in, ee->key, ce, i, why, &ap);
            }
            continue;
        }
        sb_error e2 = { 0 };
        st = sbi_feat_read(rd, fe->keys[i], fe->x + i * width, &e2);
        if (st == SB_OK) {
            fe->have[i] = 1;
            cached++;
        } else if (st == SB_ERR_NOT_FOUND) {
            todo[nt++] = i;
        } else {
            sbi_feat_reader_destroy(&rd);
            sbi_feat_writer_destroy(&w);
            free(todo);
            sbi_buf_free(&ap.first);
            if (err)
                *err = e2;
            return st;
        }
    }
    sbi_feat_reader_destroy(&rd);
    if (nt == 0) {
        sbi_feat_writer_destroy(&w);
        free(todo);
        return audio_policy(c, ce, &ap, err);
    }
    /* 2. encode the rest, chunk by chunk */
    char desc[256];
    snprintf(desc, sizeof desc, "features %s on %s", in->name, sb_corpus_name(ce->c));
    log_info(c, "%s: %zu stored, %zu to compute", desc, cached, nt);
    if (text) {
        st = encode_texts(c, r, in, ee, fit, fe, w, todo, nt, desc, err);
        sbi_feat_writer_destroy(&w);
        free(todo);
        if (st != SB_OK) {
            sbi_buf_free(&ap.first);
            return st;
        }
        return audio_policy(c, ce, &ap, err);
    }
    const sb_encoder_vtable *vt = in->plugin->desc->vtable;
    sb_host host;
    host_priv hp;
    char cache[4096];
    sb_error e = { 0 };
    st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, in, (uint64_t)r->seed,
                       c->threads, cache, sizeof cache, &e);
    void *inst = NULL;
    if (st == SB_OK)
        st = vt->create(&host, in->opts, &inst, &e);
    const frames_fn frames = ee->info.frame_dim > 0 ? encoder_frames_fn(vt) : NULL;
    const size_t frame_row = (size_t)L * (size_t)ee->info.frame_dim;
    size_t f16_overflow = 0; /* items with a frame value beyond F16's range */
    sbi_progress prog;
    sbi_progress_start(&prog, c->ui, desc, nt);
    size_t done = 0, failed = 0;
    double audio_s = 0;
    int rates[8][2] = { { 0 } }; /* native rates met other than the encoder's: (Hz, files) */
    size_t n_resampled = 0, n_downmixed = 0;
    for (size_t k = 0; st == SB_OK && k < nt; k++) {
        if (sbi_cancel_requested) {
            st = sb_error_set(&e, SB_ERR_CANCELLED, desc, "interrupted; rerun to resume");
            break;
        }
        size_t i = todo[k];
        const sb_utt *u = sb_corpus_utt(ce->c, i);
        float *audio = NULL;
        size_t ns = 0;
        sb_error ae = { 0 };
        int nat_rate = 0, nat_ch = 0;
        if (sbi_audio_load_native(u->audio, u->start, u->end, u->channel, ee->info.sample_rate,
                                  &audio, &ns, &nat_rate, &nat_ch, &ae) != SB_OK) {
            char why[2100];
            snprintf(why, sizeof why, "%s%s%s", ae.where, ae.where[0] ? ": " : "", ae.msg);
            audio_problem(c, in, ee->key, ce, i, why, &ap);
            failed++;
            continue;
        }
        audio_s += (double)ns / ee->info.sample_rate;
        if (nat_rate != ee->info.sample_rate) {
            int slot = 0;
            while (slot < 7 && rates[slot][0] && rates[slot][0] != nat_rate)
                slot++;
            rates[slot][0] = nat_rate;
            rates[slot][1]++;
            n_resampled++;
        }
        if (nat_ch > 1 && u->channel < 0)
            n_downmixed++;
        sb_error ee2 = { 0 };
        sb_status es = vt->encode(inst, audio, ns, fe->x + i * width, &ee2);
        sb_free(audio);
        if (es != SB_OK) {
            sbi_ui_log(c->ui, SB_LOG_WARN, in->name, "utterance %s: %s (left out)", u->id,
                       ee2.msg[0] ? ee2.msg : sb_strerror(es));
            record_item_failure(c, ee->key, u, ee2.msg);
            c->item_failures++;
            failed++;
            continue;
        }
        int finite = 1;
        for (size_t j = 0; j < width && finite; j++)
            finite = isfinite(fe->x[i * width + j]);
        if (!finite) {
            sbi_ui_log(c->ui, SB_LOG_WARN, in->name,
                       "utterance %s: encoder produced NaN/Inf (left out)", u->id);
            record_item_failure(c, ee->key, u, "encoder produced NaN/Inf");
            c->item_failures++;
            failed++;
            continue;
        }
        const float *fr = NULL;
        size_t T = 0;
        if (frames) {
            sb_error fe2 = { 0 };
            sb_status fs = frames(inst, &fr, &T, &fe2);
            if (fs == SB_OK && (!fr || T == 0 || T > ns))
                fs = sb_error_set(&fe2, SB_ERR_PLUGIN, NULL,
                                  "the frames call returned %zu frames for %zu samples", T, ns);
            for (size_t j = 0; fs == SB_OK && j < T * frame_row; j++)
                if (!isfinite(fr[j]))
                    fs = sb_error_set(&fe2, SB_ERR_PLUGIN, NULL, "encoder produced NaN/Inf frames");
            if (fs != SB_OK) {
                sbi_ui_log(c->ui, SB_LOG_WARN, in->name, "utterance %s: %s (left out)", u->id,
                           fe2.msg[0] ? fe2.msg : sb_strerror(fs));
                record_item_failure(c, ee->key, u, fe2.msg);
                c->item_failures++;
                failed++;
                continue;
            }
            if (ee->info.frame_bits == 16) {
                size_t j = 0;
                while (j < T * frame_row && fabsf(fr[j]) < 65520.0f)
                    j++;
                f16_overflow += j < T * frame_row;
            }
        }
        st = sbi_feat_writer_add(w, ce->item_keys[i], fe->x + i * width, fr, T, &e);
        fe->have[i] = 1;
        done++;
        sbi_progress_update(&prog, done + failed);
    }
    sb_status fst = w ? sbi_feat_writer_flush(w, st == SB_OK ? &e : NULL) : SB_OK;
    if (st == SB_OK)
        st = fst;
    sbi_feat_writer_destroy(&w);
    if (inst)
        vt->destroy(inst);
    free(todo);
    if (st != SB_OK) {
        sbi_buf_free(&ap.first);
        if (err)
            *err = e;
        return st;
    }
    char summary[200];
    double el = sbi_now() - prog.t0;
    snprintf(summary, sizeof summary, "%zu encoded, %zu failed, %.1f s of audio (%.0f× real time)",
             done, failed, audio_s, el > 0 ? audio_s / el : 0.0);
    sbi_progress_finish(&prog, summary);
    if (f16_overflow)
        sbi_ui_log(c->ui, SB_LOG_WARN, in->name,
                   "%zu utterance%s ha%s frame values beyond float16's range (|x| >= 65520), "
                   "stored as +-Inf; use frames: f32 for this encoder",
                   f16_overflow, f16_overflow == 1 ? "" : "s", f16_overflow == 1 ? "s" : "ve");
    if (n_resampled || n_downmixed) {
        sbi_buf b = { 0 };
        for (int k = 0; k < 8 && rates[k][0]; k++)
            sbi_buf_printf(&b, "%s%d Hz: %d", k ? ", " : "", rates[k][0], rates[k][1]);
        sbi_ui_log(c->ui, SB_LOG_INFO, in->name,
                   "note: resampled %zu file%s to %d Hz (%s); averaged the channels of %zu "
                   "multi-channel file%s",
                   n_resampled, n_resampled == 1 ? "" : "s", ee->info.sample_rate, b.s ? b.s : "-",
                   n_downmixed, n_downmixed == 1 ? "" : "s");
        sbi_buf_free(&b);
    }
    return audio_policy(c, ce, &ap, err);
}

/* ---- one run ----------------------------------------------------------------------- */

/* A test set scored in another label space than the training corpus's, through a declared
 * label map. PRED: the map goes train → test classes; a model's probability of test class t
 * is the sum over the train classes mapped to t, and test items whose class has no preimage
 * are dropped. GOLD: the map goes test → train classes; gold labels are mapped and items
 * whose class is not mapped are dropped. IDENTITY: same space. */
typedef enum { MAP_IDENTITY = 0, MAP_PRED, MAP_GOLD } map_mode;
struct test_map {
    map_mode mode;
    int *to;     /* PRED: [K_train] → test class or -1; GOLD: [K_test] → train class or -1 */
    int k_score; /* classes of the scoring space */
    const sb_corpus *space; /* the corpus whose label space scores are in */
};

typedef struct run_inputs {
    corpus_entry *ce_train, *ce_dev;
    labels_entry *le_train, *le_dev;
    size_t *idx_train, *idx_dev;
    size_t n_train, n_dev;
    corpus_entry **ce_test;
    labels_entry **le_test;
    size_t **idx_test;
    size_t *n_test;
    /* Features: fe[e * n_slots + s] for encoder e (experiment.encoder order) and slot s:
     * 0 train, 1 dev, 2 + t test set t. */
    size_t n_enc, n_slots;
    feat_entry **fe;
    fit_set fit;           /* the training split's transcripts, for text encoders with fit */
    struct test_map *tmap; /* [n_tests] how each test set's labels meet the training space,
                              then [n_tests] the dev split's (identity, or a GOLD map) */
    char *init_path;       /* experiment.init.from resolved to a file, or NULL */
    char init_hash[SB_HASH_HEX];
    char inputs_key[SB_HASH_HEX];
} run_inputs;

static feat_entry *ri_fe(const run_inputs *ri, size_t e, size_t slot)
{
    return ri->fe ? ri->fe[e * ri->n_slots + slot] : NULL;
}

enum { MAX_INPUTS = 8 };

typedef struct split_data {
    sb_head_data hd;
    sb_head_input inputs[MAX_INPUTS];
    size_t *idx; /* corpus indices */
    float *x[MAX_INPUTS];
    int32_t *y;
    double *value;
    const char **ids, **dlg, **spk;
    int32_t *turn;
    size_t n_target; /* rows with a target */
    size_t missing;  /* rows with a target left out for want of features */
} split_data;

static void split_data_free(split_data *s)
{
    free(s->idx);
    for (int k = 0; k < MAX_INPUTS; k++)
        free(s->x[k]);
    free(s->y);
    free(s->value);
    free(s->ids);
    free(s->dlg);
    free(s->spk);
    free(s->turn);
    memset(s, 0, sizeof *s);
}

/* The rows of a split a head sees (sb_head_data): every item with features from all of the
 * run's encoders, in corpus order; an item's target is its label (classification) or its
 * corpus value (regression), and items without one stay as dialogue context. */
/* ymap: NULL, or [classes of le's corpus] -> training class or -1 (a dev split in another
 * label space; a row whose class has no counterpart stays as context, without a target). */
static sb_status gather(const sbi_run *r, const run_inputs *ri, size_t slot, const labels_entry *le,
                        const int *ymap, const size_t *idx, size_t n, int n_classes,
                        split_data *out, sb_error *err)
{
    memset(out, 0, sizeof *out);
    const int regression = r->regression;
    size_t ne = ri->n_enc;
    int ok = 1;
    for (size_t e = 0; e < ne; e++) {
        const feat_entry *fe = ri_fe(ri, e, slot);
        out->x[e] = malloc((n + 1) * (size_t)fe->n_layers * (size_t)fe->dim * sizeof(float));
        ok &= out->x[e] != NULL;
    }
    out->idx = malloc((n + 1) * sizeof *out->idx);
    out->y = malloc((n + 1) * sizeof *out->y);
    out->value = malloc((n + 1) * sizeof *out->value);
    out->ids = malloc((n + 1) * sizeof *out->ids);
    out->dlg = malloc((n + 1) * sizeof *out->dlg);
    out->spk = malloc((n + 1) * sizeof *out->spk);
    out->turn = malloc((n + 1) * sizeof *out->turn);
    if (!ok || !out->idx || !out->y || !out->value || !out->ids || !out->dlg || !out->spk ||
        !out->turn) {
        split_data_free(out);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    const corpus_entry *ce = ri_fe(ri, 0, slot)->ce;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        size_t i = idx[j];
        const sb_utt *u = sb_corpus_utt(ce->c, i);
        int lab = regression ? -1 : le->labels[i];
        if (lab >= 0 && ymap)
            lab = ymap[lab];
        int target = regression ? isfinite(u->value) : lab >= 0;
        int have = 1;
        for (size_t e = 0; e < ne; e++)
            have &= ri_fe(ri, e, slot)->have[i] != 0;
        if (!have) {
            out->missing += target != 0;
            continue;
        }
        for (size_t e = 0; e < ne; e++) {
            const feat_entry *fe = ri_fe(ri, e, slot);
            size_t width = (size_t)fe->n_layers * (size_t)fe->dim;
            memcpy(out->x[e] + k * width, fe->x + i * width, width * sizeof(float));
        }
        out->idx[k] = i;
        out->y[k] = regression || !target ? -1 : lab;
        out->value[k] = regression && target ? u->value : NAN;
        out->ids[k] = u->id;
        out->dlg[k] = u->dialogue;
        out->spk[k] = u->speaker;
        out->turn[k] = u->turn;
        out->n_target += target != 0;
        k++;
    }
    sb_head_data *h = &out->hd;
    const feat_entry *f0 = ri_fe(ri, 0, slot);
    h->struct_size = sizeof *h;
    h->n = k;
    h->n_layers = f0->n_layers;
    h->dim = f0->dim;
    h->x = out->x[0];
    h->n_classes = n_classes;
    h->y = out->y;
    h->value = regression ? out->value : NULL;
    h->utt_id = out->ids;
    h->dialogue = out->dlg;
    h->turn = out->turn;
    h->speaker = out->spk;
    h->n_inputs = (int)ne;
    h->inputs = out->inputs;
    for (size_t e = 0; e < ne; e++) {
        const feat_entry *fe = ri_fe(ri, e, slot);
        out->inputs[e] = (sb_head_input){ .name = r->encoders[e],
                                          .modality = fe->modality,
                                          .n_layers = fe->n_layers,
                                          .dim = fe->dim,
                                          .x = out->x[e] };
    }
    return SB_OK;
}

static void run_inputs_free(run_inputs *ri, size_t n_tests)
{
    free(ri->idx_train);
    free(ri->idx_dev);
    for (size_t i = 0; ri->idx_test && i < n_tests; i++)
        free(ri->idx_test[i]);
    free(ri->idx_test);
    free(ri->n_test);
    free(ri->ce_test);
    free(ri->le_test);
    free(ri->fe);
    free(ri->fit.texts);
    free(ri->init_path);
    for (size_t i = 0; ri->tmap && i <= n_tests; i++)
        free(ri->tmap[i].to);
    free(ri->tmap);
}

static sb_status prepare_split(ctx *c, const sbi_run *r, const sbi_split_ref *ref, const char *what,
                               corpus_entry **ce, labels_entry **le, size_t **idx, size_t *n,
                               sb_error *err)
{
    const sbi_instance *ds = sbi_run_instance(r, SB_KIND_DATASET, ref->dataset);
    sb_status st = get_corpus(c, ds, ce, err);
    if (st == SB_OK)
        st = split_items(*ce, ref->split, what, idx, n, err);
    if (st == SB_OK && c->o->stage != SBI_STAGE_FEATURES)
        st = sbi_get_labels(c, r, ref, *ce, le, err);
    return st;
}

/* The training split's transcripts (what a text encoder with fit learns from) and their key. */
static sb_status make_fit_set(const sbi_run *r, run_inputs *ri, sb_error *err)
{
    fit_set *fs = &ri->fit;
    fs->texts = malloc((ri->n_train + 1) * sizeof *fs->texts);
    if (!fs->texts)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_hasher *h = sb_hasher_create();
    sb_hasher_str(h, "fit/1");
    for (size_t j = 0; j < ri->n_train; j++) {
        const char *t = sb_corpus_utt(ri->ce_train->c, ri->idx_train[j])->text;
        if (t) {
            fs->texts[fs->n++] = t;
            sb_hasher_str(h, t);
        }
    }
    sb_hasher_hex(h, fs->key);
    sb_hasher_destroy(&h);
    snprintf(fs->what, sizeof fs->what, "dataset %s, split %s", r->train.dataset, r->train.split);
    return SB_OK;
}

/* Encode, in one stage per (encoder, corpus), the union of the run's splits on that corpus. */
static sb_status features_for_run(ctx *c, const sbi_run *r, run_inputs *ri, sb_error *err)
{
    size_t nt = r->n_tests, ns = 2 + nt;
    ri->n_enc = r->n_encoders;
    ri->n_slots = ns;
    ri->fe = calloc(ri->n_enc * ns, sizeof *ri->fe);
    corpus_entry **ces = calloc(ns, sizeof *ces);
    size_t **idxs = calloc(ns, sizeof *idxs), *ns_ = calloc(ns, sizeof *ns_);
    sb_status st = ri->fe && ces && idxs && ns_
                       ? make_fit_set(r, ri, err)
                       : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK) {
        ces[0] = ri->ce_train, idxs[0] = ri->idx_train, ns_[0] = ri->n_train;
        ces[1] = ri->ce_dev, idxs[1] = ri->idx_dev, ns_[1] = ri->n_dev;
        for (size_t t = 0; t < nt; t++)
            ces[2 + t] = ri->ce_test[t], idxs[2 + t] = ri->idx_test[t], ns_[2 + t] = ri->n_test[t];
    }
    for (size_t en = 0; st == SB_OK && en < ri->n_enc; en++) {
        const sbi_instance *enc = sbi_run_instance(r, SB_KIND_ENCODER, r->encoders[en]);
        feat_entry **fes = ri->fe + en * ns;
        for (size_t s = 0; st == SB_OK && s < ns; s++) {
            if (!ces[s] || fes[s])
                continue;
            size_t total = 0;
            for (size_t k = s; k < ns; k++)
                if (ces[k] == ces[s])
                    total += ns_[k];
            size_t *all = malloc((total + 1) * sizeof *all), m = 0;
            if (!all) {
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                break;
            }
            for (size_t k = s; k < ns; k++)
                if (ces[k] == ces[s])
                    for (size_t j = 0; j < ns_[k]; j++)
                        all[m++] = idxs[k][j];
            feat_entry *fe = NULL;
            st = get_features(c, r, enc, ces[s], all, m, &ri->fit, &fe, err);
            free(all);
            for (size_t k = s; st == SB_OK && k < ns; k++)
                if (ces[k] == ces[s])
                    fes[k] = fe;
        }
    }
    free(ces);
    free(idxs);
    free(ns_);
    return st;
}

static int same_space(const sb_corpus *a, const sb_corpus *b)
{
    int same = sb_corpus_n_classes(a) == sb_corpus_n_classes(b);
    for (int k = 0; same && k < sb_corpus_n_classes(a); k++)
        same = strcmp(sb_corpus_class(a, k), sb_corpus_class(b, k)) == 0;
    return same;
}

/* Does every key of `map` name a class of `from` and every value a class of `to`? Else the
 * first name that does not, in *bad. */
static int map_fits(json_t *map, const sb_corpus *from, const sb_corpus *to, const char **bad)
{
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        if (sb_corpus_class_index(from, k) < 0) {
            *bad = k;
            return 0;
        }
        if (!json_is_string(v) || sb_corpus_class_index(to, json_string_value(v)) < 0) {
            *bad = json_is_string(v) ? json_string_value(v) : "?";
            return 0;
        }
    }
    return 1;
}

static char *class_list(const sb_corpus *c)
{
    sbi_buf b = { 0 };
    for (int k = 0; k < sb_corpus_n_classes(c); k++)
        sbi_buf_printf(&b, "%s%s", k ? ", " : "", sb_corpus_class(c, k));
    return b.s ? b.s : strdup("");
}

static sb_status resolve_test_map(const sbi_run *r, const sbi_split_ref *t, const sb_corpus *train,
                                  const sb_corpus *test, struct test_map *m, sb_error *err)
{
    memset(m, 0, sizeof *m);
    m->space = train;
    m->k_score = sb_corpus_n_classes(train);
    if (!t->map) {
        if (same_space(train, test))
            return SB_OK;
        char *a = class_list(train), *b = class_list(test);
        sb_status st =
            sb_error_set(err, SB_ERR_CONFIG, t->name,
                         "test set %s is in label space %s (%s), the training corpus in "
                         "%s (%s); declare a map under label_maps: and name it in the "
                         "test entry (label_map: NAME)",
                         t->name, sb_corpus_label_space(test), b, sb_corpus_label_space(train), a);
        free(a);
        free(b);
        return st;
    }
    const char *bad1 = NULL, *bad2 = NULL;
    int ktr = sb_corpus_n_classes(train), kte = sb_corpus_n_classes(test);
    const char *k;
    json_t *v;
    if (map_fits(t->map, train, test, &bad1)) {
        m->mode = MAP_PRED;
        m->space = test;
        m->k_score = kte;
        m->to = malloc((size_t)ktr * sizeof *m->to);
        if (!m->to)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        for (int i = 0; i < ktr; i++)
            m->to[i] = -1;
        json_object_foreach(t->map, k, v) m->to[sb_corpus_class_index(train, k)] =
            sb_corpus_class_index(test, json_string_value(v));
        return SB_OK;
    }
    if (map_fits(t->map, test, train, &bad2)) {
        m->mode = MAP_GOLD;
        m->to = malloc((size_t)kte * sizeof *m->to);
        if (!m->to)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        for (int i = 0; i < kte; i++)
            m->to[i] = -1;
        json_object_foreach(t->map, k, v) m->to[sb_corpus_class_index(test, k)] =
            sb_corpus_class_index(train, json_string_value(v));
        return SB_OK;
    }
    char *a = class_list(train), *b = class_list(test);
    sb_status st = sb_error_set(err, SB_ERR_CONFIG, t->name,
                                "label map '%s' fits neither direction: as training → test classes "
                                "'%s' is not a class, as test → training classes '%s' is not "
                                "(training: %s; test: %s)",
                                t->label_map, bad1 ? bad1 : "?", bad2 ? bad2 : "?", a, b);
    free(a);
    free(b);
    (void)r;
    return st;
}

/* The dev split steers early stopping in the training classes: the same label space, or a
 * map from its classes to the training classes (dev classes without one become context). A
 * map the other way round cannot give training-class labels: an error. */
static sb_status resolve_dev_map(const sbi_run *r, const sb_corpus *train, run_inputs *ri,
                                 sb_error *err)
{
    const sb_corpus *dev = ri->ce_dev->c;
    struct test_map *m = &ri->tmap[r->n_tests];
    if (!r->dev.map && same_space(train, dev))
        return SB_OK;
    const char *bad = NULL;
    if (r->dev.map && map_fits(r->dev.map, dev, train, &bad)) {
        int kd = sb_corpus_n_classes(dev);
        m->mode = MAP_GOLD;
        m->to = malloc((size_t)kd * sizeof *m->to);
        if (!m->to)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        for (int i = 0; i < kd; i++)
            m->to[i] = -1;
        const char *k;
        json_t *v;
        json_object_foreach(r->dev.map, k, v) m->to[sb_corpus_class_index(dev, k)] =
            sb_corpus_class_index(train, json_string_value(v));
        return SB_OK;
    }
    char *a = class_list(train), *b = class_list(dev);
    sb_status st =
        r->dev.map
            ? sb_error_set(err, SB_ERR_CONFIG, "experiment.dev",
                           "label map '%s' does not map the dev classes to the training classes "
                           "('%s' is not a class; dev: %s; training: %s): early stopping scores "
                           "the dev split in the training classes",
                           r->dev.label_map, bad ? bad : "?", b, a)
            : sb_error_set(err, SB_ERR_CONFIG, "experiment.dev",
                           "the dev split is in label space %s (%s), the training corpus in %s "
                           "(%s): early stopping scores it in the training classes; use a dev "
                           "split of the training label space, or declare a map from the dev "
                           "classes to the training classes under label_maps: and name it "
                           "(dev: {..., label_map: NAME})",
                           sb_corpus_label_space(dev), b, sb_corpus_label_space(train), a);
    free(a);
    free(b);
    return st;
}

/* experiment.init.from as a file: a path, or run:ID (a run id, or a prefix of one, of a complete
 * run in this results store) → RESULTS/checkpoints/<run_id>.safetensors. Its content hash
 * goes into the inputs key. */
static sb_status resolve_init(ctx *c, const sbi_run *r, run_inputs *ri, sb_error *err)
{
    const char *from = r->init_from;
    if (strncmp(from, "run:", 4) == 0) {
        sqlite3_stmt *q = NULL;
        sb_status st = sbi_store_prepare(
            c->store, "SELECT run_id, status FROM runs WHERE substr(run_id, 1, length(?1)) = ?1",
            &q, err);
        if (st != SB_OK)
            return st;
        sqlite3_bind_text(q, 1, from + 4, -1, SQLITE_STATIC);
        char id[SB_HASH_HEX] = "", status[32] = "";
        int n = 0;
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (n++ == 0) {
                snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(q, 0));
                snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(q, 1));
            }
        }
        sqlite3_finalize(q);
        if (n == 0)
            return sb_error_set(err, SB_ERR_CONFIG, "experiment.init.from",
                                "no run in %s has an id starting with %s; run the config that "
                                "trains it first, with the same results folder",
                                c->store->root, from + 4);
        if (n > 1)
            return sb_error_set(err, SB_ERR_CONFIG, "experiment.init.from",
                                "%d runs have ids starting with %s; give more digits", n, from + 4);
        if (strcmp(status, "complete") != 0)
            return sb_error_set(err, SB_ERR_CONFIG, "experiment.init.from",
                                "run %.12s is %s, not complete; finish it first", id, status);
        ri->init_path = sbi_asprintf("%s/checkpoints/%s.safetensors", c->store->root, id);
    } else {
        ri->init_path = sbi_strdup(from);
    }
    if (!ri->init_path)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (access(ri->init_path, R_OK) != 0)
        return sb_error_set(err, SB_ERR_CONFIG, "experiment.init.from", "checkpoint %s: %s%s",
                            ri->init_path, strerror(errno),
                            strncmp(from, "run:", 4) == 0
                                ? " (that run kept no checkpoint: its head has no save)"
                                : "");
    /* A file that is not a serbench checkpoint stops the plan here, before any work. */
    sb_st_file *f = NULL;
    sb_error e = { 0 };
    sb_status st = sb_st_open(ri->init_path, &f, &e);
    if (st == SB_OK && !sb_st_metadata(f, "serbench_head"))
        st = sb_error_set(&e, SB_ERR_FORMAT, ri->init_path,
                          "a safetensors file, but not a checkpoint serbench wrote (no "
                          "serbench_head metadata)");
    sb_st_close(&f);
    if (st != SB_OK)
        return sb_error_set(err, SB_ERR_CONFIG, "experiment.init.from", "%s: %s", e.where, e.msg);
    return sbi_store_file_hash(c->store, ri->init_path, ri->init_hash, err);
}

static sb_status prepare_run(ctx *c, const sbi_run *r, run_inputs *ri, sb_error *err)
{
    memset(ri, 0, sizeof *ri);
    sb_status st = prepare_split(c, r, &r->train, "experiment.train", &ri->ce_train, &ri->le_train,
                                 &ri->idx_train, &ri->n_train, err);
    if (st == SB_OK && r->has_dev)
        st = prepare_split(c, r, &r->dev, "experiment.dev", &ri->ce_dev, &ri->le_dev, &ri->idx_dev,
                           &ri->n_dev, err);
    size_t nt = r->n_tests;
    ri->ce_test = calloc(nt, sizeof *ri->ce_test);
    ri->le_test = calloc(nt, sizeof *ri->le_test);
    ri->idx_test = calloc(nt, sizeof *ri->idx_test);
    ri->n_test = calloc(nt, sizeof *ri->n_test);
    if (!ri->ce_test || !ri->le_test || !ri->idx_test || !ri->n_test)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; st == SB_OK && i < nt; i++)
        st = prepare_split(c, r, &r->tests[i], "experiment.test", &ri->ce_test[i], &ri->le_test[i],
                           &ri->idx_test[i], &ri->n_test[i], err);
    if (st == SB_OK && c->o->stage != SBI_STAGE_LABELS)
        st = features_for_run(c, r, ri, err);
    if (st != SB_OK || c->o->stage != SBI_STAGE_ALL)
        return st;
    /* Each test set is in the training label space or meets it through a label map. */
    const sb_corpus *tc = ri->ce_train->c;
    ri->tmap = calloc(nt + 1, sizeof *ri->tmap);
    if (!ri->tmap)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < nt && !r->regression; i++) {
        st = resolve_test_map(r, &r->tests[i], tc, ri->ce_test[i]->c, &ri->tmap[i], err);
        if (st != SB_OK)
            return st;
    }
    if (r->has_dev && !r->regression && (st = resolve_dev_map(r, tc, ri, err)) != SB_OK)
        return st;
    if (r->init_from && (st = resolve_init(c, r, ri, err)) != SB_OK)
        return st;
    /* The inputs key: everything the run reads, by content. */
    sb_hasher *h = sb_hasher_create();
    sb_hasher_str(h, r->run_id);
    labels_entry *les[2] = { ri->le_train, ri->le_dev };
    size_t *idxs[2] = { ri->idx_train, ri->idx_dev };
    size_t ns[2] = { ri->n_train, ri->n_dev };
    for (size_t en = 0; en < ri->n_enc; en++)
        for (size_t s = 0; s < 2 + nt; s++) {
            feat_entry *fe = ri_fe(ri, en, s);
            labels_entry *le = s < 2 ? les[s] : ri->le_test[s - 2];
            size_t *idx = s < 2 ? idxs[s] : ri->idx_test[s - 2];
            size_t n = s < 2 ? ns[s] : ri->n_test[s - 2];
            if (!fe)
                continue;
            sb_hasher_str(h, fe->ce->key);
            sb_hasher_str(h, le->key);
            sb_hasher_str(h, fe->enc_key);
            for (size_t j = 0; j < n; j++)
                sb_hasher_str(h, fe->have[idx[j]] ? fe->keys[idx[j]] : "-");
        }
    if (ri->init_path) /* the checkpoint a run starts from, by content */
        sb_hasher_str(h, ri->init_hash);
    sb_hasher_hex(h, ri->inputs_key);
    sb_hasher_destroy(&h);
    return SB_OK;
}

static json_t *provenance(ctx *c, const sbi_run *r, const sb_corpus *train, double seconds)
{
    json_t *pl = json_object();
    for (size_t i = 0; i < r->n_inst; i++) {
        const sbi_plugin *p = r->inst[i].plugin;
        json_object_set_new(pl, p->desc->name,
                            json_pack("{s:s, s:s, s:s, s:s}", "kind", sb_kind_name(p->desc->kind),
                                      "version", p->desc->version, "path", p->path, "file_hash",
                                      p->file_hash));
    }
    struct utsname un;
    char host[256] = "?";
    if (uname(&un) == 0)
        snprintf(host, sizeof host, "%s %s %s", un.nodename, un.sysname, un.machine);
    json_t *classes = json_array();
    for (int k = 0; k < sb_corpus_n_classes(train); k++)
        json_array_append_new(classes, json_string(sb_corpus_class(train, k)));
    const char *space = sb_corpus_label_space(train);
    return json_pack("{s:s, s:s, s:o, s:s, s:i, s:i, s:i, s:s, s:I, s:f, s:s, s:o}", "serbench",
                     SB_VERSION, "git_describe", SB_GIT_DESCRIBE, "plugins", pl, "blas",
                     openblas_get_config(), "threads", c->threads, "blas_threads", c->blas_threads,
                     "jobs", c->o->jobs, "host", host, "seed", (json_int_t)r->seed, "seconds",
                     seconds, "label_space", space ? space : "", "classes", classes);
}

typedef sb_status (*head_save_fn)(void *inst, sb_st_writer *w, sb_error *err);
typedef sb_status (*head_load_fn)(void *inst, const sb_st_file *f, const sb_head_init *init,
                                  sb_error *err);

static head_save_fn head_save(const sb_head_vtable *vt)
{
    return vt->struct_size >= offsetof(sb_head_vtable, save) + sizeof vt->save ? vt->save : NULL;
}

static head_load_fn head_load(const sb_head_vtable *vt)
{
    return vt->struct_size >= offsetof(sb_head_vtable, load) + sizeof vt->load ? vt->load : NULL;
}

static json_t *class_names(const sbi_run *r, const sb_corpus *c)
{
    json_t *a = json_array();
    for (int k = 0; !r->regression && k < sb_corpus_n_classes(c); k++)
        json_array_append_new(a, json_string(sb_corpus_class(c, k)));
    return a;
}

/* Start the head from experiment.init's checkpoint: the file must come from the same head
 * plugin; a new output layer when the label spaces differ (new_output: auto). Adds
 * {"from", "run_id", "hash", "parts", "new_output"} to *info. */
static sb_status init_head(const sbi_run *r, const run_inputs *ri, const sbi_instance *hin,
                           void *inst, json_t **info, sb_error *err)
{
    const sb_head_vtable *vt = hin->plugin->desc->vtable;
    const char *head = hin->plugin->desc->name;
    if (!head_load(vt))
        return sb_error_set(err, SB_ERR_CONFIG, "experiment.init",
                            "head plugin %s cannot start from a checkpoint (it has no load)", head);
    sb_st_file *f = NULL;
    sb_status st = sb_st_open(ri->init_path, &f, err);
    if (st != SB_OK)
        return st;
    const char *who = sb_st_metadata(f, "serbench_head");
    const char *cls = sb_st_metadata(f, "classes");
    json_t *ck = cls ? json_loads(cls, 0, NULL) : NULL;
    json_t *mine = class_names(r, ri->ce_train->c);
    if (!who || !json_is_array(ck))
        st = sb_error_set(err, SB_ERR_FORMAT, ri->init_path,
                          "not a serbench head checkpoint (no serbench_head/classes metadata)");
    else if (strcmp(who, head) != 0)
        st = sb_error_set(err, SB_ERR_CONFIG, ri->init_path,
                          "checkpoint of head plugin %s; this run's head is %s: start a %s head "
                          "only from a %s checkpoint",
                          who, head, head, head);
    int same = st == SB_OK && json_equal(ck, mine);
    int new_output = r->init_new_output < 0 ? !same : r->init_new_output;
    if (st == SB_OK && !new_output && !same)
        st = sb_error_set(err, SB_ERR_CONFIG, "experiment.init.new_output",
                          "the checkpoint's classes differ from this run's; keeping its output "
                          "layer (new_output: no) is possible only for the same label space");
    if (st == SB_OK) {
        sb_head_init hi = { .struct_size = sizeof hi,
                            .parts = r->init_parts,
                            .new_output = new_output,
                            .n_classes = (int)json_array_size(ck) };
        sb_error e = { 0 };
        st = head_load(vt)(inst, f, &hi, &e);
        if (st != SB_OK)
            sb_error_set(err, st, ri->init_path, "%s%s%s", e.where, e.where[0] ? ": " : "",
                         e.msg[0] ? e.msg : sb_strerror(st));
    }
    if (st == SB_OK) {
        const char *rid = sb_st_metadata(f, "run_id");
        *info = json_pack("{s:s, s:s?, s:s, s:s, s:b}", "from", ri->init_path, "run_id", rid,
                          "hash", ri->init_hash, "parts", r->init_parts, "new_output", new_output);
    }
    json_decref(ck);
    json_decref(mine);
    sb_st_close(&f);
    return st;
}

/* Keep the trained head as RESULTS/checkpoints/<run_id>.safetensors (written to a temporary
 * name and renamed). Sets *rel to the path under RESULTS. */
static sb_status save_head(ctx *c, const sbi_run *r, const run_inputs *ri, const sbi_instance *hin,
                           void *inst, char **rel, sb_error *err)
{
    *rel = NULL;
    head_save_fn save = head_save(hin->plugin->desc->vtable);
    if (!save)
        return SB_OK;
    char *dir = sbi_asprintf("%s/checkpoints", c->store->root);
    char *path = sbi_asprintf("%s/%s.safetensors", dir ? dir : "", r->run_id);
    char *opts = json_dumps(hin->canon, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *cl = class_names(r, ri->ce_train->c);
    char *classes = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    const char *space = sb_corpus_label_space(ri->ce_train->c);
    sb_st_writer *w = sb_st_writer_create();
    sb_status st = dir && path && opts && classes && w
                       ? sbi_mkdir_p(dir, err)
                       : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "serbench_head", hin->plugin->desc->name, err);
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "head_version", hin->plugin->desc->version, err);
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "head_options", opts, err);
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "classes", classes, err);
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "label_space",
                               r->regression ? "regression"
                               : space       ? space
                                             : "",
                               err);
    if (st == SB_OK)
        st = sb_st_writer_meta(w, "run_id", r->run_id, err);
    if (st == SB_OK) {
        sb_error e = { 0 };
        st = save(inst, w, &e);
        if (st != SB_OK)
            sb_error_set(err, st, hin->name, "saving the checkpoint: %s",
                         e.msg[0] ? e.msg : sb_strerror(st));
    }
    if (st == SB_OK)
        st = sb_st_writer_commit(w, path, err);
    if (st == SB_OK)
        *rel = sbi_asprintf("checkpoints/%s.safetensors", r->run_id);
    sb_st_writer_destroy(&w);
    free(dir);
    free(path);
    free(opts);
    free(classes);
    return st;
}

/* Score a regression test set: MAE, Pearson r, MOSI's binary and 7/5-class accuracies. */
/* Predict a test split without showing the head its targets: y all -1, value NULL. A head
 * never needs them, and a test set's labels may be in another label space than the head's
 * classes (a test -> training map applies after prediction). */
static sb_status predict_blind(const sb_head_vtable *vt, void *inst, const split_data *te,
                               float *out, sb_error *err)
{
    int32_t *none = malloc((te->hd.n + 1) * sizeof *none);
    if (!none)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < te->hd.n; i++)
        none[i] = -1;
    sb_head_data blind = te->hd;
    blind.y = none;
    blind.value = NULL;
    sb_status st = vt->predict(inst, &blind, out, err);
    free(none);
    return st;
}

static sb_status score_regression(const sbi_run *r, size_t t, const split_data *te,
                                  const float *pred, json_t *results, sb_error *err)
{
    size_t n = te->hd.n, kept = 0;
    double *g = malloc((n + 1) * sizeof *g), *p = malloc((n + 1) * sizeof *p);
    size_t *keep = malloc((n + 1) * sizeof *keep);
    sb_status st = g && p && keep ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; st == SB_OK && i < n; i++)
        if (isfinite(te->value[i])) {
            g[kept] = te->value[i];
            p[kept] = pred[i];
            keep[kept++] = i;
        }
    if (st == SB_OK && kept == 0)
        st = sb_error_set(err, SB_ERR_CONFIG, r->tests[t].name,
                          "test set %s has no utterance with a target value and features",
                          r->tests[t].name);
    sb_reg_metrics m;
    if (st == SB_OK)
        st = sb_metrics_regress(g, p, kept, &m, err);
    if (st == SB_OK) {
        json_t *mj = json_object();
        for (const char *const *name = sb_metrics_regress_names(); *name; name++) {
            double v;
            if (sb_metrics_regress_get(&m, *name, &v) == 0 && isfinite(v))
                json_object_set_new(mj, *name, json_real(v));
        }
        json_t *preds = json_array();
        for (size_t j = 0; j < kept; j++)
            json_array_append_new(preds, json_pack("{s:s, s:f, s:f}", "id", te->ids[keep[j]],
                                                   "gold", g[j], "pred", p[j]));
        json_array_append_new(
            results, json_pack("{s:s, s:o, s:o, s:I, s:o, s:I, s:I, s:b}", "test", r->tests[t].name,
                               "metrics", mj, "predictions", preds, "n", (json_int_t)kept,
                               "classes", json_array(), "dropped_by_map", (json_int_t)0, "left_out",
                               (json_int_t)te->missing, "regression", 1));
    }
    free(g);
    free(p);
    free(keep);
    return st;
}

static sb_status run_one(ctx *c, sbi_store *store, const sbi_run *r, const run_inputs *ri,
                         sb_error *err)
{
    double t0 = sbi_now();
    char now[32];
    sbi_utc_now(now);
    char *cfg = json_dumps(r->config, JSON_COMPACT | JSON_SORT_KEYS);
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(
        store,
        "INSERT INTO runs(run_id, group_id, seed, config, status, created, started)"
        " VALUES(?1, ?2, ?3, ?4, 'running', ?5, ?5) ON CONFLICT(run_id) DO UPDATE SET"
        " status='running', started=?5, error=NULL",
        &q, err);
    if (st == SB_OK) {
        sqlite3_bind_text(q, 1, r->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, r->group_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, r->seed);
        sqlite3_bind_text(q, 4, cfg, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, now, -1, SQLITE_STATIC);
        st = sbi_store_step_done(store, q, err);
        sqlite3_finalize(q);
    }
    free(cfg);
    if (st != SB_OK)
        return st;

    const sbi_instance *hin = sbi_run_instance(r, SB_KIND_HEAD, r->head);
    const sb_head_vtable *vt = hin->plugin->desc->vtable;
    int K = r->regression ? 0 : sb_corpus_n_classes(ri->ce_train->c);
    split_data tr, dv;
    memset(&dv, 0, sizeof dv);
    st = gather(r, ri, 0, ri->le_train, NULL, ri->idx_train, ri->n_train, K, &tr, err);
    if (st == SB_OK && r->has_dev)
        st = gather(r, ri, 1, ri->le_dev, ri->tmap[r->n_tests].to, ri->idx_dev, ri->n_dev, K, &dv,
                    err);
    if (st == SB_OK && !r->has_dev) {
        dv.hd = tr.hd;
        dv.hd.n = 0;
    }
    sb_host host;
    host_priv hp;
    char cache[4096];
    char who[64];
    snprintf(who, sizeof who, "run %.8s", r->run_id);
    if (st == SB_OK)
        st = sbi_host_init(&host, &hp, c->ui, c->store, c->store->root, hin, (uint64_t)r->seed,
                           c->blas_threads, cache, sizeof cache, err);
    void *inst = NULL;
    sb_error e = { 0 };
    if (st == SB_OK && (tr.missing || dv.missing))
        sbi_ui_log(c->ui, SB_LOG_WARN, who,
                   "features and targets do not cover the same utterances: %zu of %zu training "
                   "and %zu of %zu dev utterances with a target have no features (left out; "
                   "the feature stage said why)",
                   tr.missing, tr.missing + tr.n_target, dv.missing, dv.missing + dv.n_target);
    if (st == SB_OK && tr.n_target == 0)
        st = sb_error_set(&e, SB_ERR_CONFIG, "experiment.train",
                          "no training utterance has both a %s and features%s",
                          r->regression ? "target value" : "label",
                          r->regression ? " (experiment.target: value reads the corpus's "
                                          "values, e.g. cmu_mosi's sentiment scores; this "
                                          "corpus may carry none)"
                                        : "");
    if (st == SB_OK)
        st = vt->create(&host, hin->opts, tr.hd.n_layers, tr.hd.dim, K, &inst, &e);
    json_t *init_info = NULL;
    if (st == SB_OK && ri->init_path)
        st = init_head(r, ri, hin, inst, &init_info, &e);
    if (st == SB_OK)
        st = vt->train(inst, &tr.hd, &dv.hd, &e);
    char *ckpt = NULL;
    if (st == SB_OK)
        st = save_head(c, r, ri, hin, inst, &ckpt, &e);

    /* Predict and score each test set; write everything in one transaction. */
    json_t *results = json_array();
    for (size_t t = 0; st == SB_OK && t < r->n_tests; t++) {
        split_data te;
        st = gather(r, ri, 2 + t, ri->le_test[t], NULL, ri->idx_test[t], ri->n_test[t], K, &te, &e);
        if (st != SB_OK)
            break;
        if (te.missing)
            sbi_ui_log(c->ui, SB_LOG_WARN, who,
                       "test set %s: %zu of %zu utterances with a target have no features (left "
                       "out of its scores)",
                       r->tests[t].name, te.missing, te.missing + te.n_target);
        if (r->regression) {
            float *vals = malloc((te.hd.n + 1) * sizeof *vals);
            st = vals ? SB_OK : sb_error_set(&e, SB_ERR_NOMEM, NULL, "out of memory");
            if (st == SB_OK && te.hd.n == 0)
                st = sb_error_set(&e, SB_ERR_CONFIG, r->tests[t].name,
                                  "test set %s has no utterance with features", r->tests[t].name);
            if (st == SB_OK)
                st = predict_blind(vt, inst, &te, vals, &e);
            if (st == SB_OK)
                st = score_regression(r, t, &te, vals, results, &e);
            free(vals);
            split_data_free(&te);
            continue;
        }
        const struct test_map *tm = &ri->tmap[t];
        int Ks = tm->k_score;
        size_t n = te.hd.n;
        float *probs = malloc((n + 1) * (size_t)K * sizeof(float));
        float *sprobs = malloc((n + 1) * (size_t)Ks * sizeof(float));
        int32_t *pred = malloc((n + 1) * sizeof(int32_t));
        int32_t *gold = malloc((n + 1) * sizeof(int32_t));
        size_t *keep = malloc((n + 1) * sizeof(size_t));
        if (!probs || !sprobs || !pred || !gold || !keep)
            st = sb_error_set(&e, SB_ERR_NOMEM, NULL, "out of memory");
        if (st == SB_OK && te.n_target == 0)
            st = sb_error_set(&e, SB_ERR_CONFIG, r->tests[t].name,
                              "test set %s has no utterance with a label and features",
                              r->tests[t].name);
        if (st == SB_OK)
            st = predict_blind(vt, inst, &te, probs, &e);
        /* Into the scoring space (see struct test_map); items with no counterpart dropped. */
        size_t kept = 0, dropped = 0;
        for (size_t i = 0; st == SB_OK && i < n; i++) {
            int g = te.y[i];
            if (g < 0)
                continue; /* context only: no target */
            if (tm->mode == MAP_GOLD)
                g = tm->to[g];
            int reachable = 1;
            if (tm->mode == MAP_PRED) {
                reachable = 0;
                for (int k = 0; k < K; k++)
                    reachable |= tm->to[k] == g;
            }
            if (g < 0 || !reachable) {
                dropped++;
                continue;
            }
            float *sp = sprobs + kept * (size_t)Ks;
            const float *p_i = probs + i * (size_t)K;
            if (tm->mode == MAP_PRED) {
                for (int k = 0; k < Ks; k++)
                    sp[k] = 0.0f;
                for (int k = 0; k < K; k++)
                    if (tm->to[k] >= 0)
                        sp[tm->to[k]] += p_i[k];
            } else {
                memcpy(sp, p_i, (size_t)K * sizeof(float));
            }
            int best = 0;
            for (int k = 1; k < Ks; k++)
                if (sp[k] > sp[best])
                    best = k;
            pred[kept] = best;
            gold[kept] = g;
            keep[kept++] = i;
        }
        if (st == SB_OK && kept == 0)
            st = sb_error_set(&e, SB_ERR_CONFIG, r->tests[t].name,
                              "no item of test set %s has a class that label map '%s' reaches",
                              r->tests[t].name, r->tests[t].label_map ? r->tests[t].label_map : "");
        sb_cls_metrics m;
        memset(&m, 0, sizeof m);
        if (st == SB_OK)
            st = sb_metrics_classify(gold, pred, kept, Ks, &m, &e);
        if (st == SB_OK) {
            json_t *preds = json_array();
            for (size_t j = 0; j < kept; j++) {
                json_t *pv = json_array();
                for (int k = 0; k < Ks; k++)
                    json_array_append_new(pv, json_real(sprobs[j * (size_t)Ks + (size_t)k]));
                json_array_append_new(preds,
                                      json_pack("{s:s, s:i, s:i, s:o}", "id", te.ids[keep[j]],
                                                "gold", gold[j], "pred", pred[j], "probs", pv));
            }
            json_t *mj = json_object();
            for (const char *const *name = sb_metrics_names(); *name; name++) {
                double v;
                if (sb_metrics_get(&m, *name, &v) == 0)
                    json_object_set_new(mj, *name, json_real(v));
            }
            json_t *classes = json_array();
            for (int k = 0; k < Ks; k++)
                json_array_append_new(classes, json_string(sb_corpus_class(tm->space, k)));
            json_array_append_new(
                results,
                json_pack("{s:s, s:o, s:o, s:I, s:o, s:I, s:I, s:s?}", "test", r->tests[t].name,
                          "metrics", mj, "predictions", preds, "n", (json_int_t)kept, "classes",
                          classes, "dropped_by_map", (json_int_t)dropped, "left_out",
                          (json_int_t)te.missing, "label_map", r->tests[t].label_map));
        }
        free(sprobs);
        free(gold);
        free(keep);
        sb_cls_metrics_free(&m);
        free(probs);
        free(pred);
        split_data_free(&te);
    }
    if (inst)
        vt->destroy(inst);
    size_t miss_tr = tr.missing, miss_dv = r->has_dev ? dv.missing : 0;
    split_data_free(&tr);
    if (r->has_dev)
        split_data_free(&dv);

    double secs = sbi_now() - t0;
    sbi_utc_now(now);
    if (st != SB_OK) {
        char msg[2200];
        sb_error_format(&e, msg, sizeof msg);
        if (sbi_store_prepare(store,
                              "UPDATE runs SET status='failed', error=?2, finished=?3"
                              " WHERE run_id=?1",
                              &q, NULL) == SB_OK) {
            sqlite3_bind_text(q, 1, r->run_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, msg, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, now, -1, SQLITE_STATIC);
            sbi_store_step_done(store, q, NULL);
            sqlite3_finalize(q);
        }
        json_decref(results);
        json_decref(init_info);
        free(ckpt);
        if (err)
            *err = e;
        return st;
    }
    json_t *prov = provenance(c, r, ri->ce_train->c, secs);
    json_t *inputs = json_array();
    for (size_t en = 0; en < ri->n_enc; en++) {
        const feat_entry *fe = ri_fe(ri, en, 0);
        json_array_append_new(
            inputs,
            json_pack("{s:s, s:s, s:i, s:i, s:s?}", "encoder", r->encoders[en], "modality",
                      fe->modality == SB_INPUT_TEXT ? "text" : "audio", "n_layers", fe->n_layers,
                      "dim", fe->dim, "fitted_on", fe->fit_what[0] ? fe->fit_what : NULL));
    }
    json_object_set_new(prov, "inputs", inputs);
    json_object_set_new(prov, "target", json_string(r->regression ? "value" : "label"));
    if (ckpt)
        json_object_set_new(prov, "checkpoint", json_string(ckpt));
    if (init_info)
        json_object_set_new(prov, "init", init_info);
    free(ckpt);
    /* Per test set: the scoring space and what was left out, so exports and reports can
     * say it; and the training items left out under on_missing_audio: skip. */
    json_t *tests = json_object();
    size_t ti0;
    json_t *res0;
    json_array_foreach(results, ti0, res0)
    {
        json_object_set_new(tests, json_string_value(json_object_get(res0, "test")),
                            json_pack("{s:O, s:O, s:O, s:O, s:O*}", "classes",
                                      json_object_get(res0, "classes"), "n",
                                      json_object_get(res0, "n"), "dropped_by_map",
                                      json_object_get(res0, "dropped_by_map"), "left_out",
                                      json_object_get(res0, "left_out"), "label_map",
                                      json_object_get(res0, "label_map")));
    }
    json_object_set_new(prov, "tests", tests);
    json_object_set_new(
        prov, "left_out",
        json_pack("{s:I, s:I}", "train", (json_int_t)miss_tr, "dev", (json_int_t)miss_dv));
    char *provs = json_dumps(prov, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(prov);
    st = sbi_store_begin(store, err);
    sqlite3_stmt *qm = NULL, *qp = NULL;
    if (st == SB_OK) {
        sqlite3_stmt *d = NULL;
        st = sbi_store_prepare(store, "DELETE FROM metrics WHERE run_id=?1", &d, err);
        if (st == SB_OK) {
            sqlite3_bind_text(d, 1, r->run_id, -1, SQLITE_STATIC);
            st = sbi_store_step_done(store, d, err);
            sqlite3_finalize(d);
        }
        if (st == SB_OK)
            st = sbi_store_prepare(store, "DELETE FROM predictions WHERE run_id=?1", &d, err);
        if (st == SB_OK) {
            sqlite3_bind_text(d, 1, r->run_id, -1, SQLITE_STATIC);
            st = sbi_store_step_done(store, d, err);
            sqlite3_finalize(d);
        }
    }
    if (st == SB_OK)
        st = sbi_store_prepare(store, "INSERT INTO metrics VALUES(?1,?2,?3,?4,?5)", &qm, err);
    if (st == SB_OK)
        st =
            sbi_store_prepare(store, "INSERT INTO predictions VALUES(?1,?2,?3,?4,?5,?6)", &qp, err);
    size_t ti;
    json_t *res;
    json_array_foreach(results, ti, res)
    {
        const char *test = json_string_value(json_object_get(res, "test"));
        json_int_t n = json_integer_value(json_object_get(res, "n"));
        const char *mk;
        json_t *mv;
        json_object_foreach(json_object_get(res, "metrics"), mk, mv)
        {
            if (st != SB_OK)
                break;
            sqlite3_bind_text(qm, 1, r->run_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(qm, 2, test, -1, SQLITE_STATIC);
            sqlite3_bind_text(qm, 3, mk, -1, SQLITE_STATIC);
            sqlite3_bind_double(qm, 4, json_real_value(mv));
            sqlite3_bind_int64(qm, 5, n);
            st = sbi_store_step_done(store, qm, err);
        }
        size_t pi;
        json_t *pv;
        json_array_foreach(json_object_get(res, "predictions"), pi, pv)
        {
            if (st != SB_OK)
                break;
            char *probs =
                json_dumps(json_object_get(pv, "probs"), JSON_COMPACT | JSON_REAL_PRECISION(6));
            sqlite3_bind_text(qp, 1, r->run_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(qp, 2, test, -1, SQLITE_STATIC);
            sqlite3_bind_text(qp, 3, json_string_value(json_object_get(pv, "id")), -1,
                              SQLITE_STATIC);
            json_t *gv = json_object_get(pv, "gold"), *prv = json_object_get(pv, "pred");
            if (json_is_real(gv)) { /* regression: the values themselves */
                sqlite3_bind_double(qp, 4, json_real_value(gv));
                sqlite3_bind_double(qp, 5, json_real_value(prv));
            } else {
                sqlite3_bind_int(qp, 4, (int)json_integer_value(gv));
                sqlite3_bind_int(qp, 5, (int)json_integer_value(prv));
            }
            sqlite3_bind_text(qp, 6, probs, -1, SQLITE_TRANSIENT);
            free(probs);
            st = sbi_store_step_done(store, qp, err);
        }
    }
    sqlite3_finalize(qm);
    sqlite3_finalize(qp);
    if (st == SB_OK)
        st = sbi_store_prepare(store,
                               "UPDATE runs SET status='complete', finished=?2, seconds=?3,"
                               " inputs_key=?4, provenance=?5, error=NULL WHERE run_id=?1",
                               &q, err);
    if (st == SB_OK) {
        sqlite3_bind_text(q, 1, r->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, now, -1, SQLITE_STATIC);
        sqlite3_bind_double(q, 3, secs);
        sqlite3_bind_text(q, 4, ri->inputs_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, provs, -1, SQLITE_STATIC);
        st = sbi_store_step_done(store, q, err);
        sqlite3_finalize(q);
    }
    if (st == SB_OK)
        st = sbi_store_commit(store, err);
    else
        sbi_store_rollback(store);
    free(provs);
    json_decref(results);
    return st;
}

/* ---- orchestration ----------------------------------------------------------------- */

int sbi_in_shard(const sbi_run *r, int shard_i, int shard_n)
{
    return shard_n <= 0 || (int)(r->index % (size_t)shard_n) == shard_i - 1;
}

int sbi_item_in_shard(const char *utt_id, int items_i, int items_n)
{
    if (items_n <= 0)
        return 1;
    const uint64_t h = XXH3_64bits(utt_id, strlen(utt_id));
    return (int)(h % (uint64_t)items_n) == items_i - 1;
}

static int run_is_done(sbi_store *s, const sbi_run *r, const char *inputs_key)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT status, inputs_key FROM runs WHERE run_id=?1", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, r->run_id, -1, SQLITE_STATIC);
    int done = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(q, 0);
        const char *ik = (const char *)sqlite3_column_text(q, 1);
        done = sbi_streq(status, "complete") && sbi_streq(ik, inputs_key);
    }
    sqlite3_finalize(q);
    return done;
}

typedef struct job_queue {
    ctx *c;
    sbi_run **runs;
    run_inputs *inputs;
    size_t n, next;
    size_t done, failed;
    sbi_progress *prog;
    pthread_mutex_t lock;
    sb_error first_err;
    sb_status first_st;
} job_queue;

static void *worker(void *arg)
{
    job_queue *q = arg;
    sbi_store *store = NULL;
    sb_error e = { 0 };
    if (sbi_store_open(q->c->store->root, &store, &e) != SB_OK) {
        pthread_mutex_lock(&q->lock);
        if (!q->first_st) {
            q->first_st = e.code;
            q->first_err = e;
        }
        pthread_mutex_unlock(&q->lock);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&q->lock);
        size_t i = q->next < q->n && !sbi_cancel_requested ? q->next++ : q->n;
        pthread_mutex_unlock(&q->lock);
        if (i >= q->n)
            break;
        sb_error re = { 0 };
        sb_status st = run_one(q->c, store, q->runs[i], &q->inputs[i], &re);
        pthread_mutex_lock(&q->lock);
        if (st == SB_OK) {
            q->done++;
        } else {
            q->failed++;
            char msg[2200];
            sbi_ui_log(q->c->ui, SB_LOG_ERROR, NULL, "run %.12s failed: %s", q->runs[i]->run_id,
                       sb_error_format(&re, msg, sizeof msg));
            if (!q->first_st && (st == SB_ERR_CONFIG || st == SB_ERR_CANCELLED)) {
                q->first_st = st;
                q->first_err = re;
            }
        }
        sbi_progress_update(q->prog, q->done + q->failed);
        pthread_mutex_unlock(&q->lock);
    }
    sbi_store_close(&store);
    return NULL;
}

static void ctx_free(ctx *c)
{
    for (size_t i = 0; i < c->n_corpora; i++) {
        sb_corpus_destroy(&c->corpora[i]->c);
        free(c->corpora[i]->excluded);
        free(c->corpora[i]->item_keys);
        free(c->corpora[i]->item_state);
        free(c->corpora[i]);
    }
    free(c->corpora);
    for (size_t i = 0; i < c->n_labels; i++) {
        free(c->labels[i]->labels);
        free(c->labels[i]->answered);
        for (size_t k = 0; k < c->labels[i]->n_splits; k++)
            free(c->labels[i]->splits[k]);
        free(c->labels[i]->splits);
        free(c->labels[i]);
    }
    free(c->labels);
    for (size_t i = 0; i < c->n_feats; i++) {
        free(c->feats[i]->x);
        free(c->feats[i]->have);
        free(c->feats[i]->text_keys);
        free(c->feats[i]);
    }
    free(c->feats);
    for (size_t i = 0; i < c->n_encs; i++)
        free(c->encs[i]);
    free(c->encs);
}

sb_status sbi_execute(sbi_plan *plan, sbi_store *store, const sbi_exec_opts *o,
                      sbi_exec_summary *sum, sb_error *err)
{
    memset(sum, 0, sizeof *sum);
    ctx c;
    memset(&c, 0, sizeof c);
    c.plan = plan;
    c.o = o;
    c.ui = o->ui;
    c.store = store;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c.threads = o->threads > 0      ? o->threads
                : plan->threads > 0 ? plan->threads
                                    : (int)(ncpu > 0 ? ncpu : 1);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    c.blas_threads = jobs > 1 ? (c.threads / jobs > 0 ? c.threads / jobs : 1) : c.threads;
    openblas_set_num_threads(c.blas_threads);
    pthread_mutex_init(&c.lock, NULL);

    /* Select runs; bring their inputs up to date (labels and features, in this thread, so
     * that stages shared by many runs are computed once). */
    sbi_run **sel = calloc(plan->n_runs + 1, sizeof *sel);
    run_inputs *inputs = calloc(plan->n_runs + 1, sizeof *inputs);
    sb_status st = sel && inputs ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    size_t n_sel = 0, n_todo = 0;
    for (size_t i = 0; st == SB_OK && i < plan->n_runs; i++) {
        sbi_run *r = &plan->runs[i];
        if (!sbi_in_shard(r, o->shard_i, o->shard_n))
            continue;
        sum->runs_selected++;
        if (sbi_cancel_requested) {
            st = sb_error_set(err, SB_ERR_CANCELLED, NULL, "interrupted; rerun to resume");
            break;
        }
        st = prepare_run(&c, r, &inputs[n_sel], err);
        if (st != SB_OK) {
            run_inputs_free(&inputs[n_sel], r->n_tests);
            break;
        }
        if (o->stage != SBI_STAGE_ALL) {
            run_inputs_free(&inputs[n_sel], r->n_tests);
            continue;
        }
        if (!o->force && run_is_done(store, r, inputs[n_sel].inputs_key)) {
            sum->runs_skipped++;
            sbi_ui_log(c.ui, SB_LOG_DEBUG, NULL, "run %.12s complete in store; skipped", r->run_id);
            run_inputs_free(&inputs[n_sel], r->n_tests);
            continue;
        }
        sel[n_sel++] = r;
        n_todo++;
    }
    if (st == SB_OK && n_todo > 0) {
        sbi_progress prog;
        char label[64];
        snprintf(label, sizeof label, "runs (%d job%s)", jobs, jobs > 1 ? "s" : "");
        sbi_progress_start(&prog, c.ui, label, n_todo);
        job_queue q = { .c = &c, .runs = sel, .inputs = inputs, .n = n_sel, .prog = &prog };
        pthread_mutex_init(&q.lock, NULL);
        int nw = jobs < (int)n_sel ? jobs : (int)n_sel;
        if (nw <= 1) {
            q.c->store = store;
            /* Single job: same code path, on this thread with its own connection. */
            worker(&q);
        } else {
            pthread_t *th = calloc((size_t)nw, sizeof *th);
            for (int i = 0; th && i < nw; i++)
                pthread_create(&th[i], NULL, worker, &q);
            for (int i = 0; th && i < nw; i++)
                pthread_join(th[i], NULL);
            free(th);
        }
        char summary[128];
        snprintf(summary, sizeof summary, "%zu complete, %zu failed, %zu already complete", q.done,
                 q.failed, sum->runs_skipped);
        sbi_progress_finish(&prog, summary);
        sum->runs_done = q.done;
        sum->runs_failed = q.failed;
        if (q.first_st && (q.first_st == SB_ERR_CANCELLED || q.done == 0)) {
            st = q.first_st;
            if (err)
                *err = q.first_err;
        }
        pthread_mutex_destroy(&q.lock);
    } else if (st == SB_OK && o->stage == SBI_STAGE_ALL) {
        log_info(&c, "runs: all %zu selected runs are complete in the store", sum->runs_skipped);
    }
    for (size_t i = 0; i < n_sel; i++)
        run_inputs_free(&inputs[i], sel[i]->n_tests);
    free(inputs);
    free(sel);
    sum->item_failures = c.item_failures;
    ctx_free(&c);
    pthread_mutex_destroy(&c.lock);
    return st;
}

/* ---- export of stored features ----------------------------------------------------- */

/* Write the safetensors file: the header built from the item list, then the data streamed
 * from the reader's mappings (so memory holds the pooled matrix, never all the frames). */
static sb_status export_write(const char *out, json_t *hdr, const float *pooled, size_t pooled_n,
                              const sb_st_tensor *const *frames, size_t n, sb_error *err)
{
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return sb_error_set(err, SB_ERR_NOMEM, out, "cannot build the header");
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xffu);
    char *tmp = sbi_asprintf("%s.tmp.%ld", out, (long)getpid());
    int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    sb_status st = SB_OK;
    if (fd < 0) {
        st = sb_error_set(err, SB_ERR_IO, out, "cannot create a temporary file beside it: %s",
                          tmp ? strerror(errno) : "out of memory");
        free(tmp);
        free(text);
        return st;
    }
    static const char spaces[8] = "        ";
    int bad = sbi_write_all(fd, len8, 8) || sbi_write_all(fd, text, hlen) ||
              sbi_write_all(fd, spaces, padded - hlen) ||
              sbi_write_all(fd, pooled, pooled_n * sizeof(float));
    for (size_t k = 0; !bad && k < n; k++)
        if (frames[k])
            bad = sbi_write_all(fd, frames[k]->data, frames[k]->nbytes);
    if (bad || fsync(fd) != 0) {
        st = sb_error_set(err, SB_ERR_IO, tmp, "cannot write: %s", strerror(errno));
        close(fd);
        unlink(tmp);
    } else if (close(fd) != 0 || rename(tmp, out) != 0) {
        st = sb_error_set(err, SB_ERR_IO, out, "cannot write or rename %s into place: %s", tmp,
                          strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(text);
    return st;
}

sb_status sbi_export_features(sbi_plan *plan, sbi_store *store, const sbi_instance *ds,
                              const sbi_instance *enc, const sbi_ui *ui, int threads,
                              const char *out, sbi_feat_export_summary *sum, sb_error *err)
{
    memset(sum, 0, sizeof *sum);
    ctx c;
    memset(&c, 0, sizeof c);
    c.plan = plan;
    c.ui = ui;
    c.store = store;
    c.threads = threads > 0 ? threads : 1;
    pthread_mutex_init(&c.lock, NULL);
    corpus_entry *ce = NULL;
    enc_entry *ee = NULL;
    sbi_feat_reader *rd = NULL;
    float *pooled = NULL;
    const sb_st_tensor **frames = NULL;
    json_t *hdr = NULL, *ids = NULL;
    sb_status st = get_corpus(&c, ds, &ce, err);
    if (st == SB_OK)
        st = get_encoder(&c, enc, NULL, &ee, err);
    if (st == SB_OK && ee->info.input == SB_INPUT_TEXT)
        st = sb_error_set(err, SB_ERR_CONFIG, enc->name,
                          "export features covers audio encoders; %s reads text (its features "
                          "are cheap to recompute from the transcripts)",
                          enc->name);
    if (st != SB_OK)
        goto out;
    const int L = ee->info.n_layers, D = ee->info.dim, F = ee->info.frame_dim;
    const size_t width = (size_t)L * (size_t)D, total = sb_corpus_size(ce->c);
    st = sbi_feat_reader_create(store, ee->key, L, D, &rd, err);
    if (st != SB_OK)
        goto out;
    pooled = malloc((total + 1) * width * sizeof *pooled);
    frames = calloc(total + 1, sizeof *frames);
    hdr = json_object();
    ids = json_array();
    json_t *meta = json_object();
    if (!pooled || !frames || !hdr || !ids || !meta ||
        json_object_set_new(hdr, "__metadata__", meta) != 0) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    json_t *pooled_entry = json_object();
    json_object_set_new(hdr, "pooled", pooled_entry); /* filled once n is known */
    size_t n = 0, off = 0;
    for (size_t i = 0; i < total && st == SB_OK; i++) {
        const sb_utt *u = sb_corpus_utt(ce->c, i);
        sb_error e = { 0 };
        if (ce->excluded[i] || item_key(&c, ce, i, ee->info.sample_rate, &e) != SB_OK) {
            sum->n_missing++;
            continue;
        }
        sb_status rs = sbi_feat_read(rd, ce->item_keys[i], pooled + n * width, &e);
        if (rs == SB_OK && F > 0)
            rs = sbi_feat_read_frames(rd, ce->item_keys[i], F, &frames[n], &e);
        if (rs == SB_ERR_NOT_FOUND) {
            sum->n_missing++;
            continue;
        }
        if (rs != SB_OK) {
            st = rs;
            if (err)
                *err = e;
            break;
        }
        if (frames[n]) {
            char *name = sbi_asprintf("frames.%s", u->id);
            const sb_st_tensor *t = frames[n];
            json_t *ent = json_pack(
                "{s:s, s:[I, I, I], s:[I, I]}", "dtype", t->dtype == SB_DT_F16 ? "F16" : "F32",
                "shape", (json_int_t)t->shape[0], (json_int_t)t->shape[1], (json_int_t)t->shape[2],
                "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes));
            if (!name || !ent)
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            else if (json_object_get(hdr, name))
                st = sb_error_set(err, SB_ERR_FORMAT, u->id,
                                  "two utterances of dataset %s have the id '%s'", ds->name, u->id);
            else
                json_object_set(hdr, name, ent);
            json_decref(ent);
            free(name);
            off += t->nbytes;
            sum->n_frames++;
        }
        if (st == SB_OK && json_array_append_new(ids, json_string(u->id)) != 0)
            st = sb_error_set(err, SB_ERR_FORMAT, u->id, "utterance id is not valid UTF-8");
        n++;
    }
    if (st != SB_OK)
        goto out;
    if (n == 0) {
        st = sb_error_set(err, SB_ERR_NOT_FOUND, ds->name,
                          "no stored features of dataset %s under encoder %s (%zu utterances "
                          "looked up); run serbench encode CONFIG first",
                          ds->name, enc->name, total);
        goto out;
    }
    /* Frames follow the pooled matrix in the data area. */
    const size_t pooled_bytes = n * width * sizeof(float);
    const char *name;
    json_t *ent;
    json_object_foreach(hdr, name, ent)
    {
        if (strncmp(name, "frames.", 7) != 0)
            continue;
        json_t *o = json_object_get(ent, "data_offsets");
        json_array_set_new(
            o, 0,
            json_integer(json_integer_value(json_array_get(o, 0)) + (json_int_t)pooled_bytes));
        json_array_set_new(
            o, 1,
            json_integer(json_integer_value(json_array_get(o, 1)) + (json_int_t)pooled_bytes));
    }
    json_object_set_new(pooled_entry, "dtype", json_string("F32"));
    json_object_set_new(pooled_entry, "shape",
                        json_pack("[I, I, I]", (json_int_t)n, (json_int_t)L, (json_int_t)D));
    json_object_set_new(pooled_entry, "data_offsets",
                        json_pack("[I, I]", (json_int_t)0, (json_int_t)pooled_bytes));
    char *ids_text = json_dumps(ids, JSON_COMPACT);
    char *canon = json_dumps(enc->canon, JSON_COMPACT | JSON_SORT_KEYS);
    json_object_set_new(meta, "utt_ids", json_string(ids_text ? ids_text : "[]"));
    json_object_set_new(meta, "serbench.dataset", json_string(ds->name));
    json_object_set_new(meta, "serbench.corpus_key", json_string(ce->key));
    json_object_set_new(meta, "serbench.encoder_key", json_string(ee->key));
    json_object_set_new(meta, "serbench.encoder", json_string(canon ? canon : "{}"));
    free(ids_text);
    free(canon);
    sum->n_items = n;
    st = export_write(out, hdr, pooled, n * width, frames, n, err);
out:
    json_decref(hdr);
    json_decref(ids);
    free(pooled);
    free(frames);
    sbi_feat_reader_destroy(&rd);
    ctx_free(&c);
    pthread_mutex_destroy(&c.lock);
    return st;
}
