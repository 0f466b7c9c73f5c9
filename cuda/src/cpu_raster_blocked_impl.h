// Tile-blocked CPU rasterization (forward and backward) in explicit SIMD, of the families whose
// window is a function of the Gaussian exponent: Gaussians and GES (cpu_simd_windows_impl.h).
// Private to cpu_raster.cpp, which includes it once and dispatches those families here.
//
// Same numbers as the per-pixel compositing template (composite.h) that the CUDA kernels run, but
// the loops are swapped: the tile's primitives are the outer loop and the tile's pixels the inner
// loop, 8 (AVX) or 4 pixels at a time (cpu_simd_impl.h). Per pixel, every operation and its order
// are those of composite_forward / composite_backward and the window, so colours, alphas,
// transmittances and last ids agree with them up to the exponential and logarithm (polynomials
// within a few ulp of libm's). Only the sums over a tile's pixels of a primitive's gradients are
// taken in another (fixed) order.
//
// Per primitive, the pixel loop covers only the tile rows where the window can reach the alpha
// threshold (a conservative box of {exponent <= visible_level}, see cpu_blocked_tiles_impl.h);
// pixels outside it would be skipped by the threshold anyway. Rows whose walks all stopped are
// dropped; pixel vectors where no exponent is below the entry's p_max (the box's level) skip the
// window, and those where the entry is composited nowhere skip the rest.
// Gradients are written once per intersection (no per-pixel accumulation, no atomics) and reduced
// per primitive in a fixed order, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu_blocked_tiles_impl.h"
#include "cpu_simd_impl.h"
#include "cpu_simd_windows_impl.h"
#include "launchers.h"

namespace recon {
namespace {

// Per-pixel state of the forward walk of one tile, structure of arrays [n_pad].
struct FwdState {
    float* T;        // transmittance
    int32_t* alive;  // -1 while the walk goes on, 0 once it stopped (and on padding)
    int32_t* last;   // last composited entry
    float* color;    // [C, n_pad] colour without background
    int n_pad;
};

// Exponents p at pixels [p, p + L) and whether any of them can reach the alpha threshold (the
// window is not evaluated otherwise: it would be skipped at every lane).
template <class F, class W>
RECON_SIMD_INLINE bool exponents_at(const Entry<W>& e, const float* px, const float* py, F* dx,
                                    F* dy, F* p) {
    const GaussianWindow& g = conic_of(e.win);
    *dx = simd::load<F>(px) - g.mx;
    *dy = simd::load<F>(py) - g.my;
    *p = exponent_at(g, *dx, *dy);
    return simd::any_lane((*p >= 0.f) & (*p <= e.p_max));
}

// Forward of tile-list entry `id` over pixels [p0, p1), L at a time: composites it where alive;
// returns its max weight, *stopped counts the pixels whose walk ends here.
template <int L, class W>
RECON_SIMD_INLINE float forward_entry(const Entry<W>& e, int C, int32_t id, int p0, int p1,
                                      const float* px, const float* py, const FwdState& st,
                                      int* stopped) {
    using F = typename simd::Lanes<L>::F;
    using I = typename simd::Lanes<L>::I;
    using simd::keep, simd::load, simd::select, simd::store;
    const float o = e.o;
    const float* f = e.f;
    F wmax{}, n_stop{};  // float counts: AVX (without AVX2) has no 8-lane integer add
    for (int p = p0; p < p1; p += L) {
        F dx, dy, power;
        if (!exponents_at(e, px + p, py + p, &dx, &dy, &power)) continue;
        const F w = sample<F, I, false>(e.win, power).w;
        const F ow = o * w;
        const F alpha = ow < kMaxAlpha ? ow : simd::splat<F>(kMaxAlpha);
        const F t = load<F>(st.T + p);
        const F next_T = t * (1.f - alpha);
        const I live = load<I>(st.alive + p);
        const I ok = live & (alpha >= kAlphaThreshold);
        if (!simd::any_lane(ok)) continue;  // nothing changes at these pixels
        const I stop = ok & (next_T <= kTransmittanceMin);
        const I comp = ok & ~stop;
        const F weight = keep(comp, alpha * t);  // exact zeros where not composited
        for (int c = 0; c < C; ++c) {
            float* col = st.color + (size_t)c * st.n_pad + p;
            store(col, load<F>(col) + f[c] * weight);
        }
        store(st.T + p, select(comp, next_T, t));
        store(st.last + p, select(comp, I{} + id, load<I>(st.last + p)));
        store(st.alive + p, live & ~stop);
        n_stop += keep(stop, simd::splat<F>(1.f));
        wmax = weight > wmax ? weight : wmax;
    }
    *stopped = (int)simd::hsum(n_stop);
    return simd::hmax(wmax);
}

// Per-pixel state of the backward walk (back to front) of one tile, structure of arrays [n_pad].
struct BackState {
    float* T;             // transmittance in front of the current entry (starts at the final one)
    float* acc;           // sum over entries behind of dot(features, v_color) * weight
    const float* Tf;      // final transmittance
    const float* kterm;   // v_alpha - dot(background, v_color)
    const int32_t* last;  // last composited entry (INT_MIN on padding)
    const float* vcol;    // [C, n_pad] v_color
    float* v_f;           // [C, lanes] per-lane sums of the feature gradients (scratch)
    int n_pad;
};

// Backward of tile-list entry `id`, L pixels at a time: composite_backward's per-pixel body for
// every pixel whose walk reaches it. Writes the gradients summed over pixels [p0, p1) to v_row =
// [opacity, features (C), window (W::kParams)], its row of the per-intersection buffer.
template <int L, class W>
RECON_SIMD_INLINE void backward_entry(const Entry<W>& e, int C, int32_t id, int p0, int p1,
                                      const float* px, const float* py, const BackState& st,
                                      float* v_row) {
    using F = typename simd::Lanes<L>::F;
    using I = typename simd::Lanes<L>::I;
    using simd::keep, simd::load, simd::select, simd::store;
    constexpr bool kHasBeta = std::is_same_v<W, GesWindow>;  // params [mx, my, a, b, c, beta]
    const GaussianWindow& g = conic_of(e.win);
    const float o = e.o;
    const float* f = e.f;
    F g_o{}, g_mx{}, g_my{}, g_a{}, g_b{}, g_c{}, g_beta{};
    std::fill(st.v_f, st.v_f + C * L, 0.f);
    for (int p = p0; p < p1; p += L) {
        F dx, dy, power;
        if (!exponents_at(e, px + p, py + p, &dx, &dy, &power)) continue;
        const WindowSample<F> ws = sample<F, I, true>(e.win, power);
        const F w = ws.w;
        const F ow = o * w;
        const F alpha = ow < kMaxAlpha ? ow : simd::splat<F>(kMaxAlpha);
        const I ok = simd::less_equal<I>(id, st.last + p) & (alpha >= kAlphaThreshold);
        if (!simd::any_lane(ok)) continue;  // nothing changes at these pixels
        const F ra = 1.f / (1.f - alpha);
        const F t0 = load<F>(st.T + p), acc = load<F>(st.acc + p);
        const F t = t0 * ra;
        const F weight = alpha * t;
        F fv{};  // dot(features, v_color), summed over c in order
        for (int c = 0; c < C; ++c) fv += f[c] * load<F>(st.vcol + (size_t)c * st.n_pad + p);
        F v_a = t * fv - ra * acc;
        v_a += load<F>(st.Tf + p) * ra * load<F>(st.kterm + p);
        store(st.T + p, select(ok, t, t0));
        store(st.acc + p, select(ok, acc + weight * fv, acc));
        const F weight_ok = keep(ok, weight);
        for (int c = 0; c < C; ++c) {
            float* s = st.v_f + c * L;
            store(s, load<F>(s) + weight_ok * load<F>(st.vcol + (size_t)c * st.n_pad + p));
        }
        // The window's vjp with v_w = o * v_a, where the alpha is not clamped.
        const I grad = ok & (ow <= kMaxAlpha);
        const F v_w = o * v_a;
        const F v_sigma = ws.dw_dp * v_w;  // GaussianWindow::vjp from here, with v_sigma
        g_o += keep(grad, w * v_a);
        g_mx += keep(grad, -(g.a * dx + g.b * dy) * v_sigma);
        g_my += keep(grad, -(g.b * dx + g.c * dy) * v_sigma);
        g_a += keep(grad, 0.5f * dx * dx * v_sigma);
        g_b += keep(grad, dx * dy * v_sigma);
        g_c += keep(grad, 0.5f * dy * dy * v_sigma);
        if constexpr (kHasBeta) g_beta += keep(grad, ws.dw_dbeta * v_w);
    }
    using simd::hsum;
    v_row[0] = hsum(g_o);
    for (int c = 0; c < C; ++c) v_row[1 + c] = hsum(load<F>(st.v_f + c * L));
    float* v_wp = v_row + 1 + C;  // [W::kParams]
    v_wp[0] = hsum(g_mx);
    v_wp[1] = hsum(g_my);
    v_wp[2] = hsum(g_a);
    v_wp[3] = hsum(g_b);
    v_wp[4] = hsum(g_c);
    if constexpr (kHasBeta) v_wp[5] = hsum(g_beta);
}

// The lane count's instances: 8 lanes in AVX code where the CPU has it, else 4 (the 8-lane ones
// also compile, unused, where there is no AVX path).
template <class W>
using ForwardEntry = float (*)(const Entry<W>&, int, int32_t, int, int, const float*, const float*,
                               const FwdState&, int*);
template <class W>
using BackwardEntry = void (*)(const Entry<W>&, int, int32_t, int, int, const float*, const float*,
                               const BackState&, float*);

template <class W>
float forward_entry_4(const Entry<W>& e, int C, int32_t id, int p0, int p1, const float* px,
                      const float* py, const FwdState& st, int* stopped) {
    return forward_entry<4>(e, C, id, p0, p1, px, py, st, stopped);
}
template <class W>
void backward_entry_4(const Entry<W>& e, int C, int32_t id, int p0, int p1, const float* px,
                      const float* py, const BackState& st, float* v_row) {
    backward_entry<4>(e, C, id, p0, p1, px, py, st, v_row);
}
template <class W>
RECON_TARGET_AVX float forward_entry_8(const Entry<W>& e, int C, int32_t id, int p0, int p1,
                                       const float* px, const float* py, const FwdState& st,
                                       int* stopped) {
    return forward_entry<8>(e, C, id, p0, p1, px, py, st, stopped);
}
template <class W>
RECON_TARGET_AVX void backward_entry_8(const Entry<W>& e, int C, int32_t id, int p0, int p1,
                                       const float* px, const float* py, const BackState& st,
                                       float* v_row) {
    backward_entry<8>(e, C, id, p0, p1, px, py, st, v_row);
}

template <class Fn>
Fn for_this_cpu(Fn lanes4, Fn lanes8) {
    return simd::cpu_has_avx() ? lanes8 : lanes4;
}

// The blocked forward of window W (GaussianWindow, GesWindow): rasterize_fwd's outputs.
template <class W>
void cpu_rasterize_blocked_fwd(const RasterArgs& a, float* colors, float* alphas,
                               float* transmittance, int32_t* last_ids, float* max_weights) {
    const int64_t n_tiles = a.num_views * a.tile_width * a.tile_height;
    const int C = a.num_channels;
    std::vector<float> maxw(a.num_isects, 0.f);
    const std::vector<Box> boxes = visible_boxes<W>(a);
    const auto forward = for_this_cpu<ForwardEntry<W>>(forward_entry_4<W>, forward_entry_8<W>);
#pragma omp parallel num_threads(cpu_threads(n_tiles))
    {
        Block b;
        std::vector<Entry<W>> es;
        std::vector<float> T, color;
        std::vector<int32_t> alive, last;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
            load_block(a, tile, b);
            const int n = b.n, n_pad = b.n_pad;
            if (n == 0) continue;
            load_entries(a, boxes, b, es);
            T.assign(n_pad, 1.f);
            color.assign((size_t)C * n_pad, 0.f);  // [C, n_pad]
            alive.assign(n_pad, 0);
            std::fill(alive.begin(), alive.begin() + n, -1);  // padding never composites
            last.assign(n_pad, (int32_t)(b.begin - 1));
            const FwdState st{T.data(), alive.data(), last.data(), color.data(), n_pad};
            int n_alive = n, row0 = 0, row1 = b.bh;  // rows [row0, row1) hold every live pixel
            for (int64_t k = 0; k < (int64_t)es.size() && n_alive > 0; ++k) {
                const Entry<W>& e = es[k];
                int p0, p1;
                lane_range(b, std::max(e.r0, row0), std::min(e.r1, row1), &p0, &p1);
                if (p0 >= p1) continue;
                int stopped = 0;
                maxw[b.begin + k] = forward(e, C, (int32_t)(b.begin + k), p0, p1, b.px.data(),
                                            b.py.data(), st, &stopped);
                if (stopped == 0) continue;
                n_alive -= stopped;
                auto row_dead = [&](int r) {
                    const int32_t* al = alive.data() + r * b.bw;
                    return std::all_of(al, al + b.bw, [](int32_t x) { return x == 0; });
                };
                while (row0 < row1 && row_dead(row0)) ++row0;
                while (row1 > row0 && row_dead(row1 - 1)) --row1;
            }
            const float* bg = a.backgrounds != nullptr ? a.backgrounds + b.v * C : nullptr;
            for (int p = 0; p < n; ++p) {
                const int64_t pix = pixel_of(a, b, p);
                float* out = colors + pix * C;
                for (int c = 0; c < C; ++c) out[c] = color[(size_t)c * n_pad + p];
                if (bg != nullptr)
                    for (int c = 0; c < C; ++c) out[c] += T[p] * bg[c];
                alphas[pix] = 1.f - T[p];
                transmittance[pix] = T[p];
                last_ids[pix] = last[p];
            }
        }
    }
    std::fill(max_weights, max_weights + a.num_views * a.num_primitives, 0.f);
    for (int64_t i = 0; i < a.num_isects; ++i) {
        float& m = max_weights[a.flatten_ids[i]];
        m = std::max(m, maxw[i]);
    }
}

// The blocked backward of window W (GaussianWindow, GesWindow): rasterize_bwd's outputs.
template <class W>
void cpu_rasterize_blocked_bwd(const RasterArgs& a, const float* transmittance,
                               const int32_t* last_ids, const float* v_colors,
                               const float* v_alphas, float* v_window_params, float* v_features,
                               float* v_opacities, float* v_backgrounds) {
    const int64_t n_tiles = a.num_views * a.tile_width * a.tile_height;
    const int C = a.num_channels, P = W::kParams;
    const int stride = 1 + C + P;  // per intersection: [opacity, features (C), window (P)]
    std::vector<float> rows(a.num_isects * stride, 0.f);
    std::vector<float> v_bg_tiles(a.backgrounds != nullptr ? n_tiles * C : 0, 0.f);
    const std::vector<Box> boxes = visible_boxes<W>(a);
    const auto backward = for_this_cpu<BackwardEntry<W>>(backward_entry_4<W>, backward_entry_8<W>);
#pragma omp parallel num_threads(cpu_threads(n_tiles))
    {
        Block b;
        std::vector<Entry<W>> es;
        std::vector<float> T, Tf, acc, kterm, vcol;
        std::vector<int32_t> last, row_last;
        std::vector<float> v_f_lanes((size_t)C * kLanes);
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
            load_block(a, tile, b);
            const int n = b.n, n_pad = b.n_pad;
            if (n == 0 || (b.end <= b.begin && a.backgrounds == nullptr)) continue;
            const float* bg = a.backgrounds != nullptr ? a.backgrounds + b.v * C : nullptr;
            T.assign(n_pad, 1.f);
            Tf.assign(n_pad, 0.f);
            acc.assign(n_pad, 0.f);
            kterm.assign(n_pad, 0.f);
            vcol.assign((size_t)C * n_pad, 0.f);  // [C, n_pad]
            last.assign(n_pad, INT_MIN);
            row_last.assign(b.bh, INT_MIN);  // per block row, max of last
            int32_t max_last = INT_MIN;
            for (int p = 0; p < n; ++p) {
                const int64_t pix = pixel_of(a, b, p);
                const float* v_color = v_colors + pix * C;
                float bg_dot = 0.f;
                if (bg != nullptr) {
                    for (int c = 0; c < C; ++c) bg_dot += bg[c] * v_color[c];
                    for (int c = 0; c < C; ++c)
                        v_bg_tiles[tile * C + c] += transmittance[pix] * v_color[c];
                }
                for (int c = 0; c < C; ++c) vcol[(size_t)c * n_pad + p] = v_color[c];
                T[p] = Tf[p] = transmittance[pix];
                kterm[p] = v_alphas[pix] - bg_dot;
                last[p] = last_ids[pix];
                row_last[p / b.bw] = std::max(row_last[p / b.bw], last[p]);
                max_last = std::max(max_last, last[p]);
            }
            if (max_last < b.begin) continue;
            load_entries(a, boxes, b, es);
            const BackState st{T.data(),    acc.data(),  Tf.data(),        kterm.data(),
                               last.data(), vcol.data(), v_f_lanes.data(), n_pad};
            for (int64_t i = max_last; i >= b.begin; --i) {
                const Entry<W>& e = es[i - b.begin];
                int r0 = e.r0, r1 = e.r1;  // trimmed to rows holding a pixel whose walk reaches i
                while (r0 < r1 && row_last[r0] < i) ++r0;
                while (r1 > r0 && row_last[r1 - 1] < i) --r1;
                int p0, p1;
                lane_range(b, r0, r1, &p0, &p1);
                if (p0 >= p1) continue;
                float* row = rows.data() + i * stride;
                backward(e, C, (int32_t)i, p0, p1, b.px.data(), b.py.data(), st, row);
            }
        }
    }
    std::fill(v_window_params, v_window_params + a.num_views * a.num_primitives * P, 0.f);
    std::fill(v_features, v_features + a.num_views * a.num_primitives * C, 0.f);
    std::fill(v_opacities, v_opacities + a.num_primitives, 0.f);
    for (int64_t i = 0; i < a.num_isects; ++i) {
        const int64_t flat = a.flatten_ids[i];
        const float* row = rows.data() + i * stride;
        v_opacities[flat % a.num_primitives] += row[0];
        for (int c = 0; c < C; ++c) v_features[flat * C + c] += row[1 + c];
        for (int k = 0; k < P; ++k) v_window_params[flat * P + k] += row[1 + C + k];
    }
    if (v_backgrounds != nullptr) {
        std::fill(v_backgrounds, v_backgrounds + a.num_views * C, 0.f);
        const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
        for (int64_t tile = 0; tile < (int64_t)v_bg_tiles.size() / std::max(C, 1); ++tile)
            for (int c = 0; c < C; ++c)
                v_backgrounds[(tile / tiles_per_view) * C + c] += v_bg_tiles[tile * C + c];
    }
}

}  // namespace
}  // namespace recon
