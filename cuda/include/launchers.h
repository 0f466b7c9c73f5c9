// Host-callable entry points of the CPU (.cpp, OpenMP) and CUDA (.cu) kernels, on raw pointers.
//
// All float arrays are float32, contiguous, row major; shapes in comments. bindings.cpp wraps these
// in torch ops; nothing here depends on torch.
#pragma once

#include <cstdint>

#include "common.h"

namespace recon {

// Projection of Gaussians: means [N,3], quats [N,4], scales [N,3], viewmats [V,4,4], Ks [V,3,3]
// -> means2d [V,N,2], depths [V,N], conics [V,N,3], radii [V,N,2].
struct GaussianProjectArgs {
    const float* means;
    const float* quats;
    const float* scales;
    const float* viewmats;
    const float* Ks;
    int64_t V, N;
    int width, height;
    float near_plane, far_plane, eps2d;
};

// Projection of triangles (vertices [N,3,3]) or convexes (points [N,K,3], delta/sigma/opacity [N]).
struct PointsProjectArgs {
    const float* points;  // [N,K,3]
    const float* delta;   // [N] (convexes only)
    const float* sigma;   // [N] (convexes only)
    const float* opacities;  // [N] (convexes only)
    const float* viewmats;
    const float* Ks;
    int64_t V, N;
    int K;
    int width, height;
    float near_plane, far_plane;
};

// Rasterization of any family: wparams [V,N,P] window parameters, iparams [V,N,K] (convex hulls,
// else null), features [V,N,C], opacities [N], backgrounds [V,C] or null, tile_offsets
// [V,th,tw], flatten_ids [M].
struct RasterArgs {
    int family;
    const float* wparams;
    const int32_t* iparams;
    int P, K;
    const float* features;
    const float* opacities;
    const float* backgrounds;
    int64_t V, N;
    int C;
    int width, height, tile_size, tile_width, tile_height;
    const int32_t* tile_offsets;
    const int32_t* flatten_ids;
    int64_t M;
};

// ---- CPU ----------------------------------------------------------------------------------
// Threads of the CPU kernels' parallel regions: at most the count set by set_cpu_threads (0, the
// initial value: OpenMP's default), and at most one per `min_items` of a loop's `items`, so that a
// loop too short to pay for waking another thread runs on the caller alone. Never below 1. The
// kernels give the same numbers for any count (fixed-order reductions).
void set_cpu_threads(int n);
int cpu_threads(int64_t items = INT64_MAX, int64_t min_items = 1);
void cpu_project_gaussians_fwd(const GaussianProjectArgs& a, float* means2d, float* depths,
                               float* conics, int32_t* radii);
void cpu_project_gaussians_bwd(const GaussianProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_conics, float* v_means, float* v_quats,
                               float* v_scales);
void cpu_project_triangles_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                               float* verts2d, int32_t* radii);
void cpu_project_triangles_bwd(const PointsProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_verts2d, float* v_vertices);
void cpu_project_convexes_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                              float* points2d, int32_t* hull, int32_t* radii);
void cpu_project_convexes_bwd(const PointsProjectArgs& a, const int32_t* radii,
                              const float* v_means2d, const float* v_depths,
                              const float* v_points2d, float* v_points);
// Counts intersections; tile_offsets [V,th,tw] is filled, returns M.
int64_t cpu_isect_count(const float* means2d, const int32_t* radii, int64_t V, int64_t N,
                        int tile_size, int tile_width, int tile_height, int32_t* tile_offsets);
// Fills flatten_ids [M] sorted by (view, tile, depth), stable.
void cpu_isect_fill(const float* means2d, const int32_t* radii, const float* depths, int64_t V,
                    int64_t N, int tile_size, int tile_width, int tile_height,
                    const int32_t* tile_offsets, int64_t M, int32_t* flatten_ids);
void cpu_rasterize_fwd(const RasterArgs& a, float* colors, float* alphas, float* transmittance,
                       int32_t* last_ids, float* max_weights);
void cpu_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                       const float* v_colors, const float* v_alphas, float* v_wparams,
                       float* v_features, float* v_opacities, float* v_backgrounds);

// ---- CUDA (same signatures; pointers on the device; launched on the current stream) -------
void cuda_project_gaussians_fwd(const GaussianProjectArgs& a, float* means2d, float* depths,
                                float* conics, int32_t* radii, void* stream);
void cuda_project_gaussians_bwd(const GaussianProjectArgs& a, const int32_t* radii,
                                const float* v_means2d, const float* v_depths,
                                const float* v_conics, float* v_means, float* v_quats,
                                float* v_scales, void* stream);
void cuda_project_triangles_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                                float* verts2d, int32_t* radii, void* stream);
void cuda_project_triangles_bwd(const PointsProjectArgs& a, const int32_t* radii,
                                const float* v_means2d, const float* v_depths,
                                const float* v_verts2d, float* v_vertices, void* stream);
void cuda_project_convexes_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                               float* points2d, int32_t* hull, int32_t* radii, void* stream);
void cuda_project_convexes_bwd(const PointsProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_points2d, float* v_points, void* stream);
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
// v_wparams [V,N,P], v_features [V,N,C], v_opacities [N], v_backgrounds [V,C] must be zeroed.
void cuda_rasterize_bwd(const RasterArgs& a, const float* transmittance, const int32_t* last_ids,
                        const float* v_colors, const float* v_alphas, float* v_wparams,
                        float* v_features, float* v_opacities, float* v_backgrounds,
                        void* stream);

}  // namespace recon
