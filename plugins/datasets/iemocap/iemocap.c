/* plugins/datasets/iemocap/iemocap.c — the `iemocap` dataset plugin: IEMOCAP_full_release
 * as distributed (EmoEvaluation summary and rating lines, transcriptions, sentence wavs),
 * under the protocols iemocap-4class-loso and iemocap-6class-erc. Reads text only; audio
 * is never opened. Reference: docs/datasets.md, "## iemocap". */
#include <serbench/serbench.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "parse.h"

#define N_SESSIONS 5
#define ERC_DEV_DIALOGS 20 /* iemocap-6class-erc, dev: last20 */

static const char *const classes_4[] = { "neu", "hap", "ang", "sad" };
static const char *const classes_6[] = { "hap", "sad", "neu", "ang", "exc", "fru" };
/* Every code the release uses (docs/datasets.md); others are reported once. */
static const char *const known_codes[] = { "neu", "hap", "exc", "ang", "sad", "fru",
                                           "xxx", "sur", "fea", "oth", "dis", NULL };

enum { PROTO_LOSO, PROTO_ERC };
enum { DEV_SPEAKER, DEV_SESSION, DEV_LAST20, DEV_NONE };

/* ---- an arena for the many small strings of one load ------------------------------- */

typedef struct blk {
    struct blk *next;
    size_t used, cap;
    char data[];
} blk;

typedef struct arena {
    blk *head;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        blk *b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void arena_free(arena *a)
{
    while (a->head) {
        blk *b = a->head;
        a->head = b->next;
        free(b);
    }
}

/* ---- the loader -------------------------------------------------------------------- */

typedef struct dialog {
    const char *name; /* "Ses01F_script02_2" */
    const char *emo_path, *tr_path;
    int session;      /* 1..5, from the SessionN folder */
    int name_session; /* from the name: Ses02F_... → 2 */
    int scripted;
    int wav_state; /* dialog/wav/<dialog>.wav: 0 unknown, 1 present, -1 absent */
    int dev;       /* ERC last20: held out as dev */
} dialog;

typedef struct rating {
    const char *rater;
    const char **cats;
    int n_cats;
} rating;

/* One turn: a summary line (code != NULL) or a transcription line without one. */
typedef struct turn {
    const char *id, *code, *text;
    double start, end, vad[3];
    size_t dialog;
    long line;    /* summary line in the dialog's EmoEvaluation file (or 0) */
    long tr_line; /* line in its transcription file (or 0) */
    int32_t index;
    char gender; /* 'F', 'M', or 0 */
    size_t rating_first;
    int n_ratings;
} turn;

typedef struct loader {
    const sb_host *host;
    const sb_opts *opts;
    sb_corpus *corpus;
    sb_error *err;
    char root[PATH_MAX];
    arena ar;
    dialog *dialogs;
    size_t n_dialogs, cap_dialogs;
    turn *turns;
    size_t n_turns, cap_turns;
    rating *ratings;
    size_t n_ratings, cap_ratings;
    size_t *hash; /* open addressing: turn index + 1, 0 = empty */
    size_t hash_cap;
    /* what was seen, for the log and the corpus info */
    size_t n_summary, n_tr_lines, n_tr_only, n_tr_skipped, n_repaired, n_multi, n_no_text;
    size_t n_unknown_code;
    char first_skipped[PATH_MAX + 32];
    char unknown_codes[256];
} loader;

static void llog(const loader *L, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void llog(const loader *L, sb_log_level level, const char *fmt, ...)
{
    if (!L->host || !L->host->log)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    L->host->log(L->host, level, "%s", buf);
}

/* An error at path:line (line 0: just the path). */
static sb_status file_error(loader *L, sb_status code, const char *path, long line, const char *fmt,
                            ...) SB_PRINTF(5, 6);
static sb_status file_error(loader *L, sb_status code, const char *path, long line, const char *fmt,
                            ...)
{
    char where[PATH_MAX + 32], msg[1400];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%ld", path, line);
    else
        snprintf(where, sizeof where, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(L->err, code, where, "%s", msg);
}

static sb_status nomem(loader *L)
{
    return sb_error_set(L->err, SB_ERR_NOMEM, L->root, "out of memory while reading IEMOCAP");
}

/* snprintf for paths: 0, or -1 when the result would not fit. */
static int pathf(char *out, size_t size, const char *fmt, ...) SB_PRINTF(3, 4);
static int pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

static sb_status too_long(loader *L, const char *what)
{
    return sb_error_set(L->err, SB_ERR_INVALID, L->root, "path too long: %.200s...", what);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read a whole file, NUL-terminated. */
static sb_status read_all(loader *L, const char *path, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return file_error(L, SB_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1)
            break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return nomem(L);
    if (bad) {
        free(buf);
        return file_error(L, SB_ERR_IO, path, 0, "read error");
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        return file_error(L, SB_ERR_FORMAT, path, 0,
                          "holds a NUL byte: this is not a text file; move it out of the "
                          "IEMOCAP tree");
    }
    *out = buf;
    *len = n;
    return SB_OK;
}

/* The next line of buf (cut in place at '\n', CR removed); NULL at the end. */
static char *next_line(char **cursor, char *end)
{
    char *p = *cursor;
    if (p >= end)
        return NULL;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl : end;
    *cursor = nl ? nl + 1 : end;
    *e = '\0';
    if (e > p && e[-1] == '\r')
        e[-1] = '\0';
    return p;
}

static int is_blank_line(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* A short, printable excerpt of a line for messages. */
static const char *excerpt(const char *line, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *p = line; *p && n + 4 < size && n < 120; p++)
        buf[n++] = (*p == '\t') ? ' ' : ((unsigned char)*p < 0x20 ? '?' : *p);
    if (strlen(line) > 120 && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- the id index ------------------------------------------------------------------ */

static size_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 29));
}

/* Index of the turn with this id, or -1. */
static long find_turn(const loader *L, const char *id, size_t n)
{
    if (!L->hash_cap)
        return -1;
    for (size_t h = hash_id(id, n) & (L->hash_cap - 1); L->hash[h];
         h = (h + 1) & (L->hash_cap - 1)) {
        const char *t = L->turns[L->hash[h] - 1].id;
        if (strncmp(t, id, n) == 0 && t[n] == '\0')
            return (long)(L->hash[h] - 1);
    }
    return -1;
}

static int hash_put(loader *L, size_t ti)
{
    if ((L->n_turns + 1) * 2 > L->hash_cap) {
        size_t cap = L->hash_cap ? L->hash_cap * 2 : 4096;
        size_t *h = calloc(cap, sizeof *h);
        if (!h)
            return -1;
        for (size_t i = 0; i < L->hash_cap; i++) {
            if (!L->hash[i])
                continue;
            const char *id = L->turns[L->hash[i] - 1].id;
            size_t k = hash_id(id, strlen(id)) & (cap - 1);
            while (h[k])
                k = (k + 1) & (cap - 1);
            h[k] = L->hash[i];
        }
        free(L->hash);
        L->hash = h;
        L->hash_cap = cap;
    }
    const char *id = L->turns[ti].id;
    size_t k = hash_id(id, strlen(id)) & (L->hash_cap - 1);
    while (L->hash[k])
        k = (k + 1) & (L->hash_cap - 1);
    L->hash[k] = ti + 1;
    return 0;
}

static turn *new_turn(loader *L)
{
    if (L->n_turns == L->cap_turns) {
        size_t cap = L->cap_turns ? L->cap_turns * 2 : 1024;
        turn *p = realloc(L->turns, cap * sizeof *p);
        if (!p)
            return NULL;
        L->turns = p;
        L->cap_turns = cap;
    }
    turn *t = &L->turns[L->n_turns];
    memset(t, 0, sizeof *t);
    t->index = -1;
    return t;
}

/* ---- EmoEvaluation ----------------------------------------------------------------- */

static int known_code(const char *code)
{
    for (const char *const *k = known_codes; *k; k++)
        if (strcmp(*k, code) == 0)
            return 1;
    return 0;
}

static sb_status add_rating(loader *L, turn *t, const sbi_iem_rating *r)
{
    if (L->n_ratings == L->cap_ratings) {
        size_t cap = L->cap_ratings ? L->cap_ratings * 2 : 4096;
        rating *p = realloc(L->ratings, cap * sizeof *p);
        if (!p)
            return nomem(L);
        L->ratings = p;
        L->cap_ratings = cap;
    }
    rating *d = &L->ratings[L->n_ratings];
    d->rater = arena_strndup(&L->ar, r->rater.p, r->rater.n);
    d->cats = arena_alloc(&L->ar, (size_t)r->n_cats * sizeof *d->cats);
    if (!d->rater || !d->cats)
        return nomem(L);
    for (int k = 0; k < r->n_cats; k++) {
        const char *s = r->cats[k].p;
        size_t n = r->cats[k].n;
        if (sb_utf8_valid(s, n)) {
            d->cats[k] = arena_strndup(&L->ar, s, n);
        } else {
            char *fixed = sb_text_repair(s, n, NULL);
            d->cats[k] = fixed ? arena_strndup(&L->ar, fixed, strlen(fixed)) : NULL;
            sb_free(fixed);
        }
        if (!d->cats[k])
            return nomem(L);
    }
    d->n_cats = r->n_cats;
    if (t->n_ratings == 0)
        t->rating_first = L->n_ratings;
    t->n_ratings++;
    L->n_ratings++;
    if (r->n_cats > 1)
        L->n_multi++;
    return SB_OK;
}

/* Check a summary line's utterance id against its file: the id's dialog part is the
 * file's dialog, and its last part starts with the speaker's F or M. */
static sb_status check_summary_id(loader *L, const dialog *d, long line, const sbi_iem_span *id,
                                  char *gender)
{
    size_t dl = sbi_iem_dialog_len(id->p, id->n);
    char letter = sbi_iem_speaker_letter(id->p, id->n);
    if (dl != strlen(d->name) || strncmp(id->p, d->name, dl) != 0)
        return file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                          "utterance id '%.*s' does not belong to dialog %s (expected "
                          "%s_<F|M><number>); the label file and the id disagree",
                          (int)id->n, id->p, d->name, d->name);
    if (letter != 'F' && letter != 'M')
        return file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                          "utterance id '%.*s' does not end in _F<number> or _M<number>, so "
                          "its speaker is unknown",
                          (int)id->n, id->p);
    *gender = letter;
    return SB_OK;
}

static sb_status read_emo_file(loader *L, size_t di)
{
    dialog *d = &L->dialogs[di];
    char *buf;
    size_t len;
    sb_status st = read_all(L, d->emo_path, &buf, &len);
    if (st != SB_OK)
        return st;
    char *cur = buf, *end = buf + len, *s, ex[160];
    long line = 0, last = -1; /* last: the turn that rating lines belong to */
    while ((s = next_line(&cur, end))) {
        line++;
        if (is_blank_line(s) || s[0] == '%')
            continue;
        const char *p = s;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '[') {
            sbi_iem_summary sm;
            const char *why = NULL;
            char gender = 0;
            if (sbi_iem_parse_summary(s, &sm, &why) != 0) {
                st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                                "malformed summary line: %s; expected '[START - END]<TAB>ID"
                                "<TAB>CODE<TAB>[V, A, D]', found '%s'",
                                why, excerpt(s, ex, sizeof ex));
                goto out;
            }
            if ((st = check_summary_id(L, d, line, &sm.id, &gender)) != SB_OK)
                goto out;
            long dup = find_turn(L, sm.id.p, sm.id.n);
            if (dup >= 0) {
                const turn *o = &L->turns[dup];
                st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                                "duplicate utterance id %s: also at %s:%ld; remove one of "
                                "the two lines (or the stray copy of the file)",
                                o->id, L->dialogs[o->dialog].emo_path, o->line);
                goto out;
            }
            if (sm.end <= sm.start)
                llog(L, SB_LOG_WARN, "%s:%ld: %.*s ends (%.4f s) before it starts (%.4f s)",
                     d->emo_path, line, (int)sm.id.n, sm.id.p, sm.end, sm.start);
            turn *t = new_turn(L);
            if (!t) {
                st = nomem(L);
                goto out;
            }
            t->id = arena_strndup(&L->ar, sm.id.p, sm.id.n);
            t->code = arena_strndup(&L->ar, sm.code.p, sm.code.n);
            if (!t->id || !t->code) {
                st = nomem(L);
                goto out;
            }
            t->start = sm.start;
            t->end = sm.end;
            memcpy(t->vad, sm.vad, sizeof t->vad);
            t->dialog = di;
            t->line = line;
            t->gender = gender;
            last = (long)L->n_turns++;
            if (hash_put(L, (size_t)last) != 0) {
                st = nomem(L);
                goto out;
            }
            L->n_summary++;
            if (!known_code(t->code)) {
                L->n_unknown_code++;
                size_t u = strlen(L->unknown_codes);
                if (!strstr(L->unknown_codes, t->code) && u + strlen(t->code) + 3 < 200)
                    snprintf(L->unknown_codes + u, sizeof L->unknown_codes - u, "%s%s",
                             u ? ", " : "", t->code);
            }
        } else if (s[0] == 'C' && s[1] == '-') {
            sbi_iem_rating r;
            const char *why = NULL;
            if (sbi_iem_parse_rating(s, &r, &why) != 0) {
                st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                                "malformed rating line: %s; found '%s'", why,
                                excerpt(s, ex, sizeof ex));
                goto out;
            }
            if (last < 0) {
                st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                                "rating line before any summary line: it belongs to no "
                                "utterance");
                goto out;
            }
            if ((st = add_rating(L, &L->turns[last], &r)) != SB_OK)
                goto out;
        } else if (sbi_iem_is_attribute(s)) {
            /* per-rater V/A/D: not read (the summary line carries their means) */
            if (last < 0) {
                st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                                "attribute line before any summary line: it belongs to no "
                                "utterance");
                goto out;
            }
        } else {
            st = file_error(L, SB_ERR_FORMAT, d->emo_path, line,
                            "not an EmoEvaluation line: expected a summary line "
                            "'[START - END]<TAB>ID<TAB>CODE<TAB>[V, A, D]', a rating line "
                            "'C-E2:<TAB>Neutral;<TAB>()' or 'A-E2:<TAB>val 3; act 2; dom  2;', "
                            "found '%s'. Only IEMOCAP label files belong directly in "
                            "EmoEvaluation/",
                            excerpt(s, ex, sizeof ex));
            goto out;
        }
    }
out:
    free(buf);
    return st;
}

/* ---- transcriptions ---------------------------------------------------------------- */

static sb_status set_text(loader *L, turn *t, const sbi_iem_span *text)
{
    const char *s = text->p;
    size_t n = text->n;
    if (sb_utf8_valid(s, n)) {
        t->text = arena_strndup(&L->ar, s, n);
    } else {
        char *fixed = sb_text_repair(s, n, NULL);
        t->text = fixed ? arena_strndup(&L->ar, fixed, strlen(fixed)) : NULL;
        sb_free(fixed);
        L->n_repaired++;
    }
    return t->text ? SB_OK : nomem(L);
}

static sb_status read_transcriptions(loader *L, size_t di)
{
    dialog *d = &L->dialogs[di];
    if (!is_file(d->tr_path)) {
        llog(L, SB_LOG_WARN, "%s: no transcription file; the turns of %s get no text", d->tr_path,
             d->name);
        return SB_OK;
    }
    char *buf;
    size_t len;
    sb_status st = read_all(L, d->tr_path, &buf, &len);
    if (st != SB_OK)
        return st;
    char *cur = buf, *end = buf + len, *s;
    long line = 0;
    size_t name_len = strlen(d->name);
    while ((s = next_line(&cur, end))) {
        line++;
        if (is_blank_line(s))
            continue;
        sbi_iem_transcript tr;
        if (!sbi_iem_parse_transcript(s, &tr) || sbi_iem_dialog_len(tr.id.p, tr.id.n) != name_len ||
            strncmp(tr.id.p, d->name, name_len) != 0) {
            /* Not a turn of this dialog: public readers skip these lines too. */
            if (L->n_tr_skipped++ == 0)
                snprintf(L->first_skipped, sizeof L->first_skipped, "%s:%ld", d->tr_path, line);
            continue;
        }
        L->n_tr_lines++;
        long ti = find_turn(L, tr.id.p, tr.id.n);
        if (ti >= 0) {
            turn *t = &L->turns[ti];
            if (t->tr_line) {
                llog(L, SB_LOG_WARN,
                     "%s:%ld: second transcription of %s ignored (first at line %ld)", d->tr_path,
                     line, t->id, t->tr_line);
                continue;
            }
            t->tr_line = line;
            if ((st = set_text(L, t, &tr.text)) != SB_OK)
                break;
            continue;
        }
        /* A turn without a summary line: dialogue context, never labelled. */
        turn *t = new_turn(L);
        if (!t) {
            st = nomem(L);
            break;
        }
        t->id = arena_strndup(&L->ar, tr.id.p, tr.id.n);
        if (!t->id) {
            st = nomem(L);
            break;
        }
        t->start = tr.start;
        t->end = tr.end;
        t->dialog = di;
        t->tr_line = line;
        char g = sbi_iem_speaker_letter(tr.id.p, tr.id.n);
        t->gender = (g == 'F' || g == 'M') ? g : 0;
        if ((st = set_text(L, t, &tr.text)) != SB_OK)
            break;
        if (hash_put(L, L->n_turns++) != 0) {
            st = nomem(L);
            break;
        }
        L->n_tr_only++;
    }
    free(buf);
    return st;
}

/* ---- finding the files ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int has_txt_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".txt") == 0;
}

/* Add the dialogs of one session: every *.txt directly in EmoEvaluation/, by name. */
static sb_status list_session(loader *L, int session)
{
    char dir[PATH_MAX];
    if (pathf(dir, sizeof dir, "%s/Session%d/dialog/EmoEvaluation", L->root, session) != 0)
        return too_long(L, L->root);
    DIR *dh = opendir(dir);
    if (!dh)
        return file_error(L, SB_ERR_IO, dir, 0, "cannot list: %s", strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    sb_status st = SB_OK;
    struct dirent *e;
    while ((e = readdir(dh))) {
        /* '.', '..' and macOS "._*" resource forks start with '.'; Categorical/,
         * Attribute/ and Self-evaluation/ are folders and have no .txt suffix. */
        if (e->d_name[0] == '.' || !has_txt_suffix(e->d_name))
            continue;
        char path[PATH_MAX];
        if (pathf(path, sizeof path, "%s/%s", dir, e->d_name) != 0 || !is_file(path))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                st = nomem(L);
                break;
            }
            names = p;
        }
        if (!(names[n] = arena_strndup(&L->ar, e->d_name, strlen(e->d_name)))) {
            st = nomem(L);
            break;
        }
        n++;
    }
    closedir(dh);
    if (st == SB_OK && n == 0)
        st = file_error(L, SB_ERR_NOT_FOUND, dir, 0,
                        "no label files (<dialog>.txt) in this folder; is the Session%d copy "
                        "complete?",
                        session);
    if (st != SB_OK) {
        free(names);
        return st;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && st == SB_OK; i++) {
        size_t nl = strlen(names[i]) - 4;
        names[i][nl] = '\0';
        char path[PATH_MAX];
        if (pathf(path, sizeof path, "%s/%s.txt", dir, names[i]) != 0) {
            st = too_long(L, dir);
            break;
        }
        const char *nm = names[i];
        if (strncmp(nm, "Ses", 3) != 0 || !isdigit((unsigned char)nm[3]) ||
            !isdigit((unsigned char)nm[4]) || (nm[5] != 'F' && nm[5] != 'M') || nm[6] != '_') {
            st = file_error(L, SB_ERR_FORMAT, path, 0,
                            "not an IEMOCAP label file name: expected Ses%02dF_<name>.txt or "
                            "Ses%02dM_<name>.txt (as in Ses%02dF_impro01.txt); move other "
                            "files out of EmoEvaluation/",
                            session, session, session);
            break;
        }
        if (L->n_dialogs == L->cap_dialogs) {
            size_t c = L->cap_dialogs ? L->cap_dialogs * 2 : 64;
            dialog *p = realloc(L->dialogs, c * sizeof *p);
            if (!p) {
                st = nomem(L);
                break;
            }
            L->dialogs = p;
            L->cap_dialogs = c;
        }
        dialog *d = &L->dialogs[L->n_dialogs];
        memset(d, 0, sizeof *d);
        d->name = names[i];
        d->session = session;
        d->name_session = (nm[3] - '0') * 10 + (nm[4] - '0');
        d->scripted = strstr(names[i], "_script") != NULL;
        d->emo_path = arena_strndup(&L->ar, path, strlen(path));
        if (pathf(path, sizeof path, "%s/Session%d/dialog/transcriptions/%s.txt", L->root, session,
                  names[i]) != 0) {
            st = too_long(L, L->root);
            break;
        }
        d->tr_path = arena_strndup(&L->ar, path, strlen(path));
        if (!d->emo_path || !d->tr_path) {
            st = nomem(L);
            break;
        }
        L->n_dialogs++;
    }
    free(names);
    return st;
}

/* Find the release root: `root` itself, or an IEMOCAP_full_release folder inside it. */
static sb_status find_root(loader *L, const char *root)
{
    const char *where = sb_opts_where(L->opts, "root");
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n >= sizeof L->root - 512)
        return sb_error_set(L->err, SB_ERR_CONFIG, where, "root path is too long");
    memcpy(L->root, root, n);
    L->root[n] = '\0';
    struct stat st;
    if (stat(L->root, &st) != 0)
        return sb_error_set(L->err, SB_ERR_NOT_FOUND, where,
                            "root '%s' does not exist (%s); set root to the IEMOCAP_full_release "
                            "folder, the one holding Session1 ... Session5",
                            L->root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sb_error_set(L->err, SB_ERR_CONFIG, where,
                            "root '%s' is not a folder; set root to the IEMOCAP_full_release "
                            "folder, the one holding Session1 ... Session5",
                            L->root);
    char p[PATH_MAX];
    pathf(p, sizeof p, "%s/Session1", L->root); /* root is short enough: checked above */
    if (!is_dir(p)) {
        pathf(p, sizeof p, "%s/IEMOCAP_full_release/Session1", L->root);
        if (is_dir(p)) {
            strcat(L->root, "/IEMOCAP_full_release");
            llog(L, SB_LOG_INFO, "reading %s (found inside the root folder given)", L->root);
        }
    }
    char missing[256] = "";
    int n_found = 0;
    for (int s = 1; s <= N_SESSIONS; s++) {
        pathf(p, sizeof p, "%s/Session%d/dialog/EmoEvaluation", L->root, s);
        if (is_dir(p)) {
            n_found++;
        } else {
            size_t m = strlen(missing);
            snprintf(missing + m, sizeof missing - m, "%sSession%d/dialog/EmoEvaluation",
                     m ? ", " : "", s);
        }
    }
    if (n_found == 0)
        return sb_error_set(
            L->err, SB_ERR_FORMAT, where,
            "'%s' is not an IEMOCAP release folder: it has no "
            "Session1/dialog/EmoEvaluation. Expected IEMOCAP_full_release/ with "
            "Session1 ... Session5, each holding dialog/EmoEvaluation/<dialog>.txt, "
            "dialog/transcriptions/ and sentences/wav/<dialog>/<utt>.wav",
            L->root);
    if (n_found < N_SESSIONS)
        return sb_error_set(L->err, SB_ERR_NOT_FOUND, where,
                            "IEMOCAP folder '%s' lacks %s; the protocols need all five sessions "
                            "(for a subset, list it in a manifest and use the manifest plugin)",
                            L->root, missing);
    return SB_OK;
}

/* ---- protocol ---------------------------------------------------------------------- */

typedef struct protocol {
    int kind;
    int fold; /* LOSO: the test session */
    int dev;  /* DEV_* after resolving auto */
    int dev_session;
    char dev_gender; /* DEV_SPEAKER */
    int unlabelled;  /* add turns outside the label space as context */
} protocol;

static int label_of(const protocol *pr, const char *code)
{
    if (!code)
        return -1;
    if (pr->kind == PROTO_LOSO) {
        if (strcmp(code, "exc") == 0)
            return 1; /* merged into hap */
        for (int k = 0; k < 4; k++)
            if (strcmp(code, classes_4[k]) == 0)
                return k;
        return -1;
    }
    for (int k = 0; k < 6; k++)
        if (strcmp(code, classes_6[k]) == 0)
            return k;
    return -1;
}

static const char *split_of(const protocol *pr, const dialog *d, const turn *t)
{
    if (pr->kind == PROTO_LOSO) {
        if (d->session == pr->fold)
            return "test";
        if (pr->dev == DEV_SESSION && d->session == pr->dev_session)
            return "dev";
        if (pr->dev == DEV_SPEAKER && d->session == pr->dev_session && t->gender == pr->dev_gender)
            return "dev";
        return "train";
    }
    if (d->session == 5)
        return "test";
    if (pr->dev == DEV_SESSION && d->session == 4)
        return "dev";
    if (pr->dev == DEV_LAST20 && d->dev)
        return "dev";
    return "train";
}

static sb_status resolve_protocol(loader *L, protocol *pr)
{
    const sb_opts *o = L->opts;
    memset(pr, 0, sizeof *pr);
    const char *name = sb_opts_str(o, "protocol");
    pr->kind = (name && strcmp(name, "iemocap-6class-erc") == 0) ? PROTO_ERC : PROTO_LOSO;
    pr->fold = (int)sb_opts_int(o, "fold");
    if (pr->fold < 1 || pr->fold > N_SESSIONS)
        pr->fold = 1;
    const char *dev = sb_opts_str(o, "dev");
    if (!dev || strcmp(dev, "auto") == 0)
        pr->dev = pr->kind == PROTO_LOSO ? DEV_SPEAKER : DEV_LAST20;
    else if (strcmp(dev, "speaker") == 0)
        pr->dev = DEV_SPEAKER;
    else if (strcmp(dev, "session") == 0)
        pr->dev = DEV_SESSION;
    else if (strcmp(dev, "last20") == 0)
        pr->dev = DEV_LAST20;
    else
        pr->dev = DEV_NONE;
    if (pr->kind == PROTO_ERC) {
        if (pr->fold != 1)
            return sb_error_set(L->err, SB_ERR_CONFIG, sb_opts_where(o, "fold"),
                                "fold %d: iemocap-6class-erc has a single split (sessions 1-4 "
                                "train, session 5 test); remove fold or set it to 1",
                                pr->fold);
        if (pr->dev == DEV_SPEAKER)
            return sb_error_set(L->err, SB_ERR_CONFIG, sb_opts_where(o, "dev"),
                                "dev: speaker would cut dialogues in half, and "
                                "iemocap-6class-erc needs whole dialogues; use last20 (the "
                                "default), session or none");
        pr->dev_session = 4;
    } else {
        if (pr->dev == DEV_LAST20)
            return sb_error_set(L->err, SB_ERR_CONFIG, sb_opts_where(o, "dev"),
                                "dev: last20 belongs to iemocap-6class-erc; for "
                                "iemocap-4class-loso use speaker (the default), session or none");
        pr->dev_session = pr->fold % N_SESSIONS + 1;
        pr->dev_gender = (pr->fold % 2) ? 'F' : 'M';
    }
    pr->unlabelled = sb_opts_has(o, "include_unlabelled") ? sb_opts_bool(o, "include_unlabelled")
                                                          : pr->kind == PROTO_ERC;
    return SB_OK;
}

/* ---- building the corpus ----------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t n, cap;
    int oom;
} strbuf;

static void buf_put(strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void buf_puts(strbuf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_fmt(strbuf *b, const char *fmt, ...) SB_PRINTF(2, 3);
static void buf_fmt(strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void buf_json_str(strbuf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = { '\\', (char)*p };
            buf_put(b, e, 2);
        } else if (*p < 0x20) {
            buf_fmt(b, "\\u%04x", *p);
        } else {
            buf_put(b, (const char *)p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void build_meta(const loader *L, const turn *t, strbuf *b)
{
    const dialog *d = &L->dialogs[t->dialog];
    b->n = 0;
    buf_puts(b, "{");
    if (t->code)
        buf_fmt(b, "\"vad\":[%.6g,%.6g,%.6g],", t->vad[0], t->vad[1], t->vad[2]);
    buf_fmt(b, "\"session\":%d,", d->session);
    if (t->code) {
        buf_puts(b, "\"code\":");
        buf_json_str(b, t->code);
        buf_puts(b, ",");
    } else {
        buf_puts(b, "\"transcription_only\":true,");
    }
    buf_puts(b, d->scripted ? "\"scripted\":true" : "\"scripted\":false");
    /* Raters who gave several categories: all of them (the rating keeps the first). */
    int opened = 0;
    for (int k = 0; k < t->n_ratings; k++) {
        const rating *r = &L->ratings[t->rating_first + (size_t)k];
        if (r->n_cats < 2)
            continue;
        buf_puts(b, opened ? "," : ",\"multi\":{");
        opened = 1;
        buf_json_str(b, r->rater);
        buf_puts(b, ":[");
        for (int c = 0; c < r->n_cats; c++) {
            if (c)
                buf_puts(b, ",");
            buf_json_str(b, r->cats[c]);
        }
        buf_puts(b, "]");
    }
    if (opened)
        buf_puts(b, "}");
    buf_puts(b, "}");
}

/* Turn order: dialog (already in session and name order), then start time, end time, id. */
static int turn_before(const turn *T, size_t a, size_t b)
{
    const turn *x = &T[a], *y = &T[b];
    if (x->dialog != y->dialog)
        return x->dialog < y->dialog;
    if (x->start != y->start)
        return x->start < y->start;
    if (x->end != y->end)
        return x->end < y->end;
    return strcmp(x->id, y->id) < 0;
}

/* Stable merge sort of turn indices (qsort would need the turns in a global). */
static void merge_sort(const turn *T, size_t *v, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(T, v, tmp, h);
    merge_sort(T, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = turn_before(T, v[j], v[i]) ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static sb_status add_all(loader *L, const protocol *pr)
{
    sb_status st = SB_OK;
    size_t *order = malloc((L->n_turns + 1) * sizeof *order);
    size_t *tmp = malloc((L->n_turns + 1) * sizeof *tmp);
    strbuf meta = { 0 };
    if (!order || !tmp) {
        free(order);
        free(tmp);
        return nomem(L);
    }
    for (size_t i = 0; i < L->n_turns; i++)
        order[i] = i;
    merge_sort(L->turns, order, tmp, L->n_turns);
    free(tmp);

    /* Turn index: position by start time among all turns of the dialog, whatever the
     * protocol keeps, so an utterance's turn never depends on the options. */
    for (size_t i = 0, k = 0; i < L->n_turns; i++) {
        turn *t = &L->turns[order[i]];
        if (i > 0 && L->turns[order[i - 1]].dialog != t->dialog)
            k = 0;
        t->index = (int32_t)k++;
    }

    size_t counts[3][7] = { { 0 } }; /* split × (class..., unlabelled) */
    int nc = pr->kind == PROTO_LOSO ? 4 : 6;
    char audio[PATH_MAX * 2], speaker[32];
    for (size_t i = 0; i < L->n_turns && st == SB_OK; i++) {
        turn *t = &L->turns[order[i]];
        dialog *d = &L->dialogs[t->dialog];
        int label = label_of(pr, t->code);
        if (label < 0 && !pr->unlabelled)
            continue;
        sb_utt u;
        sb_utt_init(&u);
        u.id = t->id;
        u.dialogue = d->name;
        u.turn = t->index;
        if (t->gender) {
            snprintf(speaker, sizeof speaker, "Session%d_%c", d->session, t->gender);
            u.speaker = speaker;
        }
        if (t->code) {
            if (pathf(audio, sizeof audio, "%s/Session%d/sentences/wav/%s/%s.wav", L->root,
                      d->session, d->name, t->id) != 0) {
                st = too_long(L, t->id);
                break;
            }
            u.audio = audio;
        } else {
            /* No sentence wav exists for a transcription-only turn: its span of the
             * dialog recording, when that file is there. */
            if (pathf(audio, sizeof audio, "%s/Session%d/dialog/wav/%s.wav", L->root, d->session,
                      d->name) != 0) {
                st = too_long(L, d->name);
                break;
            }
            if (d->wav_state == 0)
                d->wav_state = is_file(audio) ? 1 : -1;
            if (d->wav_state > 0 && t->end > t->start) {
                u.audio = audio;
                u.start = t->start;
                u.end = t->end;
            }
        }
        u.text = t->text;
        u.split = split_of(pr, d, t);
        u.label = label;
        build_meta(L, t, &meta);
        if (meta.oom) {
            st = nomem(L);
            break;
        }
        u.meta = meta.s;
        if ((st = sb_corpus_add(L->corpus, &u, L->err)) != SB_OK)
            break;
        for (int k = 0; k < t->n_ratings && st == SB_OK; k++) {
            const rating *r = &L->ratings[t->rating_first + (size_t)k];
            st = sb_corpus_add_rating(L->corpus, t->id, r->rater, r->cats[0], L->err);
        }
        int si = u.split[0] == 't' ? (u.split[1] == 'r' ? 0 : 2) : 1;
        counts[si][label >= 0 ? label : 6]++;
        if (t->code && !t->text)
            L->n_no_text++;
    }
    free(meta.s);
    free(order);
    if (st != SB_OK)
        return st;

    static const char *const split_names[3] = { "train", "dev", "test" };
    const char *const *cls = pr->kind == PROTO_LOSO ? classes_4 : classes_6;
    for (int s = 0; s < 3; s++) {
        strbuf line = { 0 };
        size_t tot = 0;
        for (int k = 0; k < nc; k++) {
            buf_fmt(&line, "%s%s %zu", k ? ", " : "", cls[k], counts[s][k]);
            tot += counts[s][k];
        }
        if (pr->unlabelled)
            buf_fmt(&line, "; unlabelled context %zu", counts[s][6]);
        llog(L, SB_LOG_INFO, "%s: %zu labelled (%s)", split_names[s], tot, line.s ? line.s : "");
        free(line.s);
    }
    return SB_OK;
}

static sb_status set_info(loader *L, const protocol *pr)
{
    char buf[5120]; /* room for a root path of PATH_MAX plus the text */
    sb_status st;
    const char *proto = pr->kind == PROTO_LOSO ? "iemocap-4class-loso" : "iemocap-6class-erc";
    if ((st = sb_corpus_set_info(L->corpus, "protocol", proto, L->err)) != SB_OK ||
        (st = sb_corpus_set_info(L->corpus, "protocol_version", "1", L->err)) != SB_OK)
        return st;
    if (pr->kind == PROTO_LOSO)
        snprintf(buf, sizeof buf, "%d", pr->fold); /* = the test session */
    else
        snprintf(buf, sizeof buf, "none");
    if ((st = sb_corpus_set_info(L->corpus, "fold", buf, L->err)) != SB_OK)
        return st;

    if (pr->dev == DEV_NONE) {
        snprintf(buf, sizeof buf, "none");
    } else if (pr->dev == DEV_SPEAKER) {
        snprintf(buf, sizeof buf,
                 "speaker Session%d_%c: one speaker of the session after the test session (F on "
                 "odd folds, M on even), held out of training; speaker-independent",
                 pr->dev_session, pr->dev_gender);
    } else if (pr->dev == DEV_SESSION) {
        snprintf(buf, sizeof buf, "session %d: %s", pr->dev_session,
                 pr->kind == PROTO_LOSO ? "the session after the test session"
                                        : "the last training session");
    } else {
        size_t n_dev = 0;
        const char *first = NULL, *last = NULL;
        for (size_t i = 0; i < L->n_dialogs; i++)
            if (L->dialogs[i].dev) {
                n_dev++;
                if (!first)
                    first = L->dialogs[i].name;
                last = L->dialogs[i].name;
            }
        snprintf(buf, sizeof buf,
                 "last20: the last %d dialogues of Session 4 in name order (%zu here: %s .. %s)",
                 ERC_DEV_DIALOGS, n_dev, first ? first : "-", last ? last : "-");
    }
    if ((st = sb_corpus_set_info(L->corpus, "dev_split", buf, L->err)) != SB_OK)
        return st;

    snprintf(buf, sizeof buf,
             "IEMOCAP_full_release at %s: %d sessions, %zu dialogues, %zu summary lines, %zu "
             "transcription turns (%zu without a summary line)",
             L->root, N_SESSIONS, L->n_dialogs, L->n_summary, L->n_tr_lines, L->n_tr_only);
    if ((st = sb_corpus_set_info(L->corpus, "layout", buf, L->err)) != SB_OK)
        return st;

    strbuf notes = { 0 };
    if (pr->kind == PROTO_LOSO)
        buf_puts(&notes, "exc merged into hap; codes other than neu/hap/exc/ang/sad ");
    else
        buf_puts(&notes, "codes other than hap/sad/neu/ang/exc/fru ");
    buf_puts(&notes, pr->unlabelled ? "kept as unlabelled context" : "left out");
    buf_fmt(&notes, "; transcription-only turns %s",
            pr->unlabelled ? "kept as unlabelled context" : "left out");
    buf_puts(&notes, "; speaker = Session<N>_<F|M> from the utterance suffix; ratings = the "
                     "first category of each C- line (all in meta.multi when several)");
    if (L->n_repaired)
        buf_fmt(&notes, "; %zu transcription lines repaired to UTF-8", L->n_repaired);
    st = notes.oom ? nomem(L) : sb_corpus_set_info(L->corpus, "notes", notes.s, L->err);
    free(notes.s);
    return st;
}

static void loader_free(loader *L)
{
    free(L->dialogs);
    free(L->turns);
    free(L->ratings);
    free(L->hash);
    arena_free(&L->ar);
}

static sb_status iemocap_load(const sb_host *host, const sb_opts *opts, sb_corpus *corpus,
                              sb_error *err)
{
    loader L;
    memset(&L, 0, sizeof L);
    L.host = host;
    L.opts = opts;
    L.corpus = corpus;
    L.err = err;
    protocol pr;
    sb_status st = resolve_protocol(&L, &pr);
    if (st == SB_OK)
        st = find_root(&L, sb_opts_str(opts, "root") ? sb_opts_str(opts, "root") : "");
    for (int s = 1; s <= N_SESSIONS && st == SB_OK; s++)
        st = list_session(&L, s);
    for (size_t i = 0; i < L.n_dialogs && st == SB_OK; i++) {
        if (host && host->cancelled && host->cancelled(host)) {
            st = sb_error_set(err, SB_ERR_CANCELLED, L.dialogs[i].emo_path, "cancelled");
            break;
        }
        if ((st = read_emo_file(&L, i)) == SB_OK)
            st = read_transcriptions(&L, i);
        if (host && host->progress)
            host->progress(host, i + 1, L.n_dialogs);
    }
    /* After parsing, so that a stray copy of another session's file is reported as the
     * duplicate it is, naming both files. */
    for (size_t i = 0; i < L.n_dialogs && st == SB_OK; i++)
        if (L.dialogs[i].name_session != L.dialogs[i].session)
            st = file_error(&L, SB_ERR_FORMAT, L.dialogs[i].emo_path, 0,
                            "dialog %s is in Session%d's folder but its name says session %d; "
                            "move it to Session%d/dialog/EmoEvaluation/",
                            L.dialogs[i].name, L.dialogs[i].session, L.dialogs[i].name_session,
                            L.dialogs[i].name_session);
    if (st == SB_OK && pr.kind == PROTO_ERC && pr.dev == DEV_LAST20) {
        size_t k = 0;
        for (size_t i = L.n_dialogs; i-- > 0 && k < ERC_DEV_DIALOGS;)
            if (L.dialogs[i].session == 4) {
                L.dialogs[i].dev = 1;
                k++;
            }
    }
    if (st == SB_OK) {
        const char *const *cls = pr.kind == PROTO_LOSO ? classes_4 : classes_6;
        st = sb_corpus_set_classes(corpus,
                                   pr.kind == PROTO_LOSO ? "iemocap-4class" : "iemocap-6class", cls,
                                   pr.kind == PROTO_LOSO ? 4 : 6, err);
    }
    if (st == SB_OK)
        st = add_all(&L, &pr);
    if (st == SB_OK)
        st = set_info(&L, &pr);
    if (st == SB_OK) {
        if (L.n_tr_skipped)
            llog(&L, SB_LOG_INFO,
                 "%zu transcription lines are not turns of their dialog and were skipped "
                 "(the first at %s)",
                 L.n_tr_skipped, L.first_skipped);
        if (L.n_unknown_code)
            llog(&L, SB_LOG_WARN,
                 "%zu summary lines have codes IEMOCAP does not define (%s); they are outside "
                 "every label space",
                 L.n_unknown_code, L.unknown_codes);
        if (L.n_no_text)
            llog(&L, SB_LOG_INFO, "%zu utterances have no transcription line", L.n_no_text);
        if (L.n_repaired)
            llog(&L, SB_LOG_INFO, "%zu transcription lines were not UTF-8 and were repaired",
                 L.n_repaired);
    }
    loader_free(&L);
    return st;
}

/* ---- the descriptor ---------------------------------------------------------------- */

static const sb_option iemocap_options[] = {
    { .name = "root",
      .type = SB_OPT_PATH,
      .flags = SB_OPT_REQUIRED,
      .help = "the IEMOCAP_full_release folder (holding Session1 ... Session5)" },
    { .name = "protocol",
      .type = SB_OPT_ENUM,
      .def = "iemocap-4class-loso",
      .choices = "iemocap-4class-loso|iemocap-6class-erc",
      .help = "4-class leave-one-session-out (neu, hap+exc, ang, sad) or the 6-class ERC split "
              "(sessions 1-4 / 5)" },
    { .name = "fold",
      .type = SB_OPT_INT,
      .def = "1",
      .flags = SB_OPT_HAS_MIN | SB_OPT_HAS_MAX,
      .min = 1,
      .max = 5,
      .help = "iemocap-4class-loso: the test session; must stay 1 for iemocap-6class-erc" },
    { .name = "dev",
      .type = SB_OPT_ENUM,
      .def = "auto",
      .choices = "auto|speaker|session|last20|none",
      .help = "how dev is carved from training: auto = speaker (LOSO) or last20 (ERC); speaker, "
              "session, last20 or none (docs/datasets.md)" },
    { .name = "include_unlabelled",
      .type = SB_OPT_BOOL,
      .help = "keep turns outside the label space as unlabelled dialogue context (default: true "
              "for iemocap-6class-erc, false for iemocap-4class-loso)" },
    { .name = NULL },
};

static const sb_dataset_vtable iemocap_vtable = {
    .struct_size = sizeof(sb_dataset_vtable),
    .load = iemocap_load,
};

static const sb_plugin iemocap_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_DATASET,
    .name = "iemocap",
    .version = "1.0.0",
    .summary = "IEMOCAP_full_release: 4-class LOSO and 6-class ERC protocols, per-rater labels",
    .options = iemocap_options,
    .vtable = &iemocap_vtable,
};

SB_PLUGIN_DEFINE(iemocap_plugin)
