// Tile setup of the blocked CPU rasterizer (cpu_raster_blocked_impl.h): the pixel block of a tile
// (padded to whole vectors), and per tile-list entry the block rows its window can reach (a
// conservative box outside which alpha < 1/255).
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "cpu_simd_windows_impl.h"
#include "launchers.h"

namespace recon {
namespace {

constexpr int kLanes = 8;  // block padding: a multiple of every lane count used

// One tile-list entry: window, opacity, features, the block rows [r0, r1) it can reach and the
// exponent p_max beyond which its alpha < 1/255 (Box).
template <class W>
struct Entry {
    W win;
    float o, p_max;
    int32_t r0, r1;
    const float* f;  // [C]
};

// Pixel block of one tile: bw x bh pixels (image part only), row-major, padded to n_pad pixels
// (a multiple of kLanes) with pixel centres.
struct Block {
    int64_t v, tile, begin, end;
    int x0, y0, bw, bh, n, n_pad;
    std::vector<float> px, py;  // [n_pad]
};

void load_block(const RasterArgs& a, int64_t tile, Block& b) {
    const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
    const int64_t n_tiles = a.num_views * tiles_per_view;
    const int64_t t = tile % tiles_per_view;
    b.tile = tile;
    b.v = tile / tiles_per_view;
    b.x0 = (int)(t % a.tile_width) * a.tile_size;
    b.y0 = (int)(t / a.tile_width) * a.tile_size;
    b.bw = std::max(0, std::min(a.tile_size, a.width - b.x0));
    b.bh = std::max(0, std::min(a.tile_size, a.height - b.y0));
    b.n = b.bw * b.bh;
    b.n_pad = (b.n + kLanes - 1) / kLanes * kLanes;
    b.begin = a.tile_offsets[tile];
    b.end = tile + 1 < n_tiles ? a.tile_offsets[tile + 1] : a.num_isects;
    b.px.assign(b.n_pad, 0.f);
    b.py.assign(b.n_pad, 0.f);
    for (int r = 0; r < b.bh; ++r)
        for (int c = 0; c < b.bw; ++c) {
            b.px[r * b.bw + c] = (float)(b.x0 + c) + 0.5f;
            b.py[r * b.bw + c] = (float)(b.y0 + r) + 0.5f;
        }
}

// Image pixel index of block pixel p < b.n.
int64_t pixel_of(const RasterArgs& a, const Block& b, int p) {
    return (b.v * a.height + b.y0 + p / b.bw) * a.width + b.x0 + p % b.bw;
}

// Pixel box (inclusive) of one (view, primitive) outside which alpha < 1/255 for sure: the
// bounding box of {exponent <= p_max}, p_max = visible_level widened by a relative 1e-3 (and the
// box by one pixel); empty when o < 1/255 (alpha <= o), unbounded when the conic is not positive
// definite or not finite (p_max still holds: the window is a function of p). Visiting more pixels
// than needed never changes a result.
struct Box {
    int32_t x0, x1, y0, y1;
    float p_max;
};

template <class W>
Box visible_box(const W& win, float o) {
    constexpr double kBig = 1 << 30;  // far outside any image, still an int32
    if (!(o >= kAlphaThreshold)) return Box{1, 0, 1, 0, -1.f};
    const GaussianWindow& g = conic_of(win);
    const double a = g.a, b = g.b, c = g.c, det = a * c - b * b;
    const double s = visible_level(win, std::log(255.0 * (double)o)) * 1.001 + 1e-3;
    if (a > 0.0 && c > 0.0 && det > 0.0) {
        const double hx = std::sqrt(2.0 * s * c / det), hy = std::sqrt(2.0 * s * a / det);
        const double x0 = std::floor(g.mx - hx - 0.5) - 1.0, x1 = std::ceil(g.mx + hx - 0.5) + 1.0;
        const double y0 = std::floor(g.my - hy - 0.5) - 1.0, y1 = std::ceil(g.my + hy - 0.5) + 1.0;
        if (std::isfinite(x0) && std::isfinite(x1) && std::isfinite(y0) && std::isfinite(y1)) {
            auto clamp = [kBig](double x) { return (int32_t)std::min(kBig, std::max(-kBig, x)); };
            return Box{clamp(x0), clamp(x1), clamp(y0), clamp(y1), (float)s};
        }
    }
    return Box{INT_MIN, INT_MAX, INT_MIN, INT_MAX, (float)s};
}

// Boxes of every (view, primitive) [V * N].
template <class W>
std::vector<Box> visible_boxes(const RasterArgs& a) {
    std::vector<Box> boxes(a.num_views * a.num_primitives);
#pragma omp parallel for schedule(static) num_threads(cpu_threads(a.num_views * a.num_primitives, 4096))
    for (int64_t flat = 0; flat < a.num_views * a.num_primitives; ++flat)
        boxes[flat] = visible_box(W::load(a.window_params + flat * W::kParams, nullptr, 0),
                                  a.opacities[flat % a.num_primitives]);
    return boxes;
}

// The tile's entries with the block rows crossing their box (none when the box misses it).
template <class W>
void load_entries(const RasterArgs& a, const std::vector<Box>& boxes, const Block& b,
                  std::vector<Entry<W>>& es) {
    es.resize(b.end - b.begin);
    for (int64_t k = 0; k < b.end - b.begin; ++k) {
        const int64_t flat = a.flatten_ids[b.begin + k];
        Entry<W>& e = es[k];
        e.win = W::load(a.window_params + flat * W::kParams, nullptr, 0);
        e.o = a.opacities[flat % a.num_primitives];
        e.f = a.features + flat * a.num_channels;
        const Box& box = boxes[flat];
        e.p_max = box.p_max;
        const int64_t r0 = std::max<int64_t>(0, (int64_t)box.y0 - b.y0);
        const int64_t r1 = std::min<int64_t>(b.bh, (int64_t)box.y1 - b.y0 + 1);
        const bool miss = r0 >= r1 || box.x1 < b.x0 || box.x0 > b.x0 + b.bw - 1;
        e.r0 = miss ? 0 : (int32_t)r0;
        e.r1 = miss ? 0 : (int32_t)r1;
    }
}

// Pixel range [p0, p1) of block rows [r0, r1), widened to multiples of kLanes.
void lane_range(const Block& b, int r0, int r1, int* p0, int* p1) {
    *p0 = r0 * b.bw / kLanes * kLanes;
    *p1 = std::min(b.n_pad, (r1 * b.bw + kLanes - 1) / kLanes * kLanes);
}

}  // namespace
}  // namespace recon
