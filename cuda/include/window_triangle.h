// Triangle Splatting window policy: (phi(p) / phi_s)^sigma inside the projected triangle.
//
// phi(p) = max_i L_i(p) with L_i the signed distance to edge p_i -> p_{i+1} (negative inside),
// phi_s = -inradius = -|cross| / perimeter. The gradient of phi goes to the edge achieving the
// max (first one on ties); the gradient through the inradius is exact (not treated as constant).
#pragma once

#include "common.h"

namespace recon {

// Window parameters per (view, primitive): [x0, y0, x1, y1, x2, y2, sigma].
struct TriangleWindow {
    static constexpr int kParams = 7;
    float p[3][2];
    float nx[3], ny[3], d[3];  // unit normals and offsets, L_i(p) = n_i . p + d_i
    float s;                   // orientation sign (+1 when the doubled signed area is positive)
    float phi_s;               // -inradius
    float sigma;

    RECON_HD static int num_params(int /*K*/) { return kParams; }

    RECON_HD static float cross2(float ax, float ay, float bx, float by) { return ax * by - ay * bx; }

    RECON_HD static TriangleWindow load(const float* wp, const int32_t* /*ip*/, int /*K*/) {
        TriangleWindow w;
        for (int i = 0; i < 3; ++i) {
            w.p[i][0] = wp[2 * i];
            w.p[i][1] = wp[2 * i + 1];
        }
        w.sigma = wp[6];
        const float cross = cross2(w.p[1][0] - w.p[0][0], w.p[1][1] - w.p[0][1],
                                   w.p[2][0] - w.p[0][0], w.p[2][1] - w.p[0][1]);
        w.s = cross > 0.f ? 1.f : -1.f;
        float perimeter = 0.f;
        for (int i = 0; i < 3; ++i) {
            const int j = (i + 1) % 3;
            const float ex = w.p[j][0] - w.p[i][0], ey = w.p[j][1] - w.p[i][1];
            const float len = sqrtf(ex * ex + ey * ey);
            perimeter += len;
            const float inv = len > 0.f ? w.s / len : 0.f;
            w.nx[i] = ey * inv;
            w.ny[i] = -ex * inv;
            w.d[i] = -(w.nx[i] * w.p[i][0] + w.ny[i] * w.p[i][1]);
        }
        w.phi_s = perimeter > 0.f ? -fabsf(cross) / perimeter : 0.f;
        return w;
    }

    // Index of the edge achieving max_i L_i(p) and its value.
    RECON_HD int argmax_edge(float px, float py, float* phi) const {
        int k = 0;
        float best = nx[0] * px + ny[0] * py + d[0];
        for (int i = 1; i < 3; ++i) {
            const float L = nx[i] * px + ny[i] * py + d[i];
            if (L > best) {
                best = L;
                k = i;
            }
        }
        *phi = best;
        return k;
    }

    RECON_HD float eval(float px, float py) const {
        float phi;
        argmax_edge(px, py, &phi);
        if (!(phi < 0.f) || !(phi_s < 0.f)) return 0.f;
        return powf(phi / phi_s, sigma);
    }

    RECON_HD void vjp(float px, float py, float w, float v_w, float* v_wp) const {
        float phi;
        const int k = argmax_edge(px, py, &phi);
        const float r = phi / phi_s;
        v_wp[6] += v_w * w * logf(r);
        const float v_r = v_w * sigma * w / r;
        const float v_phi = v_r / phi_s;
        const float v_phi_s = -v_r * phi / (phi_s * phi_s);
        // phi = L_k = -s cross2(e, q) / |e| with e = p_{k+1} - p_k, q = pixel - p_k.
        const int k1 = (k + 1) % 3;
        const float ex = p[k1][0] - p[k][0], ey = p[k1][1] - p[k][1];
        const float qx = px - p[k][0], qy = py - p[k][1];
        const float len = sqrtf(ex * ex + ey * ey);
        const float u = -s * cross2(ex, ey, qx, qy);
        const float v_u = v_phi / len;
        const float v_len = -v_phi * u / (len * len);
        const float v_ex = v_u * (-s * qy) + v_len * ex / len;
        const float v_ey = v_u * (s * qx) + v_len * ey / len;
        const float v_qx = v_u * (s * ey), v_qy = v_u * (-s * ex);
        v_wp[2 * k1] += v_ex;
        v_wp[2 * k1 + 1] += v_ey;
        v_wp[2 * k] += -v_ex - v_qx;
        v_wp[2 * k + 1] += -v_ey - v_qy;
        // phi_s = -s cross / perimeter.
        float perimeter = 0.f, elen[3];
        for (int i = 0; i < 3; ++i) {
            const int j = (i + 1) % 3;
            const float dx = p[j][0] - p[i][0], dy = p[j][1] - p[i][1];
            elen[i] = sqrtf(dx * dx + dy * dy);
            perimeter += elen[i];
        }
        const float abs_cross = -phi_s * perimeter;
        const float v_cross = v_phi_s * (-s / perimeter);
        const float v_perim = v_phi_s * abs_cross / (perimeter * perimeter);
        // cross = (p1 - p0) x (p2 - p0).
        const float ax = p[1][0] - p[0][0], ay = p[1][1] - p[0][1];
        const float bx = p[2][0] - p[0][0], by = p[2][1] - p[0][1];
        v_wp[2] += v_cross * by;
        v_wp[3] += -v_cross * bx;
        v_wp[4] += -v_cross * ay;
        v_wp[5] += v_cross * ax;
        v_wp[0] += -v_cross * (by - ay);
        v_wp[1] += -v_cross * (ax - bx);
        for (int i = 0; i < 3; ++i) {
            const int j = (i + 1) % 3;
            const float dx = p[j][0] - p[i][0], dy = p[j][1] - p[i][1];
            const float gx = v_perim * dx / elen[i], gy = v_perim * dy / elen[i];
            v_wp[2 * j] += gx;
            v_wp[2 * j + 1] += gy;
            v_wp[2 * i] -= gx;
            v_wp[2 * i + 1] -= gy;
        }
    }
};

}  // namespace recon
