// The family table: family id (recon.ops FAMILY_*) -> projection and window policies.
//
// Every launcher and binding dispatches through dispatch_family, so a new family is one header
// (its Projector, see projector.h, and its Window) plus its id and one case below. A Window is
// the footprint of one (view, primitive), loaded from its window parameters and evaluated at pixel
// centres by the compositing template (composite.h):
//
//   static int num_params(int K);                   floats per (view, primitive) (RasterArgs)
//   static Window load(const float* wp, const int32_t* ip, int K);  ip: window indices or null
//   float eval(float px, float py) const;           window value in [0, 1]
//   void vjp(float px, float py, float w, float v_w, float* v_wp) const;  v_wp [num_params] +=
#pragma once

#include "project_convex.h"
#include "project_gaussian.h"
#include "project_triangle.h"
#include "window_convex.h"
#include "window_gaussian.h"
#include "window_ges.h"
#include "window_triangle.h"

namespace recon {

// Family ids, as recon.ops.kernels FAMILY_* on the Python side.
enum FamilyId : int { kGaussian = 0, kTriangle = 1, kConvex = 2, kGes = 3 };

// A primitive family: how it projects (Projector) and how its footprint covers a pixel (Window).
template <class ProjectorT, class WindowT>
struct Family {
    using Projector = ProjectorT;
    using Window = WindowT;
};

// Calls fn(Family<...>{}) for the family with id `family`; false when the id is unknown.
template <class Fn>
bool dispatch_family(int family, Fn&& fn) {
    switch (family) {
        case kGaussian: fn(Family<GaussianProjector, GaussianWindow>{}); return true;
        case kTriangle: fn(Family<TriangleProjector, TriangleWindow>{}); return true;
        case kConvex: fn(Family<ConvexProjector, ConvexWindow>{}); return true;
        case kGes: fn(Family<GesProjector, GesWindow>{}); return true;
        default: return false;
    }
}

}  // namespace recon
