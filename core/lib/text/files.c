/* core/lib/text/files.c — sb_walk_clips of serbench/files.h: one deterministic recursive
 * walk of a media tree, matching MELD-style "dia<D>_utt<U>.<ext>" names and telling the
 * split from the folder names. */
#include <serbench/files.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

#define MAX_EXTS 16
#define MAX_DEPTH 64

typedef struct walker {
    const char *root;
    char exts[MAX_EXTS][16];
    int n_exts;
    sb_clip_fn fn;
    void *ctx;
    sb_error *err;
    struct {
        dev_t dev;
        ino_t ino;
    } * seen;
    size_t n_seen, cap_seen;
} walker;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Digits ending just before s[end]: their start, or `end` when there are none or more
 * than 9 of them. */
static size_t digits_back(const char *s, size_t end)
{
    size_t b = end;
    while (b > 0 && is_digit(s[b - 1]))
        b--;
    return end - b > 9 ? end : b;
}

/* Match "dia<D>_utt<U>" at the end of s[0..len). */
static int match_stem(const char *s, size_t len, long *d, long *u)
{
    size_t ub = digits_back(s, len);
    if (ub == len || ub < 4 || memcmp(s + ub - 4, "_utt", 4) != 0)
        return 0;
    size_t de = ub - 4, db = digits_back(s, de);
    if (db == de || db < 3 || memcmp(s + db - 3, "dia", 3) != 0)
        return 0;
    if (d)
        *d = strtol(s + db, NULL, 10);
    if (u)
        *u = strtol(s + ub, NULL, 10);
    return 1;
}

int sb_clip_dia_utt(const char *name, long *dialogue, long *utterance)
{
    if (!name)
        return 0;
    const char *dot = strrchr(name, '.');
    if (!dot || !dot[1])
        return 0;
    for (const char *e = dot + 1; *e; e++)
        if (!is_alnum(*e))
            return 0;
    return match_stem(name, (size_t)(dot - name), dialogue, utterance);
}

/* Split named by one folder name, or NULL. */
static const char *split_of_component(const char *s, size_t n)
{
    static const struct {
        const char *word, *split;
    } words[] = { { "train", "train" }, { "dev", "dev" },        { "val", "dev" },
                  { "valid", "dev" },   { "validation", "dev" }, { "test", "test" } };
    for (size_t i = 0; i < n;) {
        while (i < n && !is_alnum(s[i]))
            i++;
        size_t b = i;
        while (i < n && is_alnum(s[i]))
            i++;
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
            if (i - b == strlen(words[w].word) && strncasecmp(s + b, words[w].word, i - b) == 0)
                return words[w].split;
    }
    return NULL;
}

/* Split from the folder part of rel, deepest folder first. */
static const char *split_of_rel(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return NULL;
    size_t end = (size_t)(slash - rel);
    for (;;) {
        size_t b = end;
        while (b > 0 && rel[b - 1] != '/')
            b--;
        const char *sp = split_of_component(rel + b, end - b);
        if (sp)
            return sp;
        if (b == 0)
            return NULL;
        end = b - 1;
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Nonzero if (dev, ino) was walked already; else remember it. -1 on allocation failure. */
static int seen_before(walker *w, const struct stat *st)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino)
            return 1;
    if (w->n_seen == w->cap_seen) {
        size_t cap = w->cap_seen ? w->cap_seen * 2 : 32;
        void *p = realloc(w->seen, cap * sizeof *w->seen);
        if (!p)
            return -1;
        w->seen = p;
        w->cap_seen = cap;
    }
    w->seen[w->n_seen].dev = st->st_dev;
    w->seen[w->n_seen].ino = st->st_ino;
    w->n_seen++;
    return 0;
}

/* Rank of name's extension in w->exts, or -1. */
static int ext_rank(const walker *w, const char *name, const char **ext)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return -1;
    for (int i = 0; i < w->n_exts; i++)
        if (strcasecmp(dot + 1, w->exts[i]) == 0) {
            *ext = w->exts[i];
            return i;
        }
    return -1;
}

static sb_status walk_dir(walker *w, const char *rel, int depth);

static sb_status visit(walker *w, const char *rel, const char *name, int depth)
{
    char *path = sbi_path_join(w->root, rel);
    if (!path)
        return sb_error_set(w->err, SB_ERR_NOMEM, w->root, "out of memory walking a folder");
    struct stat st;
    sb_status rc = SB_OK;
    if (stat(path, &st) != 0) {
        /* a dangling link: nothing to index (the item then shows up as missing audio) */
    } else if (S_ISDIR(st.st_mode)) {
        int s = seen_before(w, &st);
        if (s < 0)
            rc = sb_error_set(w->err, SB_ERR_NOMEM, path, "out of memory walking a folder");
        else if (!s && depth < MAX_DEPTH)
            rc = walk_dir(w, rel, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
        const char *ext = NULL;
        int rank = ext_rank(w, name, &ext);
        long d, u;
        if (rank >= 0 && sb_clip_dia_utt(name, &d, &u)) {
            sb_clip c = { .struct_size = sizeof(sb_clip),
                          .path = path,
                          .rel = rel,
                          .name = name,
                          .ext = ext,
                          .rank = rank,
                          .dialogue = d,
                          .utterance = u,
                          .split = split_of_rel(rel),
                          .bytes = (int64_t)st.st_size };
            if (w->fn(w->ctx, &c, w->err) != 0)
                rc = w->err && w->err->code != SB_OK ? w->err->code : SB_ERR_CANCELLED;
        }
    }
    free(path);
    return rc;
}

static sb_status walk_dir(walker *w, const char *rel, int depth)
{
    char *path = rel[0] ? sbi_path_join(w->root, rel) : sbi_strdup(w->root);
    if (!path)
        return sb_error_set(w->err, SB_ERR_NOMEM, w->root, "out of memory walking a folder");
    DIR *dir = opendir(path);
    if (!dir) {
        sb_status st =
            sb_error_set(w->err, SB_ERR_IO, path, "cannot read folder: %s; check its permissions",
                         strerror(errno));
        free(path);
        return st;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    sb_status rc = SB_OK;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = SB_ERR_NOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = sbi_strdup(de->d_name))) {
            rc = SB_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(dir);
    if (rc != SB_OK)
        rc = sb_error_set(w->err, SB_ERR_NOMEM, path, "out of memory listing a folder");
    else if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == SB_OK; i++) {
        char *sub = rel[0] ? sbi_asprintf("%s/%s", rel, names[i]) : sbi_strdup(names[i]);
        if (!sub)
            rc = sb_error_set(w->err, SB_ERR_NOMEM, path, "out of memory walking a folder");
        else
            rc = visit(w, sub, names[i], depth);
        free(sub);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(path);
    return rc;
}

sb_status sb_walk_clips(const char *root, const char *exts, sb_clip_fn fn, void *ctx, sb_error *err)
{
    if (!root || !fn)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_walk_clips: no root or callback");
    walker w = { .root = root, .fn = fn, .ctx = ctx, .err = err };
    for (const char *p = exts ? exts : ""; *p;) {
        while (*p == ',' || *p == ' ' || *p == '.')
            p++;
        const char *b = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        if (p == b)
            continue;
        if (w.n_exts == MAX_EXTS || (size_t)(p - b) >= sizeof w.exts[0])
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "sb_walk_clips: extension list '%.200s' too long", exts);
        for (size_t i = 0; i < (size_t)(p - b); i++)
            w.exts[w.n_exts][i] = (char)(b[i] >= 'A' && b[i] <= 'Z' ? b[i] - 'A' + 'a' : b[i]);
        w.exts[w.n_exts][p - b] = '\0';
        w.n_exts++;
    }
    if (!w.n_exts)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "sb_walk_clips: no file extensions given (e.g. \"wav,mp4\")");
    struct stat st;
    if (stat(root, &st) != 0)
        return sb_error_set(err, errno == ENOENT ? SB_ERR_NOT_FOUND : SB_ERR_IO, root,
                            "cannot open the clip folder: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sb_error_set(err, SB_ERR_IO, root, "is not a folder (expected the clip tree)");
    sb_status rc = seen_before(&w, &st) < 0
                       ? sb_error_set(err, SB_ERR_NOMEM, root, "out of memory walking a folder")
                       : walk_dir(&w, "", 0);
    free(w.seen);
    return rc;
}

/* ---- the index ---------------------------------------------------------------------- */

struct sb_clip_index {
    sb_clip *clips; /* walk order; strings owned */
    size_t n, cap;
    long *slot; /* open addressing over chosen clips: clip position or -1 */
    size_t n_slots;
    unsigned char *chosen;
};

static int split_code(const char *split)
{
    if (!split)
        return 0;
    if (strcmp(split, "train") == 0)
        return 1;
    if (strcmp(split, "dev") == 0)
        return 2;
    if (strcmp(split, "test") == 0)
        return 3;
    return 4; /* never produced by the walker; looked up, never found */
}

static uint64_t key_hash(int split, long d, long u)
{
    uint64_t h = (uint64_t)split * 0x9E3779B97F4A7C15ULL;
    h ^= (uint64_t)d * 0xC2B2AE3D27D4EB4FULL + (h << 6) + (h >> 2);
    h ^= (uint64_t)u * 0x165667B19E3779F9ULL + (h << 6) + (h >> 2);
    h ^= h >> 29;
    return h;
}

static int same_key(const sb_clip *c, int split, long d, long u)
{
    return split_code(c->split) == split && c->dialogue == d && c->utterance == u;
}

/* Slot holding the key, or the empty slot where it would go. */
static size_t slot_of(const sb_clip_index *ix, int split, long d, long u)
{
    size_t mask = ix->n_slots - 1, h = (size_t)key_hash(split, d, u) & mask;
    while (ix->slot[h] >= 0 && !same_key(&ix->clips[ix->slot[h]], split, d, u))
        h = (h + 1) & mask;
    return h;
}

static int index_add(void *ctx, const sb_clip *c, sb_error *err)
{
    sb_clip_index *ix = ctx;
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 1024;
        sb_clip *p = realloc(ix->clips, cap * sizeof *p);
        if (!p)
            return sb_error_set(err, SB_ERR_NOMEM, c->path, "out of memory indexing clips");
        ix->clips = p;
        ix->cap = cap;
    }
    sb_clip *d = &ix->clips[ix->n];
    *d = *c;
    d->path = sbi_strdup(c->path);
    d->rel = d->path ? d->path + (strlen(c->path) - strlen(c->rel)) : NULL;
    d->name = d->path ? d->path + (strlen(c->path) - strlen(c->name)) : NULL;
    d->ext = sbi_strdup(c->ext);
    /* split is one of the walker's static strings */
    if (!d->path || !d->ext) {
        free((char *)d->path);
        free((char *)d->ext);
        return sb_error_set(err, SB_ERR_NOMEM, c->path, "out of memory indexing clips");
    }
    ix->n++;
    return 0;
}

sb_status sb_clip_index_build(const char *root, const char *exts, sb_clip_index **out,
                              sb_error *err)
{
    *out = NULL;
    sb_clip_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return sb_error_set(err, SB_ERR_NOMEM, root, "out of memory indexing clips");
    sb_status st = sb_walk_clips(root, exts, index_add, ix, err);
    if (st == SB_OK) {
        ix->n_slots = 16;
        while (ix->n_slots < 2 * ix->n)
            ix->n_slots *= 2;
        ix->slot = malloc(ix->n_slots * sizeof *ix->slot);
        ix->chosen = calloc(ix->n ? ix->n : 1, 1);
        if (!ix->slot || !ix->chosen)
            st = sb_error_set(err, SB_ERR_NOMEM, root, "out of memory indexing clips");
    }
    if (st != SB_OK) {
        sb_clip_index_destroy(&ix);
        return st;
    }
    for (size_t i = 0; i < ix->n_slots; i++)
        ix->slot[i] = -1;
    for (size_t i = 0; i < ix->n; i++) {
        const sb_clip *c = &ix->clips[i];
        size_t h = slot_of(ix, split_code(c->split), c->dialogue, c->utterance);
        long cur = ix->slot[h];
        if (cur < 0 || c->rank < ix->clips[cur].rank) {
            if (cur >= 0)
                ix->chosen[cur] = 0;
            ix->slot[h] = (long)i;
            ix->chosen[i] = 1;
        }
    }
    *out = ix;
    return SB_OK;
}

long sb_clip_index_find(const sb_clip_index *ix, const char *split, long dialogue, long utterance)
{
    if (!ix || !ix->n_slots)
        return -1;
    return ix->slot[slot_of(ix, split_code(split), dialogue, utterance)];
}

size_t sb_clip_index_size(const sb_clip_index *ix)
{
    return ix ? ix->n : 0;
}

const sb_clip *sb_clip_index_at(const sb_clip_index *ix, size_t i)
{
    return ix && i < ix->n ? &ix->clips[i] : NULL;
}

int sb_clip_index_chosen(const sb_clip_index *ix, size_t i)
{
    return ix && i < ix->n && ix->chosen[i];
}

void sb_clip_index_destroy(sb_clip_index **ixp)
{
    if (!ixp || !*ixp)
        return;
    sb_clip_index *ix = *ixp;
    for (size_t i = 0; i < ix->n; i++) {
        free((char *)ix->clips[i].path);
        free((char *)ix->clips[i].ext);
    }
    free(ix->clips);
    free(ix->slot);
    free(ix->chosen);
    free(ix);
    *ixp = NULL;
}

/* ---- MELD's known clip defects (docs/datasets.md, reference datasets.md section 2.3) -- */

const char *sb_meld_clip_note(const char *split, long dialogue, long utterance)
{
    static const struct {
        const char *split;
        long d, u;
        const char *note;
    } known[] = {
        { "train", 125, 3, "known corrupt in MELD.Raw (declare-lab/MELD issues #39, #52)" },
        { "dev", 110, 7, "known missing from MELD.Raw (declare-lab/MELD issues #22, #27)" },
        { "train", 309, 0,
          "known bad cut, minutes long, in MELD.Raw (declare-lab/MELD issue #20)" },
        { "test", 220, 0, "known bad cut, minutes long, in MELD.Raw (declare-lab/MELD issue #20)" },
        { "test", 38, 4, "known bad cut, minutes long, in MELD.Raw (declare-lab/MELD issue #20)" },
    };
    if (!split)
        return NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].d == dialogue && known[i].u == utterance && strcmp(known[i].split, split) == 0)
            return known[i].note;
    return NULL;
}
