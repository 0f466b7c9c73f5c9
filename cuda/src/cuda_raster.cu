// CUDA rasterization: one block per tile, one thread per pixel, running the same compositing
// template (composite.h) and window policies as the CPU kernels. Gradients go to the
// per-primitive buffers with atomicAdd, max weights with an integer atomicMax (weights >= 0).
// No torch headers.
#include <cuda_runtime.h>

#include "composite.h"
#include "launchers.h"
#include "window_convex.h"
#include "window_gaussian.h"
#include "window_triangle.h"

namespace recon {
namespace {

// Entries of a tile list, loaded from global memory on use.
template <class W>
struct GlobalSrc {
    RasterArgs a;
    __device__ int64_t flat(int64_t i) const { return a.flatten_ids[i]; }
    __device__ W load(int64_t i) const {
        const int64_t f = flat(i);
        return W::load(a.wparams + f * a.P, a.iparams != nullptr ? a.iparams + f * a.K : nullptr, a.K);
    }
    __device__ float opacity(int64_t i) const { return a.opacities[flat(i) % a.N]; }
    __device__ float window(int64_t i, float px, float py) const { return load(i).eval(px, py); }
    __device__ const float* features(int64_t i) const { return a.features + flat(i) * a.C; }
    __device__ int num_params() const { return a.P; }
    __device__ void window_vjp(int64_t i, float px, float py, float w, float v_w, float* v_wp) const {
        load(i).vjp(px, py, w, v_w, v_wp);
    }
};

struct AtomicMaxSink {
    const int32_t* ids;
    float* max_weights;
    __device__ void max_weight(int64_t i, float w) {
        atomicMax(reinterpret_cast<int*>(max_weights + ids[i]), __float_as_int(w));
    }
};

struct AtomicGradSink {
    const int32_t* ids;
    int64_t N;
    int C;
    float* v_wparams;
    float* v_features;
    float* v_opacities;
    __device__ void add_feature(int64_t i, int c, float g) {
        atomicAdd(v_features + (int64_t)ids[i] * C + c, g);
    }
    __device__ void add_opacity(int64_t i, float g) { atomicAdd(v_opacities + ids[i] % N, g); }
    __device__ void add_window(int64_t i, const float* v, int P) {
        float* row = v_wparams + (int64_t)ids[i] * P;
        for (int k = 0; k < P; ++k)
            if (v[k] != 0.f) atomicAdd(row + k, v[k]);
    }
};

struct PixelIndex {
    int64_t v, begin, end, pix;
    int x, y;
    bool inside;
};

__device__ PixelIndex pixel_index(const RasterArgs& a) {
    PixelIndex p;
    const int64_t tile = blockIdx.x;
    const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
    const int64_t n_tiles = a.V * tiles_per_view;
    p.v = tile / tiles_per_view;
    const int64_t t = tile % tiles_per_view;
    p.x = (int)(t % a.tile_width) * a.tile_size + threadIdx.x;
    p.y = (int)(t / a.tile_width) * a.tile_size + threadIdx.y;
    p.inside = p.x < a.width && p.y < a.height;
    p.pix = (p.v * a.height + p.y) * a.width + p.x;
    p.begin = a.tile_offsets[tile];
    p.end = tile + 1 < n_tiles ? a.tile_offsets[tile + 1] : a.M;
    return p;
}

template <class W>
__global__ void rasterize_fwd_kernel(RasterArgs a, float* colors, float* alphas, float* trans,
                                     int32_t* last_ids, float* max_weights) {
    const PixelIndex p = pixel_index(a);
    if (!p.inside) return;
    GlobalSrc<W> src{a};
    AtomicMaxSink sink{a.flatten_ids, max_weights};
    float* color = colors + p.pix * a.C;
    int64_t last;
    const float T = composite_forward(src, sink, p.begin, p.end, p.x + 0.5f, p.y + 0.5f, a.C,
                                      color, &last);
    if (a.backgrounds != nullptr)
        for (int c = 0; c < a.C; ++c) color[c] += T * a.backgrounds[p.v * a.C + c];
    alphas[p.pix] = 1.f - T;
    trans[p.pix] = T;
    last_ids[p.pix] = (int32_t)last;
}

template <class W>
__global__ void rasterize_bwd_kernel(RasterArgs a, const float* trans, const int32_t* last_ids,
                                     const float* v_colors, const float* v_alphas,
                                     float* v_wparams, float* v_features, float* v_opacities,
                                     float* v_backgrounds) {
    const PixelIndex p = pixel_index(a);
    if (!p.inside) return;
    GlobalSrc<W> src{a};
    AtomicGradSink sink{a.flatten_ids, a.N, a.C, v_wparams, v_features, v_opacities};
    const float T = trans[p.pix];
    const float* v_color = v_colors + p.pix * a.C;
    const float* bg = a.backgrounds != nullptr ? a.backgrounds + p.v * a.C : nullptr;
    if (bg != nullptr)
        for (int c = 0; c < a.C; ++c) atomicAdd(v_backgrounds + p.v * a.C + c, T * v_color[c]);
    composite_backward(src, sink, p.begin, (int64_t)last_ids[p.pix], p.x + 0.5f, p.y + 0.5f,
                       a.C, T, v_color, v_alphas[p.pix], bg);
}

template <class W>
void launch_fwd(const RasterArgs& a, float* colors, float* alphas, float* trans,
                int32_t* last_ids, float* max_weights, cudaStream_t stream) {
    const int64_t n_tiles = a.V * a.tile_width * a.tile_height;
    if (n_tiles == 0) return;
    const dim3 threads(a.tile_size, a.tile_size);
    rasterize_fwd_kernel<W><<<(unsigned)n_tiles, threads, 0, stream>>>(a, colors, alphas, trans,
                                                                        last_ids, max_weights);
}

template <class W>
void launch_bwd(const RasterArgs& a, const float* trans, const int32_t* last_ids,
                const float* v_colors, const float* v_alphas, float* v_wparams,
                float* v_features, float* v_opacities, float* v_backgrounds,
                cudaStream_t stream) {
    const int64_t n_tiles = a.V * a.tile_width * a.tile_height;
    if (n_tiles == 0) return;
    const dim3 threads(a.tile_size, a.tile_size);
    rasterize_bwd_kernel<W><<<(unsigned)n_tiles, threads, 0, stream>>>(
        a, trans, last_ids, v_colors, v_alphas, v_wparams, v_features, v_opacities, v_backgrounds);
}

}  // namespace

void cuda_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                        int32_t* last_ids, float* max_weights, void* stream) {
    cudaStream_t s = (cudaStream_t)stream;
    switch (a.family) {
        case kGaussian:
            return launch_fwd<GaussianWindow>(a, colors, alphas, transmittance, last_ids, max_weights, s);
        case kTriangle:
            return launch_fwd<TriangleWindow>(a, colors, alphas, transmittance, last_ids, max_weights, s);
        default:
            return launch_fwd<ConvexWindow>(a, colors, alphas, transmittance, last_ids, max_weights, s);
    }
}

void cuda_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                        const float* v_colors, const float* v_alphas, float* v_wparams,
                        float* v_features, float* v_opacities, float* v_backgrounds,
                        void* stream) {
    cudaStream_t s = (cudaStream_t)stream;
    switch (a.family) {
        case kGaussian:
            return launch_bwd<GaussianWindow>(a, transmittance, last_ids, v_colors, v_alphas,
                                              v_wparams, v_features, v_opacities, v_backgrounds, s);
        case kTriangle:
            return launch_bwd<TriangleWindow>(a, transmittance, last_ids, v_colors, v_alphas,
                                              v_wparams, v_features, v_opacities, v_backgrounds, s);
        default:
            return launch_bwd<ConvexWindow>(a, transmittance, last_ids, v_colors, v_alphas,
                                            v_wparams, v_features, v_opacities, v_backgrounds, s);
    }
}

}  // namespace recon
