// CUDA projection kernels: one thread per (view, primitive); the backward accumulates the
// per-primitive gradients over views with atomicAdd. No torch headers.
#include <cuda_runtime.h>

#include "launchers.h"
#include "project_convex.h"
#include "project_gaussian.h"
#include "project_triangle.h"

namespace recon {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) { return (int)((n + kThreads - 1) / kThreads); }

__device__ inline bool culled(const int32_t* radii, int64_t idx) {
    return radii[2 * idx] <= 0 && radii[2 * idx + 1] <= 0;
}

__global__ void gaussians_fwd_kernel(GaussianProjectArgs a, float* means2d, float* depths,
                                     float* conics, int32_t* radii) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    const GaussianProjection p = project_gaussian(cam, a.means + 3 * n, a.quats + 4 * n,
                                                  a.scales + 3 * n, a.width, a.height,
                                                  a.near_plane, a.far_plane, a.eps2d);
    means2d[2 * idx] = p.means2d[0];
    means2d[2 * idx + 1] = p.means2d[1];
    depths[idx] = p.depth;
    for (int k = 0; k < 3; ++k) conics[3 * idx + k] = p.conic[k];
    radii[2 * idx] = p.radii[0];
    radii[2 * idx + 1] = p.radii[1];
}

__global__ void gaussians_bwd_kernel(GaussianProjectArgs a, const int32_t* radii,
                                     const float* v_means2d, const float* v_depths,
                                     const float* v_conics, float* v_means, float* v_quats,
                                     float* v_scales) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N || culled(radii, idx)) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    float vm[3] = {0.f, 0.f, 0.f}, vq[4] = {0.f, 0.f, 0.f, 0.f}, vs[3] = {0.f, 0.f, 0.f};
    project_gaussian_vjp(cam, a.means + 3 * n, a.quats + 4 * n, a.scales + 3 * n, a.width,
                         a.height, a.eps2d, v_means2d + 2 * idx, v_depths[idx], v_conics + 3 * idx,
                         vm, vq, vs);
    for (int k = 0; k < 3; ++k) atomicAdd(v_means + 3 * n + k, vm[k]);
    for (int k = 0; k < 4; ++k) atomicAdd(v_quats + 4 * n + k, vq[k]);
    for (int k = 0; k < 3; ++k) atomicAdd(v_scales + 3 * n + k, vs[k]);
}

__global__ void triangles_fwd_kernel(PointsProjectArgs a, float* means2d, float* depths,
                                     float* verts2d, int32_t* radii) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    const TriangleProjection p =
        project_triangle(cam, a.points + 9 * n, a.width, a.height, a.near_plane, a.far_plane);
    means2d[2 * idx] = p.means2d[0];
    means2d[2 * idx + 1] = p.means2d[1];
    depths[idx] = p.depth;
    for (int k = 0; k < 6; ++k) verts2d[6 * idx + k] = p.verts2d[k];
    radii[2 * idx] = p.radii[0];
    radii[2 * idx + 1] = p.radii[1];
}

__global__ void triangles_bwd_kernel(PointsProjectArgs a, const int32_t* radii,
                                     const float* v_means2d, const float* v_depths,
                                     const float* v_verts2d, float* v_vertices) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N || culled(radii, idx)) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    float g[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    project_triangle_vjp(cam, a.points + 9 * n, v_means2d + 2 * idx, v_depths[idx],
                         v_verts2d + 6 * idx, g);
    for (int k = 0; k < 9; ++k) atomicAdd(v_vertices + 9 * n + k, g[k]);
}

__global__ void convexes_fwd_kernel(PointsProjectArgs a, float* means2d, float* depths,
                                    float* points2d, int32_t* hull, int32_t* radii) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    project_convex(cam, a.points + 3 * a.K * n, a.K, a.delta[n], a.sigma[n], a.opacities[n],
                   a.width, a.height, a.near_plane, a.far_plane, means2d + 2 * idx, depths + idx,
                   points2d + 2 * a.K * idx, hull + a.K * idx, radii + 2 * idx);
}

__global__ void convexes_bwd_kernel(PointsProjectArgs a, const int32_t* radii,
                                    const float* v_means2d, const float* v_depths,
                                    const float* v_points2d, float* v_points) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= a.V * a.N || culled(radii, idx)) return;
    const int64_t v = idx / a.N, n = idx % a.N;
    const Camera cam = load_camera(a.viewmats, a.Ks, v);
    float g[3 * kMaxConvexPoints];
    for (int k = 0; k < 3 * a.K; ++k) g[k] = 0.f;
    project_convex_vjp(cam, a.points + 3 * a.K * n, a.K, v_means2d + 2 * idx, v_depths[idx],
                       v_points2d + 2 * a.K * idx, g);
    for (int k = 0; k < 3 * a.K; ++k) atomicAdd(v_points + 3 * a.K * n + k, g[k]);
}

}  // namespace

#define LAUNCH(kernel, n, stream, ...)                                                     \
    if ((n) > 0)                                                                           \
        kernel<<<blocks_for(n), kThreads, 0, (cudaStream_t)(stream)>>>(__VA_ARGS__)

void cuda_project_gaussians_fwd(const GaussianProjectArgs& a, float* means2d, float* depths,
                                float* conics, int32_t* radii, void* stream) {
    LAUNCH(gaussians_fwd_kernel, a.V * a.N, stream, a, means2d, depths, conics, radii);
}

void cuda_project_gaussians_bwd(const GaussianProjectArgs& a, const int32_t* radii,
                                const float* v_means2d, const float* v_depths,
                                const float* v_conics, float* v_means, float* v_quats,
                                float* v_scales, void* stream) {
    LAUNCH(gaussians_bwd_kernel, a.V * a.N, stream, a, radii, v_means2d, v_depths, v_conics,
           v_means, v_quats, v_scales);
}

void cuda_project_triangles_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                                float* verts2d, int32_t* radii, void* stream) {
    LAUNCH(triangles_fwd_kernel, a.V * a.N, stream, a, means2d, depths, verts2d, radii);
}

void cuda_project_triangles_bwd(const PointsProjectArgs& a, const int32_t* radii,
                                const float* v_means2d, const float* v_depths,
                                const float* v_verts2d, float* v_vertices, void* stream) {
    LAUNCH(triangles_bwd_kernel, a.V * a.N, stream, a, radii, v_means2d, v_depths, v_verts2d,
           v_vertices);
}

void cuda_project_convexes_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                               float* points2d, int32_t* hull, int32_t* radii, void* stream) {
    LAUNCH(convexes_fwd_kernel, a.V * a.N, stream, a, means2d, depths, points2d, hull, radii);
}

void cuda_project_convexes_bwd(const PointsProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_points2d, float* v_points, void* stream) {
    LAUNCH(convexes_bwd_kernel, a.V * a.N, stream, a, radii, v_means2d, v_depths, v_points2d,
           v_points);
}

}  // namespace recon
