// Gaussian window policy: exp(-(a dx^2 + c dy^2) / 2 - b dx dy), d = pixel - means2d.
#pragma once

#include "common.h"

namespace recon {

// Window parameters per (view, primitive): [mx, my, a, b, c].
struct GaussianWindow {
    static constexpr int kParams = 5;
    float mx, my, a, b, c;

    RECON_HD static int num_params(int /*K*/) { return kParams; }

    RECON_HD static GaussianWindow load(const float* wp, const int32_t* /*ip*/, int /*K*/) {
        GaussianWindow w;
        w.mx = wp[0];
        w.my = wp[1];
        w.a = wp[2];
        w.b = wp[3];
        w.c = wp[4];
        return w;
    }

    // Exponent at the offset (dx, dy) = pixel centre - means2d.
    RECON_HD float exponent(float dx, float dy) const {
        return 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
    }

    // Window value at the pixel centre (px, py); 0 when the exponent is positive (skipped).
    RECON_HD float eval(float px, float py) const {
        const float sigma = exponent(px - mx, py - my);
        // exp(-5.6) < 1/255: such pixels are skipped by the alpha threshold whatever the
        // opacity, so the exponential is not needed.
        return (sigma < 0.f || sigma > 5.6f) ? 0.f : expf(-sigma);
    }

    // Accumulates v_wp[kParams] += d(window)/d(params)^T v_w, with w = eval(px, py) > 0.
    RECON_HD void vjp(float px, float py, float w, float v_w, float* v_wp) const {
        const float dx = px - mx, dy = py - my;
        const float v_sigma = -w * v_w;
        v_wp[0] += -(a * dx + b * dy) * v_sigma;
        v_wp[1] += -(b * dx + c * dy) * v_sigma;
        v_wp[2] += 0.5f * dx * dx * v_sigma;
        v_wp[3] += dx * dy * v_sigma;
        v_wp[4] += 0.5f * dy * dy * v_sigma;
    }
};

}  // namespace recon
