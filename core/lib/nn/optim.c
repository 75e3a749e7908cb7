/* core/lib/nn/optim.c — what the optimiser needs around the AdamW step (nn.c): the learning
 * rate schedule (linear warmup, cosine decay to a floor) and global gradient-norm clipping
 * (nn_train.h). */
#include <serbench/nn_train.h>

#include <math.h>

float sb_nn_lr_warmup_cosine(long t, long warmup, long total, float lr_max, float lr_min)
{
    if (t < 1)
        t = 1;
    if (warmup > 0 && t <= warmup)
        return (float)((double)lr_max * (double)t / (double)warmup);
    if (warmup < 0)
        warmup = 0;
    if (total <= warmup)
        return lr_max;
    /* The decay's steps are warmup+1 .. total: the first at lr_max, the last one step short
     * of the floor, so every step of a fit moves the parameters (a one-step fit too). */
    double progress = (double)(t - warmup - 1) / (double)(total - warmup);
    if (progress > 1.0)
        progress = 1.0;
    const double pi = 3.14159265358979323846;
    return (float)(lr_min + ((double)lr_max - lr_min) * 0.5 * (1.0 + cos(pi * progress)));
}

double sb_nn_grad_norm(const float *grads, size_t n)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)grads[i] * grads[i];
    return sqrt(ss);
}

double sb_nn_clip_grad_norm(float *grads, size_t n, double max_norm)
{
    double norm = sb_nn_grad_norm(grads, n);
    if (!isfinite(norm) || !(max_norm > 0.0) || norm <= max_norm)
        return norm;
    const float coef = (float)(max_norm / (norm + 1e-6));
    for (size_t i = 0; i < n; i++)
        grads[i] *= coef;
    return norm;
}
