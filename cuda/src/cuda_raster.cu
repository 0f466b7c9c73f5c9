// CUDA rasterization: one block per tile, one thread per pixel, running the compositing steps
// (composite.h) and window policies (families.h) of the CPU kernels, in the same order per pixel.
//
// The Inria rasterizer's pattern: the block walks its tile's list in batches; for each batch every
// thread loads at most one entry (window, opacity, id) into shared memory, then every pixel reads
// the whole batch from there instead of from global memory. The forward stops the block as soon as
// every pixel is done (__syncthreads_count); the backward walks the batches back to front from the
// block's last composited entry. Gradients go to the per-primitive buffers with atomicAdd, max
// weights with an integer atomicMax (weights >= 0). No torch headers.
#include <cuda_runtime.h>

#include "composite.h"
#include "families.h"
#include "launchers.h"

namespace recon {
namespace {

// Entries per batch: one per thread of a 16 x 16 tile (larger tiles load with their first
// kBatch threads).
constexpr int kBatch = 256;

// One batch of a tile's list in shared memory: slot r holds entry base + r.
template <class W>
struct Batch {
    W window[kBatch];
    float opacity[kBatch];
    int32_t id[kBatch];  // view * N + primitive
};

// Entries of the current batch, seen by the compositing template through their list index i.
template <class W>
struct BatchSrc {
    const Batch<W>& b;
    int64_t base;
    const float* feats;  // [V,N,C]
    int C, P;
    __device__ float opacity(int64_t i) const { return b.opacity[i - base]; }
    __device__ float window(int64_t i, float px, float py) const {
        return b.window[i - base].eval(px, py);
    }
    __device__ const float* features(int64_t i) const {
        return feats + (int64_t)b.id[i - base] * C;
    }
    __device__ int num_params() const { return P; }
    __device__ void window_vjp(int64_t i, float px, float py, float w, float v_w,
                               float* v_wp) const {
        b.window[i - base].vjp(px, py, w, v_w, v_wp);
    }
};

struct AtomicMaxSink {
    const int32_t* ids;  // the batch's ids
    int64_t base;
    float* max_weights;
    __device__ void max_weight(int64_t i, float w) {
        atomicMax(reinterpret_cast<int*>(max_weights + ids[i - base]), __float_as_int(w));
    }
};

struct AtomicGradSink {
    const int32_t* ids;  // the batch's ids
    int64_t base, N;
    int C;
    float* v_window_params;
    float* v_features;
    float* v_opacities;
    __device__ void add_feature(int64_t i, int c, float g) {
        atomicAdd(v_features + (int64_t)ids[i - base] * C + c, g);
    }
    __device__ void add_opacity(int64_t i, float g) {
        atomicAdd(v_opacities + ids[i - base] % N, g);
    }
    __device__ void add_window(int64_t i, const float* v, int P) {
        float* row = v_window_params + (int64_t)ids[i - base] * P;
        for (int k = 0; k < P; ++k)
            if (v[k] != 0.f) atomicAdd(row + k, v[k]);
    }
};

// This thread's pixel and its block's tile: list entries [begin, end), batch geometry.
struct PixelIndex {
    int64_t v, begin, end, pix;
    int x, y;
    bool inside;
    int rank, threads, batch;  // thread rank in the block, threads per block, entries per batch
};

__device__ PixelIndex pixel_index(const RasterArgs& a) {
    PixelIndex p;
    const int64_t tile = blockIdx.x;
    const int64_t tiles_per_view = (int64_t)a.tile_width * a.tile_height;
    const int64_t n_tiles = a.num_views * tiles_per_view;
    p.v = tile / tiles_per_view;
    const int64_t t = tile % tiles_per_view;
    p.x = (int)(t % a.tile_width) * a.tile_size + threadIdx.x;
    p.y = (int)(t / a.tile_width) * a.tile_size + threadIdx.y;
    p.inside = p.x < a.width && p.y < a.height;
    p.pix = (p.v * a.height + p.y) * a.width + p.x;
    p.begin = a.tile_offsets[tile];
    p.end = tile + 1 < n_tiles ? a.tile_offsets[tile + 1] : a.num_isects;
    p.rank = threadIdx.y * blockDim.x + threadIdx.x;
    p.threads = blockDim.x * blockDim.y;
    p.batch = min(p.threads, kBatch);
    return p;
}

// Loads entries [start, stop) (at most p.batch) into the batch, one per thread. Call between two
// barriers: every thread of the block must have finished reading the previous batch.
template <class W>
__device__ void load_batch(const RasterArgs& a, const PixelIndex& p, int64_t start, int64_t stop,
                           Batch<W>& b) {
    if (p.rank < stop - start) {
        const int32_t id = a.flatten_ids[start + p.rank];
        b.window[p.rank] = load_window<W>(a, id);
        b.opacity[p.rank] = a.opacities[id % a.num_primitives];
        b.id[p.rank] = id;
    }
}

template <class W>
__global__ void rasterize_fwd_kernel(RasterArgs a, float* colors, float* alphas, float* trans,
                                     int32_t* last_ids, float* max_weights) {
    __shared__ Batch<W> batch;
    const PixelIndex p = pixel_index(a);
    const int C = a.num_channels;
    const float px = p.x + 0.5f, py = p.y + 0.5f;
    float* color = colors + p.pix * C;
    ForwardPixel s{1.f, p.begin - 1};
    if (p.inside)
        for (int c = 0; c < C; ++c) color[c] = 0.f;
    bool done = !p.inside;
    for (int64_t start = p.begin; start < p.end; start += p.batch) {
        if (__syncthreads_count(done) == p.threads) break;  // every pixel of the block is done
        const int64_t stop = min(start + (int64_t)p.batch, p.end);
        load_batch(a, p, start, stop, batch);
        __syncthreads();
        const BatchSrc<W> src{batch, start, a.features, C, a.num_window_params};
        AtomicMaxSink sink{batch.id, start, max_weights};
        for (int64_t i = start; !done && i < stop; ++i)
            done = !composite_step(src, sink, i, px, py, C, color, s);
    }
    if (!p.inside) return;
    if (a.backgrounds != nullptr)
        for (int c = 0; c < C; ++c) color[c] += s.T * a.backgrounds[p.v * C + c];
    alphas[p.pix] = 1.f - s.T;
    trans[p.pix] = s.T;
    last_ids[p.pix] = (int32_t)s.last;
}

template <class W>
__global__ void rasterize_bwd_kernel(RasterArgs a, const float* trans, const int32_t* last_ids,
                                     const float* v_colors, const float* v_alphas,
                                     float* v_window_params, float* v_features,
                                     float* v_opacities, float* v_backgrounds) {
    __shared__ Batch<W> batch;
    __shared__ int block_last;  // last entry composited by any pixel of the block
    const PixelIndex p = pixel_index(a);
    const int C = a.num_channels;
    const float px = p.x + 0.5f, py = p.y + 0.5f;
    const int64_t last = p.inside ? (int64_t)last_ids[p.pix] : p.begin - 1;
    if (p.rank == 0) block_last = (int)p.begin - 1;
    __syncthreads();
    atomicMax(&block_last, (int)last);
    BackwardPixel s{};
    if (p.inside) {
        const float* v_color = v_colors + p.pix * C;
        const float T = trans[p.pix];
        const float* bg = a.backgrounds != nullptr ? a.backgrounds + p.v * C : nullptr;
        if (bg != nullptr)
            for (int c = 0; c < C; ++c) atomicAdd(v_backgrounds + p.v * C + c, T * v_color[c]);
        s = backward_pixel(C, T, v_color, v_alphas[p.pix], bg);
    }
    __syncthreads();
    for (int64_t stop = (int64_t)block_last + 1; stop > p.begin; stop -= p.batch) {
        const int64_t start = max(p.begin, stop - p.batch);
        __syncthreads();  // the previous batch is read by every pixel
        load_batch(a, p, start, stop, batch);
        __syncthreads();
        if (!p.inside) continue;
        const BatchSrc<W> src{batch, start, a.features, C, a.num_window_params};
        AtomicGradSink sink{batch.id, start, a.num_primitives, C,
                            v_window_params, v_features, v_opacities};
        for (int64_t i = min(stop - 1, last); i >= start; --i)
            composite_backward_step(src, sink, i, px, py, C, s);
    }
}

// Launches kernel<<<tiles, tile_size^2>>> for window W; nothing when there is no tile.
template <class W, class Kernel, class... Args>
void launch(const RasterArgs& a, Kernel kernel, cudaStream_t stream, Args... args) {
    static_assert(sizeof(Batch<W>) <= 40 * 1024, "a batch must fit in static shared memory");
    const int64_t n_tiles = a.num_views * a.tile_width * a.tile_height;
    if (n_tiles == 0) return;
    const dim3 threads(a.tile_size, a.tile_size);
    kernel<<<(unsigned)n_tiles, threads, 0, stream>>>(a, args...);
}

}  // namespace

void cuda_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                        int32_t* last_ids, float* max_weights, void* stream) {
    dispatch_family(a.family, [&](auto family) {
        using W = typename decltype(family)::Window;
        launch<W>(a, rasterize_fwd_kernel<W>, (cudaStream_t)stream, colors, alphas, transmittance,
                  last_ids, max_weights);
    });
}

void cuda_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                        const float* v_colors, const float* v_alphas, float* v_window_params,
                        float* v_features, float* v_opacities, float* v_backgrounds,
                        void* stream) {
    dispatch_family(a.family, [&](auto family) {
        using W = typename decltype(family)::Window;
        launch<W>(a, rasterize_bwd_kernel<W>, (cudaStream_t)stream, transmittance, last_ids,
                  v_colors, v_alphas, v_window_params, v_features, v_opacities, v_backgrounds);
    });
}

}  // namespace recon
