// CUDA tile intersection: per-primitive tile counts, key fill at the prefix sums (the binding
// sorts the 64-bit keys with a stable torch sort), then per-tile offsets. No torch headers.
#include <cuda_runtime.h>

#include <cstring>

#include "launchers.h"
#include "tiles.h"

namespace recon {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

inline int bit_length(int64_t x) {
    int b = 0;
    while (x > 0) {
        ++b;
        x >>= 1;
    }
    return b;
}

__global__ void counts_kernel(const float* means2d, const int32_t* radii, int64_t VN,
                              int tile_size, int tw, int th, int64_t* counts) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= VN) return;
    const TileRange r = tile_range(means2d[2 * idx], means2d[2 * idx + 1], radii[2 * idx],
                                   radii[2 * idx + 1], tile_size, tw, th);
    counts[idx] = r.count();
}

__global__ void fill_kernel(const float* means2d, const int32_t* radii, const float* depths,
                            int64_t VN, int64_t N, int tile_size, int tw, int th, int tile_bits,
                            const int64_t* starts, int64_t* keys, int32_t* ids) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= VN) return;
    const TileRange r = tile_range(means2d[2 * idx], means2d[2 * idx + 1], radii[2 * idx],
                                   radii[2 * idx + 1], tile_size, tw, th);
    const int64_t view = idx / N;
    const int64_t depth_bits = (int64_t)(uint32_t)__float_as_uint(depths[idx]);
    int64_t cur = starts[idx];
    for (int ty = r.y0; ty < r.y1; ++ty)
        for (int tx = r.x0; tx < r.x1; ++tx) {
            const int64_t tile = (int64_t)ty * tw + tx;
            keys[cur] = (((view << tile_bits) | tile) << 32) | depth_bits;
            ids[cur] = (int32_t)idx;
            ++cur;
        }
}

__device__ inline int64_t global_tile(int64_t key, int tile_bits, int64_t tiles_per_view) {
    const int64_t hi = key >> 32;
    return (hi >> tile_bits) * tiles_per_view + (hi & ((1ll << tile_bits) - 1));
}

__global__ void offsets_kernel(const int64_t* keys, int64_t M, int64_t n_tiles, int tile_bits,
                               int64_t tiles_per_view, int32_t* offsets) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= M) return;
    const int64_t g = global_tile(keys[i], tile_bits, tiles_per_view);
    const int64_t gp = i == 0 ? -1 : global_tile(keys[i - 1], tile_bits, tiles_per_view);
    for (int64_t t = gp + 1; t <= g; ++t) offsets[t] = (int32_t)i;
    if (i == M - 1)
        for (int64_t t = g + 1; t < n_tiles; ++t) offsets[t] = (int32_t)M;
}

}  // namespace

void cuda_isect_counts(const float* means2d, const int32_t* radii, int64_t V, int64_t N,
                       int tile_size, int tile_width, int tile_height, int64_t* counts,
                       void* stream) {
    if (V * N == 0) return;
    counts_kernel<<<blocks_for(V * N), kThreads, 0, (cudaStream_t)stream>>>(
        means2d, radii, V * N, tile_size, tile_width, tile_height, counts);
}

void cuda_isect_fill(const float* means2d, const int32_t* radii, const float* depths, int64_t V,
                     int64_t N, int tile_size, int tile_width, int tile_height,
                     const int64_t* starts, int64_t* keys, int32_t* flatten_ids, void* stream) {
    if (V * N == 0) return;
    const int tile_bits = bit_length((int64_t)tile_width * tile_height);
    fill_kernel<<<blocks_for(V * N), kThreads, 0, (cudaStream_t)stream>>>(
        means2d, radii, depths, V * N, N, tile_size, tile_width, tile_height, tile_bits, starts,
        keys, flatten_ids);
}

void cuda_isect_offsets(const int64_t* sorted_keys, int64_t M, int64_t V, int tile_width,
                        int tile_height, int32_t* tile_offsets, void* stream) {
    const int64_t tiles_per_view = (int64_t)tile_width * tile_height;
    const int64_t n_tiles = V * tiles_per_view;
    if (M == 0) {
        cudaMemsetAsync(tile_offsets, 0, n_tiles * sizeof(int32_t), (cudaStream_t)stream);
        return;
    }
    offsets_kernel<<<blocks_for(M), kThreads, 0, (cudaStream_t)stream>>>(
        sorted_keys, M, n_tiles, bit_length(tiles_per_view), tiles_per_view, tile_offsets);
}

}  // namespace recon
