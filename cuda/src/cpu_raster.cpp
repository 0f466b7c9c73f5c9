// CPU rasterization (OpenMP over tiles) of every family (families.h) but Gaussians and GES, which
// have a faster tile-blocked path (cpu_raster_blocked_impl.h) and are dispatched there.
//
// Each tile's primitives are loaded once into window policies, then every pixel of the tile runs
// the shared compositing template (composite.h). Gradients and max weights are written to
// per-intersection buffers owned by the tile (no atomics, no per-pixel lists), then reduced per
// primitive in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "composite.h"
#include "cpu_raster_blocked_impl.h"
#include "families.h"
#include "launchers.h"

namespace recon {
namespace {

// Entries [begin, end) of one tile, loaded as windows.
template <class W>
struct TileSrc {
    const W* wins;
    const float* opac;
    const float* const* feat;
    int64_t base;
    int P;
    float opacity(int64_t i) const { return opac[i - base]; }
    float window(int64_t i, float px, float py) const { return wins[i - base].eval(px, py); }
    const float* features(int64_t i) const { return feat[i - base]; }
    int num_params() const { return P; }
    void window_vjp(int64_t i, float px, float py, float w, float v_w, float* v_wp) const {
        wins[i - base].vjp(px, py, w, v_w, v_wp);
    }
};

struct MaxSink {
    float* maxw;  // [M]
    void max_weight(int64_t i, float w) { maxw[i] = std::max(maxw[i], w); }
};

// Per-intersection gradient rows: [opacity, features (C), window params (P)].
struct GradSink {
    float* buf;
    int C, stride;
    void add_feature(int64_t i, int c, float g) { buf[i * stride + 1 + c] += g; }
    void add_opacity(int64_t i, float g) { buf[i * stride] += g; }
    void add_window(int64_t i, const float* v, int P) {
        float* row = buf + i * stride + 1 + C;
        for (int k = 0; k < P; ++k) row[k] += v[k];
    }
};

// Whether window W composites through the blocked SIMD path (cpu_simd_windows_impl.h).
template <class W>
constexpr bool kBlocked = std::is_same_v<W, GaussianWindow> || std::is_same_v<W, GesWindow>;

struct TileSpan {
    int64_t v, begin, end;
    int tx, ty;
};

TileSpan tile_span(const RasterArgs& a, int64_t tile) {
    const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
    const int64_t n_tiles = a.num_views * tiles_per_view;
    TileSpan s;
    s.v = tile / tiles_per_view;
    const int64_t t = tile % tiles_per_view;
    s.ty = (int)(t / a.tile_width);
    s.tx = (int)(t % a.tile_width);
    s.begin = a.tile_offsets[tile];
    s.end = tile + 1 < n_tiles ? a.tile_offsets[tile + 1] : a.num_isects;
    return s;
}

template <class W>
void load_tile(const RasterArgs& a, const TileSpan& s, std::vector<W>& wins,
               std::vector<float>& opac, std::vector<const float*>& feat) {
    const int64_t n = s.end - s.begin;
    wins.resize(n);
    opac.resize(n);
    feat.resize(n);
    for (int64_t k = 0; k < n; ++k) {
        const int64_t flat = a.flatten_ids[s.begin + k];
        wins[k] = load_window<W>(a, flat);
        opac[k] = a.opacities[flat % a.num_primitives];
        feat[k] = a.features + flat * a.num_channels;
    }
}

template <class W>
void rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                   int32_t* last_ids, float* max_weights) {
    const int64_t n_tiles = a.num_views * a.tile_width * a.tile_height;
    const int C = a.num_channels;
    std::vector<float> maxw(a.num_isects, 0.f);
#pragma omp parallel num_threads(cpu_threads(n_tiles))
    {
        std::vector<W> wins;
        std::vector<float> opac;
        std::vector<const float*> feat;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
            const TileSpan s = tile_span(a, tile);
            load_tile<W>(a, s, wins, opac, feat);
            TileSrc<W> src{wins.data(), opac.data(), feat.data(), s.begin, a.num_window_params};
            MaxSink sink{maxw.data()};
            const float* bg = a.backgrounds != nullptr ? a.backgrounds + s.v * C : nullptr;
            const int y1 = std::min((s.ty + 1) * a.tile_size, a.height);
            const int x1 = std::min((s.tx + 1) * a.tile_size, a.width);
            for (int y = s.ty * a.tile_size; y < y1; ++y) {
                for (int x = s.tx * a.tile_size; x < x1; ++x) {
                    const int64_t pix = (s.v * a.height + y) * a.width + x;
                    float* color = colors + pix * C;
                    int64_t last;
                    const float T = composite_forward(src, sink, s.begin, s.end, x + 0.5f,
                                                      y + 0.5f, C, color, &last);
                    if (bg != nullptr)
                        for (int c = 0; c < C; ++c) color[c] += T * bg[c];
                    alphas[pix] = 1.f - T;
                    transmittance[pix] = T;
                    last_ids[pix] = (int32_t)last;
                }
            }
        }
    }
    std::fill(max_weights, max_weights + a.num_views * a.num_primitives, 0.f);
    for (int64_t i = 0; i < a.num_isects; ++i) {
        float& m = max_weights[a.flatten_ids[i]];
        m = std::max(m, maxw[i]);
    }
}

template <class W>
void rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                   const float* v_colors, const float* v_alphas, float* v_window_params,
                   float* v_features, float* v_opacities, float* v_backgrounds) {
    const int64_t n_tiles = a.num_views * a.tile_width * a.tile_height;
    const int64_t N = a.num_primitives;
    const int C = a.num_channels, P = a.num_window_params, stride = 1 + C + P;
    std::vector<float> buf(a.num_isects * stride, 0.f);
    std::vector<float> v_bg_tiles(a.backgrounds != nullptr ? n_tiles * C : 0, 0.f);
#pragma omp parallel num_threads(cpu_threads(n_tiles))
    {
        std::vector<W> wins;
        std::vector<float> opac;
        std::vector<const float*> feat;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
            const TileSpan s = tile_span(a, tile);
            if (s.end <= s.begin && a.backgrounds == nullptr) continue;
            load_tile<W>(a, s, wins, opac, feat);
            TileSrc<W> src{wins.data(), opac.data(), feat.data(), s.begin, P};
            GradSink sink{buf.data(), C, stride};
            const float* bg = a.backgrounds != nullptr ? a.backgrounds + s.v * C : nullptr;
            const int y1 = std::min((s.ty + 1) * a.tile_size, a.height);
            const int x1 = std::min((s.tx + 1) * a.tile_size, a.width);
            for (int y = s.ty * a.tile_size; y < y1; ++y) {
                for (int x = s.tx * a.tile_size; x < x1; ++x) {
                    const int64_t pix = (s.v * a.height + y) * a.width + x;
                    const float T = transmittance[pix];
                    const float* v_color = v_colors + pix * C;
                    if (bg != nullptr)
                        for (int c = 0; c < C; ++c) v_bg_tiles[tile * C + c] += T * v_color[c];
                    composite_backward(src, sink, s.begin, (int64_t)last_ids[pix], x + 0.5f,
                                       y + 0.5f, C, T, v_color, v_alphas[pix], bg);
                }
            }
        }
    }
    std::fill(v_window_params, v_window_params + a.num_views * N * P, 0.f);
    std::fill(v_features, v_features + a.num_views * N * C, 0.f);
    std::fill(v_opacities, v_opacities + N, 0.f);
    for (int64_t i = 0; i < a.num_isects; ++i) {
        const int64_t flat = a.flatten_ids[i];
        const float* row = buf.data() + i * stride;
        v_opacities[flat % N] += row[0];
        float* vf = v_features + flat * C;
        for (int c = 0; c < C; ++c) vf[c] += row[1 + c];
        float* vw = v_window_params + flat * P;
        for (int k = 0; k < P; ++k) vw[k] += row[1 + C + k];
    }
    if (v_backgrounds != nullptr) {
        std::fill(v_backgrounds, v_backgrounds + a.num_views * C, 0.f);
        if (a.backgrounds != nullptr) {
            const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
            for (int64_t tile = 0; tile < n_tiles; ++tile)
                for (int c = 0; c < C; ++c)
                    v_backgrounds[(tile / tiles_per_view) * C + c] += v_bg_tiles[tile * C + c];
        }
    }
}

}  // namespace

void cpu_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                       int32_t* last_ids, float* max_weights) {
    dispatch_family(a.family, [&](auto family) {
        using W = typename decltype(family)::Window;
        if constexpr (kBlocked<W>)
            cpu_rasterize_blocked_fwd<W>(a, colors, alphas, transmittance, last_ids, max_weights);
        else
            rasterize_fwd<W>(a, colors, alphas, transmittance, last_ids, max_weights);
    });
}

void cpu_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                       const float* v_colors, const float* v_alphas, float* v_window_params,
                       float* v_features, float* v_opacities, float* v_backgrounds) {
    dispatch_family(a.family, [&](auto family) {
        using W = typename decltype(family)::Window;
        if constexpr (kBlocked<W>)
            cpu_rasterize_blocked_bwd<W>(a, transmittance, last_ids, v_colors, v_alphas,
                                         v_window_params, v_features, v_opacities, v_backgrounds);
        else
            rasterize_bwd<W>(a, transmittance, last_ids, v_colors, v_alphas, v_window_params,
                             v_features, v_opacities, v_backgrounds);
    });
}

}  // namespace recon
