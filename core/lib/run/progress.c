/* core/lib/run/progress.c — messages and progress on stderr (progress.h). */
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "util.h"

static pthread_mutex_t ui_lock = PTHREAD_MUTEX_INITIALIZER;

void sbi_ui_init(sbi_ui *ui, int quiet, int verbose)
{
    ui->quiet = quiet;
    ui->verbose = verbose;
    ui->tty = isatty(STDERR_FILENO);
}

void sbi_ui_logv(const sbi_ui *ui, sb_log_level level, const char *who, const char *fmt, va_list ap)
{
    if (level == SB_LOG_DEBUG && !ui->verbose)
        return;
    if (level == SB_LOG_INFO && ui->quiet)
        return;
    static const char *const tag[] = { "error: ", "warning: ", "", "" };
    pthread_mutex_lock(&ui_lock);
    if (ui->tty)
        fputs("\r\033[K", stderr);
    if (who && *who)
        fprintf(stderr, "[%s] ", who);
    fputs(tag[level <= SB_LOG_DEBUG ? level : SB_LOG_DEBUG], stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&ui_lock);
}

void sbi_ui_log(const sbi_ui *ui, sb_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbi_ui_logv(ui, level, who, fmt, ap);
    va_end(ap);
}

void sbi_progress_start(sbi_progress *p, const sbi_ui *ui, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->ui = ui;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->t0 = p->last_print = sbi_now();
    p->last_pct = -1;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    if (s < 0 || s > 360000)
        snprintf(buf, n, "--:--");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else
        snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

void sbi_progress_update(sbi_progress *p, uint64_t done)
{
    p->done = done;
    if (p->ui->quiet || p->total == 0)
        return;
    double now = sbi_now();
    int pct = (int)(100.0 * (double)done / (double)p->total);
    double el = now - p->t0;
    double eta = done ? el * (double)(p->total - done) / (double)done : -1;
    char etas[32];
    fmt_eta(eta, etas, sizeof etas);
    pthread_mutex_lock(&ui_lock);
    if (p->ui->tty) {
        if (now - p->last_print >= 0.1 || done == p->total) {
            int width = 30, fill = (int)(width * (double)done / (double)p->total);
            char bar[64];
            for (int i = 0; i < width; i++)
                bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
            bar[width] = '\0';
            fprintf(stderr, "\r\033[K%s [%s] %llu/%llu %3d%% ETA %s", p->label, bar,
                    (unsigned long long)done, (unsigned long long)p->total, pct, etas);
            fflush(stderr);
            p->last_print = now;
        }
    } else if (el >= 2.0 &&
               ((pct / 10 != p->last_pct / 10 && pct < 100 && now - p->last_print >= 1.0) ||
                now - p->last_print >= 15.0)) {
        /* Plain lines only for stages that take a while: at most one per 10 %. */
        fprintf(stderr, "%s: %llu/%llu (%d%%, ETA %s)\n", p->label, (unsigned long long)done,
                (unsigned long long)p->total, pct, etas);
        p->last_print = now;
        p->last_pct = pct;
    }
    pthread_mutex_unlock(&ui_lock);
}

void sbi_progress_finish(sbi_progress *p, const char *summary)
{
    if (p->ui->quiet)
        return;
    double el = sbi_now() - p->t0;
    pthread_mutex_lock(&ui_lock);
    if (p->ui->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "%s: %s (%.1f s)\n", p->label, summary ? summary : "done", el);
    fflush(stderr);
    pthread_mutex_unlock(&ui_lock);
}
