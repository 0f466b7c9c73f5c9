// GES (Generalized Exponential Splatting, METHODS.md section 3): the Gaussian projection with a
// shape-aware footprint, and the true generalized-exponential window exp(-p^(beta/2)),
// p = (a dx^2 + c dy^2) / 2 + b dx dy (beta = 2: the Gaussian window). Twin of
// recon/ops/reference/ges.py.
#pragma once

#include "common.h"
#include "project_gaussian.h"
#include "projector.h"

namespace recon {

// p is clamped to [kGesMinPower, kGesMaxPower] inside the power (finite gradients at the centre
// for beta < 2, finite p^(beta/2) for beta <= 8); the reference clamps alike.
constexpr float kGesMinPower = 1e-12f;
constexpr float kGesMaxPower = 1e8f;

// Footprint half size in standard deviations: the ellipse where opacity * window >= 1/255,
// sqrt(2 ln(255 o)^(2 / beta)); 0 (culled) when o <= 1/255. In double, as the reference.
RECON_HD float ges_extent(float beta, float opacity) {
    const double level = log(fmax((double)opacity * 255.0, 1.0));
    return (float)(sqrt(2.0 * pow(level, 2.0 / (double)beta)) * (1.0 + 1e-6));
}

// Projector policy (projector.h). Inputs means [N,3], quats [N,4], scales [N,3] (differentiable),
// shape [N] and opacities [N] (size the footprint only); shape2d: conics [V,N,3].
struct GesProjector {
    static constexpr int kNumInputs = 5, kNumGradInputs = 3;
    static constexpr bool kHasHull = false;
    RECON_HD static bool accepts_points(int K) { return K == 0; }
    RECON_HD static constexpr int input_width(int i, int K) {
        return i < 3 ? GaussianProjector::input_width(i, K) : 1;
    }
    RECON_HD static Shape2d shape2d(int K) { return GaussianProjector::shape2d(K); }

    RECON_HD static void forward(const ProjectArgs& a, const Camera& cam, int64_t n,
                                 const ProjectRow& out) {
        const float extent = ges_extent(a.inputs[3][n], a.inputs[4][n]);
        const GaussianProjection p =
            project_gaussian(cam, a.inputs[0] + 3 * n, a.inputs[1] + 4 * n, a.inputs[2] + 3 * n,
                             a.width, a.height, a.near_plane, a.far_plane, a.eps2d, extent);
        store_row(p, p.conic, 3, out);
    }

    // The footprint has no gradient: the Gaussian's vjp.
    RECON_HD static void vjp(const ProjectArgs& a, const Camera& cam, int64_t n,
                             const CotangentRow& v, float* v_in) {
        GaussianProjector::vjp(a, cam, n, v, v_in);
    }
};

// Window parameters per (view, primitive): [mx, my, a, b, c, beta].
struct GesWindow {
    static constexpr int kParams = 6;
    GaussianWindow g;
    float beta;

    RECON_HD static int num_params(int /*K*/) { return kParams; }

    RECON_HD static GesWindow load(const float* wp, const int32_t* ip, int K) {
        GesWindow w;
        w.g = GaussianWindow::load(wp, ip, K);
        w.beta = wp[5];
        return w;
    }

    // p^(beta/2) with p clamped; p in the clamp range is reported through `inside`.
    RECON_HD float power(float p, bool* inside) const {
        *inside = p > kGesMinPower && p < kGesMaxPower;
        return powf(fminf(fmaxf(p, kGesMinPower), kGesMaxPower), 0.5f * beta);
    }

    // Window value at the pixel centre (px, py); 0 when p < 0 or when exp(-p^(beta/2)) is below
    // 1/255 whatever the opacity (exp(-5.6) < 1/255: the pixel is skipped).
    RECON_HD float eval(float px, float py) const {
        const float p = g.exponent(px - g.mx, py - g.my);
        if (p < 0.f) return 0.f;
        bool inside;
        const float s = power(p, &inside);
        return s > 5.6f ? 0.f : expf(-s);
    }

    // Accumulates v_wp[kParams] += d(window)/d(params)^T v_w, with w = eval(px, py) > 0.
    RECON_HD void vjp(float px, float py, float w, float v_w, float* v_wp) const {
        const float p = g.exponent(px - g.mx, py - g.my);
        bool inside;
        const float s = power(p, &inside);
        const float pc = fminf(fmaxf(p, kGesMinPower), kGesMaxPower);
        // d w / d beta = -w s ln(pc) / 2; d w / d p = -w (beta / 2) s / p inside the clamp range.
        v_wp[5] += -0.5f * w * s * logf(pc) * v_w;
        if (!inside) return;
        // GaussianWindow::vjp takes d w / d p = -w: scale its cotangent by (beta / 2) s / p.
        g.vjp(px, py, w, v_w * 0.5f * beta * s / p, v_wp);
    }
};

}  // namespace recon
