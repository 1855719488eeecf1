/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
/* softmax over the middle axis of x (outer, n, inner), contiguous, max-subtracted */
static void gs_softmax(int outer, int n, int inner, const float *x, float *out)
{
    for (int o = 0; o < outer; ++o)
        for (int i = 0; i < inner; ++i) {
            const int base = o * n * inner + i;
            float top = x[base];
            for (int k = 1; k < n; ++k)
                if (x[base + k * inner] > top) top = x[base + k * inner];
            float total = 0.0f;
            for (int k = 0; k < n; ++k) {
                out[base + k * inner] = expf(x[base + k * inner] - top);
                total += out[base + k * inner];
            }
            for (int k = 0; k < n; ++k)
                out[base + k * inner] /= total;
        }
}
