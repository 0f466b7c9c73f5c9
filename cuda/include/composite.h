// Front-to-back alpha compositing of one pixel and its back-to-front backward.
//
// Written once for every primitive family: the family enters only through `Src`, which gives, for
// the i-th entry of the pixel's tile list, the primitive opacity, its window value at the pixel
// centre, its features and the window's vector-Jacobian product. Where gradients and statistics
// go (a per-intersection buffer on the CPU, atomics on the GPU) is decided by `Sink`. The loops
// are split into per-entry steps so that the CUDA kernels, which walk a tile's list in batches
// loaded into shared memory, run the same steps in the same order as the CPU kernels.
//
//   Src:  float opacity(int i); float window(int i, float px, float py);
//         const float* features(int i); int num_params();
//         void window_vjp(int i, float px, float py, float w, float v_w, float* v_wp);
//   Sink: void max_weight(int i, float weight);                            (forward)
//         void add_feature(int i, int c, float g); void add_opacity(int i, float g);
//         void add_window(int i, const float* v_wp, int num_params);        (backward)
#pragma once

#include "common.h"
#include "launchers.h"

namespace recon {

// Window of tile-list entry `flat` (view * N + primitive) of a rasterization.
template <class W>
RECON_HD W load_window(const RasterArgs& a, int64_t flat) {
    const int K = a.num_window_indices;
    const int32_t* ip = a.window_indices != nullptr ? a.window_indices + flat * K : nullptr;
    return W::load(a.window_params + flat * a.num_window_params, ip, K);
}

// Front-to-back state of one pixel.
struct ForwardPixel {
    float T;       // transmittance in front of the next entry
    int64_t last;  // last composited entry (begin - 1 when none)
};

// Composites entry i over the pixel: color [C] += features * alpha * T. Returns false when the
// pixel is done (T would drop to kTransmittanceMin; entry i is then not composited).
template <class Src, class Sink>
RECON_HD bool composite_step(const Src& src, Sink& sink, int64_t i, float px, float py, int C,
                             float* color, ForwardPixel& s) {
    const float w = src.window(i, px, py);
    const float alpha = fminf(kMaxAlpha, src.opacity(i) * w);
    if (alpha < kAlphaThreshold) return true;
    const float next_T = s.T * (1.f - alpha);
    if (next_T <= kTransmittanceMin) return false;
    const float weight = alpha * s.T;
    const float* f = src.features(i);
    for (int c = 0; c < C; ++c) color[c] += f[c] * weight;
    sink.max_weight(i, weight);
    s.T = next_T;
    s.last = i;
    return true;
}

// Composites entries [begin, end) of a tile list at pixel centre (px, py).
// Writes color[C] (without background), returns the final transmittance and the last composited
// entry (begin - 1 when none).
template <class Src, class Sink>
RECON_HD float composite_forward(const Src& src, Sink& sink, int64_t begin, int64_t end, float px,
                                 float py, int C, float* color, int64_t* last) {
    ForwardPixel s{1.f, begin - 1};
    for (int c = 0; c < C; ++c) color[c] = 0.f;
    for (int64_t i = begin; i < end; ++i)
        if (!composite_step(src, sink, i, px, py, C, color, s)) break;
    *last = s.last;
    return s.T;
}

// Back-to-front state of one pixel.
struct BackwardPixel {
    float T;        // transmittance in front of the entry visited last, recomputed from T_final
    float acc;      // sum over the entries behind of dot(features, v_color) * weight
    float T_final;  // transmittance after the last composited entry
    float v_alpha;  // cotangent of the pixel's alpha
    float bg_dot;   // dot(background, v_color)
    const float* v_color;  // [C] cotangent of the pixel's colour (background included)
};

// Starts the backward of one pixel; background [C] may be null.
RECON_HD BackwardPixel backward_pixel(int C, float T_final, const float* v_color, float v_alpha,
                                      const float* background) {
    BackwardPixel s{T_final, 0.f, T_final, v_alpha, 0.f, v_color};
    if (background != nullptr)
        for (int c = 0; c < C; ++c) s.bg_dot += background[c] * v_color[c];
    return s;
}

// Backward of composite_step for entry i (entries are visited from the pixel's last one down).
template <class Src, class Sink>
RECON_HD void composite_backward_step(const Src& src, Sink& sink, int64_t i, float px, float py,
                                      int C, BackwardPixel& s) {
    const float o = src.opacity(i);
    const float w = src.window(i, px, py);
    const float ow = o * w;
    const float alpha = fminf(kMaxAlpha, ow);
    if (alpha < kAlphaThreshold) return;
    const float ra = 1.f / (1.f - alpha);
    s.T *= ra;
    const float weight = alpha * s.T;
    const float* f = src.features(i);
    float fv = 0.f;
    for (int c = 0; c < C; ++c) {
        sink.add_feature(i, c, weight * s.v_color[c]);
        fv += f[c] * s.v_color[c];
    }
    float v_a = s.T * fv - ra * s.acc;
    s.acc += weight * fv;
    v_a += s.T_final * ra * (s.v_alpha - s.bg_dot);
    if (ow <= kMaxAlpha) {
        sink.add_opacity(i, w * v_a);
        const int P = src.num_params();
        float v_wp[kMaxWindowParams];
        for (int k = 0; k < P; ++k) v_wp[k] = 0.f;
        src.window_vjp(i, px, py, w, o * v_a, v_wp);
        sink.add_window(i, v_wp, P);
    }
}

// Backward of composite_forward for one pixel: walks entries last .. begin, recomputing the
// transmittance from the final one. v_color [C] and v_alpha are the cotangents of the pixel's
// colour (background included) and alpha = 1 - T_final; background [C] may be null.
template <class Src, class Sink>
RECON_HD void composite_backward(const Src& src, Sink& sink, int64_t begin, int64_t last, float px,
                                 float py, int C, float T_final, const float* v_color,
                                 float v_alpha, const float* background) {
    BackwardPixel s = backward_pixel(C, T_final, v_color, v_alpha, background);
    for (int64_t i = last; i >= begin; --i) composite_backward_step(src, sink, i, px, py, C, s);
}

}  // namespace recon
