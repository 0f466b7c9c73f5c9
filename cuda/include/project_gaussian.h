// Projection of 3D Gaussians to 2D conics (gsplat 1.5 `_fully_fused_projection`, pinhole).
#pragma once

#include "common.h"
#include "projector.h"

namespace recon {

struct GaussianProjection {
    float means2d[2];
    float depth;
    float conic[3];
    int32_t radii[2];
};

// Rotation matrix (row major) from a normalised quaternion (w, x, y, z).
RECON_HD void quat_to_rotmat(const float* q, float* R) {
    const float w = q[0], x = q[1], y = q[2], z = q[3];
    R[0] = 1.f - 2.f * (y * y + z * z);
    R[1] = 2.f * (x * y - w * z);
    R[2] = 2.f * (x * z + w * y);
    R[3] = 2.f * (x * y + w * z);
    R[4] = 1.f - 2.f * (x * x + z * z);
    R[5] = 2.f * (y * z - w * x);
    R[6] = 2.f * (x * z - w * y);
    R[7] = 2.f * (y * z + w * x);
    R[8] = 1.f - 2.f * (x * x + y * y);
}

// v_q += dR/dq^T v_R for a normalised quaternion q.
RECON_HD void quat_to_rotmat_vjp(const float* q, const float* G, float* v_q) {
    const float w = q[0], x = q[1], y = q[2], z = q[3];
    v_q[0] += 2.f * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
    v_q[1] += 2.f * (y * G[1] + z * G[2] + y * G[3] - 2.f * x * G[4] - w * G[5] + z * G[6] +
                     w * G[7] - 2.f * x * G[8]);
    v_q[2] += 2.f * (-2.f * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] +
                     z * G[7] - 2.f * y * G[8]);
    v_q[3] += 2.f * (-2.f * z * G[0] - w * G[1] + x * G[2] + w * G[3] - 2.f * z * G[4] + y * G[5] +
                     x * G[6] + y * G[7]);
}

// q / max(|q|, 1e-12) (torch.nn.functional.normalize).
RECON_HD float normalize_quat(const float* q, float* qn) {
    const float norm = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    const float inv = 1.0f / fmaxf(norm, 1e-12f);
    for (int i = 0; i < 4; ++i) qn[i] = q[i] * inv;
    return norm;
}

// Camera-space covariance Rv (R S)(R S)^T Rv^T, row major [3x3]; also returns M = R S.
RECON_HD void camera_covariance(const Camera& cam, const float* qn, const float* s, float* M,
                                float* cov_c) {
    float R[9];
    quat_to_rotmat(qn, R);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M[i * 3 + j] = R[i * 3 + j] * s[j];
    float cov[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            cov[i * 3 + j] = M[i * 3 + 0] * M[j * 3 + 0] + M[i * 3 + 1] * M[j * 3 + 1] +
                             M[i * 3 + 2] * M[j * 3 + 2];
    float tmp[9];  // Rv cov
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            tmp[i * 3 + j] = cam.R[i * 3 + 0] * cov[0 * 3 + j] + cam.R[i * 3 + 1] * cov[1 * 3 + j] +
                             cam.R[i * 3 + 2] * cov[2 * 3 + j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            cov_c[i * 3 + j] = tmp[i * 3 + 0] * cam.R[j * 3 + 0] + tmp[i * 3 + 1] * cam.R[j * 3 + 1] +
                               tmp[i * 3 + 2] * cam.R[j * 3 + 2];
}

// Jacobian rows of the perspective projection with gsplat's 1.3x field-of-view clamp.
// J = [[J00, 0, J02], [0, J11, J12]]; clamp_x/y = whether x/z, y/z were clamped.
struct PerspJacobian {
    float J00, J02, J11, J12;
    float tx, ty;  // clamped camera x, y (z * clamp(x / z))
    bool clamp_x, clamp_y;
    float lim_x, lim_y;  // the clamp value used when clamped
};

RECON_HD PerspJacobian persp_jacobian(const Camera& cam, const float* xc, int width, int height) {
    PerspJacobian J;
    const float tan_fovx = 0.5f * (float)width / cam.fx;
    const float tan_fovy = 0.5f * (float)height / cam.fy;
    const float lim_x_pos = ((float)width - cam.cx) / cam.fx + 0.3f * tan_fovx;
    const float lim_x_neg = cam.cx / cam.fx + 0.3f * tan_fovx;
    const float lim_y_pos = ((float)height - cam.cy) / cam.fy + 0.3f * tan_fovy;
    const float lim_y_neg = cam.cy / cam.fy + 0.3f * tan_fovy;
    const float z = xc[2];
    const float rx = xc[0] / z, ry = xc[1] / z;
    J.clamp_x = rx < -lim_x_neg || rx > lim_x_pos;
    J.clamp_y = ry < -lim_y_neg || ry > lim_y_pos;
    J.lim_x = rx < -lim_x_neg ? -lim_x_neg : lim_x_pos;
    J.lim_y = ry < -lim_y_neg ? -lim_y_neg : lim_y_pos;
    J.tx = z * (J.clamp_x ? J.lim_x : rx);
    J.ty = z * (J.clamp_y ? J.lim_y : ry);
    J.J00 = cam.fx / z;
    J.J02 = -cam.fx * J.tx / (z * z);
    J.J11 = cam.fy / z;
    J.J12 = -cam.fy * J.ty / (z * z);
    return J;
}

// cov2d = J cov_c J^T (symmetric, returns c00, c01, c11).
RECON_HD void project_cov(const PerspJacobian& J, const float* S, float* c) {
    // rows of J: j0 = (J00, 0, J02), j1 = (0, J11, J12)
    const float a0 = J.J00 * S[0] + J.J02 * S[6], a1 = J.J00 * S[1] + J.J02 * S[7],
                a2 = J.J00 * S[2] + J.J02 * S[8];  // j0 S
    const float b1 = J.J11 * S[4] + J.J12 * S[7], b2 = J.J11 * S[5] + J.J12 * S[8];
    c[0] = a0 * J.J00 + a2 * J.J02;
    c[1] = a1 * J.J11 + a2 * J.J12;
    c[2] = b1 * J.J11 + b2 * J.J12;
}

// Forward projection of one Gaussian in one view. Culled: radii = 0 (other outputs finite).
// extent: footprint half size in standard deviations (GES sizes it per primitive, window_ges.h).
RECON_HD GaussianProjection project_gaussian(const Camera& cam, const float* mean, const float* quat,
                                             const float* scale, int width, int height,
                                             float near_plane, float far_plane, float eps2d,
                                             float extent = 3.33f) {
    GaussianProjection out;
    float xc[3];
    world_to_cam(cam, mean, xc);
    out.depth = xc[2];
    const bool valid_z = xc[2] > near_plane && xc[2] < far_plane;
    if (!(xc[2] > near_plane)) xc[2] = 1.f;  // culled: keep the values finite
    project_point(cam, xc, out.means2d);
    float qn[4], M[9], S[9], c[3];
    normalize_quat(quat, qn);
    camera_covariance(cam, qn, scale, M, S);
    const PerspJacobian J = persp_jacobian(cam, xc, width, height);
    project_cov(J, S, c);
    c[0] += eps2d;
    c[2] += eps2d;
    const float det_raw = c[0] * c[2] - c[1] * c[1];
    const float det = det_raw > 0.f ? det_raw : 1.f;
    out.conic[0] = c[2] / det;
    out.conic[1] = -c[1] / det;
    out.conic[2] = c[0] / det;
    float rx = ceilf(extent * sqrtf(c[0]));
    float ry = ceilf(extent * sqrtf(c[2]));
    const bool valid = valid_z && det_raw > 0.f;
    if (!valid || !box_in_image(out.means2d[0], out.means2d[1], rx, ry, width, height)) {
        rx = 0.f;
        ry = 0.f;
    }
    out.radii[0] = (int32_t)rx;
    out.radii[1] = (int32_t)ry;
    return out;
}

// Vector-Jacobian product of project_gaussian for a primitive that is not culled: accumulates
// into v_mean [3], v_quat [4], v_scale [3].
RECON_HD void project_gaussian_vjp(const Camera& cam, const float* mean, const float* quat,
                                   const float* scale, int width, int height, float eps2d,
                                   const float* v_means2d, float v_depth, const float* v_conic,
                                   float* v_mean, float* v_quat, float* v_scale) {
    float xc[3];
    world_to_cam(cam, mean, xc);
    float qn[4], M[9], S[9], c[3];
    const float qnorm = normalize_quat(quat, qn);
    camera_covariance(cam, qn, scale, M, S);
    const PerspJacobian J = persp_jacobian(cam, xc, width, height);
    project_cov(J, S, c);
    c[0] += eps2d;
    c[2] += eps2d;
    const float det_raw = c[0] * c[2] - c[1] * c[1];
    const float det = det_raw;  // > 0 for every primitive that is not culled
    const float A = c[2] / det, B = -c[1] / det, Cc = c[0] / det;
    // d loss / d cov2d as a full symmetric 2x2 gradient G (G01 = G10).
    const float v_det = -(v_conic[0] * A + v_conic[1] * B + v_conic[2] * Cc) / det;
    const float G00 = v_conic[2] / det + v_det * c[2];
    const float G11 = v_conic[0] / det + v_det * c[0];
    const float G01 = -0.5f * v_conic[1] / det - v_det * c[1];
    // cov2d = J S J^T: v_S = J^T G J; v_J = 2 G J S.
    const float Jm[6] = {J.J00, 0.f, J.J02, 0.f, J.J11, J.J12};
    const float G[4] = {G00, G01, G01, G11};
    float GJ[6];  // [2x3]
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 3; ++k) GJ[i * 3 + k] = G[i * 2 + 0] * Jm[0 * 3 + k] + G[i * 2 + 1] * Jm[1 * 3 + k];
    float v_S[9];
    for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) v_S[k * 3 + l] = Jm[0 * 3 + k] * GJ[0 * 3 + l] + Jm[1 * 3 + k] * GJ[1 * 3 + l];
    float v_J[6];
    for (int i = 0; i < 2; ++i)
        for (int l = 0; l < 3; ++l)
            v_J[i * 3 + l] = 2.f * (GJ[i * 3 + 0] * S[0 * 3 + l] + GJ[i * 3 + 1] * S[1 * 3 + l] +
                                    GJ[i * 3 + 2] * S[2 * 3 + l]);
    // Jacobian entries -> camera-space mean.
    const float z = xc[2], iz2 = 1.f / (z * z), iz3 = iz2 / z;
    float v_xc[3] = {0.f, 0.f, v_depth};
    v_xc[2] += -cam.fx * iz2 * v_J[0] + 2.f * cam.fx * J.tx * iz3 * v_J[2] - cam.fy * iz2 * v_J[4] +
               2.f * cam.fy * J.ty * iz3 * v_J[5];
    const float v_tx = -cam.fx * iz2 * v_J[2];
    const float v_ty = -cam.fy * iz2 * v_J[5];
    if (J.clamp_x) v_xc[2] += v_tx * J.lim_x; else v_xc[0] += v_tx;
    if (J.clamp_y) v_xc[2] += v_ty * J.lim_y; else v_xc[1] += v_ty;
    project_point_vjp(cam, xc, v_means2d, v_xc);
    world_to_cam_vjp(cam, v_xc, v_mean);
    // cov_c = Rv cov Rv^T: v_cov = Rv^T v_S Rv.
    float tmp[9], v_cov[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            tmp[i * 3 + j] = cam.R[0 * 3 + i] * v_S[0 * 3 + j] + cam.R[1 * 3 + i] * v_S[1 * 3 + j] +
                             cam.R[2 * 3 + i] * v_S[2 * 3 + j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            v_cov[i * 3 + j] = tmp[i * 3 + 0] * cam.R[0 * 3 + j] + tmp[i * 3 + 1] * cam.R[1 * 3 + j] +
                               tmp[i * 3 + 2] * cam.R[2 * 3 + j];
    // cov = M M^T: v_M = (v_cov + v_cov^T) M; M_ij = R_ij s_j.
    float R[9];
    quat_to_rotmat(qn, R);
    float v_R[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            float v_M = 0.f;
            for (int k = 0; k < 3; ++k) v_M += (v_cov[i * 3 + k] + v_cov[k * 3 + i]) * M[k * 3 + j];
            v_R[i * 3 + j] = v_M * scale[j];
            v_scale[j] += v_M * R[i * 3 + j];
        }
    float v_qn[4] = {0.f, 0.f, 0.f, 0.f};
    quat_to_rotmat_vjp(qn, v_R, v_qn);
    // qn = q / max(|q|, eps): v_q = (v_qn - qn (qn . v_qn)) / |q|.
    if (qnorm > 1e-12f) {
        const float d = qn[0] * v_qn[0] + qn[1] * v_qn[1] + qn[2] * v_qn[2] + qn[3] * v_qn[3];
        for (int i = 0; i < 4; ++i) v_quat[i] += (v_qn[i] - qn[i] * d) / qnorm;
    } else {
        for (int i = 0; i < 4; ++i) v_quat[i] += v_qn[i] / 1e-12f;
    }
}

// Projector policy (projector.h). Inputs means [N,3], quats [N,4], scales [N,3], all
// differentiable; shape2d: conics [V,N,3].
struct GaussianProjector {
    static constexpr int kNumInputs = 3, kNumGradInputs = 3;
    static constexpr bool kHasHull = false;
    RECON_HD static bool accepts_points(int K) { return K == 0; }
    RECON_HD static constexpr int input_width(int i, int /*K*/) { return i == 1 ? 4 : 3; }
    RECON_HD static Shape2d shape2d(int /*K*/) { return Shape2d{1, {3, 0}}; }

    RECON_HD static void forward(const ProjectArgs& a, const Camera& cam, int64_t n,
                                 const ProjectRow& out) {
        const GaussianProjection p =
            project_gaussian(cam, a.inputs[0] + 3 * n, a.inputs[1] + 4 * n, a.inputs[2] + 3 * n,
                             a.width, a.height, a.near_plane, a.far_plane, a.eps2d);
        store_row(p, p.conic, 3, out);
    }

    // v_in [10] = [v_means (3), v_quats (4), v_scales (3)].
    RECON_HD static void vjp(const ProjectArgs& a, const Camera& cam, int64_t n,
                             const CotangentRow& v, float* v_in) {
        project_gaussian_vjp(cam, a.inputs[0] + 3 * n, a.inputs[1] + 4 * n, a.inputs[2] + 3 * n,
                             a.width, a.height, a.eps2d, v.v_means2d, v.v_depth, v.v_shape2d, v_in,
                             v_in + 3, v_in + 7);
    }
};

}  // namespace recon
