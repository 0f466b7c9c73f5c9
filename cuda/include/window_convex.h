// 3D Convex Splatting window policy: sigmoid(-z sigma logsumexp_i(z delta L_i(p))).
//
// L_i are the unnormalised lines through the hull edges q_i -> q_{i+1}, n_i = (dy, -dx)
// sign-fixed so that L < 0 inside; z is the primitive depth (a constant in the window).
#pragma once

#include "common.h"

namespace recon {

// Window parameters per (view, primitive): [points2d (2K), delta, sigma, depth]; integer
// parameters: hull [K] (indices into the K points, counter-clockwise, -1 padded).
struct ConvexWindow {
    float qx[kMaxConvexPoints], qy[kMaxConvexPoints];
    int idx[kMaxConvexPoints];
    int h;       // hull size
    int K;       // points per convex
    float s;     // orientation sign of the hull
    float zd;    // z * delta
    float zs;    // z * sigma
    float z, delta, sigma;

    RECON_HD static int num_params(int K) { return 2 * K + 3; }

    RECON_HD static ConvexWindow load(const float* wp, const int32_t* ip, int K) {
        ConvexWindow w;
        w.K = K;
        w.h = 0;
        for (int i = 0; i < K; ++i) {
            const int j = ip[i];
            if (j < 0) break;
            w.idx[w.h] = j;
            w.qx[w.h] = wp[2 * j];
            w.qy[w.h] = wp[2 * j + 1];
            ++w.h;
        }
        float area = 0.f;
        for (int i = 0; i < w.h; ++i) {
            const int j = (i + 1) % w.h;
            area += w.qx[i] * w.qy[j] - w.qy[i] * w.qx[j];
        }
        w.s = area > 0.f ? 1.f : -1.f;
        w.delta = wp[2 * K];
        w.sigma = wp[2 * K + 1];
        w.z = wp[2 * K + 2];
        w.zd = w.z * w.delta;
        w.zs = w.z * w.sigma;
        return w;
    }

    // L_i(p) for hull edge i.
    RECON_HD float line(int i, float px, float py) const {
        const int j = (i + 1) % h;
        const float ex = qx[j] - qx[i], ey = qy[j] - qy[i];
        return s * (ey * (px - qx[i]) - ex * (py - qy[i]));
    }

    // phi(p) = logsumexp_i(z delta L_i(p)), computed with the max subtracted.
    RECON_HD float phi(float px, float py, float* L, float* m_out) const {
        float m = -INFINITY;
        for (int i = 0; i < h; ++i) {
            L[i] = line(i, px, py);
            m = fmaxf(m, zd * L[i]);
        }
        float sum = 0.f;
        for (int i = 0; i < h; ++i) sum += expf(zd * L[i] - m);
        *m_out = m;
        return m + logf(sum);
    }

    RECON_HD float eval(float px, float py) const {
        if (h < 3) return 0.f;
        // phi >= z delta max_i L_i: when z sigma of that bound exceeds 5.6, I < sigmoid(-5.6)
        // < 1/255 and the pixel is skipped whatever the opacity; no exponential needed.
        if (zs > 0.f && zd > 0.f) {
            float m = -INFINITY;
            for (int i = 0; i < h; ++i) m = fmaxf(m, line(i, px, py));
            if (zs * (zd * m) > 5.6f) return 0.f;
        }
        float L[kMaxConvexPoints], m;
        const float f = phi(px, py, L, &m);
        return 1.f / (1.f + expf(zs * f));
    }

    RECON_HD void vjp(float px, float py, float w, float v_w, float* v_wp) const {
        float L[kMaxConvexPoints], m;
        const float f = phi(px, py, L, &m);
        const float dI = w * (1.f - w);
        const float v_phi = -zs * dI * v_w;
        v_wp[2 * K + 1] += -z * f * dI * v_w;  // sigma
        float sum = 0.f, wl = 0.f, e[kMaxConvexPoints];
        for (int i = 0; i < h; ++i) {
            e[i] = expf(zd * L[i] - m);
            sum += e[i];
        }
        for (int i = 0; i < h; ++i) {
            const float soft = e[i] / sum;
            wl += soft * L[i];
            const float v_L = v_phi * zd * soft;
            // L = s (ey (px - qx_i) - ex (py - qy_i)), e = q_j - q_i.
            const int j = (i + 1) % h;
            const float ex = qx[j] - qx[i], ey = qy[j] - qy[i];
            const float v_ex = -s * (py - qy[i]) * v_L;
            const float v_ey = s * (px - qx[i]) * v_L;
            v_wp[2 * idx[j]] += v_ex;
            v_wp[2 * idx[j] + 1] += v_ey;
            v_wp[2 * idx[i]] += -v_ex - s * ey * v_L;
            v_wp[2 * idx[i] + 1] += -v_ey + s * ex * v_L;
        }
        v_wp[2 * K] += v_phi * z * wl;  // delta
    }
};

}  // namespace recon
