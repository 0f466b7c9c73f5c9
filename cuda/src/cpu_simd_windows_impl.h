// Windows of the blocked CPU rasterizer (cpu_raster_blocked_impl.h), L pixels at a time: the SIMD
// twins of GaussianWindow::eval / vjp (window_gaussian.h) and GesWindow::eval / vjp (window_ges.h),
// and per window the level of the exponent p = (a dx^2 + c dy^2) / 2 + b dx dy beyond which
// opacity * window < 1/255 (the pixel box of cpu_blocked_tiles_impl.h).
//
// Both windows are functions of the Gaussian exponent p, so one sample carries the value w and
// its derivatives dw/dp (routed to means2d and the conic by the caller, as GaussianWindow::vjp)
// and, for GES, dw/dbeta.
#pragma once

#include <algorithm>
#include <cmath>

#include "cpu_simd_impl.h"
#include "window_gaussian.h"
#include "window_ges.h"

namespace recon {
namespace {

// Window value at L pixels and its derivatives (filled only when asked for).
template <class F>
struct WindowSample {
    F w;         // window value, 0 where the pixel is skipped
    F dw_dp;     // d w / d p
    F dw_dbeta;  // d w / d beta (GES)
};

// The Gaussian exponent p at offsets (dx, dy) = pixel centre - means2d (GaussianWindow::exponent).
template <class F>
RECON_SIMD_INLINE F exponent_at(const GaussianWindow& g, const F& dx, const F& dy) {
    return 0.5f * (g.a * dx * dx + g.c * dy * dy) + g.b * dx * dy;
}

RECON_SIMD_INLINE const GaussianWindow& conic_of(const GaussianWindow& g) { return g; }
RECON_SIMD_INLINE const GaussianWindow& conic_of(const GesWindow& w) { return w.g; }

// Largest p where opacity * window can reach 1/255, given ln(255 opacity) > 0 (in double; the
// caller adds a margin for float rounding). The windows' own cut (0 below exp(-5.6) < 1/255) is
// included.
inline double visible_level(const GaussianWindow& /*g*/, double log_255o) {
    return std::min(5.6, log_255o);
}
inline double visible_level(const GesWindow& w, double log_255o) {
    return std::pow(std::min(5.6, log_255o), 2.0 / (double)w.beta);
}

// GaussianWindow::eval at exponents p: exp(-p), 0 where p is negative or above 5.6; dw/dp = -w.
template <class F, class I, bool kGrad>
RECON_SIMD_INLINE WindowSample<F> sample(const GaussianWindow& /*g*/, const F& p) {
    const I in = (p >= 0.f) & (p <= 5.6f);
    const F w = simd::keep(in, simd::exp_small<F, I>(simd::keep(in, -p)));
    return WindowSample<F>{w, -w, F{}};
}

// GesWindow::eval at exponents p: exp(-s), s = clamp(p)^(beta/2) = exp((beta/2) ln clamp(p))
// (s = clamp(p) exactly for beta = 2: the Gaussian's numbers), 0 where p < 0 or s > 5.6.
// GesWindow::vjp: dw/dp = -w (beta/2) s / p inside the clamp range (0 outside it),
// dw/dbeta = -w s ln(clamp(p)) / 2.
template <class F, class I, bool kGrad>
RECON_SIMD_INLINE WindowSample<F> sample(const GesWindow& win, const F& p) {
    const float half_beta = 0.5f * win.beta;
    const F pc = simd::clamp(p, kGesMinPower, kGesMaxPower);
    const bool gaussian = win.beta == 2.f;
    const F log_pc = kGrad || !gaussian ? simd::log_normal<F, I>(pc) : F{};
    const F s = gaussian ? pc : simd::exp_any<F, I>(half_beta * log_pc);
    const I in = (p >= 0.f) & (s <= 5.6f);
    const F w = simd::keep(in, simd::exp_small<F, I>(simd::keep(in, -s)));
    if (!kGrad) return WindowSample<F>{w, F{}, F{}};
    const I inside = (p > kGesMinPower) & (p < kGesMaxPower);
    const F ratio = gaussian ? simd::splat<F>(1.f) : half_beta * s / pc;  // pc = p inside
    return WindowSample<F>{w, simd::keep(inside, -w * ratio), -0.5f * w * s * log_pc};
}

}  // namespace
}  // namespace recon
