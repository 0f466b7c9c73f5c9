// Host-callable entry points of the CPU (.cpp, OpenMP) and CUDA (.cu) kernels, on raw pointers.
//
// All float arrays are float32, contiguous, row major; shapes in comments with the letters of
// ENGINE.md: V views, N primitives, K points per primitive, C feature channels, M tile
// intersections. bindings.cpp wraps these in torch ops; nothing here depends on torch. Every entry
// point takes a family id (families.h) and runs that family's policies; none is written per family.
#pragma once

#include <cstdint>

#include "common.h"

namespace recon {

// Most per-primitive input arrays of a projection (Gaussians: means, quats, scales; convexes:
// points, delta, sigma, opacities; GES: means, quats, scales, shape, opacities).
constexpr int kMaxProjectInputs = 5;

// Inputs of the projection of N primitives into V views.
struct ProjectArgs {
    int family;
    // Per-primitive inputs, inputs[i] [N, input_width(i, K)] (projector.h); the first
    // num_grad_inputs of them are differentiable, the backward reads only those.
    const float* inputs[kMaxProjectInputs];
    const float* viewmats;    // [V,4,4] world-to-camera
    const float* intrinsics;  // [V,3,3]
    int64_t num_views, num_primitives;
    int points_per_primitive;  // K: 3 for triangles, up to kMaxConvexPoints for convexes
    int width, height;
    float near_plane, far_plane, eps2d;
};

// Outputs of the projection, one row per (view, primitive): row = v * N + n.
struct ProjectOutputs {
    float* means2d;   // [V,N,2] footprint centre
    float* depths;    // [V,N]
    float* shape2d;   // [V,N,shape_width(K)] the family's 2D shape (conics, verts2d, points2d)
    int32_t* hull;    // [V,N,K] convexes only (null for the other families)
    int32_t* radii;   // [V,N,2] footprint half extent; 0 when culled
};

// Cotangents of ProjectOutputs (radii from the forward: culled rows get no gradient).
struct ProjectCotangents {
    const int32_t* radii;    // [V,N,2]
    const float* v_means2d;  // [V,N,2]
    const float* v_depths;   // [V,N]
    const float* v_shape2d;  // [V,N,shape_width(K)]
};

// Rasterization of any family.
struct RasterArgs {
    int family;
    const float* window_params;     // [V,N,num_window_params] per (view, primitive) window
    const int32_t* window_indices;  // [V,N,num_window_indices] convex hulls, else null
    int num_window_params, num_window_indices;
    const float* features;     // [V,N,C]
    const float* opacities;    // [N]
    const float* backgrounds;  // [V,C] or null
    int64_t num_views, num_primitives;
    int num_channels;
    int width, height, tile_size, tile_width, tile_height;
    const int32_t* tile_offsets;  // [V,tile_height,tile_width] first entry of every tile's list
    const int32_t* flatten_ids;   // [M] (view * N + primitive) sorted by (view, tile, depth)
    int64_t num_isects;           // M
};

// ---- CPU ----------------------------------------------------------------------------------
// Threads of the CPU kernels' parallel regions: at most the count set by set_cpu_threads (0, the
// initial value: OpenMP's default), and at most one per `min_items` of a loop's `items`, so that a
// loop too short to pay for waking another thread runs on the caller alone. Never below 1. The
// kernels give the same numbers for any count (fixed-order reductions).
void set_cpu_threads(int n);
int cpu_threads(int64_t items = INT64_MAX, int64_t min_items = 1);
void cpu_project_fwd(const ProjectArgs& a, const ProjectOutputs& out);
// Writes v_inputs[i] [N, input_width(i, K)] for the first num_grad_inputs inputs.
void cpu_project_bwd(const ProjectArgs& a, const ProjectCotangents& v, float* const* v_inputs);
// Counts intersections; tile_offsets [V,th,tw] is filled, returns M.
int64_t cpu_isect_count(const float* means2d, const int32_t* radii, int64_t V, int64_t N,
                        int tile_size, int tile_width, int tile_height, int32_t* tile_offsets);
// Fills flatten_ids [M] sorted by (view, tile, depth), stable.
void cpu_isect_fill(const float* means2d, const int32_t* radii, const float* depths, int64_t V,
                    int64_t N, int tile_size, int tile_width, int tile_height,
                    const int32_t* tile_offsets, int64_t M, int32_t* flatten_ids);
// colors [V,H,W,C], alphas and transmittance [V,H,W], last_ids [V,H,W], max_weights [V,N].
void cpu_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                       int32_t* last_ids, float* max_weights);
void cpu_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                       const float* v_colors, const float* v_alphas, float* v_window_params,
                       float* v_features, float* v_opacities, float* v_backgrounds);

// ---- CUDA (same signatures; pointers on the device; launched on the current stream) -------
void cuda_project_fwd(const ProjectArgs& a, const ProjectOutputs& out, void* stream);
// v_inputs must be zeroed (gradients are accumulated over views with atomics).
void cuda_project_bwd(const ProjectArgs& a, const ProjectCotangents& v, float* const* v_inputs,
                      void* stream);
// Per (view, primitive) tile counts [V*N] (int64).
void cuda_isect_counts(const float* means2d, const int32_t* radii, int64_t V, int64_t N,
                       int tile_size, int tile_width, int tile_height, int64_t* counts,
                       void* stream);
// Writes keys [M] = (view << tile_bits | tile) << 32 | depth bits and flatten_ids [M] at the
// exclusive prefix sums `starts` [V*N].
void cuda_isect_fill(const float* means2d, const int32_t* radii, const float* depths, int64_t V,
                     int64_t N, int tile_size, int tile_width, int tile_height,
                     const int64_t* starts, int64_t* keys, int32_t* flatten_ids, void* stream);
// tile_offsets [V*th*tw] from sorted keys [M].
void cuda_isect_offsets(const int64_t* sorted_keys, int64_t M, int64_t V, int tile_width,
                        int tile_height, int32_t* tile_offsets, void* stream);
void cuda_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                        int32_t* last_ids, float* max_weights, void* stream);
// v_window_params [V,N,P], v_features [V,N,C], v_opacities [N], v_backgrounds [V,C] must be zeroed.
void cuda_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                        const float* v_colors, const float* v_alphas, float* v_window_params,
                        float* v_features, float* v_opacities, float* v_backgrounds,
                        void* stream);

}  // namespace recon
