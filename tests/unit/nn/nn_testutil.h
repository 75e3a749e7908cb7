/* tests/unit/nn/nn_testutil.h — helpers shared by the training-library tests: deterministic
 * fills, a tolerance check that prints where and by how much it fails, and gradient checks
 * by central finite differences of a double-precision reference forward. */
#ifndef NN_TESTUTIL_H
#define NN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic values in [-1, 1) from seed (an LCG). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed);
/* A double copy of x (n), malloc'd; the caller frees. */
double *tu_to_double(const float *x, size_t n);
/* Fail (Criterion) unless |got - ref| <= atol + rtol·|ref| everywhere, printing the first
 * failing index and the worst absolute and relative errors. */
void tu_check_close(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol);

/* A scalar loss of the double reference forward; it reads its inputs through ctx, so
 * perturbing an array that ctx points into changes the loss. */
typedef double (*tu_loss_fn)(void *ctx);
/* Compare the analytic gradient (n floats) of the loss w.r.t. x (n doubles, perturbed in
 * place and restored) with central differences of step h. */
void tu_check_grad(const char *what, const float *analytic, double *x, size_t n, tu_loss_fn f,
                   void *ctx, double h, double atol, double rtol);

/* Σ G·y over n entries: the loss whose gradient w.r.t. y is G. */
double tu_dot(const double *G, const double *y, size_t n);

#endif
