// CPU projection kernels (OpenMP): one (view, primitive) per iteration in the forward; one
// primitive per iteration (looping over views) in the backward, so gradients need no atomics.
#include "launchers.h"
#include "project_convex.h"
#include "project_gaussian.h"
#include "project_triangle.h"

namespace recon {

// Team size of a projection loop over `items` (primitive, view) pairs: a Gaussian's forward costs
// ~0.15 us (measured), so a thread gets at least 4096 of them (~0.6 ms) against the ~10-50 us of
// waking a sleeping pool thread and joining it.
namespace {
int project_threads(int64_t items) { return cpu_threads(items, 4096); }
}  // namespace

void cpu_project_gaussians_fwd(const GaussianProjectArgs& a, float* means2d, float* depths,
                               float* conics, int32_t* radii) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t idx = 0; idx < a.V * a.N; ++idx) {
        const int64_t v = idx / a.N, n = idx % a.N;
        const Camera cam = load_camera(a.viewmats, a.Ks, v);
        const GaussianProjection p =
            project_gaussian(cam, a.means + 3 * n, a.quats + 4 * n, a.scales + 3 * n, a.width,
                             a.height, a.near_plane, a.far_plane, a.eps2d);
        means2d[2 * idx] = p.means2d[0];
        means2d[2 * idx + 1] = p.means2d[1];
        depths[idx] = p.depth;
        for (int k = 0; k < 3; ++k) conics[3 * idx + k] = p.conic[k];
        radii[2 * idx] = p.radii[0];
        radii[2 * idx + 1] = p.radii[1];
    }
}

void cpu_project_gaussians_bwd(const GaussianProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_conics, float* v_means, float* v_quats,
                               float* v_scales) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t n = 0; n < a.N; ++n) {
        float vm[3] = {0.f, 0.f, 0.f}, vq[4] = {0.f, 0.f, 0.f, 0.f}, vs[3] = {0.f, 0.f, 0.f};
        for (int64_t v = 0; v < a.V; ++v) {
            const int64_t idx = v * a.N + n;
            if (radii[2 * idx] <= 0 && radii[2 * idx + 1] <= 0) continue;
            const Camera cam = load_camera(a.viewmats, a.Ks, v);
            project_gaussian_vjp(cam, a.means + 3 * n, a.quats + 4 * n, a.scales + 3 * n, a.width,
                                 a.height, a.eps2d, v_means2d + 2 * idx, v_depths[idx],
                                 v_conics + 3 * idx, vm, vq, vs);
        }
        for (int k = 0; k < 3; ++k) v_means[3 * n + k] = vm[k];
        for (int k = 0; k < 4; ++k) v_quats[4 * n + k] = vq[k];
        for (int k = 0; k < 3; ++k) v_scales[3 * n + k] = vs[k];
    }
}

void cpu_project_triangles_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                               float* verts2d, int32_t* radii) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t idx = 0; idx < a.V * a.N; ++idx) {
        const int64_t v = idx / a.N, n = idx % a.N;
        const Camera cam = load_camera(a.viewmats, a.Ks, v);
        const TriangleProjection p = project_triangle(cam, a.points + 9 * n, a.width, a.height,
                                                      a.near_plane, a.far_plane);
        means2d[2 * idx] = p.means2d[0];
        means2d[2 * idx + 1] = p.means2d[1];
        depths[idx] = p.depth;
        for (int k = 0; k < 6; ++k) verts2d[6 * idx + k] = p.verts2d[k];
        radii[2 * idx] = p.radii[0];
        radii[2 * idx + 1] = p.radii[1];
    }
}

void cpu_project_triangles_bwd(const PointsProjectArgs& a, const int32_t* radii,
                               const float* v_means2d, const float* v_depths,
                               const float* v_verts2d, float* v_vertices) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t n = 0; n < a.N; ++n) {
        float* out = v_vertices + 9 * n;
        for (int k = 0; k < 9; ++k) out[k] = 0.f;
        for (int64_t v = 0; v < a.V; ++v) {
            const int64_t idx = v * a.N + n;
            if (radii[2 * idx] <= 0 && radii[2 * idx + 1] <= 0) continue;
            const Camera cam = load_camera(a.viewmats, a.Ks, v);
            project_triangle_vjp(cam, a.points + 9 * n, v_means2d + 2 * idx, v_depths[idx],
                                 v_verts2d + 6 * idx, out);
        }
    }
}

void cpu_project_convexes_fwd(const PointsProjectArgs& a, float* means2d, float* depths,
                              float* points2d, int32_t* hull, int32_t* radii) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t idx = 0; idx < a.V * a.N; ++idx) {
        const int64_t v = idx / a.N, n = idx % a.N;
        const Camera cam = load_camera(a.viewmats, a.Ks, v);
        project_convex(cam, a.points + 3 * a.K * n, a.K, a.delta[n], a.sigma[n], a.opacities[n],
                       a.width, a.height, a.near_plane, a.far_plane, means2d + 2 * idx,
                       depths + idx, points2d + 2 * a.K * idx, hull + a.K * idx, radii + 2 * idx);
    }
}

void cpu_project_convexes_bwd(const PointsProjectArgs& a, const int32_t* radii,
                              const float* v_means2d, const float* v_depths,
                              const float* v_points2d, float* v_points) {
#pragma omp parallel for schedule(static) num_threads(project_threads(a.V * a.N))
    for (int64_t n = 0; n < a.N; ++n) {
        float* out = v_points + 3 * a.K * n;
        for (int k = 0; k < 3 * a.K; ++k) out[k] = 0.f;
        for (int64_t v = 0; v < a.V; ++v) {
            const int64_t idx = v * a.N + n;
            if (radii[2 * idx] <= 0 && radii[2 * idx + 1] <= 0) continue;
            const Camera cam = load_camera(a.viewmats, a.Ks, v);
            project_convex_vjp(cam, a.points + 3 * a.K * n, a.K, v_means2d + 2 * idx, v_depths[idx],
                               v_points2d + 2 * a.K * idx, out);
        }
    }
}

}  // namespace recon
