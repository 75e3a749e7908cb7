/* tests/unit/run/test_plot.c — the plots' colour map, file names and confusion layout, and
 * figures rendered in memory: the PNG read back through cairo (size at a dpi, the colour at
 * each cell centre), the SVG's title and desc (every class name, XML-escaped). */
#include <cairo.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* Each test runs in its own process: free cairo's font caches so a leak checker sees none. */
static void release(void)
{
    sbi_plot_release();
}

Test(plot, colormap_stops_clamp_and_missing, .fini = release)
{
    double rgb[3];
    sbi_plot_colormap(0, rgb);
    cr_assert(fabs(rgb[0] - 0xf7 / 255.0) < 1e-12 && fabs(rgb[1] - 0xfb / 255.0) < 1e-12 &&
              fabs(rgb[2] - 1.0) < 1e-12);
    sbi_plot_colormap(1, rgb);
    cr_assert(fabs(rgb[0] - 0x08 / 255.0) < 1e-12 && fabs(rgb[1] - 0x30 / 255.0) < 1e-12 &&
              fabs(rgb[2] - 0x6b / 255.0) < 1e-12);
    /* t = 0.5 is the fifth stop, #6baed6; halfway between stops 1 and 2 the mean. */
    sbi_plot_colormap(0.5, rgb);
    cr_assert(fabs(rgb[0] - 0x6b / 255.0) < 1e-12 && fabs(rgb[2] - 0xd6 / 255.0) < 1e-12);
    sbi_plot_colormap(1.5 / 8, rgb);
    cr_assert(fabs(rgb[1] - (0xeb + 0xdb) / 2.0 / 255.0) < 1e-12, "got %g", rgb[1] * 255);
    double lo[3], hi[3];
    sbi_plot_colormap(-3, lo);
    sbi_plot_colormap(7, hi);
    sbi_plot_colormap(0, rgb);
    cr_assert(!memcmp(lo, rgb, sizeof rgb), "t < 0 is clamped to 0");
    sbi_plot_colormap(1, rgb);
    cr_assert(!memcmp(hi, rgb, sizeof rgb), "t > 1 is clamped to 1");
    sbi_plot_colormap(NAN, rgb);
    cr_assert(fabs(rgb[0] - 0xd9 / 255.0) < 1e-12 && rgb[0] == rgb[1] && rgb[1] == rgb[2]);
    /* Sequential: luminance falls strictly from 0 to 1. */
    double prev = INFINITY;
    for (int i = 0; i <= 100; i++) {
        sbi_plot_colormap(i / 100.0, rgb);
        double y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
        cr_assert(y < prev, "luminance not decreasing at t = %g", i / 100.0);
        prev = y;
    }
}

Test(plot, sanitize, .fini = release)
{
    char *s = sbi_plot_sanitize("meld/test set:1é");
    cr_assert_str_eq(s, "meld-test-set-1--");
    free(s);
    s = sbi_plot_sanitize("iemocap_4.fold-1");
    cr_assert_str_eq(s, "iemocap_4.fold-1");
    free(s);
}

static void assert_inside(const sbi_plot_rect *r)
{
    cr_assert(r->x >= 0 && r->y >= 0 && r->x + r->w <= SBI_PLOT_W && r->y + r->h <= SBI_PLOT_H,
              "rect %g,%g %gx%g leaves the canvas", r->x, r->y, r->w, r->h);
}

Test(plot, layout_fits_and_rotates_long_names, .fini = release)
{
    sbi_plot_cm_layout L;
    for (int k = 1; k <= 40; k++) {
        for (double w = 10; w <= 150; w += 35) {
            sbi_plot_cm_layout_compute(k, w, 12, &L);
            assert_inside(&L.matrix);
            assert_inside(&L.colorbar);
            cr_assert(fabs(L.matrix.w - k * L.cell) < 1e-9 && L.matrix.w == L.matrix.h);
            cr_assert(L.colorbar.x > L.matrix.x + L.matrix.w, "colour bar overlaps the matrix");
            cr_assert(L.matrix.x >= w, "no room for the gold class names (k %d, w %g)", k, w);
            cr_assert(L.rotate_x == (w > L.cell - 6));
            if (L.rotate_x) /* the rotated names end above the bottom edge */
                cr_assert(L.matrix.y + L.matrix.h + w * M_SQRT1_2 + 12 < SBI_PLOT_H);
        }
    }
    sbi_plot_cm_layout_compute(4, 40, 12, &L);
    cr_assert(!L.rotate_x, "short names of 4 classes are not rotated");
    cr_assert(L.cell > 90, "4 classes get big cells (%g)", L.cell);
    sbi_plot_cm_layout_compute(7, 110, 12, &L);
    cr_assert(L.rotate_x, "names wider than a cell are rotated");
}

typedef struct readbuf {
    const sbi_buf *b;
    size_t pos;
} readbuf;

static cairo_status_t read_fn(void *c, unsigned char *data, unsigned int len)
{
    readbuf *r = c;
    if (r->pos + len > r->b->len)
        return CAIRO_STATUS_READ_ERROR;
    memcpy(data, r->b->s + r->pos, len);
    r->pos += len;
    return CAIRO_STATUS_SUCCESS;
}

static const char *const CLASSES[] = { "neutral", "a<b&c", "frustrated-and-annoyed" };
static const int64_t COUNTS[] = { 8, 2, 0, 1, 3, 6, 0, 0, 0 }; /* last row: no gold item */
static const double F1M[] = { 0.8, 0.35, 0.0 }, F1S[] = { 0.05, 0.1, 0.0 };

static sbi_plot_cls_data cls_data(void)
{
    return (sbi_plot_cls_data){
        "enc + head (human labels)", "test t/test", CLASSES, 3, COUNTS, F1M, F1S, 0.575
    };
}

Test(plot, confusion_png_cell_colours, .fini = release)
{
    sbi_plot_cls_data d = cls_data();
    for (int di = 0; di < 2; di++) {
        double dpi = di ? 144 : 96, sc = dpi / 96;
        sbi_buf b = { 0 };
        sbi_plot_cm_layout L;
        sb_error err = { 0 };
        cr_assert_eq(sbi_plot_confusion(&d, SBI_PLOT_PNG, dpi, &b, &L, &err), SB_OK, "%s", err.msg);
        readbuf r = { &b, 0 };
        cairo_surface_t *img = cairo_image_surface_create_from_png_stream(read_fn, &r);
        cr_assert_eq(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
        cr_assert_eq(cairo_image_surface_get_width(img), (int)lround(SBI_PLOT_W * sc));
        cr_assert_eq(cairo_image_surface_get_height(img), (int)lround(SBI_PLOT_H * sc));
        const unsigned char *px = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int i = 0; i < 3; i++) {
            int64_t row = COUNTS[i * 3] + COUNTS[i * 3 + 1] + COUNTS[i * 3 + 2];
            for (int j = 0; j < 3; j++) {
                double rgb[3];
                sbi_plot_colormap(row ? (double)COUNTS[i * 3 + j] / row : NAN, rgb);
                int x = (int)((L.matrix.x + (j + 0.5) * L.cell) * sc);
                int y = (int)((L.matrix.y + (i + 0.5) * L.cell) * sc);
                uint32_t v = *(const uint32_t *)(px + (size_t)y * stride + (size_t)x * 4);
                int got[3] = { (int)(v >> 16) & 255, (int)(v >> 8) & 255, (int)v & 255 };
                for (int c = 0; c < 3; c++)
                    cr_assert(abs(got[c] - (int)lround(rgb[c] * 255)) <= 1,
                              "dpi %g cell (%d,%d) channel %d: got %d, want %.1f", dpi, i, j, c,
                              got[c], rgb[c] * 255);
            }
        }
        cairo_surface_destroy(img);
        sbi_buf_free(&b);
    }
}

Test(plot, svg_names_every_class_escaped, .fini = release)
{
    sbi_plot_cls_data d = cls_data();
    for (int kind = 0; kind < 2; kind++) {
        sbi_buf b = { 0 };
        sb_error err = { 0 };
        sb_status st = kind ? sbi_plot_f1(&d, SBI_PLOT_SVG, 96, &b, &err)
                            : sbi_plot_confusion(&d, SBI_PLOT_SVG, 96, &b, NULL, &err);
        cr_assert_eq(st, SB_OK, "%s", err.msg);
        cr_assert(strstr(b.s, "<svg"), "not an SVG");
        const char *desc = strstr(b.s, "<desc>");
        cr_assert(desc && strstr(desc, "</desc>"));
        cr_assert(strstr(desc, "neutral") && strstr(desc, "a&lt;b&amp;c") &&
                      strstr(desc, "frustrated-and-annoyed"),
                  "a class name is missing from the desc");
        cr_assert(!strstr(b.s, "a<b"), "an unescaped class name");
        cr_assert(
            strstr(b.s, kind ? "<title>Per-class F1: enc + head" : "<title>Confusion matrix"));
        if (kind)
            cr_assert(strstr(desc, "macro-F1 0.575"));
        else
            cr_assert(strstr(desc, "80.0%") && strstr(desc, "n/a"), "cell percentages");
        sbi_buf_free(&b);
    }
}

Test(plot, scatter_and_bad_input, .fini = release)
{
    double gold[] = { -3, -1.5, 0, 0.5, 2.5 }, pred[] = { -2.5, -1, 0.2, NAN, 3 };
    sbi_plot_reg_data r = { "x", "test m", gold, pred, 5 };
    sbi_buf b = { 0 };
    sb_error err = { 0 };
    cr_assert_eq(sbi_plot_scatter(&r, SBI_PLOT_SVG, 96, &b, &err), SB_OK, "%s", err.msg);
    cr_assert(strstr(b.s, "<desc>") && strstr(b.s, "predicted"));
    sbi_buf_free(&b);
    double nan1[] = { NAN };
    sbi_plot_reg_data e = { "x", "test m", nan1, nan1, 1 };
    cr_assert_eq(sbi_plot_scatter(&e, SBI_PLOT_PNG, 96, &b, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no finite values"), "%s", err.msg);
    sb_error_clear(&err);
    sbi_plot_cls_data d = cls_data();
    cr_assert_eq(sbi_plot_confusion(&d, SBI_PLOT_PNG, 5000, &b, NULL, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "5000") && !strcmp(err.where, "dpi"), "%s: %s", err.where, err.msg);
    sb_error_clear(&err);
    d.k = 0;
    cr_assert_eq(sbi_plot_f1(&d, SBI_PLOT_SVG, 96, &b, &err), SB_ERR_INVALID);
    cr_assert(b.len == 0);
    sbi_buf_free(&b);
}
