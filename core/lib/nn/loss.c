/* core/lib/nn/loss.c — the regression losses of the training library: mean squared and mean
 * absolute error, each over the targets that are not NaN (a missing label), forward and
 * backward (nn_train.h). Cross-entropy is in nn.c. */
#include <serbench/nn_train.h>

#include <math.h>

static size_t count_targets(const float *target, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += !isnan(target[i]);
    return m;
}

double sb_nn_mse_forward(const float *pred, const float *target, size_t n)
{
    double sum = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(target[i]))
            continue;
        double d = (double)pred[i] - target[i];
        sum += d * d;
        m++;
    }
    return m ? sum / (double)m : 0.0;
}

void sb_nn_mse_backward(float *dpred, const float *pred, const float *target, size_t n)
{
    size_t m = count_targets(target, n);
    if (!m)
        return;
    const float scale = (float)(2.0 / (double)m);
    for (size_t i = 0; i < n; i++)
        if (!isnan(target[i]))
            dpred[i] += scale * (pred[i] - target[i]);
}

double sb_nn_l1_forward(const float *pred, const float *target, size_t n)
{
    double sum = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(target[i]))
            continue;
        sum += fabs((double)pred[i] - target[i]);
        m++;
    }
    return m ? sum / (double)m : 0.0;
}

void sb_nn_l1_backward(float *dpred, const float *pred, const float *target, size_t n)
{
    size_t m = count_targets(target, n);
    if (!m)
        return;
    const float scale = (float)(1.0 / (double)m);
    for (size_t i = 0; i < n; i++) {
        if (isnan(target[i]))
            continue;
        float d = pred[i] - target[i];
        dpred[i] += d > 0.0f ? scale : d < 0.0f ? -scale : 0.0f;
    }
}
