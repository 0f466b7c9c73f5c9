// Shared device/host definitions for the recon rasterization engine.
//
// Everything under cuda/include is plain C++ that compiles both with nvcc (as __host__ __device__
// code for the CUDA kernels) and with g++ (for the OpenMP CPU kernels). No torch headers here.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RECON_HD __host__ __device__ __forceinline__
#else
#define RECON_HD inline
#endif

namespace recon {

// Compositing cut-offs (ENGINE.md, stage 3).
constexpr float kMaxAlpha = 0.99f;
constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kTransmittanceMin = 1e-4f;

// Largest number of points per convex (and of window parameters: 2 * 8 + 3).
constexpr int kMaxConvexPoints = 8;
constexpr int kMaxWindowParams = 2 * kMaxConvexPoints + 3;

// Pinhole camera of one view: world-to-camera rotation (row major), translation, intrinsics.
struct Camera {
    float R[9];
    float t[3];
    float fx, fy, cx, cy;
};

// Reads view `v` from viewmats [V,4,4] and Ks [V,3,3] (row major).
RECON_HD Camera load_camera(const float* viewmats, const float* Ks, int64_t v) {
    Camera cam;
    const float* m = viewmats + v * 16;
    const float* k = Ks + v * 9;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) cam.R[i * 3 + j] = m[i * 4 + j];
        cam.t[i] = m[i * 4 + 3];
    }
    cam.fx = k[0];
    cam.fy = k[4];
    cam.cx = k[2];
    cam.cy = k[5];
    return cam;
}

// x_c = R x + t.
RECON_HD void world_to_cam(const Camera& cam, const float* x, float* xc) {
    for (int i = 0; i < 3; ++i)
        xc[i] = cam.R[i * 3 + 0] * x[0] + cam.R[i * 3 + 1] * x[1] + cam.R[i * 3 + 2] * x[2] + cam.t[i];
}

// v_x += R^T v_xc (vjp of world_to_cam with respect to x).
RECON_HD void world_to_cam_vjp(const Camera& cam, const float* v_xc, float* v_x) {
    for (int j = 0; j < 3; ++j)
        v_x[j] += cam.R[0 * 3 + j] * v_xc[0] + cam.R[1 * 3 + j] * v_xc[1] + cam.R[2 * 3 + j] * v_xc[2];
}

// Pinhole projection of a camera-space point: u = fx x / z + cx, v = fy y / z + cy.
RECON_HD void project_point(const Camera& cam, const float* xc, float* uv) {
    uv[0] = cam.fx * xc[0] / xc[2] + cam.cx;
    uv[1] = cam.fy * xc[1] / xc[2] + cam.cy;
}

// v_xc += d(uv)/d(xc)^T v_uv.
RECON_HD void project_point_vjp(const Camera& cam, const float* xc, const float* v_uv, float* v_xc) {
    const float iz = 1.0f / xc[2];
    v_xc[0] += cam.fx * iz * v_uv[0];
    v_xc[1] += cam.fy * iz * v_uv[1];
    v_xc[2] += -(cam.fx * xc[0] * v_uv[0] + cam.fy * xc[1] * v_uv[1]) * iz * iz;
}

// True when the box centre +- radius overlaps the image (gsplat's "inside" test).
RECON_HD bool box_in_image(float mx, float my, float rx, float ry, int width, int height) {
    return mx + rx > 0.0f && mx - rx < (float)width && my + ry > 0.0f && my - ry < (float)height;
}

}  // namespace recon
