/* tests/unit/ssl/helpers.c — see helpers.h. */
#include "helpers.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char dir[512];

const char *ssl_tmpdir(void)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/sb-ssl-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir))
            dir[0] = '\0';
    }
    return dir;
}

const char *ssl_tmp(const char *name)
{
    static char bufs[4][1024];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 1024, "%s/%s", ssl_tmpdir(), name);
    return p;
}

const char *ssl_source(const char *rel)
{
    static char p[2048];
    const char *root = getenv("SB_SOURCE_ROOT");
    snprintf(p, sizeof p, "%s/%s", root ? root : ".", rel);
    return p;
}

int ssl_have_torch(void)
{
    static int have = -1;
    if (have < 0)
        have = ssl_run("/usr/bin/python3 -c 'import torch, torchaudio' 2>/dev/null") == 0;
    return have;
}

int ssl_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void put16(FILE *f, unsigned v)
{
    fputc((int)(v & 0xff), f);
    fputc((int)((v >> 8) & 0xff), f);
}

static void put32(FILE *f, uint32_t v)
{
    put16(f, v & 0xffff);
    put16(f, v >> 16);
}

void ssl_write_wav(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite("RIFF", 1, 4, f);
    put32(f, (uint32_t)(36 + 2 * n));
    fwrite("WAVEfmt ", 1, 8, f);
    put32(f, 16);
    put16(f, 1);
    put16(f, 1);
    put32(f, 16000);
    put32(f, 32000);
    put16(f, 2);
    put16(f, 16);
    fwrite("data", 1, 4, f);
    put32(f, (uint32_t)(2 * n));
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        double t = (double)i / 16000.0, f0 = 120.0 + 80.0 * t, v = 0;
        for (int h = 1; h < 8; h++)
            v += sin(2.0 * M_PI * h * f0 * t) / h;
        v = 0.25 * v * (0.6 + 0.4 * sin(2.0 * M_PI * 2.5 * t)) +
            0.03 * ((double)(s >> 8) / 16777216.0 - 0.5);
        long q = lround(v * 32767.0);
        q = q > 32767 ? 32767 : q < -32768 ? -32768 : q;
        put16(f, (unsigned)(q & 0xffff));
    }
    fclose(f);
}

void ssl_cleanup(void)
{
    if (dir[0] && strncmp(dir, "/", 1) == 0 && strstr(dir, "sb-ssl-"))
        ssl_run("rm -rf '%s'", dir);
    dir[0] = '\0';
}
