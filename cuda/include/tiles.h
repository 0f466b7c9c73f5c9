// Tile binning helpers shared by every primitive family (gsplat `_isect_tiles` conventions).
#pragma once

#include "common.h"

namespace recon {

struct TileRange {
    int x0, y0, x1, y1;  // [x0, x1) x [y0, y1)
    RECON_HD int count() const { return (x1 - x0) * (y1 - y0); }
};

RECON_HD int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Tiles touched by the box means2d +- radii: floor((m - r) / ts) .. ceil((m + r) / ts), clamped.
// Empty when either radius is <= 0 (culled).
RECON_HD TileRange tile_range(float mx, float my, int32_t rx, int32_t ry, int tile_size,
                              int tile_width, int tile_height) {
    TileRange r{0, 0, 0, 0};
    if (rx <= 0 || ry <= 0) return r;
    const float ts = (float)tile_size;
    const float tmx = mx / ts, tmy = my / ts, trx = (float)rx / ts, try_ = (float)ry / ts;
    r.x0 = clampi((int)floorf(tmx - trx), 0, tile_width);
    r.y0 = clampi((int)floorf(tmy - try_), 0, tile_height);
    r.x1 = clampi((int)ceilf(tmx + trx), 0, tile_width);
    r.y1 = clampi((int)ceilf(tmy + try_), 0, tile_height);
    if (r.x1 < r.x0) r.x1 = r.x0;
    if (r.y1 < r.y0) r.y1 = r.y0;
    return r;
}

}  // namespace recon
