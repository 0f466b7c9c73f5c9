// Projection of smooth convexes: projected points, 2D convex hull, conservative footprint box.
//
// Same rules as the reference twin (recon/ops/reference/convex.py): the directed edge i -> j is a
// hull edge when every other point lies strictly to its left (cross > 0) or on the closed segment;
// duplicates and collinear points are never hull vertices; the hull starts at the
// lexicographically smallest point (x, then y) and runs in positive orientation in image
// coordinates. The footprint is the exact box of {p : max_i L_i(p) <= level}, computed in double.
#pragma once

#include "common.h"
#include "projector.h"

namespace recon {

// Ordered hull of K <= kMaxConvexPoints points p [K,2]; writes hull [K] (-1 padded, all -1 when
// fewer than 3 vertices) and returns the hull size (0 when degenerate).
RECON_HD int convex_hull_2d(const float* p, int K, int32_t* hull) {
    for (int i = 0; i < K; ++i) hull[i] = -1;
    if (K < 3) return 0;
    bool dup[kMaxConvexPoints];
    for (int i = 0; i < K; ++i) {
        dup[i] = false;
        for (int j = 0; j < i; ++j)
            if (p[2 * i] == p[2 * j] && p[2 * i + 1] == p[2 * j + 1]) dup[i] = true;
    }
    int nxt[kMaxConvexPoints];
    for (int i = 0; i < K; ++i) {
        nxt[i] = -1;
        if (dup[i]) continue;
        for (int j = 0; j < K && nxt[i] < 0; ++j) {
            if (j == i || dup[j]) continue;
            const float ex = p[2 * j] - p[2 * i], ey = p[2 * j + 1] - p[2 * i + 1];
            const float len2 = ex * ex + ey * ey;
            if (!(len2 > 0.f)) continue;
            bool edge = true;
            for (int k = 0; k < K && edge; ++k) {
                const float rx = p[2 * k] - p[2 * i], ry = p[2 * k + 1] - p[2 * i + 1];
                const float cross = ex * ry - ey * rx;
                const float dot = ex * rx + ey * ry;
                edge = cross > 0.f || (cross == 0.f && dot >= 0.f && dot <= len2);
            }
            if (edge) nxt[i] = j;
        }
    }
    int start = 0;
    for (int k = 1; k < K; ++k)
        if (p[2 * k] < p[2 * start] || (p[2 * k] == p[2 * start] && p[2 * k + 1] < p[2 * start + 1]))
            start = k;
    int32_t tmp[kMaxConvexPoints];
    int cur = start, count = 0;
    bool closed = false;
    for (int step = 0; step < K && !closed; ++step) {
        if (nxt[cur] < 0) break;
        tmp[count++] = cur;
        cur = nxt[cur];
        closed = cur == start;
    }
    if (!closed || count < 3) return 0;
    for (int i = 0; i < count; ++i) hull[i] = tmp[i];
    return count;
}

// Exact box of {p : n_i . p + d_i <= level} over the hull edges (double precision).
// Returns false when no vertex is found.
RECON_HD bool convex_support_box(const float* nx, const float* ny, const float* d, int h,
                                  double level, float* lo, float* hi) {
    double lx = INFINITY, ly = INFINITY, hx = -INFINITY, hy = -INFINITY;
    for (int i = 0; i < h; ++i) {
        for (int j = 0; j < h; ++j) {
            const double ax = nx[i], ay = ny[i], bx = nx[j], by = ny[j];
            const double det = ax * by - ay * bx;
            if (!(fabs(det) > 1e-12)) continue;
            const double di = (double)d[i] - level, dj = (double)d[j] - level;
            const double px = (-di * by + dj * ay) / det;
            const double py = (-ax * dj + bx * di) / det;
            const double vmax = fmax(fabs(px), fabs(py)) + 1.0;
            bool feasible = true;
            for (int k = 0; k < h && feasible; ++k) {
                const double nkx = nx[k], nky = ny[k];
                const double line = nkx * px + nky * py + ((double)d[k] - level);
                feasible = line <= 1e-9 * (sqrt(nkx * nkx + nky * nky) * vmax);
            }
            if (!feasible) continue;
            lx = fmin(lx, px);
            ly = fmin(ly, py);
            hx = fmax(hx, px);
            hy = fmax(hy, py);
        }
    }
    lo[0] = (float)lx;
    lo[1] = (float)ly;
    hi[0] = (float)hx;
    hi[1] = (float)hy;
    return lo[0] <= hi[0] && lo[1] <= hi[1];
}

// Projects one convex (points [K,3]) into one view. Writes means2d [2], depth, points2d [K,2],
// hull [K], radii [2] (0 when culled).
RECON_HD void project_convex(const Camera& cam, const float* points, int K, float delta,
                             float sigma, float opacity, int width, int height, float near_plane,
                             float far_plane, float* means2d, float* depth, float* points2d,
                             int32_t* hull, int32_t* radii) {
    bool behind = false;
    float zsum = 0.f;
    for (int k = 0; k < K; ++k) {
        float xc[3];
        world_to_cam(cam, points + 3 * k, xc);
        zsum += xc[2];
        behind = behind || !(xc[2] > near_plane);
        if (!(xc[2] > near_plane)) xc[2] = 1.f;  // culled: keep the values finite
        project_point(cam, xc, points2d + 2 * k);
    }
    const float z = zsum / (float)K;
    *depth = z;
    const int h = convex_hull_2d(points2d, K, hull);
    means2d[0] = 0.f;
    means2d[1] = 0.f;
    radii[0] = 0;
    radii[1] = 0;
    if (behind || !(z < far_plane) || h < 3 || !(opacity > 1.0f / 255.0f)) return;
    float nx[kMaxConvexPoints], ny[kMaxConvexPoints], d[kMaxConvexPoints];
    for (int i = 0; i < h; ++i) {
        const float* q = points2d + 2 * hull[i];
        const float* q1 = points2d + 2 * hull[(i + 1) % h];
        nx[i] = q1[1] - q[1];
        ny[i] = -(q1[0] - q[0]);
        d[i] = -(nx[i] * q[0] + ny[i] * q[1]);
    }
    double eps = 1.0 / (255.0 * (double)opacity);
    eps = fmin(eps, 1.0 - 1e-12);
    const double zd = (double)z;
    double level = log((1.0 - eps) / eps) / (zd * zd * (double)delta * (double)sigma);
    level = fmax(level, 0.0);
    float lo[2], hi[2];
    if (!convex_support_box(nx, ny, d, h, level, lo, hi)) return;
    const float cx = 0.5f * (lo[0] + hi[0]), cy = 0.5f * (lo[1] + hi[1]);
    const float hx = fminf(fmaxf(0.5f * (hi[0] - lo[0]), 0.f), 1e7f);
    const float hy = fminf(fmaxf(0.5f * (hi[1] - lo[1]), 0.f), 1e7f);
    const float rx = ceilf(hx) + 1.f, ry = ceilf(hy) + 1.f;
    if (!box_in_image(cx, cy, rx, ry, width, height)) return;
    means2d[0] = cx;
    means2d[1] = cy;
    radii[0] = (int32_t)rx;
    radii[1] = (int32_t)ry;
}

// Accumulates v_points [K,3] from the cotangents of depth and points2d [K,2]. means2d (the
// footprint centre) carries no gradient, as in the reference.
RECON_HD void project_convex_vjp(const Camera& cam, const float* points, int K,
                                 const float* /*v_means2d*/, float v_depth,
                                 const float* v_points2d, float* v_points) {
    for (int k = 0; k < K; ++k) {
        float xc[3];
        world_to_cam(cam, points + 3 * k, xc);
        float v_xc[3] = {0.f, 0.f, v_depth / (float)K};
        project_point_vjp(cam, xc, v_points2d + 2 * k, v_xc);
        world_to_cam_vjp(cam, v_xc, v_points + 3 * k);
    }
}

// Projector policy (projector.h). Inputs points [N,K,3] (differentiable), delta [N], sigma [N],
// opacities [N] (they only size the footprint); shape2d: points2d [V,N,K,2]; hull [V,N,K].
struct ConvexProjector {
    static constexpr int kNumInputs = 4, kNumGradInputs = 1;
    static constexpr bool kHasHull = true;
    RECON_HD static bool accepts_points(int K) { return K >= 1 && K <= kMaxConvexPoints; }
    RECON_HD static constexpr int input_width(int i, int K) { return i == 0 ? 3 * K : 1; }
    RECON_HD static Shape2d shape2d(int K) { return Shape2d{2, {K, 2}}; }

    RECON_HD static void forward(const ProjectArgs& a, const Camera& cam, int64_t n,
                                 const ProjectRow& out) {
        const int K = a.points_per_primitive;
        project_convex(cam, a.inputs[0] + 3 * K * n, K, a.inputs[1][n], a.inputs[2][n],
                       a.inputs[3][n], a.width, a.height, a.near_plane, a.far_plane, out.means2d,
                       out.depth, out.shape2d, out.hull, out.radii);
    }

    // v_in [3K] = v_points.
    RECON_HD static void vjp(const ProjectArgs& a, const Camera& cam, int64_t n,
                             const CotangentRow& v, float* v_in) {
        const int K = a.points_per_primitive;
        project_convex_vjp(cam, a.inputs[0] + 3 * K * n, K, v.v_means2d, v.v_depth, v.v_shape2d,
                           v_in);
    }
};

}  // namespace recon
