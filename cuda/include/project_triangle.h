// Projection of 3D triangles: projected vertices, bounding-box centre and radii, centroid depth.
#pragma once

#include "common.h"
#include "projector.h"

namespace recon {

struct TriangleProjection {
    float means2d[2];
    float depth;
    float verts2d[6];
    int32_t radii[2];
};

RECON_HD TriangleProjection project_triangle(const Camera& cam, const float* verts, int width,
                                             int height, float near_plane, float far_plane) {
    TriangleProjection out;
    float xc[3][3];
    bool behind = false;
    for (int i = 0; i < 3; ++i) {
        world_to_cam(cam, verts + 3 * i, xc[i]);
        behind = behind || !(xc[i][2] > near_plane);
        project_point(cam, xc[i], out.verts2d + 2 * i);
    }
    out.depth = (xc[0][2] + xc[1][2] + xc[2][2]) / 3.f;
    float lo[2], hi[2];
    for (int d = 0; d < 2; ++d) {
        lo[d] = fminf(fminf(out.verts2d[d], out.verts2d[2 + d]), out.verts2d[4 + d]);
        hi[d] = fmaxf(fmaxf(out.verts2d[d], out.verts2d[2 + d]), out.verts2d[4 + d]);
        out.means2d[d] = 0.5f * (lo[d] + hi[d]);
    }
    float rx = ceilf(0.5f * (hi[0] - lo[0])) + 1.f;
    float ry = ceilf(0.5f * (hi[1] - lo[1])) + 1.f;
    const float* p = out.verts2d;
    const float cross = (p[2] - p[0]) * (p[5] - p[1]) - (p[3] - p[1]) * (p[4] - p[0]);
    const bool cull = behind || !(out.depth < far_plane) || !(fabsf(cross) >= 1e-6f) ||
                      !box_in_image(out.means2d[0], out.means2d[1], rx, ry, width, height);
    out.radii[0] = cull ? 0 : (int32_t)rx;
    out.radii[1] = cull ? 0 : (int32_t)ry;
    return out;
}

// Accumulates v_verts [3,3] from cotangents of means2d [2], depth, verts2d [3,2].
RECON_HD void project_triangle_vjp(const Camera& cam, const float* verts, const float* v_means2d,
                                   float v_depth, const float* v_verts2d, float* v_verts) {
    float xc[3][3], uv[3][2], v_uv[3][2];
    for (int i = 0; i < 3; ++i) {
        world_to_cam(cam, verts + 3 * i, xc[i]);
        project_point(cam, xc[i], uv[i]);
        v_uv[i][0] = v_verts2d[2 * i];
        v_uv[i][1] = v_verts2d[2 * i + 1];
    }
    // means2d = (min + max) / 2: half to the first argmin and half to the first argmax.
    for (int d = 0; d < 2; ++d) {
        int imin = 0, imax = 0;
        for (int i = 1; i < 3; ++i) {
            if (uv[i][d] < uv[imin][d]) imin = i;
            if (uv[i][d] > uv[imax][d]) imax = i;
        }
        v_uv[imin][d] += 0.5f * v_means2d[d];
        v_uv[imax][d] += 0.5f * v_means2d[d];
    }
    for (int i = 0; i < 3; ++i) {
        float v_xc[3] = {0.f, 0.f, v_depth / 3.f};
        project_point_vjp(cam, xc[i], v_uv[i], v_xc);
        world_to_cam_vjp(cam, v_xc, v_verts + 3 * i);
    }
}

// Projector policy (projector.h). Input vertices [N,3,3] (K = 3), differentiable; shape2d:
// verts2d [V,N,3,2].
struct TriangleProjector {
    static constexpr int kNumInputs = 1, kNumGradInputs = 1;
    static constexpr bool kHasHull = false;
    RECON_HD static bool accepts_points(int K) { return K == 3; }
    RECON_HD static constexpr int input_width(int /*i*/, int /*K*/) { return 9; }
    RECON_HD static Shape2d shape2d(int /*K*/) { return Shape2d{2, {3, 2}}; }

    RECON_HD static void forward(const ProjectArgs& a, const Camera& cam, int64_t n,
                                 const ProjectRow& out) {
        const TriangleProjection p = project_triangle(cam, a.inputs[0] + 9 * n, a.width, a.height,
                                                      a.near_plane, a.far_plane);
        store_row(p, p.verts2d, 6, out);
    }

    // v_in [9] = v_vertices.
    RECON_HD static void vjp(const ProjectArgs& a, const Camera& cam, int64_t n,
                             const CotangentRow& v, float* v_in) {
        project_triangle_vjp(cam, a.inputs[0] + 9 * n, v.v_means2d, v.v_depth, v.v_shape2d, v_in);
    }
};

}  // namespace recon
