/* core/lib/run/progress.h — (internal) user-facing messages and progress on stderr: a bar
 * with ETA when stderr is a terminal, plain lines otherwise (for stages past 2 s: at most one per
 * 10 % and per second, and at least one per 15 s);
 * --quiet keeps only warnings and errors. Thread-safe. */
#ifndef SBI_PROGRESS_H
#define SBI_PROGRESS_H

#include <stdarg.h>

#include <serbench/serbench.h>

typedef struct sbi_ui {
    int quiet;   /* only warnings and errors */
    int verbose; /* debug messages too */
    int tty;     /* stderr is a terminal */
} sbi_ui;

void sbi_ui_init(sbi_ui *ui, int quiet, int verbose);
void sbi_ui_log(const sbi_ui *ui, sb_log_level level, const char *who, const char *fmt, ...)
    SB_PRINTF(4, 5);
void sbi_ui_logv(const sbi_ui *ui, sb_log_level level, const char *who, const char *fmt, va_list ap)
    SB_PRINTF(4, 0);

typedef struct sbi_progress {
    const sbi_ui *ui;
    char label[128];
    uint64_t total, done;
    double t0, last_print;
    int last_pct;
} sbi_progress;

void sbi_progress_start(sbi_progress *p, const sbi_ui *ui, const char *label, uint64_t total);
void sbi_progress_update(sbi_progress *p, uint64_t done);
void sbi_progress_finish(sbi_progress *p, const char *summary);

#endif
