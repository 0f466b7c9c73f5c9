// Torch glue of the recon kernels: checks, allocation and dispatch to the CPU / CUDA launchers.
// The only translation unit that includes torch headers.
#include <torch/extension.h>

#include <tuple>

#include "launchers.h"

#ifdef RECON_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#define RECON_STREAM() ((void*)at::cuda::getCurrentCUDAStream().stream())
#endif

namespace {

using at::Tensor;
using recon::GaussianProjectArgs;
using recon::PointsProjectArgs;
using recon::RasterArgs;

void check(const Tensor& t, const char* name, at::ScalarType dtype) {
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
#define DISPATCH(cuda_call, cpu_call) \
    if (cuda) {                       \
        cuda_call;                    \
    } else {                          \
        cpu_call;                     \
    }
#else
#define DISPATCH(cuda_call, cpu_call) cpu_call;
#endif

std::tuple<Tensor, Tensor, Tensor, Tensor> project_gaussians_fwd(
    const Tensor& means, const Tensor& quats, const Tensor& scales, const Tensor& viewmats,
    const Tensor& Ks, int64_t width, int64_t height, double near_plane, double far_plane,
    double eps2d) {
    for (auto& [t, n] : {std::pair{means, "means"}, {quats, "quats"}, {scales, "scales"},
                         {viewmats, "viewmats"}, {Ks, "Ks"}})
        check(t, n, at::kFloat);
    const int64_t V = viewmats.size(0), N = means.size(0);
    auto f = means.options();
    Tensor means2d = at::empty({V, N, 2}, f), depths = at::empty({V, N}, f);
    Tensor conics = at::empty({V, N, 3}, f);
    Tensor radii = at::empty({V, N, 2}, f.dtype(at::kInt));
    GaussianProjectArgs a{means.data_ptr<float>(), quats.data_ptr<float>(), scales.data_ptr<float>(),
                          viewmats.data_ptr<float>(), Ks.data_ptr<float>(), V, N, (int)width,
                          (int)height, (float)near_plane, (float)far_plane, (float)eps2d};
    const bool cuda = on_cuda(means);
    (void)cuda;
    DISPATCH(recon::cuda_project_gaussians_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                               conics.data_ptr<float>(), radii.data_ptr<int>(),
                                               RECON_STREAM()),
             recon::cpu_project_gaussians_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                              conics.data_ptr<float>(), radii.data_ptr<int>()));
    return {means2d, depths, conics, radii};
}

std::tuple<Tensor, Tensor, Tensor> project_gaussians_bwd(
    const Tensor& means, const Tensor& quats, const Tensor& scales, const Tensor& viewmats,
    const Tensor& Ks, int64_t width, int64_t height, double eps2d, const Tensor& radii,
    const Tensor& v_means2d, const Tensor& v_depths, const Tensor& v_conics) {
    check(radii, "radii", at::kInt);
    for (auto& [t, n] : {std::pair{v_means2d, "v_means2d"}, {v_depths, "v_depths"},
                         {v_conics, "v_conics"}})
        check(t, n, at::kFloat);
    const int64_t V = viewmats.size(0), N = means.size(0);
    Tensor v_means = at::zeros_like(means), v_quats = at::zeros_like(quats);
    Tensor v_scales = at::zeros_like(scales);
    GaussianProjectArgs a{means.data_ptr<float>(), quats.data_ptr<float>(), scales.data_ptr<float>(),
                          viewmats.data_ptr<float>(), Ks.data_ptr<float>(), V, N, (int)width,
                          (int)height, 0.f, 0.f, (float)eps2d};
    const bool cuda = on_cuda(means);
    (void)cuda;
    DISPATCH(recon::cuda_project_gaussians_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                               v_depths.data_ptr<float>(), v_conics.data_ptr<float>(),
                                               v_means.data_ptr<float>(), v_quats.data_ptr<float>(),
                                               v_scales.data_ptr<float>(), RECON_STREAM()),
             recon::cpu_project_gaussians_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                              v_depths.data_ptr<float>(), v_conics.data_ptr<float>(),
                                              v_means.data_ptr<float>(), v_quats.data_ptr<float>(),
                                              v_scales.data_ptr<float>()));
    return {v_means, v_quats, v_scales};
}

PointsProjectArgs points_args(const Tensor& points, const Tensor* delta, const Tensor* sigma,
                              const Tensor* opacities, const Tensor& viewmats, const Tensor& Ks,
                              int64_t width, int64_t height, double near_plane, double far_plane) {
    check(points, "points", at::kFloat);
    check(viewmats, "viewmats", at::kFloat);
    check(Ks, "Ks", at::kFloat);
    PointsProjectArgs a{points.data_ptr<float>(),
                        delta ? delta->data_ptr<float>() : nullptr,
                        sigma ? sigma->data_ptr<float>() : nullptr,
                        opacities ? opacities->data_ptr<float>() : nullptr,
                        viewmats.data_ptr<float>(),
                        Ks.data_ptr<float>(),
                        viewmats.size(0),
                        points.size(0),
                        (int)points.size(1),
                        (int)width,
                        (int)height,
                        (float)near_plane,
                        (float)far_plane};
    return a;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> project_triangles_fwd(
    const Tensor& vertices, const Tensor& viewmats, const Tensor& Ks, int64_t width,
    int64_t height, double near_plane, double far_plane) {
    const auto a = points_args(vertices, nullptr, nullptr, nullptr, viewmats, Ks, width, height,
                               near_plane, far_plane);
    auto f = vertices.options();
    Tensor means2d = at::empty({a.V, a.N, 2}, f), depths = at::empty({a.V, a.N}, f);
    Tensor verts2d = at::empty({a.V, a.N, 3, 2}, f);
    Tensor radii = at::empty({a.V, a.N, 2}, f.dtype(at::kInt));
    const bool cuda = on_cuda(vertices);
    (void)cuda;
    DISPATCH(recon::cuda_project_triangles_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                               verts2d.data_ptr<float>(), radii.data_ptr<int>(),
                                               RECON_STREAM()),
             recon::cpu_project_triangles_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                              verts2d.data_ptr<float>(), radii.data_ptr<int>()));
    return {means2d, depths, verts2d, radii};
}

Tensor project_triangles_bwd(const Tensor& vertices, const Tensor& viewmats, const Tensor& Ks,
                             int64_t width, int64_t height, const Tensor& radii,
                             const Tensor& v_means2d, const Tensor& v_depths,
                             const Tensor& v_verts2d) {
    const auto a = points_args(vertices, nullptr, nullptr, nullptr, viewmats, Ks, width, height,
                               0.0, 0.0);
    check(radii, "radii", at::kInt);
    Tensor v_vertices = at::zeros_like(vertices);
    const bool cuda = on_cuda(vertices);
    (void)cuda;
    DISPATCH(recon::cuda_project_triangles_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                               v_depths.data_ptr<float>(), v_verts2d.data_ptr<float>(),
                                               v_vertices.data_ptr<float>(), RECON_STREAM()),
             recon::cpu_project_triangles_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                              v_depths.data_ptr<float>(), v_verts2d.data_ptr<float>(),
                                              v_vertices.data_ptr<float>()));
    return v_vertices;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> project_convexes_fwd(
    const Tensor& points, const Tensor& delta, const Tensor& sigma, const Tensor& opacities,
    const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height, double near_plane,
    double far_plane) {
    TORCH_CHECK(points.size(1) <= recon::kMaxConvexPoints, "at most ", recon::kMaxConvexPoints,
                " points per convex, got ", points.size(1));
    check(delta, "delta", at::kFloat);
    check(sigma, "sigma", at::kFloat);
    check(opacities, "opacities", at::kFloat);
    const auto a = points_args(points, &delta, &sigma, &opacities, viewmats, Ks, width, height,
                               near_plane, far_plane);
    auto f = points.options();
    Tensor means2d = at::empty({a.V, a.N, 2}, f), depths = at::empty({a.V, a.N}, f);
    Tensor points2d = at::empty({a.V, a.N, a.K, 2}, f);
    Tensor hull = at::empty({a.V, a.N, a.K}, f.dtype(at::kInt));
    Tensor radii = at::empty({a.V, a.N, 2}, f.dtype(at::kInt));
    const bool cuda = on_cuda(points);
    (void)cuda;
    DISPATCH(recon::cuda_project_convexes_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                              points2d.data_ptr<float>(), hull.data_ptr<int>(),
                                              radii.data_ptr<int>(), RECON_STREAM()),
             recon::cpu_project_convexes_fwd(a, means2d.data_ptr<float>(), depths.data_ptr<float>(),
                                             points2d.data_ptr<float>(), hull.data_ptr<int>(),
                                             radii.data_ptr<int>()));
    return {means2d, depths, points2d, hull, radii};
}

Tensor project_convexes_bwd(const Tensor& points, const Tensor& viewmats, const Tensor& Ks,
                            int64_t width, int64_t height, const Tensor& radii,
                            const Tensor& v_means2d, const Tensor& v_depths,
                            const Tensor& v_points2d) {
    const auto a = points_args(points, nullptr, nullptr, nullptr, viewmats, Ks, width, height,
                               0.0, 0.0);
    check(radii, "radii", at::kInt);
    Tensor v_points = at::zeros_like(points);
    const bool cuda = on_cuda(points);
    (void)cuda;
    DISPATCH(recon::cuda_project_convexes_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                              v_depths.data_ptr<float>(), v_points2d.data_ptr<float>(),
                                              v_points.data_ptr<float>(), RECON_STREAM()),
             recon::cpu_project_convexes_bwd(a, radii.data_ptr<int>(), v_means2d.data_ptr<float>(),
                                             v_depths.data_ptr<float>(), v_points2d.data_ptr<float>(),
                                             v_points.data_ptr<float>()));
    return v_points;
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

RasterArgs raster_args(int64_t family, const Tensor& wparams, const c10::optional<Tensor>& iparams,
                       const Tensor& features, const Tensor& opacities,
                       const c10::optional<Tensor>& backgrounds, int64_t width, int64_t height,
                       int64_t tile_size, const Tensor& tile_offsets, const Tensor& flatten_ids) {
    check(wparams, "wparams", at::kFloat);
    check(features, "features", at::kFloat);
    check(opacities, "opacities", at::kFloat);
    check(tile_offsets, "tile_offsets", at::kInt);
    check(flatten_ids, "flatten_ids", at::kInt);
    if (iparams) check(*iparams, "hull", at::kInt);
    if (backgrounds) check(*backgrounds, "backgrounds", at::kFloat);
    TORCH_CHECK(wparams.size(-1) <= recon::kMaxWindowParams, "too many window parameters");
    TORCH_CHECK(!features.is_cuda() || (tile_size >= 1 && tile_size <= 32),
                "CUDA kernels need 1 <= tile_size <= 32, got ", tile_size);
    RasterArgs a;
    a.family = (int)family;
    a.wparams = wparams.data_ptr<float>();
    a.iparams = iparams ? iparams->data_ptr<int>() : nullptr;
    a.P = (int)wparams.size(-1);
    a.K = iparams ? (int)iparams->size(-1) : 0;
    a.features = features.data_ptr<float>();
    a.opacities = opacities.data_ptr<float>();
    a.backgrounds = backgrounds ? backgrounds->data_ptr<float>() : nullptr;
    a.V = features.size(0);
    a.N = features.size(1);
    a.C = (int)features.size(2);
    a.width = (int)width;
    a.height = (int)height;
    a.tile_size = (int)tile_size;
    a.tile_height = (int)tile_offsets.size(1);
    a.tile_width = (int)tile_offsets.size(2);
    a.tile_offsets = tile_offsets.data_ptr<int>();
    a.flatten_ids = flatten_ids.data_ptr<int>();
    a.M = flatten_ids.numel();
    return a;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_fwd(
    int64_t family, const Tensor& wparams, const c10::optional<Tensor>& iparams,
    const Tensor& features, const Tensor& opacities, const c10::optional<Tensor>& backgrounds,
    int64_t width, int64_t height, int64_t tile_size, const Tensor& tile_offsets,
    const Tensor& flatten_ids) {
    const RasterArgs a = raster_args(family, wparams, iparams, features, opacities, backgrounds,
                                     width, height, tile_size, tile_offsets, flatten_ids);
    auto f = features.options();
    Tensor colors = at::empty({a.V, height, width, a.C}, f);
    Tensor alphas = at::empty({a.V, height, width, 1}, f);
    Tensor trans = at::empty({a.V, height, width}, f);
    Tensor last_ids = at::empty({a.V, height, width}, f.dtype(at::kInt));
    Tensor max_weights = at::zeros({a.V, a.N}, f);
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
    int64_t family, const Tensor& wparams, const c10::optional<Tensor>& iparams,
    const Tensor& features, const Tensor& opacities, const c10::optional<Tensor>& backgrounds,
    int64_t width, int64_t height, int64_t tile_size, const Tensor& tile_offsets,
    const Tensor& flatten_ids, const Tensor& transmittance, const Tensor& last_ids,
    const Tensor& v_colors, const Tensor& v_alphas) {
    const RasterArgs a = raster_args(family, wparams, iparams, features, opacities, backgrounds,
                                     width, height, tile_size, tile_offsets, flatten_ids);
    check(transmittance, "transmittance", at::kFloat);
    check(last_ids, "last_ids", at::kInt);
    check(v_colors, "v_colors", at::kFloat);
    check(v_alphas, "v_alphas", at::kFloat);
    Tensor v_wparams = at::zeros_like(wparams), v_features = at::zeros_like(features);
    Tensor v_opacities = at::zeros_like(opacities);
    Tensor v_backgrounds = at::zeros({a.V, a.C}, features.options());
    const bool cuda = on_cuda(features);
    (void)cuda;
    DISPATCH(recon::cuda_rasterize_bwd(a, transmittance.data_ptr<float>(), last_ids.data_ptr<int>(),
                                       v_colors.data_ptr<float>(), v_alphas.data_ptr<float>(),
                                       v_wparams.data_ptr<float>(), v_features.data_ptr<float>(),
                                       v_opacities.data_ptr<float>(), v_backgrounds.data_ptr<float>(),
                                       RECON_STREAM()),
             recon::cpu_rasterize_bwd(a, transmittance.data_ptr<float>(), last_ids.data_ptr<int>(),
                                      v_colors.data_ptr<float>(), v_alphas.data_ptr<float>(),
                                      v_wparams.data_ptr<float>(), v_features.data_ptr<float>(),
                                      v_opacities.data_ptr<float>(), v_backgrounds.data_ptr<float>()));
    return {v_wparams, v_features, v_opacities, v_backgrounds};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "recon rasterization kernels (CPU/OpenMP and CUDA)";
    m.def("project_gaussians_fwd", &project_gaussians_fwd);
    m.def("project_gaussians_bwd", &project_gaussians_bwd);
    m.def("project_triangles_fwd", &project_triangles_fwd);
    m.def("project_triangles_bwd", &project_triangles_bwd);
    m.def("project_convexes_fwd", &project_convexes_fwd);
    m.def("project_convexes_bwd", &project_convexes_bwd);
    m.def("isect_tiles", &isect_tiles);
    m.def("rasterize_fwd", &rasterize_fwd);
    m.def("rasterize_bwd", &rasterize_bwd);
    m.def("set_cpu_threads", &recon::set_cpu_threads, "CPU kernels' threads (0: OpenMP default)");
    m.def("cpu_threads", [] { return recon::cpu_threads(); }, "threads the CPU kernels use now");
#ifdef RECON_WITH_CUDA
    m.attr("with_cuda") = true;
#else
    m.attr("with_cuda") = false;
#endif
}
