// CPU projection kernels (OpenMP), written once for every family (families.h): one (view,
// primitive) per iteration in the forward; one primitive per iteration (looping over views) in the
// backward, so gradients need no atomics.
#include "families.h"
#include "launchers.h"

namespace recon {
namespace {

// Team size of a projection loop over `items` (primitive, view) pairs: a Gaussian's forward costs
// ~0.15 us (measured), so a thread gets at least 4096 of them (~0.6 ms) against the ~10-50 us of
// waking a sleeping pool thread and joining it.
int project_threads(int64_t items) { return cpu_threads(items, 4096); }

template <class P>
void project_fwd(const ProjectArgs& a, const ProjectOutputs& out) {
    const int64_t N = a.num_primitives, rows = a.num_views * N;
#pragma omp parallel for schedule(static) num_threads(project_threads(rows))
    for (int64_t row = 0; row < rows; ++row) {
        const Camera cam = load_camera(a.viewmats, a.intrinsics, row / N);
        P::forward(a, cam, row % N, project_row<P>(a, out, row));
    }
}

template <class P>
void project_bwd(const ProjectArgs& a, const ProjectCotangents& v, float* const* v_inputs) {
    const int64_t N = a.num_primitives;
    const int K = a.points_per_primitive;
#pragma omp parallel for schedule(static) num_threads(project_threads(a.num_views * N))
    for (int64_t n = 0; n < N; ++n) {
        float g[max_grad_width<P>()] = {};
        for (int64_t view = 0; view < a.num_views; ++view) {
            const int64_t row = view * N + n;
            if (is_culled(v.radii, row)) continue;
            const Camera cam = load_camera(a.viewmats, a.intrinsics, view);
            P::vjp(a, cam, n, cotangent_row<P>(a, v, row), g);
        }
        store_grad<P>(g, n, K, v_inputs, [](float* dst, float value) { *dst = value; });
    }
}

}  // namespace

void cpu_project_fwd(const ProjectArgs& a, const ProjectOutputs& out) {
    dispatch_family(a.family, [&](auto family) {
        project_fwd<typename decltype(family)::Projector>(a, out);
    });
}

void cpu_project_bwd(const ProjectArgs& a, const ProjectCotangents& v, float* const* v_inputs) {
    dispatch_family(a.family, [&](auto family) {
        project_bwd<typename decltype(family)::Projector>(a, v, v_inputs);
    });
}

}  // namespace recon
