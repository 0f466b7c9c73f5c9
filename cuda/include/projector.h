// The projection policy of a primitive family, and the row helpers that let the projection
// launchers (cpu_project.cpp, cuda_project.cu) and the bindings be written once for all families.
//
// A Projector is a struct of static members (see GaussianProjector in project_gaussian.h):
//
//   static constexpr int kNumInputs;       per-primitive input arrays (ProjectArgs::inputs)
//   static constexpr int kNumGradInputs;   leading inputs that are differentiable
//   static constexpr bool kHasHull;        writes ProjectOutputs::hull [V,N,K]
//   static bool accepts_points(int K);     K = points per primitive (0: the inputs are not points)
//   static constexpr int input_width(int i, int K);  floats per primitive of input i
//   static Shape2d shape2d(int K);         trailing dims of ProjectOutputs::shape2d
//   static void forward(const ProjectArgs&, const Camera&, int64_t n, const ProjectRow& out);
//   static void vjp(const ProjectArgs&, const Camera&, int64_t n, const CotangentRow& v,
//                   float* v_in);          accumulates grad_width(K) floats: the gradient rows of
//                                          the differentiable inputs, concatenated
//
// The window policy is the other half of a family; families.h describes it and pairs the two.
#pragma once

#include "common.h"
#include "launchers.h"

namespace recon {

// Trailing dimensions of the 2D shape output (Gaussians {3}, triangles {3,2}, convexes {K,2}).
struct Shape2d {
    int rank;
    int size[2];
    RECON_HD int width() const { return rank == 1 ? size[0] : size[0] * size[1]; }
};

// One row (view v, primitive n) of ProjectOutputs.
struct ProjectRow {
    float* means2d;   // [2]
    float* depth;     // [1]
    float* shape2d;   // [shape_width]
    int32_t* hull;    // [K] or null
    int32_t* radii;   // [2]
};

// One row of ProjectCotangents.
struct CotangentRow {
    const float* v_means2d;  // [2]
    float v_depth;
    const float* v_shape2d;  // [shape_width]
};

// Floats of one primitive's gradient, over the differentiable inputs.
template <class P>
RECON_HD constexpr int grad_width(int K) {
    int w = 0;
    for (int i = 0; i < P::kNumGradInputs; ++i) w += P::input_width(i, K);
    return w;
}

// Compile-time bound of grad_width<P>(K) (no family takes more than kMaxConvexPoints points): sizes
// the per-primitive gradient buffer of the backward kernels. An exact size matters on the CPU: a
// Gaussian's 10 floats in a buffer sized for 24 made its projection backward ~10% slower.
template <class P>
RECON_HD constexpr int max_grad_width() {
    return grad_width<P>(kMaxConvexPoints);
}

template <class P>
RECON_HD ProjectRow project_row(const ProjectArgs& a, const ProjectOutputs& out, int64_t row) {
    const int K = a.points_per_primitive;
    return ProjectRow{out.means2d + 2 * row, out.depths + row,
                      out.shape2d + P::shape2d(K).width() * row,
                      P::kHasHull ? out.hull + K * row : nullptr, out.radii + 2 * row};
}

template <class P>
RECON_HD CotangentRow cotangent_row(const ProjectArgs& a, const ProjectCotangents& v, int64_t row) {
    const int S = P::shape2d(a.points_per_primitive).width();
    return CotangentRow{v.v_means2d + 2 * row, v.v_depths[row], v.v_shape2d + S * row};
}

// Writes a projection result with members means2d [2], depth and radii [2], and its 2D shape
// shape [S], to one output row.
template <class Projection>
RECON_HD void store_row(const Projection& p, const float* shape, int S, const ProjectRow& out) {
    out.means2d[0] = p.means2d[0];
    out.means2d[1] = p.means2d[1];
    *out.depth = p.depth;
    for (int k = 0; k < S; ++k) out.shape2d[k] = shape[k];
    out.radii[0] = p.radii[0];
    out.radii[1] = p.radii[1];
}

// A culled row (both radii 0) contributes nothing and gets no gradient.
RECON_HD bool is_culled(const int32_t* radii, int64_t row) {
    return radii[2 * row] <= 0 && radii[2 * row + 1] <= 0;
}

// Hands every float of primitive n's gradient g [grad_width(K)] to store(dst, value), dst in
// v_inputs[i] [N, input_width(i, K)]: plain stores on the CPU, atomicAdd on the GPU.
template <class P, class Store>
RECON_HD void store_grad(const float* g, int64_t n, int K, float* const* v_inputs, Store store) {
    for (int i = 0, off = 0; i < P::kNumGradInputs; ++i) {
        const int w = P::input_width(i, K);
        for (int k = 0; k < w; ++k) store(v_inputs[i] + n * w + k, g[off + k]);
        off += w;
    }
}

}  // namespace recon
