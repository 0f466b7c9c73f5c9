"""Independent oracles for the ops tests: straightforward per-pixel loops in float64 Python.

Nothing here imports recon: windows are written from the papers' formulas (distances to lines,
incentre from side lengths, scipy's convex hull), compositing is the 3DGS loop verbatim.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA_MAX, ALPHA_MIN, T_MIN = 0.99, 1.0 / 255.0, 1e-4


def composite_pixel(prims, window, opacities, features, background):
    """3DGS front-to-back compositing of one pixel.

    Args:
        prims: primitive indices in front-to-back order.
        window: callable ``n -> window value`` at this pixel.
        opacities: [N] array; features: [N, C] array; background: [C] array.

    Returns:
        (colour [C], alpha, {n: alpha * T} of the composited primitives).
    """
    T = 1.0
    out = np.zeros(features.shape[1])
    weights = {}
    for n in prims:
        alpha = min(ALPHA_MAX, opacities[n] * window(n))
        if alpha < ALPHA_MIN:
            continue
        next_t = T * (1.0 - alpha)
        if next_t <= T_MIN:
            break
        out += features[n] * alpha * T
        weights[n] = alpha * T
        T = next_t
    return out + T * background, 1.0 - T, weights


def render_oracle(width, height, order, window_at, opacities, features, background):
    """Renders one view by looping over pixels and the depth-sorted visible primitives.

    ``window_at(n, x, y)`` gives the window of primitive n at pixel centre (x, y).
    Returns colours [H, W, C], alphas [H, W], max_weights [N].
    """
    C = features.shape[1]
    img = np.zeros((height, width, C))
    alpha = np.zeros((height, width))
    max_w = np.zeros(len(opacities))
    for j in range(height):
        for i in range(width):
            x, y = i + 0.5, j + 0.5
            col, a, w = composite_pixel(
                order, lambda n: window_at(n, x, y), opacities, features, background
            )
            img[j, i], alpha[j, i] = col, a
            for n, v in w.items():
                max_w[n] = max(max_w[n], v)
    return img, alpha, max_w


def gaussian_window(mean, conic, x, y):
    dx, dy = x - mean[0], y - mean[1]
    a, b, c = conic
    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    return 0.0 if power < 0 else math.exp(-power)


def signed_edge_distances(tri, x, y):
    """Signed distances (negative inside) from (x, y) to the three edge lines of a 2D triangle."""
    p = np.asarray(tri, dtype=np.float64)
    area2 = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
    out = []
    for i in range(3):
        a, b = p[i], p[(i + 1) % 3]
        e = b - a
        # cross(e, q - a) has the sign of the triangle's orientation for interior q
        cr = e[0] * (y - a[1]) - e[1] * (x - a[0])
        out.append(-math.copysign(1.0, area2) * cr / math.hypot(*e))
    return out


def triangle_window(tri, sigma, x, y):
    p = np.asarray(tri, dtype=np.float64)
    la = np.linalg.norm(p[1] - p[2])  # side opposite vertex 0
    lb = np.linalg.norm(p[2] - p[0])
    lc = np.linalg.norm(p[0] - p[1])
    s = (la * p[0] + lb * p[1] + lc * p[2]) / (la + lb + lc)
    phi_s = max(signed_edge_distances(p, *s))
    phi = max(signed_edge_distances(p, x, y))
    return (phi / phi_s) ** sigma if phi < 0 else 0.0


def convex_window(points2d, z, delta, sigma, x, y):
    """Smooth convex indicator with the hull from scipy (CCW in math orientation)."""
    from scipy.spatial import ConvexHull

    pts = np.asarray(points2d, dtype=np.float64)
    hull = ConvexHull(pts).vertices  # counter-clockwise for 2D input
    vals = []
    for i in range(len(hull)):
        a, b = pts[hull[i]], pts[hull[(i + 1) % len(hull)]]
        n = np.array([b[1] - a[1], -(b[0] - a[0])])  # outward for CCW, length |b - a|
        vals.append(z * delta * (n @ np.array([x, y]) - n @ a))
    m = max(vals)
    phi = m + math.log(sum(math.exp(v - m) for v in vals))
    return 1.0 / (1.0 + math.exp(z * sigma * phi))


def project_points(points, viewmat, K):
    """Pinhole projection of world points [..., 3] with numpy: (pixels [..., 2], z [...])."""
    pts = np.asarray(points, dtype=np.float64)
    cam = pts @ np.asarray(viewmat)[:3, :3].T + np.asarray(viewmat)[:3, 3]
    uvw = cam @ np.asarray(K).T
    return uvw[..., :2] / uvw[..., 2:3], cam[..., 2]
