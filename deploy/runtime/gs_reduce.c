/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
/* reduce the last n values of each of `outer` rows: 0 sum, 1 mean, 2 max, 3 min, 4 any (nonzero) */
static void gs_reduce(int outer, int n, int kind, const float *x, float *out)
{
    for (int o = 0; o < outer; ++o) {
        const float *row = x + o * n;
        float acc = kind == 2 || kind == 3 ? row[0] : 0.0f;
        for (int k = 0; k < n; ++k) {
            if (kind <= 1) acc += row[k];
            else if (kind == 2) acc = row[k] > acc ? row[k] : acc;
            else if (kind == 3) acc = row[k] < acc ? row[k] : acc;
            else acc = (acc != 0.0f || row[k] != 0.0f) ? 1.0f : 0.0f;
        }
        out[o] = kind == 1 ? acc / (float)n : acc;
    }
}
