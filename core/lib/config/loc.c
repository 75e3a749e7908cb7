/* core/lib/config/loc.c — source locations: the interned file names every node points to,
 * and "file:line:col" formatting. Interned names live until the process ends (a config
 * run touches a handful of files), so nodes can be cloned and freed without owning them. */
#include "config_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct interned {
    struct interned *next;
    char s[];
} interned;

/* The one piece of process-wide state in the config module; guarded because configs may
 * be parsed from several threads (e.g. plugin option defaults). */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static interned *intern_head;

const char *sbi_intern(const char *s)
{
    if (!s)
        return NULL;
    const char *out = NULL;
    pthread_mutex_lock(&intern_lock);
    for (interned *e = intern_head; e; e = e->next)
        if (strcmp(e->s, s) == 0) {
            out = e->s;
            break;
        }
    if (!out) {
        size_t n = strlen(s);
        interned *e = malloc(sizeof *e + n + 1);
        if (e) {
            memcpy(e->s, s, n + 1);
            e->next = intern_head;
            intern_head = e;
            out = e->s;
        }
    }
    pthread_mutex_unlock(&intern_lock);
    return out;
}

/* A location with line 0 and col 0 is synthetic and prints as just the file. Overrides
 * use line 0 with col N (their position on the command line) and print in full. */
const char *sbi_loc_str(sbi_loc loc, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    const char *f = loc.file ? loc.file : "<config>";
    if (loc.line == 0 && loc.col == 0)
        snprintf(buf, size, "%s", f);
    else
        snprintf(buf, size, "%s:%d:%d", f, loc.line, loc.col);
    return buf;
}

long sbi_parse_index(const char *s)
{
    if (!s || !*s || strlen(s) > 9)
        return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}
