/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
/* out[b][i][j] = beta*bias + alpha*sum_k a[b][i][k]*w[b][k][j]; strides in elements, out (B, M, N) */
static void gs_matmul(int B, int M, int K, int N,
                      const float *a, int a_b, int a_m, int a_k,
                      const float *w, int w_b, int w_k, int w_n,
                      const float *bias, int bias_m, int bias_n, float beta, float alpha, float *out)
{
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                const float *row = a + b * a_b + i * a_m;
                const float *col = w + b * w_b + j * w_n;
                float acc = 0.0f;
                for (int k = 0; k < K; ++k)
                    acc += row[k * a_k] * col[k * w_k];
                float result = alpha * acc;
                if (bias) result += beta * bias[i * bias_m + j * bias_n];
                out[(b * M + i) * N + j] = result;
            }
}
