/* core/lib/run/plot.c — confusion matrices, per-class F1 bars and regression scatters of a
 * config's results as PNG and SVG through cairo (plot.h). The figure code draws on a
 * SBI_PLOT_W × SBI_PLOT_H logical canvas; the PNG surface is scaled by dpi / 96. */
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#if !CAIRO_HAS_PNG_FUNCTIONS || !CAIRO_HAS_SVG_SURFACE
#error "serbench's plots need cairo with PNG and SVG support"
#endif

#define FONT "sans-serif"
#define TITLE_SIZE 15.0
#define SUBTITLE_SIZE 12.0
#define AXIS_SIZE 12.0

/* ---- colour map -------------------------------------------------------------------- */

static const unsigned char blues[9][3] = {
    { 0xf7, 0xfb, 0xff }, { 0xde, 0xeb, 0xf7 }, { 0xc6, 0xdb, 0xef },
    { 0x9e, 0xca, 0xe1 }, { 0x6b, 0xae, 0xd6 }, { 0x42, 0x92, 0xc6 },
    { 0x21, 0x71, 0xb5 }, { 0x08, 0x51, 0x9c }, { 0x08, 0x30, 0x6b },
};

void sbi_plot_colormap(double t, double rgb[3])
{
    if (isnan(t)) {
        rgb[0] = rgb[1] = rgb[2] = 0xd9 / 255.0;
        return;
    }
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 8.0;
    int i = (int)floor(x);
    if (i > 7)
        i = 7;
    double f = x - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = ((1.0 - f) * blues[i][c] + f * blues[i + 1][c]) / 255.0;
}

char *sbi_plot_sanitize(const char *name)
{
    char *s = strdup(name ? name : "");
    for (char *p = s; p && *p; p++) {
        unsigned char c = (unsigned char)*p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
        if (!keep)
            *p = '-';
    }
    return s;
}

/* ---- a figure: a cairo surface writing into a buffer, and the strings drawn on it ---- */

typedef struct fig {
    sbi_plot_format fmt;
    cairo_surface_t *surf;
    cairo_t *cr;
    sbi_buf *out;
    sbi_buf svg;  /* the SVG stream before the <title>/<desc> are inserted */
    sbi_buf text; /* every string drawn, one per line */
} fig;

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int len)
{
    return sbi_buf_add(closure, (const char *)data, len) ? CAIRO_STATUS_WRITE_ERROR
                                                         : CAIRO_STATUS_SUCCESS;
}

static sb_status cairo_fail(cairo_status_t cs, const char *what, sb_error *err)
{
    return sb_error_set(err, SB_ERR_INTERNAL, "cairo", "%s: %s", what, cairo_status_to_string(cs));
}

static sb_status fig_open(fig *f, sbi_plot_format fmt, double dpi, sbi_buf *out, sb_error *err)
{
    memset(f, 0, sizeof *f);
    f->fmt = fmt;
    f->out = out;
    if (!(dpi >= SBI_PLOT_DPI_MIN && dpi <= SBI_PLOT_DPI_MAX))
        return sb_error_set(err, SB_ERR_INVALID, "dpi", "must be from %d to %d, got %g",
                            SBI_PLOT_DPI_MIN, SBI_PLOT_DPI_MAX, dpi);
    if (fmt == SBI_PLOT_PNG) {
        double s = dpi / 96.0;
        f->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)lround(SBI_PLOT_W * s),
                                             (int)lround(SBI_PLOT_H * s));
    } else {
        f->surf = cairo_svg_surface_create_for_stream(buf_write, &f->svg, SBI_PLOT_W, SBI_PLOT_H);
        if (cairo_surface_status(f->surf) == CAIRO_STATUS_SUCCESS)
            cairo_svg_surface_set_document_unit(f->surf, CAIRO_SVG_UNIT_PX);
    }
    cairo_status_t cs = cairo_surface_status(f->surf);
    if (cs != CAIRO_STATUS_SUCCESS) { /* a failed open leaves nothing to close */
        cairo_surface_destroy(f->surf);
        f->surf = NULL;
        return cairo_fail(cs, "cannot create the surface", err);
    }
    f->cr = cairo_create(f->surf);
    if (fmt == SBI_PLOT_PNG)
        cairo_scale(f->cr, dpi / 96.0, dpi / 96.0);
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_select_font_face(f->cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return SB_OK;
}

static void xml_escape(sbi_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': sbi_buf_puts(b, "&lt;"); break;
        case '>': sbi_buf_puts(b, "&gt;"); break;
        case '&': sbi_buf_puts(b, "&amp;"); break;
        case '"': sbi_buf_puts(b, "&quot;"); break;
        default: sbi_buf_add(b, s, 1);
        }
    }
}

/* Finish the figure into f->out; frees everything either way. */
static sb_status fig_close(fig *f, const char *title, sb_error *err)
{
    sb_status st = SB_OK;
    cairo_status_t cs = cairo_status(f->cr);
    if (cs != CAIRO_STATUS_SUCCESS)
        st = cairo_fail(cs, "drawing failed", err);
    cairo_destroy(f->cr);
    if (st == SB_OK && f->fmt == SBI_PLOT_PNG) {
        cairo_surface_flush(f->surf);
        cs = cairo_surface_write_to_png_stream(f->surf, buf_write, f->out);
        if (cs != CAIRO_STATUS_SUCCESS)
            st = cairo_fail(cs, "cannot encode the PNG", err);
    }
    if (f->fmt == SBI_PLOT_SVG) {
        cairo_surface_finish(f->surf);
        cs = cairo_surface_status(f->surf);
        if (st == SB_OK && cs != CAIRO_STATUS_SUCCESS)
            st = cairo_fail(cs, "cannot write the SVG", err);
    }
    cairo_surface_destroy(f->surf);
    if (st == SB_OK && f->fmt == SBI_PLOT_SVG) {
        /* Cairo writes text as glyph outlines: add the strings as <title> and <desc> right
         * after the <svg ...> start tag, so the figure is searchable and accessible. */
        const char *svg = f->svg.s ? strstr(f->svg.s, "<svg") : NULL;
        const char *end = svg ? strchr(svg, '>') : NULL;
        if (!end) {
            st = sb_error_set(err, SB_ERR_INTERNAL, "cairo", "the SVG has no <svg> element");
        } else {
            sbi_buf_add(f->out, f->svg.s, (size_t)(end + 1 - f->svg.s));
            sbi_buf_puts(f->out, "\n<title>");
            xml_escape(f->out, title);
            sbi_buf_puts(f->out, "</title>\n<desc>");
            xml_escape(f->out, f->text.s ? f->text.s : "");
            sbi_buf_puts(f->out, "</desc>");
            sbi_buf_puts(f->out, end + 1);
        }
    }
    sbi_buf_free(&f->svg);
    sbi_buf_free(&f->text);
    return st;
}

/* Draw s with (ax, ay) of its box at (x, y): ax 0 left .. 1 right; ay 0 top (ascent) ..
 * 1 bottom (descent), so text on one line shares a baseline whatever its letters. The box
 * is turned by `angle` (radians, clockwise on screen) about (x, y). */
static void fig_text(fig *f, const char *s, double x, double y, double ax, double ay, double angle,
                     double size, int bold)
{
    cairo_t *cr = f->cr;
    cairo_save(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &te);
    cairo_font_extents(cr, &fe);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ax * te.x_advance, fe.ascent - ay * (fe.ascent + fe.descent));
    cairo_show_text(cr, s);
    cairo_restore(cr);
    sbi_buf_puts(&f->text, s);
    sbi_buf_puts(&f->text, "\n");
}

static double text_width(fig *f, const char *s, double size)
{
    cairo_text_extents_t te;
    cairo_save(f->cr);
    cairo_set_font_size(f->cr, size);
    cairo_text_extents(f->cr, s, &te);
    cairo_restore(f->cr);
    return te.x_advance;
}

static void set_rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, ((hex >> 16) & 255) / 255.0, ((hex >> 8) & 255) / 255.0,
                         (hex & 255) / 255.0);
}

static void draw_titles(fig *f, const char *title, const char *subtitle)
{
    set_rgb(f->cr, 0x111111);
    fig_text(f, title, SBI_PLOT_W / 2.0, 10, 0.5, 0, 0, TITLE_SIZE, 1);
    set_rgb(f->cr, 0x444444);
    fig_text(f, subtitle, SBI_PLOT_W / 2.0, 32, 0.5, 0, 0, SUBTITLE_SIZE, 0);
}

/* Class names as x tick labels centred under columns of width `band` starting at x0,
 * top at y; rotated by 45° (ending at the column centre) when `rotate`. */
static void x_labels(fig *f, const char *const *names, int k, double x0, double band, double y,
                     int rotate, double size)
{
    set_rgb(f->cr, 0x222222);
    for (int j = 0; j < k; j++) {
        double cx = x0 + (j + 0.5) * band;
        if (rotate)
            fig_text(f, names[j], cx, y, 1, 0.3, -M_PI / 4, size, 0);
        else
            fig_text(f, names[j], cx, y, 0.5, 0, 0, size, 0);
    }
}

/* Font size for class names: AXIS_SIZE, smaller when the widest name would pass 150 px. */
static double label_font(fig *f, const char *const *names, int k, double *max_w)
{
    double w = 0;
    for (int i = 0; i < k; i++) {
        double t = text_width(f, names[i], AXIS_SIZE);
        w = t > w ? t : w;
    }
    double size = AXIS_SIZE;
    if (w > 150) {
        size = fmax(7.0, AXIS_SIZE * 150 / w);
        w = w * size / AXIS_SIZE;
    }
    *max_w = w;
    return size;
}

/* ---- confusion matrix -------------------------------------------------------------- */

void sbi_plot_cm_layout_compute(int k, double max_label_w, double label_font_size,
                                sbi_plot_cm_layout *out)
{
    const double top = 64, right = 86, axis_title = 22;
    double left = axis_title + max_label_w + 10;
    double bottom = label_font_size + 8 + axis_title;
    double avail_w = SBI_PLOT_W - left - right, avail_h = SBI_PLOT_H - top - bottom;
    double cell = fmin(avail_w, avail_h) / k;
    out->rotate_x = max_label_w > cell - 6;
    if (out->rotate_x) {
        bottom = max_label_w * M_SQRT1_2 + label_font_size + 8 + axis_title;
        avail_h = SBI_PLOT_H - top - bottom;
        cell = fmin(avail_w, avail_h) / k;
    }
    if (cell < 1)
        cell = 1;
    out->cell = cell;
    out->matrix = (sbi_plot_rect){ left + (avail_w - k * cell) / 2, top, k * cell, k * cell };
    out->colorbar = (sbi_plot_rect){ out->matrix.x + out->matrix.w + 16, top, 16, k * cell };
    out->font = fmin(14.0, fmax(6.0, cell * 0.2));
}

sb_status sbi_plot_confusion(const sbi_plot_cls_data *d, sbi_plot_format fmt, double dpi,
                             sbi_buf *out, sbi_plot_cm_layout *layout, sb_error *err)
{
    if (d->k < 1)
        return sb_error_set(err, SB_ERR_INVALID, d->subtitle, "no classes to plot");
    fig f;
    sb_status st = fig_open(&f, fmt, dpi, out, err);
    if (st != SB_OK)
        return st;
    cairo_t *cr = f.cr;
    int k = d->k;
    draw_titles(&f, d->title, d->subtitle);
    double max_w;
    double lf = label_font(&f, d->classes, k, &max_w);
    sbi_plot_cm_layout L;
    sbi_plot_cm_layout_compute(k, max_w, lf, &L);
    if (layout)
        *layout = L;
    double mx = L.matrix.x, my = L.matrix.y, c = L.cell;
    char s[64];
    for (int i = 0; i < k; i++) {
        int64_t row = 0;
        for (int j = 0; j < k; j++)
            row += d->counts[i * k + j];
        for (int j = 0; j < k; j++) {
            int64_t n = d->counts[i * k + j];
            double t = row ? (double)n / (double)row : NAN;
            double rgb[3];
            sbi_plot_colormap(t, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, mx + j * c, my + i * c, c, c);
            cairo_fill(cr);
            /* Count above and percentage below the centre line, which stays clear. */
            if (t > 0.55)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                set_rgb(cr, 0x1a1a1a);
            double cx = mx + (j + 0.5) * c, cy = my + (i + 0.5) * c;
            snprintf(s, sizeof s, "%lld", (long long)n);
            fig_text(&f, s, cx, cy - 0.12 * L.font, 0.5, 1, 0, L.font, 1);
            if (row)
                snprintf(s, sizeof s, "%.1f%%", 100.0 * t);
            else
                snprintf(s, sizeof s, "n/a");
            fig_text(&f, s, cx, cy + 0.12 * L.font, 0.5, 0, 0, L.font * 0.9, 0);
        }
    }
    /* Frame. */
    set_rgb(cr, 0x555555);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, mx, my, L.matrix.w, L.matrix.h);
    cairo_stroke(cr);
    /* Axes: gold classes down the left, predicted along the bottom. */
    set_rgb(cr, 0x222222);
    for (int i = 0; i < k; i++)
        fig_text(&f, d->classes[i], mx - 6, my + (i + 0.5) * c, 1, 0.5, 0, lf, 0);
    x_labels(&f, d->classes, k, mx, c, my + L.matrix.h + 5, L.rotate_x, lf);
    double below = L.rotate_x ? max_w * M_SQRT1_2 + lf + 10 : lf + 10;
    set_rgb(cr, 0x111111);
    fig_text(&f, "predicted", mx + L.matrix.w / 2, my + L.matrix.h + below, 0.5, 0, 0, AXIS_SIZE,
             1);
    fig_text(&f, "gold", mx - max_w - 14, my + L.matrix.h / 2, 0.5, 1, -M_PI / 2, AXIS_SIZE, 1);
    /* Colour bar: the map's nine stops as a linear gradient, 0 at the bottom. */
    sbi_plot_rect cb = L.colorbar;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, cb.y + cb.h, 0, cb.y);
    for (int i = 0; i <= 8; i++)
        cairo_pattern_add_color_stop_rgb(g, i / 8.0, blues[i][0] / 255.0, blues[i][1] / 255.0,
                                         blues[i][2] / 255.0);
    cairo_set_source(cr, g);
    cairo_rectangle(cr, cb.x, cb.y, cb.w, cb.h);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    set_rgb(cr, 0x555555);
    cairo_rectangle(cr, cb.x, cb.y, cb.w, cb.h);
    cairo_stroke(cr);
    for (int i = 0; i <= 4; i++) {
        double y = cb.y + cb.h * (1.0 - i / 4.0);
        cairo_move_to(cr, cb.x + cb.w, y);
        cairo_line_to(cr, cb.x + cb.w + 4, y);
        cairo_stroke(cr);
        snprintf(s, sizeof s, "%d%%", 25 * i);
        fig_text(&f, s, cb.x + cb.w + 6, y, 0, 0.5, 0, 10, 0);
    }
    fig_text(&f, "recall (row %)", cb.x + cb.w + 42, cb.y + cb.h / 2, 0.5, 0, M_PI / 2, 10, 0);
    char *title = sbi_asprintf("Confusion matrix: %s, %s", d->title, d->subtitle);
    st = fig_close(&f, title ? title : d->title, err);
    free(title);
    return st;
}

/* ---- per-class F1 bars --------------------------------------------------------------- */

sb_status sbi_plot_f1(const sbi_plot_cls_data *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                      sb_error *err)
{
    if (d->k < 1)
        return sb_error_set(err, SB_ERR_INVALID, d->subtitle, "no classes to plot");
    fig f;
    sb_status st = fig_open(&f, fmt, dpi, out, err);
    if (st != SB_OK)
        return st;
    cairo_t *cr = f.cr;
    int k = d->k;
    draw_titles(&f, d->title, d->subtitle);
    double max_w;
    double lf = label_font(&f, d->classes, k, &max_w);
    const double left = 64, right = 24, top = 72;
    double pw = SBI_PLOT_W - left - right, band = pw / k;
    int rotate = max_w > band - 6;
    double bottom = (rotate ? max_w * M_SQRT1_2 : 0) + lf + 40;
    double ph = SBI_PLOT_H - top - bottom;
    double y0 = top + ph; /* F1 = 0 */
    char s[64];
    /* Grid and y axis, ticks 0 .. 1 by 0.2. */
    cairo_set_line_width(cr, 1);
    for (int i = 0; i <= 5; i++) {
        double y = y0 - ph * i / 5.0;
        set_rgb(cr, 0xdddddd);
        cairo_move_to(cr, left, y);
        cairo_line_to(cr, left + pw, y);
        cairo_stroke(cr);
        set_rgb(cr, 0x555555);
        cairo_move_to(cr, left - 4, y);
        cairo_line_to(cr, left, y);
        cairo_stroke(cr);
        snprintf(s, sizeof s, "%.1f", i / 5.0);
        fig_text(&f, s, left - 7, y, 1, 0.5, 0, 11, 0);
    }
    set_rgb(cr, 0x555555);
    cairo_move_to(cr, left, top);
    cairo_line_to(cr, left, y0);
    cairo_line_to(cr, left + pw, y0);
    cairo_stroke(cr);
    set_rgb(cr, 0x111111);
    fig_text(&f, "F1", 18, top + ph / 2, 0.5, 0.5, -M_PI / 2, AXIS_SIZE, 1);
    /* Bars with ±sd error bars (clipped to [0, 1]) and the mean above. */
    double bar_rgb[3];
    sbi_plot_colormap(0.7, bar_rgb);
    for (int j = 0; j < k; j++) {
        double m = fmin(1, fmax(0, d->f1_mean[j])), sd = d->f1_sd[j];
        double cx = left + (j + 0.5) * band, bw = fmin(band * 0.6, 90);
        cairo_set_source_rgb(cr, bar_rgb[0], bar_rgb[1], bar_rgb[2]);
        cairo_rectangle(cr, cx - bw / 2, y0 - ph * m, bw, ph * m);
        cairo_fill(cr);
        double lo = fmax(0, m - sd), hi = fmin(1, m + sd), cap = fmin(bw / 4, 8);
        set_rgb(cr, 0x111111);
        cairo_set_line_width(cr, 1.5);
        if (sd > 0) {
            cairo_move_to(cr, cx, y0 - ph * lo);
            cairo_line_to(cr, cx, y0 - ph * hi);
            cairo_move_to(cr, cx - cap, y0 - ph * lo);
            cairo_line_to(cr, cx + cap, y0 - ph * lo);
            cairo_move_to(cr, cx - cap, y0 - ph * hi);
            cairo_line_to(cr, cx + cap, y0 - ph * hi);
            cairo_stroke(cr);
        }
        snprintf(s, sizeof s, "%.2f", d->f1_mean[j]);
        fig_text(&f, s, cx + cap + 3, y0 - ph * hi - 3, 0, 1, 0, 10, 0);
    }
    x_labels(&f, d->classes, k, left, band, y0 + 5, rotate, lf);
    set_rgb(cr, 0x111111);
    fig_text(&f, "class", left + pw / 2, y0 + (rotate ? max_w * M_SQRT1_2 : 0) + lf + 14, 0.5, 0, 0,
             AXIS_SIZE, 1);
    /* Macro-F1 as a dashed line, labelled at its right end. */
    double ym = y0 - ph * fmin(1, fmax(0, d->macro_f1));
    static const double dash[] = { 6, 4 };
    set_rgb(cr, 0xc0392b);
    cairo_set_line_width(cr, 1.5);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, left, ym);
    cairo_line_to(cr, left + pw, ym);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    snprintf(s, sizeof s, "macro-F1 %.3f", d->macro_f1);
    double lw = text_width(&f, s, 11) + 8;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, left + pw - lw, ym - 19, lw, 15);
    cairo_fill(cr);
    set_rgb(cr, 0xc0392b);
    fig_text(&f, s, left + pw - 4, ym - 4, 1, 1, 0, 11, 1);
    char *title = sbi_asprintf("Per-class F1: %s, %s", d->title, d->subtitle);
    st = fig_close(&f, title ? title : d->title, err);
    free(title);
    return st;
}

/* ---- regression scatter -------------------------------------------------------------- */

/* A tick step of 1, 2 or 5 × 10^e giving about five intervals over `span`. */
static double nice_step(double span)
{
    double raw = span / 5.0, e = pow(10, floor(log10(raw))), m = raw / e;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * e;
}

sb_status sbi_plot_scatter(const sbi_plot_reg_data *d, sbi_plot_format fmt, double dpi,
                           sbi_buf *out, sb_error *err)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < d->n; i++) {
        if (!isfinite(d->gold[i]) || !isfinite(d->pred[i]))
            continue;
        lo = fmin(lo, fmin(d->gold[i], d->pred[i]));
        hi = fmax(hi, fmax(d->gold[i], d->pred[i]));
    }
    if (!(lo <= hi))
        return sb_error_set(err, SB_ERR_INVALID, d->subtitle, "no finite values to plot");
    if (hi - lo < 1e-9) {
        lo -= 1;
        hi += 1;
    }
    double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
    fig f;
    sb_status st = fig_open(&f, fmt, dpi, out, err);
    if (st != SB_OK)
        return st;
    cairo_t *cr = f.cr;
    draw_titles(&f, d->title, d->subtitle);
    const double top = 64, bottom = 56;
    double side = SBI_PLOT_H - top - bottom;
    double left = (SBI_PLOT_W - side) / 2;
    double y0 = top + side;
#define PX(v) (left + side * ((v)-lo) / (hi - lo))
#define PY(v) (y0 - side * ((v)-lo) / (hi - lo))
    char s[64];
    double step = nice_step(hi - lo);
    cairo_set_line_width(cr, 1);
    for (double v = ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
        double vv = fabs(v) < step * 1e-9 ? 0 : v;
        set_rgb(cr, 0xe5e5e5);
        cairo_move_to(cr, PX(vv), top);
        cairo_line_to(cr, PX(vv), y0);
        cairo_move_to(cr, left, PY(vv));
        cairo_line_to(cr, left + side, PY(vv));
        cairo_stroke(cr);
        set_rgb(cr, 0x333333);
        snprintf(s, sizeof s, "%g", vv);
        fig_text(&f, s, PX(vv), y0 + 5, 0.5, 0, 0, 11, 0);
        fig_text(&f, s, left - 6, PY(vv), 1, 0.5, 0, 11, 0);
    }
    set_rgb(cr, 0x555555);
    cairo_rectangle(cr, left, top, side, side);
    cairo_stroke(cr);
    /* The diagonal pred = gold. */
    static const double dash[] = { 6, 4 };
    set_rgb(cr, 0xc0392b);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, PX(lo), PY(lo));
    cairo_line_to(cr, PX(hi), PY(hi));
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    double rgb[3];
    sbi_plot_colormap(0.85, rgb);
    cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.45);
    for (size_t i = 0; i < d->n; i++) {
        if (!isfinite(d->gold[i]) || !isfinite(d->pred[i]))
            continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, PX(d->gold[i]), PY(d->pred[i]), 2.5, 0, 2 * M_PI);
    }
    cairo_fill(cr);
#undef PX
#undef PY
    set_rgb(cr, 0x111111);
    fig_text(&f, "gold", left + side / 2, y0 + 26, 0.5, 0, 0, AXIS_SIZE, 1);
    fig_text(&f, "predicted", left - 44, top + side / 2, 0.5, 0.5, -M_PI / 2, AXIS_SIZE, 1);
    char *title = sbi_asprintf("Predicted against gold: %s, %s", d->title, d->subtitle);
    st = fig_close(&f, title ? title : d->title, err);
    free(title);
    return st;
}

/* ---- from the store to files ----------------------------------------------------------- */

/* encoder(s) + head (labels), and the sweep values when the config sweeps. */
static char *group_label(const sbi_plan *p, const sbi_run *r)
{
    sbi_buf b = { 0 };
    for (size_t e = 0; e < r->n_encoders; e++)
        sbi_buf_printf(&b, "%s%s", e ? "+" : "", r->encoders[e]);
    if (!r->n_encoders)
        sbi_buf_puts(&b, r->encoder ? r->encoder : "?");
    if (r->regression)
        sbi_buf_printf(&b, " + %s (values)", r->head);
    else
        sbi_buf_printf(&b, " + %s (%s labels)", r->head, r->train.labels);
    if (p->sweep_keys && p->sweep_keys[0]) {
        char *sw = sbi_run_label(p, r);
        sbi_buf_printf(&b, "; %s", sw ? sw : "");
        free(sw);
    }
    return b.s ? b.s : strdup("");
}

/* One figure into its file. */
static sb_status write_fig(const char *dir, const char *base, const char *kind, const char *ext,
                           const sbi_buf *data, json_t *files, sbi_plot_summary *sum, sb_error *err)
{
    char *name = sbi_asprintf("%s_%s.%s", base, kind, ext);
    char *path = name ? sbi_path_join(dir, name) : NULL;
    sb_status st = path ? sbi_write_file_atomic(path, data->s, data->len, err)
                        : sb_error_set(err, SB_ERR_NOMEM, dir, "out of memory");
    if (st == SB_OK) {
        json_array_append_new(files, json_string(name));
        sum->files++;
    }
    free(path);
    free(name);
    return st;
}

/* The figures of one kind in the requested formats. */
typedef sb_status (*draw_fn)(const void *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                             sbi_plot_cm_layout *layout, sb_error *err);

static sb_status draw_confusion(const void *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                                sbi_plot_cm_layout *layout, sb_error *err)
{
    return sbi_plot_confusion(d, fmt, dpi, out, layout, err);
}

static sb_status draw_f1(const void *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                         sbi_plot_cm_layout *layout, sb_error *err)
{
    (void)layout;
    return sbi_plot_f1(d, fmt, dpi, out, err);
}

static sb_status draw_scatter(const void *d, sbi_plot_format fmt, double dpi, sbi_buf *out,
                              sbi_plot_cm_layout *layout, sb_error *err)
{
    (void)layout;
    return sbi_plot_scatter(d, fmt, dpi, out, err);
}

static sb_status write_figs(const char *dir, const char *base, const char *kind, draw_fn draw,
                            const void *data, const sbi_plot_opts *o, json_t *files,
                            sbi_plot_cm_layout *layout, sbi_plot_summary *sum, sb_error *err)
{
    sb_status st = SB_OK;
    for (int fi = 0; fi < 2 && st == SB_OK; fi++) {
        sbi_plot_format fmt = fi == 0 ? SBI_PLOT_PNG : SBI_PLOT_SVG;
        if (!(fi == 0 ? o->png : o->svg))
            continue;
        sbi_buf b = { 0 };
        st = draw(data, fmt, o->dpi, &b, layout, err);
        if (st == SB_OK)
            st = write_fig(dir, base, kind, fi == 0 ? "png" : "svg", &b, files, sum, err);
        sbi_buf_free(&b);
    }
    return st;
}

/* The group's complete runs and what the store holds of them. */
typedef struct group {
    const sbi_run *first;
    const sbi_run **runs; /* complete runs, plan order */
    size_t n_runs, n_all;
    json_t **prov; /* [n_runs] provenance */
} group;

static json_t *seeds_json(const group *g)
{
    json_t *a = json_array();
    for (size_t i = 0; i < g->n_runs; i++)
        json_array_append_new(a, json_integer(g->runs[i]->seed));
    return a;
}

static char *seeds_text(const group *g)
{
    sbi_buf b = { 0 };
    for (size_t i = 0; i < g->n_runs; i++)
        sbi_buf_printf(&b, "%s%lld", i ? ", " : "", (long long)g->runs[i]->seed);
    return b.s ? b.s : strdup("");
}

/* Classification: the confusion matrix and F1 bars of group g on test `test`. */
static sb_status plot_cls(sbi_store *s, const group *g, const char *test, const char *label,
                          const char *dir, const char *base, const sbi_plot_opts *o, json_t *info,
                          sbi_plot_summary *sum, sb_error *err)
{
    /* Classes of the test's scoring space from the first run's provenance (unmapped tests
     * score in the training classes). */
    json_t *pt = json_object_get(json_object_get(g->prov[0], "tests"), test);
    json_t *cls = json_object_get(pt, "classes");
    if (!json_is_array(cls) || json_array_size(cls) == 0)
        cls = json_object_get(g->prov[0], "classes");
    int k = (int)json_array_size(cls);
    if (k < 1)
        return sb_error_set(err, SB_ERR_FORMAT, g->runs[0]->run_id,
                            "the run's provenance names no classes for test '%s'", test);
    const char **names = calloc((size_t)k, sizeof *names);
    int64_t *counts = calloc((size_t)k * (size_t)k, sizeof *counts);
    double *f1 = calloc((size_t)k * g->n_runs, sizeof *f1); /* [class][run] */
    double *macro = calloc(g->n_runs, sizeof *macro);
    double *f1_mean = calloc((size_t)k, sizeof *f1_mean), *f1_sd = calloc((size_t)k, sizeof *f1_sd);
    sb_status st = SB_OK;
    if (!names || !counts || !f1 || !macro || !f1_mean || !f1_sd)
        st = sb_error_set(err, SB_ERR_NOMEM, test, "out of memory");
    for (int c = 0; st == SB_OK && c < k; c++) {
        names[c] = json_string_value(json_array_get(cls, (size_t)c));
        if (!names[c])
            st = sb_error_set(err, SB_ERR_FORMAT, g->runs[0]->run_id,
                              "class %d of test '%s' in the provenance is not a string", c, test);
    }
    size_t used = 0, items = 0;
    for (size_t r = 0; st == SB_OK && r < g->n_runs; r++) {
        const char *rid = g->runs[r]->run_id;
        json_t *rc =
            json_object_get(json_object_get(json_object_get(g->prov[r], "tests"), test), "classes");
        if (json_is_array(rc) && json_array_size(rc) && !json_equal(rc, cls)) {
            st = sb_error_set(err, SB_ERR_FORMAT, rid,
                              "test '%s' scores other classes than run %.12s of the same group",
                              test, g->runs[0]->run_id);
            break;
        }
        sbi_preds pr;
        st = sbi_store_load_preds(s, rid, test, 0, &pr, err);
        if (st != SB_OK)
            break;
        if (pr.n == 0) {
            sbi_preds_free(&pr);
            continue;
        }
        int32_t *y = malloc(pr.n * sizeof *y), *p = malloc(pr.n * sizeof *p);
        for (size_t i = 0; y && p && i < pr.n; i++) {
            double gv = pr.gold[i], pv = pr.pred[i];
            if (!(gv >= 0 && gv < k && pv >= 0 && pv < k && gv == floor(gv) && pv == floor(pv))) {
                st = sb_error_set(err, SB_ERR_FORMAT, rid,
                                  "test '%s': a stored prediction (gold %g, pred %g) is not a "
                                  "class index below %d",
                                  test, gv, pv, k);
                break;
            }
            y[i] = (int32_t)gv;
            p[i] = (int32_t)pv;
        }
        if (st == SB_OK && (!y || !p))
            st = sb_error_set(err, SB_ERR_NOMEM, rid, "out of memory");
        sb_cls_metrics m = { 0 };
        if (st == SB_OK)
            st = sb_metrics_classify(y, p, pr.n, k, &m, err);
        if (st == SB_OK) {
            for (int c = 0; c < k * k; c++)
                counts[c] += m.confusion[c];
            for (int c = 0; c < k; c++)
                f1[(size_t)c * g->n_runs + used] = m.f1[c];
            macro[used] = m.macro_f1;
            used++;
            items += pr.n;
        }
        sb_cls_metrics_free(&m);
        free(y);
        free(p);
        sbi_preds_free(&pr);
    }
    if (st == SB_OK && used > 0) {
        for (int c = 0; c < k; c++)
            sb_mean_sd(f1 + (size_t)c * g->n_runs, used, &f1_mean[c], &f1_sd[c]);
        double macro_mean, macro_sd;
        sb_mean_sd(macro, used, &macro_mean, &macro_sd);
        char *seeds = seeds_text(g);
        char *sub = sbi_asprintf("test %s · %zu item%s × %zu seed%s (%s)", test, items / used,
                                 items / used == 1 ? "" : "s", used, used == 1 ? "" : "s", seeds);
        free(seeds);
        sbi_plot_cls_data d = { label, sub, names, k, counts, f1_mean, f1_sd, macro_mean };
        json_t *files = json_array();
        sbi_plot_cm_layout L = { 0 };
        st = write_figs(dir, base, "confusion", draw_confusion, &d, o, files, &L, sum, err);
        if (st == SB_OK)
            st = write_figs(dir, base, "f1", draw_f1, &d, o, files, NULL, sum, err);
        json_t *cm = json_array(), *rec = json_array();
        for (int i = 0; i < k; i++) {
            json_t *row = json_array(), *rrow = json_array();
            int64_t tot = 0;
            for (int j = 0; j < k; j++)
                tot += counts[i * k + j];
            for (int j = 0; j < k; j++) {
                json_array_append_new(row, json_integer(counts[i * k + j]));
                json_array_append_new(rrow, tot ? json_real((double)counts[i * k + j] / tot)
                                                : json_null());
            }
            json_array_append_new(cm, row);
            json_array_append_new(rec, rrow);
        }
        json_t *fm = json_array(), *fs = json_array();
        for (int c = 0; c < k; c++) {
            json_array_append_new(fm, json_real(f1_mean[c]));
            json_array_append_new(fs, json_real(f1_sd[c]));
        }
        json_object_set_new(info, "kind", json_string("classification"));
        json_object_set_new(info, "runs_with_predictions", json_integer((json_int_t)used));
        json_object_set(info, "classes", cls);
        json_object_set_new(info, "confusion", cm);
        json_object_set_new(info, "recall", rec);
        json_object_set_new(info, "f1_mean", fm);
        json_object_set_new(info, "f1_sd", fs);
        json_object_set_new(info, "macro_f1", json_real(macro_mean));
        json_object_set_new(info, "files", files);
        if (o->png) {
            /* The confusion cells in the PNG's pixels: cell (i, j) spans
             * [x + j*cell, x + (j+1)*cell) × [y + i*cell, y + (i+1)*cell). */
            double sc = o->dpi / 96.0;
            json_object_set_new(info, "png_confusion_cells",
                                json_pack("{s:f, s:f, s:f}", "x", L.matrix.x * sc, "y",
                                          L.matrix.y * sc, "cell", L.cell * sc));
        }
        free(sub);
    }
    free(names);
    free(counts);
    free(f1);
    free(macro);
    free(f1_mean);
    free(f1_sd);
    return st;
}

/* Regression: predicted against gold, all seeds in one scatter. */
static sb_status plot_reg(sbi_store *s, const group *g, const char *test, const char *label,
                          const char *dir, const char *base, const sbi_plot_opts *o, json_t *info,
                          sbi_plot_summary *sum, sb_error *err)
{
    sbi_plot_reg_data d = { label, NULL, NULL, NULL, 0 };
    double *gold = NULL, *pred = NULL;
    size_t n = 0, used = 0;
    sb_status st = SB_OK;
    for (size_t r = 0; st == SB_OK && r < g->n_runs; r++) {
        sbi_preds pr;
        st = sbi_store_load_preds(s, g->runs[r]->run_id, test, 0, &pr, err);
        if (st != SB_OK || pr.n == 0) {
            sbi_preds_free(&pr);
            continue;
        }
        double *ng = realloc(gold, (n + pr.n) * sizeof *ng);
        double *np = ng ? realloc(pred, (n + pr.n) * sizeof *np) : NULL;
        if (ng)
            gold = ng;
        if (!ng || !np) {
            st = sb_error_set(err, SB_ERR_NOMEM, test, "out of memory");
        } else {
            pred = np;
            memcpy(gold + n, pr.gold, pr.n * sizeof *gold);
            memcpy(pred + n, pr.pred, pr.n * sizeof *pred);
            n += pr.n;
            used++;
        }
        sbi_preds_free(&pr);
    }
    if (st == SB_OK && used > 0) {
        char *seeds = seeds_text(g);
        char *sub = sbi_asprintf("test %s · %zu item%s × %zu seed%s (%s)", test, n / used,
                                 n / used == 1 ? "" : "s", used, used == 1 ? "" : "s", seeds);
        free(seeds);
        d.subtitle = sub;
        d.gold = gold;
        d.pred = pred;
        d.n = n;
        json_t *files = json_array();
        st = write_figs(dir, base, "scatter", draw_scatter, &d, o, files, NULL, sum, err);
        json_object_set_new(info, "kind", json_string("regression"));
        json_object_set_new(info, "runs_with_predictions", json_integer((json_int_t)used));
        json_object_set_new(info, "points", json_integer((json_int_t)n));
        json_object_set_new(info, "files", files);
        free(sub);
    }
    free(gold);
    free(pred);
    return st;
}

static void md_links(sbi_buf *b, const json_t *files, const char *kind)
{
    size_t i;
    json_t *f;
    int any = 0;
    json_array_foreach((json_t *)files, i, f)
    {
        const char *name = json_string_value(f);
        const char *us = strrchr(name, '_');
        const char *dot = strrchr(name, '.');
        if (!us || !dot || (size_t)(dot - us - 1) != strlen(kind) ||
            strncmp(us + 1, kind, strlen(kind)) != 0)
            continue;
        sbi_buf_printf(b, "%s[%s](%s)", any ? " · " : "", dot + 1, name);
        any = 1;
    }
    if (!any)
        sbi_buf_puts(b, "—");
}

sb_status sbi_plot_all(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n,
                       const char *out_dir, const sbi_plot_opts *o, sbi_plot_summary *sum,
                       sb_error *err)
{
    memset(sum, 0, sizeof *sum);
    if (!o->png && !o->svg)
        return sb_error_set(err, SB_ERR_INVALID, "format", "no image format chosen");
    sb_status st = sbi_mkdir_p(out_dir, err);
    if (st != SB_OK)
        return st;
    sqlite3_stmt *q = NULL;
    st = sbi_store_prepare(s, "SELECT status, provenance FROM runs WHERE run_id=?1", &q, err);
    if (st != SB_OK)
        return st;
    const char *title = p->report ? json_string_value(json_object_get(p->report, "title")) : NULL;
    const sbi_node *nm = sbi_node_get(p->root, "name");
    if (!title && nm && nm->kind == SBI_SCALAR)
        title = nm->text;
    sbi_buf md = { 0 };
    sbi_buf_puts(&md, "# Plots: ");
    sbi_buf_puts(&md, title ? title : p->config_path);
    sbi_buf_puts(
        &md, "\n\nConfusion matrices: item counts summed over the group's complete runs (seeds), "
             "rows = gold, columns = predicted; each cell is coloured by its row-normalised recall "
             "(ColorBrewer Blues: white 0 % to dark blue 100 %; grey: no gold item of the class) "
             "and shows the count and the percentage of its row. Per-class F1: mean ± sd over "
             "seeds; the dashed line is the macro-F1 (mean over seeds). Regression groups: "
             "predicted against gold values of every seed, with the diagonal. Each `.json` holds "
             "the numbers drawn.\n");
    char *done = calloc(p->n_runs + 1, 1);
    group g = { 0 };
    g.runs = calloc(p->n_runs + 1, sizeof *g.runs);
    g.prov = calloc(p->n_runs + 1, sizeof *g.prov);
    if (!done || !g.runs || !g.prov)
        st = sb_error_set(err, SB_ERR_NOMEM, out_dir, "out of memory");
    for (size_t i = 0; st == SB_OK && i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        if (done[i] || !sbi_in_shard(r, shard_i, shard_n))
            continue;
        g.first = r;
        g.n_runs = g.n_all = 0;
        for (size_t j = i; st == SB_OK && j < p->n_runs; j++) {
            const sbi_run *m = &p->runs[j];
            if (strcmp(m->group_id, r->group_id) != 0 || !sbi_in_shard(m, shard_i, shard_n))
                continue;
            done[j] = 1;
            g.n_all++;
            sqlite3_bind_text(q, 1, m->run_id, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW &&
                sbi_streq((const char *)sqlite3_column_text(q, 0), "complete")) {
                const char *pj = (const char *)sqlite3_column_text(q, 1);
                json_error_t je;
                json_t *prov = pj ? json_loads(pj, 0, &je) : NULL;
                if (!json_is_object(prov)) {
                    json_decref(prov);
                    st = sb_error_set(err, SB_ERR_FORMAT, m->run_id,
                                      "the run's provenance in the store is not a JSON object");
                } else {
                    g.runs[g.n_runs] = m;
                    g.prov[g.n_runs++] = prov;
                }
            }
            sqlite3_reset(q);
        }
        if (st != SB_OK || g.n_runs == 0) {
            for (size_t k = 0; k < g.n_runs; k++)
                json_decref(g.prov[k]);
            continue;
        }
        char *label = group_label(p, r);
        char *seeds = seeds_text(&g);
        sum->groups++;
        sum->partial += g.n_runs < g.n_all;
        sbi_buf_printf(&md, "\n## %s\n\ngroup `%.12s` · seed%s %s · %zu of %zu runs complete\n\n",
                       label, r->group_id, g.n_runs == 1 ? "" : "s", seeds, g.n_runs, g.n_all);
        sbi_buf_puts(&md, r->regression ? "| test set | predicted vs gold | data |\n|---|---|---|\n"
                                        : "| test set | confusion matrix | per-class F1 | data |\n"
                                          "|---|---|---|---|\n");
        for (size_t t = 0; st == SB_OK && t < r->n_tests; t++) {
            const char *test = r->tests[t].name;
            char *san = sbi_plot_sanitize(test);
            char *base = sbi_asprintf("%.12s_%s", r->group_id, san);
            json_t *info = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I}", "group_id", r->group_id,
                                     "label", label, "test", test, "seeds", seeds_json(&g), "runs",
                                     (json_int_t)g.n_all, "complete", (json_int_t)g.n_runs);
            st = (r->regression ? plot_reg : plot_cls)(s, &g, test, label, out_dir, base, o, info,
                                                       sum, err);
            json_t *files = json_object_get(info, "files");
            if (st == SB_OK && files) {
                char *js = json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                char *jn = sbi_asprintf("%s.json", base);
                char *jp = sbi_path_join(out_dir, jn);
                st = sbi_write_file_atomic(jp, js, strlen(js), err);
                free(js);
                free(jp);
                sbi_buf_printf(&md, "| %s | ", test);
                md_links(&md, files, r->regression ? "scatter" : "confusion");
                if (!r->regression) {
                    sbi_buf_puts(&md, " | ");
                    md_links(&md, files, "f1");
                }
                sbi_buf_printf(&md, " | [json](%s) |\n", jn);
                free(jn);
            } else if (st == SB_OK) {
                sbi_buf_printf(&md, "| %s | no predictions stored |%s\n", test,
                               r->regression ? " |" : " | |");
            }
            json_decref(info);
            free(base);
            free(san);
        }
        free(label);
        free(seeds);
        for (size_t k = 0; k < g.n_runs; k++)
            json_decref(g.prov[k]);
    }
    sqlite3_finalize(q);
    if (st == SB_OK && sum->groups == 0)
        st = sb_error_set(err, SB_ERR_NOT_FOUND, p->config_path,
                          "no complete run of this config in the store; run 'serbench run %s' "
                          "first",
                          p->config_path);
    if (st == SB_OK) {
        char *ip = sbi_path_join(out_dir, "index.md");
        st = ip ? sbi_write_file_atomic(ip, md.s, md.len, err)
                : sb_error_set(err, SB_ERR_NOMEM, out_dir, "out of memory");
        free(ip);
    }
    sbi_buf_free(&md);
    free(done);
    free(g.runs);
    free(g.prov);
    return st;
}

void sbi_plot_release(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
