"""The C99 kernels of the generated policy, one static function each; only the ones a policy uses are emitted.

Conventions of every kernel: float only (f literals, expf/sqrtf/tanhf/erff), no allocation, no recursion,
row-major contiguous outputs written into caller-owned buffers; inputs may be strided views (explicit
element strides) so transposes and broadcasts cost no copy. Booleans are floats 0.0f / 1.0f.
"""

from __future__ import annotations

MATMUL = """
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
"""

MATMUL_Q8 = """
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
"""

CONV2D = """
/* 2-D convolution, x (B, C, H, W) contiguous, w (O, C/groups, KH, KW), out (B, O, OH, OW) */
static void gs_conv2d(int B, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
                      int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w, int groups,
                      const float *x, const float *w, const int8_t *w8, const float *scale,
                      const float *bias, float *out)
{
    const int cin = C / groups, cout = O / groups;
    for (int b = 0; b < B; ++b)
        for (int o = 0; o < O; ++o)
            for (int oy = 0; oy < OH; ++oy)
                for (int ox = 0; ox < OW; ++ox) {
                    const int c0 = (o / cout) * cin;
                    float acc = 0.0f;
                    for (int c = 0; c < cin; ++c)
                        for (int ky = 0; ky < KH; ++ky) {
                            const int y = oy * stride_h - pad_h + ky * dil_h;
                            if (y < 0 || y >= H) continue;
                            for (int kx = 0; kx < KW; ++kx) {
                                const int xx = ox * stride_w - pad_w + kx * dil_w;
                                if (xx < 0 || xx >= W) continue;
                                const int wi = ((o * cin + c) * KH + ky) * KW + kx;
                                const float weight = w8 ? (float)w8[wi] : w[wi];
                                acc += x[((b * C + c0 + c) * H + y) * W + xx] * weight;
                            }
                        }
                    if (w8) acc *= scale[o];
                    out[((b * O + o) * OH + oy) * OW + ox] = acc + (bias ? bias[o] : 0.0f);
                }
}
"""

SOFTMAX = """
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
"""

LAYER_NORM = """
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
"""

REDUCE = """
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
"""

KERNELS = {
    "matmul": MATMUL,
    "matmul_q8": MATMUL_Q8,
    "conv2d": CONV2D,
    "softmax": SOFTMAX,
    "layer_norm": LAYER_NORM,
    "reduce": REDUCE,
}
