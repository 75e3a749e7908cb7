/* core/lib/run/plot.h — (internal) figures of a config's results, drawn with cairo.
 *
 * For each run group (runs that differ only in seed) and each of its test sets, from the
 * store's predictions: the confusion matrix summed over the group's complete runs, and the
 * per-class F1 (mean ± sd over those runs) as bars, or for a regression group a scatter of
 * predicted against gold values; each as PNG and/or SVG, with a JSON file of the numbers
 * drawn, and an index.md listing them. */
#ifndef SBI_PLOT_H_
#define SBI_PLOT_H_

#include <stdint.h>

#include "plan.h"
#include "store.h"
#include "util.h"

/* Logical canvas of every figure, in CSS pixels (1/96 inch): a PNG at `dpi` is
 * round(SBI_PLOT_W * dpi / 96) × round(SBI_PLOT_H * dpi / 96) pixels; an SVG is
 * SBI_PLOT_W × SBI_PLOT_H px whatever the dpi. */
#define SBI_PLOT_W 640
#define SBI_PLOT_H 560
#define SBI_PLOT_DPI_MIN 24
#define SBI_PLOT_DPI_MAX 600

/* The sequential colour map of the confusion matrices: ColorBrewer's "Blues" (9 classes,
 * matplotlib's Blues), from #f7fbff at 0 to #08306b at 1, linear in sRGB between the nine
 * stops at t = i/8. t is clamped to [0, 1]; a NAN t (a class with no gold item) gives the
 * neutral grey #d9d9d9. rgb in [0, 1]. */
void sbi_plot_colormap(double t, double rgb[3]);

/* "demo/test" → "demo-test": every byte outside [A-Za-z0-9._-] becomes '-'. Caller frees. */
char *sbi_plot_sanitize(const char *name);

/* A rectangle in logical pixels (x right, y down). */
typedef struct sbi_plot_rect {
    double x, y, w, h;
} sbi_plot_rect;

/* Where a confusion matrix of k classes goes on the canvas, given the widest class name in
 * logical pixels at the axis font size: square cells, the gold classes down the left, the
 * predicted ones along the bottom (rotated by 45° when the widest name does not fit under
 * a cell), the colour bar on the right. */
typedef struct sbi_plot_cm_layout {
    sbi_plot_rect matrix; /* k × k cells; cell (i, j) is at row i (gold), column j */
    sbi_plot_rect colorbar;
    double cell;  /* side of a cell */
    double font;  /* cell text size */
    int rotate_x; /* x tick labels at 45° */
} sbi_plot_cm_layout;
void sbi_plot_cm_layout_compute(int k, double max_label_w, double label_font,
                                sbi_plot_cm_layout *out);

/* The data of one figure pair. Borrowed pointers; k classes. */
typedef struct sbi_plot_cls_data {
    const char *title;    /* the group's label */
    const char *subtitle; /* test set and seeds */
    const char *const *classes;
    int k;
    const int64_t *counts;         /* [k*k] summed over seeds, row = gold, column = predicted */
    const double *f1_mean, *f1_sd; /* [k] over seeds */
    double macro_f1;               /* mean over seeds of the macro-F1 */
} sbi_plot_cls_data;

typedef struct sbi_plot_reg_data {
    const char *title, *subtitle;
    const double *gold, *pred; /* [n] all seeds' predictions */
    size_t n;
} sbi_plot_reg_data;

typedef enum { SBI_PLOT_PNG, SBI_PLOT_SVG } sbi_plot_format;

/* Draw one figure into `out` (PNG or SVG bytes; appended). The SVG carries a <title> and a
 * <desc> listing every string drawn (cairo draws text as glyph outlines), so its text can be
 * searched. confusion: if `layout` is not NULL it receives the matrix geometry in logical
 * pixels (multiply by dpi/96 for PNG pixels). Errors: a cairo failure (SB_ERR_INTERNAL,
 * naming cairo's status), an empty input (SB_ERR_INVALID). */
sb_status sbi_plot_confusion(const sbi_plot_cls_data *d, sbi_plot_format fmt, double dpi,
                             sbi_buf *out, sbi_plot_cm_layout *layout, sb_error *err);
sb_status sbi_plot_f1(const sbi_plot_cls_data *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                      sb_error *err);
sb_status sbi_plot_scatter(const sbi_plot_reg_data *d, sbi_plot_format fmt, double dpi,
                           sbi_buf *out, sb_error *err);

typedef struct sbi_plot_opts {
    int png, svg; /* which formats to write (at least one) */
    double dpi;   /* PNG resolution; 96 gives 640 × 560 */
} sbi_plot_opts;

typedef struct sbi_plot_summary {
    size_t groups;  /* groups plotted */
    size_t partial; /* of which some runs are not complete */
    size_t files;   /* images written (PNG and SVG), not counting JSON and index.md */
} sbi_plot_summary;

/* Plot every group of p (in the shard; 0/0 = all) that has at least one complete run into
 * out_dir (created), writing <group_id[:12]>_<test>_{confusion,f1}.{png,svg} (regression:
 * _scatter), <group_id[:12]>_<test>.json (the numbers drawn and, for PNG, the confusion
 * cells' pixel rectangles) and index.md. No complete run at all: SB_ERR_NOT_FOUND. A run
 * whose stored predictions do not fit its classes: SB_ERR_FORMAT naming the run and test. */
sb_status sbi_plot_all(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n,
                       const char *out_dir, const sbi_plot_opts *o, sbi_plot_summary *sum,
                       sb_error *err);

/* Free cairo's and fontconfig's process-wide caches (font faces, the fontconfig
 * configuration), which otherwise live until exit and which leak checkers report. Call once
 * when no figure is being drawn and no other code of the process uses fontconfig, e.g. at
 * the end of `serbench plot`; drawing again afterwards reloads them. */
void sbi_plot_release(void);

#endif
