/* serbench/nn.h — layers as plain forward/backward functions over contiguous float arrays.
 *
 * Conventions (after llm.c): arguments run outputs, then buffers saved for backward, then
 * inputs, then weights, then dimensions. Gradients carry a `d` prefix and backward
 * ACCUMULATES into them (+=), so callers zero gradients once per step. Shapes:
 *   B  batch rows          C  input channels       OC  output channels
 *   K  classes             L  layers of an encoder  D  feature width
 * Linear layers run as GEMMs through cblas. No fast-math: results are reproducible for a
 * given thread count. */
#ifndef SERBENCH_NN_H
#define SERBENCH_NN_H

#include "common.h"

SB_BEGIN_DECLS

/* out (B,OC) = inp (B,C) · weight(OC,C)^T + bias(OC). bias may be NULL. */
SB_API void sb_nn_linear_forward(float *out, const float *inp, const float *weight,
                                 const float *bias, int B, int C, int OC);
/* dinp (B,C) += dout·weight; dweight (OC,C) += dout^T·inp; dbias (OC) += sum_b dout.
 * dinp, dweight and dbias may each be NULL (not needed, e.g. a frozen layer). */
SB_API void sb_nn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int B, int C, int OC);
/* Reference implementation with plain loops, for tests. */
SB_API void sb_nn_linear_forward_ref(float *out, const float *inp, const float *weight,
                                     const float *bias, int B, int C, int OC);

/* Softmax over the last axis: probs (B,K) from logits (B,K). */
SB_API void sb_nn_softmax_forward(float *probs, const float *logits, int B, int K);
/* dlogits (B,K) += probs ⊙ (dprobs - Σ_k probs·dprobs) per row: the gradient through a
 * softmax whose output probs (B,K) received dprobs (B,K). (Cross-entropy has its own fused
 * backward below.) */
SB_API void sb_nn_softmax_backward(float *dlogits, const float *dprobs, const float *probs, int B,
                                   int K);

/* Weighted cross-entropy. losses (B) = -w[y_b] * log probs[b, y_b]; rows with y_b < 0 give
 * 0. class_w (K) may be NULL (all 1). Returns the mean over rows with a target, weighted
 * by class_w as PyTorch's CrossEntropyLoss(weight=..., reduction='mean') does. */
SB_API double sb_nn_xent_forward(float *losses, const float *probs, const int32_t *y,
                                 const float *class_w, int B, int K);
/* dlogits (B,K) += gradient of that mean loss w.r.t. the logits (fused softmax + CE). */
SB_API void sb_nn_xent_backward(float *dlogits, const float *probs, const int32_t *y,
                                const float *class_w, int B, int K);

/* AdamW (decoupled weight decay, Loshchilov & Hutter), one step t >= 1 over n parameters:
 * m, v are the moment buffers (zero-initialised), updated in place. */
SB_API void sb_adamw_step(float *params, const float *grads, float *m, float *v, size_t n, int t,
                          float lr, float beta1, float beta2, float eps, float weight_decay);

SB_END_DECLS

#endif
