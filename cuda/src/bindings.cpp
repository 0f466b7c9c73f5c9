// Torch glue of the recon kernels: checks, allocation and dispatch to the CPU / CUDA launchers.
// The only translation unit that includes torch headers. Written once for every family: the
// projection and rasterization ops take a family id (families.h), so a new family needs no edit
// here. The ops are registered with the dispatcher (TORCH_LIBRARY, namespace `recon`: called as
// torch.ops.recon.<op>); their fake (meta) implementations and autograd formulas are registered
// from Python by recon/ops/kernels.py, which is what lets them run under torch.compile.
#include <torch/extension.h>
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "families.h"
#include "launchers.h"

#ifdef RECON_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#define RECON_STREAM() ((void*)at::cuda::getCurrentCUDAStream().stream())
#endif

namespace {

using at::Tensor;
using recon::ProjectArgs;
using recon::RasterArgs;

void check(const Tensor& t, const std::string& name, at::ScalarType dtype) {
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
}

bool on_cuda(const Tensor& t) {
    if (!t.is_cuda()) return false;
#ifndef RECON_WITH_CUDA
    TORCH_CHECK(false, "the recon extension was built without CUDA; got CUDA tensors");
#endif
    return true;
}

#ifdef RECON_WITH_CUDA
// Runs the CUDA launcher (then raises on a failed launch) or the CPU one.
#define DISPATCH(cuda_call, cpu_call)     \
    if (cuda) {                           \
        cuda_call;                        \
        C10_CUDA_KERNEL_LAUNCH_CHECK();   \
    } else {                              \
        cpu_call;                         \
    }
#else
#define DISPATCH(cuda_call, cpu_call) cpu_call;
#endif

// Runs fn(Family<Projector, Window>{}) for the family id; an unknown id is an error.
template <class Fn>
void with_family(int64_t family, Fn&& fn) {
    TORCH_CHECK(recon::dispatch_family((int)family, fn), "unknown primitive family id ", family);
}

// Checks the per-primitive inputs of projector P and points the launcher arguments at them. K is
// the second dimension of inputs[0] when it is [N,K,3] (points per primitive), else 0.
template <class P>
ProjectArgs project_args(int64_t family, at::TensorList inputs, size_t num_inputs,
                         const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
                         double near_plane, double far_plane, double eps2d) {
    TORCH_CHECK(inputs.size() == num_inputs, "family ", family, " takes ", num_inputs,
                " input tensors, got ", inputs.size());
    check(viewmats, "viewmats", at::kFloat);
    check(Ks, "Ks", at::kFloat);
    const int64_t N = inputs[0].size(0);
    const int K = inputs[0].dim() == 3 ? (int)inputs[0].size(1) : 0;
    const bool fits = recon::grad_width<P>(K) <= recon::max_grad_width<P>();
    TORCH_CHECK(P::accepts_points(K) && fits, "family ", family, ": unsupported points per primitive ",
                K);
    ProjectArgs a{};
    for (size_t i = 0; i < num_inputs; ++i) {
        const std::string name = "projection input " + std::to_string(i);
        check(inputs[i], name, at::kFloat);
        const int w = P::input_width((int)i, K);
        TORCH_CHECK(inputs[i].numel() == N * w, name, " must be [", N, ", ", w, "] floats");
        a.inputs[i] = inputs[i].data_ptr<float>();
    }
    a.family = (int)family;
    a.viewmats = viewmats.data_ptr<float>();
    a.intrinsics = Ks.data_ptr<float>();
    a.num_views = viewmats.size(0);
    a.num_primitives = N;
    a.points_per_primitive = K;
    a.width = (int)width;
    a.height = (int)height;
    a.near_plane = (float)near_plane;
    a.far_plane = (float)far_plane;
    a.eps2d = (float)eps2d;
    return a;
}

// Projection of any family: inputs (Projector::kNumInputs tensors [N, ...]) ->
// [means2d [V,N,2], depths [V,N], shape2d [V,N,...], hull [V,N,K] (convexes only), radii [V,N,2]].
std::vector<Tensor> project_fwd(int64_t family, at::TensorList inputs,
                                const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                int64_t height, double near_plane, double far_plane,
                                double eps2d) {
    std::vector<Tensor> outs;
    with_family(family, [&](auto fam) {
        using P = typename decltype(fam)::Projector;
        const ProjectArgs a = project_args<P>(family, inputs, P::kNumInputs, viewmats, Ks, width,
                                              height, near_plane, far_plane, eps2d);
        const int64_t V = a.num_views, N = a.num_primitives;
        const int K = a.points_per_primitive;
        const recon::Shape2d s = P::shape2d(K);
        std::vector<int64_t> shape_sizes{V, N};
        shape_sizes.insert(shape_sizes.end(), s.size, s.size + s.rank);
        auto f = inputs[0].options();
        Tensor means2d = at::empty({V, N, 2}, f), depths = at::empty({V, N}, f);
        Tensor shape2d = at::empty(shape_sizes, f);
        Tensor hull = P::kHasHull ? at::empty({V, N, K}, f.dtype(at::kInt)) : Tensor();
        Tensor radii = at::empty({V, N, 2}, f.dtype(at::kInt));
        const recon::ProjectOutputs out{means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                        shape2d.data_ptr<float>(),
                                        P::kHasHull ? hull.data_ptr<int>() : nullptr,
                                        radii.data_ptr<int>()};
        const bool cuda = on_cuda(inputs[0]);
        (void)cuda;
        DISPATCH(recon::cuda_project_fwd(a, out, RECON_STREAM()), recon::cpu_project_fwd(a, out));
        outs = {means2d, depths, shape2d};
        if (P::kHasHull) outs.push_back(hull);
        outs.push_back(radii);
    });
    return outs;
}

// Backward of project_fwd: inputs are the Projector::kNumGradInputs differentiable inputs; returns
// their gradients. Culled rows (radii 0) get none.
std::vector<Tensor> project_bwd(int64_t family, at::TensorList inputs,
                                const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                int64_t height, double eps2d, const Tensor& radii,
                                const Tensor& v_means2d, const Tensor& v_depths,
                                const Tensor& v_shape2d) {
    std::vector<Tensor> grads;
    with_family(family, [&](auto fam) {
        using P = typename decltype(fam)::Projector;
        const ProjectArgs a = project_args<P>(family, inputs, P::kNumGradInputs, viewmats, Ks,
                                              width, height, 0.0, 0.0, eps2d);
        check(radii, "radii", at::kInt);
        check(v_means2d, "v_means2d", at::kFloat);
        check(v_depths, "v_depths", at::kFloat);
        check(v_shape2d, "v_shape2d", at::kFloat);
        const int64_t rows = a.num_views * a.num_primitives;
        TORCH_CHECK(radii.numel() == 2 * rows && v_means2d.numel() == 2 * rows &&
                        v_depths.numel() == rows &&
                        v_shape2d.numel() == P::shape2d(a.points_per_primitive).width() * rows,
                    "radii and cotangents must match the projection's outputs");
        float* v_inputs[recon::kMaxProjectInputs] = {};
        for (int i = 0; i < P::kNumGradInputs; ++i) {
            grads.push_back(at::zeros_like(inputs[i]));
            v_inputs[i] = grads.back().data_ptr<float>();
        }
        const recon::ProjectCotangents v{radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                         v_depths.data_ptr<float>(), v_shape2d.data_ptr<float>()};
        const bool cuda = on_cuda(inputs[0]);
        (void)cuda;
        DISPATCH(recon::cuda_project_bwd(a, v, v_inputs, RECON_STREAM()),
                 recon::cpu_project_bwd(a, v, v_inputs));
    });
    return grads;
}

std::tuple<Tensor, Tensor> isect_tiles(const Tensor& means2d, const Tensor& radii,
                                       const Tensor& depths, int64_t width, int64_t height,
                                       int64_t tile_size) {
    check(means2d, "means2d", at::kFloat);
    check(radii, "radii", at::kInt);
    check(depths, "depths", at::kFloat);
    const int64_t V = means2d.size(0), N = means2d.size(1);
    const int tw = (int)((width + tile_size - 1) / tile_size);
    const int th = (int)((height + tile_size - 1) / tile_size);
    auto i32 = means2d.options().dtype(at::kInt);
    Tensor offsets = at::empty({V, th, tw}, i32);
    if (on_cuda(means2d)) {
#ifdef RECON_WITH_CUDA
        Tensor counts = at::empty({V * N}, i32.dtype(at::kLong));
        recon::cuda_isect_counts(means2d.data_ptr<float>(), radii.data_ptr<int>(), V, N,
                                 (int)tile_size, tw, th, counts.data_ptr<int64_t>(), RECON_STREAM());
        Tensor ends = at::cumsum(counts, 0);
        const int64_t M = V * N > 0 ? ends[-1].item<int64_t>() : 0;
        Tensor starts = ends - counts;
        Tensor keys = at::empty({M}, i32.dtype(at::kLong));
        Tensor ids = at::empty({M}, i32);
        recon::cuda_isect_fill(means2d.data_ptr<float>(), radii.data_ptr<int>(),
                               depths.data_ptr<float>(), V, N, (int)tile_size, tw, th,
                               starts.data_ptr<int64_t>(), keys.data_ptr<int64_t>(),
                               ids.data_ptr<int>(), RECON_STREAM());
        auto sorted = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
        Tensor sorted_keys = std::get<0>(sorted).contiguous();
        Tensor flatten_ids = ids.index_select(0, std::get<1>(sorted)).contiguous();
        recon::cuda_isect_offsets(sorted_keys.data_ptr<int64_t>(), M, V, tw, th,
                                  offsets.data_ptr<int>(), RECON_STREAM());
        return {offsets, flatten_ids};
#endif
    }
    const int64_t M = recon::cpu_isect_count(means2d.data_ptr<float>(), radii.data_ptr<int>(), V, N,
                                             (int)tile_size, tw, th, offsets.data_ptr<int>());
    TORCH_CHECK(M < (int64_t)INT32_MAX, "too many tile intersections (", M, ") for int32 ids");
    Tensor flatten_ids = at::empty({M}, i32);
    recon::cpu_isect_fill(means2d.data_ptr<float>(), radii.data_ptr<int>(), depths.data_ptr<float>(),
                          V, N, (int)tile_size, tw, th, offsets.data_ptr<int>(), M,
                          flatten_ids.data_ptr<int>());
    return {offsets, flatten_ids};
}

RasterArgs raster_args(int64_t family, const Tensor& window_params,
                       const c10::optional<Tensor>& window_indices, const Tensor& features,
                       const Tensor& opacities, const c10::optional<Tensor>& backgrounds,
                       int64_t width, int64_t height, int64_t tile_size,
                       const Tensor& tile_offsets, const Tensor& flatten_ids) {
    check(window_params, "window_params", at::kFloat);
    check(features, "features", at::kFloat);
    check(opacities, "opacities", at::kFloat);
    check(tile_offsets, "tile_offsets", at::kInt);
    check(flatten_ids, "flatten_ids", at::kInt);
    if (window_indices) check(*window_indices, "window_indices", at::kInt);
    if (backgrounds) check(*backgrounds, "backgrounds", at::kFloat);
    const int num_params = (int)window_params.size(-1);
    const int num_indices = window_indices ? (int)window_indices->size(-1) : 0;
    with_family(family, [&](auto fam) {
        using W = typename decltype(fam)::Window;
        TORCH_CHECK(num_params == W::num_params(num_indices), "family ", family, " needs ",
                    W::num_params(num_indices), " window parameters, got ", num_params);
    });
    TORCH_CHECK(num_params <= recon::kMaxWindowParams, "too many window parameters");
    TORCH_CHECK(!features.is_cuda() || (tile_size >= 1 && tile_size <= 32),
                "CUDA kernels need 1 <= tile_size <= 32, got ", tile_size);
    RasterArgs a;
    a.family = (int)family;
    a.window_params = window_params.data_ptr<float>();
    a.window_indices = window_indices ? window_indices->data_ptr<int>() : nullptr;
    a.num_window_params = num_params;
    a.num_window_indices = num_indices;
    a.features = features.data_ptr<float>();
    a.opacities = opacities.data_ptr<float>();
    a.backgrounds = backgrounds ? backgrounds->data_ptr<float>() : nullptr;
    a.num_views = features.size(0);
    a.num_primitives = features.size(1);
    a.num_channels = (int)features.size(2);
    a.width = (int)width;
    a.height = (int)height;
    a.tile_size = (int)tile_size;
    a.tile_height = (int)tile_offsets.size(1);
    a.tile_width = (int)tile_offsets.size(2);
    a.tile_offsets = tile_offsets.data_ptr<int>();
    a.flatten_ids = flatten_ids.data_ptr<int>();
    a.num_isects = flatten_ids.numel();
    return a;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_fwd(
    int64_t family, const Tensor& window_params, const c10::optional<Tensor>& window_indices,
    const Tensor& features, const Tensor& opacities, const c10::optional<Tensor>& backgrounds,
    int64_t width, int64_t height, int64_t tile_size, const Tensor& tile_offsets,
    const Tensor& flatten_ids) {
    const RasterArgs a = raster_args(family, window_params, window_indices, features, opacities,
                                     backgrounds, width, height, tile_size, tile_offsets,
                                     flatten_ids);
    auto f = features.options();
    Tensor colors = at::empty({a.num_views, height, width, a.num_channels}, f);
    Tensor alphas = at::empty({a.num_views, height, width, 1}, f);
    Tensor trans = at::empty({a.num_views, height, width}, f);
    Tensor last_ids = at::empty({a.num_views, height, width}, f.dtype(at::kInt));
    Tensor max_weights = at::zeros({a.num_views, a.num_primitives}, f);
    const bool cuda = on_cuda(features);
    (void)cuda;
    DISPATCH(recon::cuda_rasterize_fwd(a, colors.data_ptr<float>(), alphas.data_ptr<float>(),
                                       trans.data_ptr<float>(), last_ids.data_ptr<int>(),
                                       max_weights.data_ptr<float>(), RECON_STREAM()),
             recon::cpu_rasterize_fwd(a, colors.data_ptr<float>(), alphas.data_ptr<float>(),
                                      trans.data_ptr<float>(), last_ids.data_ptr<int>(),
                                      max_weights.data_ptr<float>()));
    return {colors, alphas, trans, last_ids, max_weights};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> rasterize_bwd(
    int64_t family, const Tensor& window_params, const c10::optional<Tensor>& window_indices,
    const Tensor& features, const Tensor& opacities, const c10::optional<Tensor>& backgrounds,
    int64_t width, int64_t height, int64_t tile_size, const Tensor& tile_offsets,
    const Tensor& flatten_ids, const Tensor& transmittance, const Tensor& last_ids,
    const Tensor& v_colors, const Tensor& v_alphas) {
    const RasterArgs a = raster_args(family, window_params, window_indices, features, opacities,
                                     backgrounds, width, height, tile_size, tile_offsets,
                                     flatten_ids);
    check(transmittance, "transmittance", at::kFloat);
    check(last_ids, "last_ids", at::kInt);
    check(v_colors, "v_colors", at::kFloat);
    check(v_alphas, "v_alphas", at::kFloat);
    Tensor v_window_params = at::zeros_like(window_params), v_features = at::zeros_like(features);
    Tensor v_opacities = at::zeros_like(opacities);
    Tensor v_backgrounds = at::zeros({a.num_views, a.num_channels}, features.options());
    const bool cuda = on_cuda(features);
    (void)cuda;
    const float* T = transmittance.data_ptr<float>();
    const int* last = last_ids.data_ptr<int>();
    const float *v_c = v_colors.data_ptr<float>(), *v_a = v_alphas.data_ptr<float>();
    float* v_wp = v_window_params.data_ptr<float>();
    float *v_f = v_features.data_ptr<float>(), *v_o = v_opacities.data_ptr<float>();
    float* v_bg = v_backgrounds.data_ptr<float>();
    DISPATCH(recon::cuda_rasterize_bwd(a, T, last, v_c, v_a, v_wp, v_f, v_o, v_bg, RECON_STREAM()),
             recon::cpu_rasterize_bwd(a, T, last, v_c, v_a, v_wp, v_f, v_o, v_bg));
    return {v_window_params, v_features, v_opacities, v_backgrounds};
}

// What the fake (meta) implementation of project_fwd needs to know about a family, from its
// Projector: (number of inputs, number of differentiable inputs, whether a hull is returned, the
// trailing sizes of shape2d for K points per primitive).
std::tuple<int64_t, int64_t, bool, std::vector<int64_t>> project_layout(int64_t family, int64_t K) {
    std::tuple<int64_t, int64_t, bool, std::vector<int64_t>> layout;
    with_family(family, [&](auto fam) {
        using P = typename decltype(fam)::Projector;
        const recon::Shape2d s = P::shape2d((int)K);
        layout = {P::kNumInputs, P::kNumGradInputs, P::kHasHull,
                  std::vector<int64_t>(s.size, s.size + s.rank)};
    });
    return layout;
}

// The same kernels serve CPU and CUDA tensors (each entry point dispatches on the device).
void register_kernels(torch::Library& m) {
    m.impl("project_fwd", &project_fwd);
    m.impl("project_bwd", &project_bwd);
    m.impl("isect_tiles", &isect_tiles);
    m.impl("rasterize_fwd", &rasterize_fwd);
    m.impl("rasterize_bwd", &rasterize_bwd);
}

}  // namespace

// Schemas of the ops (shapes: ENGINE.md, bindings above). `family` is a families.h id; `inputs` are
// the projection inputs of that family ([N, ...] each), in the order of its Projector.
TORCH_LIBRARY(recon, m) {
    m.set_python_module("recon.ops.kernels");  // home of the fake and autograd registrations
    m.def("project_fwd(int family, Tensor[] inputs, Tensor viewmats, Tensor Ks, int width, "
          "int height, float near_plane, float far_plane, float eps2d) -> Tensor[]");
    m.def("project_bwd(int family, Tensor[] inputs, Tensor viewmats, Tensor Ks, int width, "
          "int height, float eps2d, Tensor radii, Tensor v_means2d, Tensor v_depths, "
          "Tensor v_shape2d) -> Tensor[]");
    m.def("isect_tiles(Tensor means2d, Tensor radii, Tensor depths, int width, int height, "
          "int tile_size) -> (Tensor tile_offsets, Tensor flatten_ids)");
    m.def("rasterize_fwd(int family, Tensor wparams, Tensor? hull, Tensor features, "
          "Tensor opacities, Tensor? backgrounds, int width, int height, int tile_size, "
          "Tensor tile_offsets, Tensor flatten_ids) -> (Tensor colors, Tensor alphas, "
          "Tensor transmittance, Tensor last_ids, Tensor max_weights)");
    m.def("rasterize_bwd(int family, Tensor wparams, Tensor? hull, Tensor features, "
          "Tensor opacities, Tensor? backgrounds, int width, int height, int tile_size, "
          "Tensor tile_offsets, Tensor flatten_ids, Tensor transmittance, Tensor last_ids, "
          "Tensor v_colors, Tensor v_alphas) -> (Tensor v_wparams, Tensor v_features, "
          "Tensor v_opacities, Tensor v_backgrounds)");
}

TORCH_LIBRARY_IMPL(recon, CPU, m) { register_kernels(m); }

#ifdef RECON_WITH_CUDA
TORCH_LIBRARY_IMPL(recon, CUDA, m) { register_kernels(m); }
#endif

// The Python module: build facts and the CPU thread count (recon/ops/threads.py), not ops.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "recon rasterization kernels (CPU/OpenMP and CUDA); the ops are torch.ops.recon.*";
    m.def("project_layout", &project_layout, "family id, K -> (inputs, grad inputs, hull, shape2d)");
    m.def("set_cpu_threads", &recon::set_cpu_threads, "CPU kernels' threads (0: OpenMP default)");
    m.def("cpu_threads", [] { return recon::cpu_threads(); }, "threads the CPU kernels use now");
#ifdef RECON_WITH_CUDA
    m.attr("with_cuda") = true;
#else
    m.attr("with_cuda") = false;
#endif
}
