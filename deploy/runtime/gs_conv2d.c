/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
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
