/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
/* int8 weights: out[i][j] = beta*bias + alpha*scale[j]*sum_k a[i][k]*w8[j][k]; w8 (N, K) row-major */
static void gs_matmul_q8(int M, int K, int N, const float *a, int a_m, int a_k,
                         const int8_t *w8, const float *scale,
                         const float *bias, int bias_m, int bias_n, float beta, float alpha, float *out)
{
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            const float *row = a + i * a_m;
            const int8_t *weights = w8 + j * K;
            float acc = 0.0f;
            for (int k = 0; k < K; ++k)
                acc += row[k * a_k] * (float)weights[k];
            float result = alpha * scale[j] * acc;
            if (bias) result += beta * bias[i * bias_m + j * bias_n];
            out[i * N + j] = result;
        }
}
