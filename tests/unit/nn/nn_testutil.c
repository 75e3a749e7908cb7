/* tests/unit/nn/nn_testutil.c — see nn_testutil.h. */
#include "nn_testutil.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>

void tu_fill_uniform(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

double *tu_to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    cr_assert(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

void tu_check_close(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol)
{
    double max_abs = 0.0, max_rel = 0.0;
    size_t at_abs = 0, at_rel = 0, first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double r = d / (fabs(ref[i]) > 1e-30 ? fabs(ref[i]) : 1e-30);
        if (!(d <= max_abs)) {
            max_abs = d;
            at_abs = i;
        }
        if (!(r <= max_rel) && fabs(ref[i]) > atol) {
            max_rel = r;
            at_rel = i;
        }
        if (!(d <= atol + rtol * fabs(ref[i])) && first_bad == (size_t)-1)
            first_bad = i;
    }
    if (first_bad != (size_t)-1)
        cr_assert_fail("%s: |err| > %g + %g|ref| at [%zu] (got %.9g, ref %.9g); max-abs %.3g "
                       "at [%zu], max-rel %.3g at [%zu]",
                       what, atol, rtol, first_bad, (double)got[first_bad], ref[first_bad], max_abs,
                       at_abs, max_rel, at_rel);
}

void tu_check_grad(const char *what, const float *analytic, double *x, size_t n, tu_loss_fn f,
                   void *ctx, double h, double atol, double rtol)
{
    double *ref = malloc((n ? n : 1) * sizeof *ref);
    cr_assert(ref);
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        ref[i] = (lp - lm) / (2 * h);
    }
    tu_check_close(what, analytic, ref, n, atol, rtol);
    free(ref);
}

double tu_dot(const double *G, const double *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += G[i] * y[i];
    return s;
}
