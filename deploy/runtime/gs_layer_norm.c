/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
/* layer norm over the last n values of each of `outer` rows, biased variance, eps inside the root */
static void gs_layer_norm(int outer, int n, const float *x, const float *gamma, const float *beta,
                          float eps, float *out)
{
    for (int o = 0; o < outer; ++o) {
        const float *row = x + o * n;
        float mean = 0.0f, var = 0.0f;
        for (int k = 0; k < n; ++k) mean += row[k];
        mean /= (float)n;
        for (int k = 0; k < n; ++k) var += (row[k] - mean) * (row[k] - mean);
        const float inv = 1.0f / sqrtf(var / (float)n + eps);
        for (int k = 0; k < n; ++k) {
            float value = (row[k] - mean) * inv;
            if (gamma) value *= gamma[k];
            if (beta) value += beta[k];
            out[o * n + k] = value;
        }
    }
}
