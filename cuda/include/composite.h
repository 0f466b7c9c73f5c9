// Front-to-back alpha compositing of one pixel and its back-to-front backward.
//
// Written once for every primitive family: the family enters only through `Src`, which gives, for
// the i-th entry of the pixel's tile list, the primitive opacity, its window value at the pixel
// centre, its features and the window's vector-Jacobian product. Where gradients and statistics
// go (a per-intersection buffer on the CPU, atomics on the GPU) is decided by `Sink`.
//
//   Src:  float opacity(int i); float window(int i, float px, float py);
//         const float* features(int i); int num_params();
//         void window_vjp(int i, float px, float py, float w, float v_w, float* v_wp);
//   Sink: void max_weight(int i, float weight);                            (forward)
//         void add_feature(int i, int c, float g); void add_opacity(int i, float g);
//         void add_window(int i, const float* v_wp, int num_params);        (backward)
#pragma once

#include "common.h"

namespace recon {

// Composites entries [begin, end) of a tile list at pixel centre (px, py).
// Writes color[C] (without background), returns the final transmittance and the last composited
// entry (begin - 1 when none).
template <class Src, class Sink>
RECON_HD float composite_forward(const Src& src, Sink& sink, int64_t begin, int64_t end, float px,
                                 float py, int C, float* color, int64_t* last) {
    float T = 1.f;
    int64_t last_i = begin - 1;
    for (int c = 0; c < C; ++c) color[c] = 0.f;
    for (int64_t i = begin; i < end; ++i) {
        const float w = src.window(i, px, py);
        const float alpha = fminf(kMaxAlpha, src.opacity(i) * w);
        if (alpha < kAlphaThreshold) continue;
        const float next_T = T * (1.f - alpha);
        if (next_T <= kTransmittanceMin) break;
        const float weight = alpha * T;
        const float* f = src.features(i);
        for (int c = 0; c < C; ++c) color[c] += f[c] * weight;
        sink.max_weight(i, weight);
        T = next_T;
        last_i = i;
    }
    *last = last_i;
    return T;
}

// Backward of composite_forward for one pixel: walks entries last .. begin, recomputing the
// transmittance from the final one. v_color [C] and v_alpha are the cotangents of the pixel's
// colour (background included) and alpha = 1 - T_final; background [C] may be null.
template <class Src, class Sink>
RECON_HD void composite_backward(const Src& src, Sink& sink, int64_t begin, int64_t last, float px,
                                 float py, int C, float T_final, const float* v_color,
                                 float v_alpha, const float* background) {
    float bg_dot = 0.f;
    if (background != nullptr)
        for (int c = 0; c < C; ++c) bg_dot += background[c] * v_color[c];
    float T = T_final;
    float acc = 0.f;  // sum over entries behind of dot(features, v_color) * weight
    const int P = src.num_params();
    for (int64_t i = last; i >= begin; --i) {
        const float o = src.opacity(i);
        const float w = src.window(i, px, py);
        const float ow = o * w;
        const float alpha = fminf(kMaxAlpha, ow);
        if (alpha < kAlphaThreshold) continue;
        const float ra = 1.f / (1.f - alpha);
        T *= ra;
        const float weight = alpha * T;
        const float* f = src.features(i);
        float fv = 0.f;
        for (int c = 0; c < C; ++c) {
            sink.add_feature(i, c, weight * v_color[c]);
            fv += f[c] * v_color[c];
        }
        float v_a = T * fv - ra * acc;
        acc += weight * fv;
        v_a += T_final * ra * (v_alpha - bg_dot);
        if (ow <= kMaxAlpha) {
            sink.add_opacity(i, w * v_a);
            float v_wp[kMaxWindowParams];
            for (int k = 0; k < P; ++k) v_wp[k] = 0.f;
            src.window_vjp(i, px, py, w, o * v_a, v_wp);
            sink.add_window(i, v_wp, P);
        }
    }
}

}  // namespace recon
