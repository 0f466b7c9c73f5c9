// CUDA projection kernels, written once for every family (families.h): one thread per (view,
// primitive); the backward accumulates the per-primitive gradients over views with atomicAdd.
// No torch headers.
#include <cuda_runtime.h>

#include "families.h"
#include "launchers.h"

namespace recon {
namespace {

constexpr int kThreads = 256;

// Gradient outputs passed by value to the kernel.
struct GradOutputs {
    float* v_inputs[kMaxProjectInputs];
};

struct AtomicStore {
    __device__ void operator()(float* dst, float value) const { atomicAdd(dst, value); }
};

template <class P>
__global__ void project_fwd_kernel(ProjectArgs a, ProjectOutputs out) {
    const int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (row >= a.num_views * a.num_primitives) return;
    const Camera cam = load_camera(a.viewmats, a.intrinsics, row / a.num_primitives);
    P::forward(a, cam, row % a.num_primitives, project_row<P>(a, out, row));
}

template <class P>
__global__ void project_bwd_kernel(ProjectArgs a, ProjectCotangents v, GradOutputs grads) {
    const int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (row >= a.num_views * a.num_primitives || is_culled(v.radii, row)) return;
    const int64_t n = row % a.num_primitives;
    const int K = a.points_per_primitive;
    const Camera cam = load_camera(a.viewmats, a.intrinsics, row / a.num_primitives);
    float g[max_grad_width<P>()] = {};
    P::vjp(a, cam, n, cotangent_row<P>(a, v, row), g);
    store_grad<P>(g, n, K, grads.v_inputs, AtomicStore{});
}

// Blocks of kThreads covering every (view, primitive) row; 0 when there is none.
unsigned blocks_for(const ProjectArgs& a) {
    return (unsigned)((a.num_views * a.num_primitives + kThreads - 1) / kThreads);
}

}  // namespace

void cuda_project_fwd(const ProjectArgs& a, const ProjectOutputs& out, void* stream) {
    if (blocks_for(a) == 0) return;
    dispatch_family(a.family, [&](auto family) {
        using P = typename decltype(family)::Projector;
        project_fwd_kernel<P><<<blocks_for(a), kThreads, 0, (cudaStream_t)stream>>>(a, out);
    });
}

void cuda_project_bwd(const ProjectArgs& a, const ProjectCotangents& v, float* const* v_inputs,
                      void* stream) {
    if (blocks_for(a) == 0) return;
    GradOutputs grads{};
    for (int i = 0; i < kMaxProjectInputs; ++i) grads.v_inputs[i] = v_inputs[i];
    dispatch_family(a.family, [&](auto family) {
        using P = typename decltype(family)::Projector;
        project_bwd_kernel<P><<<blocks_for(a), kThreads, 0, (cudaStream_t)stream>>>(a, v, grads);
    });
}

}  // namespace recon
