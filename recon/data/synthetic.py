"""The embedded demo scene: analytic shapes ray-cast in PyTorch, with exact ground truth.

The scene is a few boxes and spheres standing on a square ground tile, coloured by smooth
procedural (solid) textures and lit by one directional light with Lambert shading (view
independent), in front of a constant background. It is rendered by the exact ray caster of
:mod:`recon.data.raycast`, which shares no code with the project's rasterizer, so it is an honest
reconstruction target.

World frame: z up, the ground tile is ``z = 0``, ``|x|, |y| <= ground half size``; objects sit
around the origin. Cameras use the OpenCV convention of :mod:`recon.cameras`.

Ground truth per view (pixel values refer to the ray through the pixel centre):

* image [H, W, 3]: the average over ``supersample x supersample`` rays per pixel (anti-aliased),
  in [0, 1], background colour in ``meta["background"]`` (white by default);
* depth [H, W]: camera z of the first hit (ground included), 0 where the ray sees background;
* mask [H, W]: 1 where the first hit is an object (box or sphere), 0 on ground and background.

``points``/``point_colors`` are surface samples (area-uniform on objects and ground) that are
seen by at least one camera, coloured with their exact shaded colour, as SfM would give them.
The default ``split`` holds out every 8th view (``i % 8 == 0``), the protocol ``recon demo``
uses (``split_views(scene, "generic")`` gives the same ids).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.data.raycast import Box, Ground, Sphere, SyntheticWorld, Texture
from recon.data.scene import SceneData

__all__ = [
    "Box",
    "Ground",
    "Sphere",
    "SyntheticWorld",
    "Texture",
    "camera_positions",
    "camera_rays",
    "default_world",
    "look_at",
    "make_synthetic_scene",
    "render_world",
    "surface_points",
]


@contextmanager
def single_thread() -> Iterator[None]:
    """Runs torch on one intra-op thread inside the block (restored after).

    The ray batches here are small (one view at a time); on a shared CPU extra threads only add
    contention (measured 3.3 s with 2 threads vs 0.9 s with 1 under load).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------- scene content
def default_world(background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> SyntheticWorld:
    """The demo scene: two boxes and two spheres on a soft checker ground tile (4.4 x 4.4 units)."""
    return SyntheticWorld(
        objects=(
            Box(
                (-0.45, -0.55, 0.4),
                (0.32, 0.26, 0.4),
                0.35,
                Texture("checker", (0.85, 0.25, 0.2), (0.95, 0.8, 0.3), period=0.3),
                "red_box",
            ),
            Box(
                (0.55, 0.6, 0.25),
                (0.25, 0.3, 0.25),
                -0.5,
                Texture("gradient", (0.15, 0.35, 0.8), (0.4, 0.85, 0.9), period=0.3, axis=2),
                "blue_box",
            ),
            Sphere(
                (0.55, -0.35, 0.42),
                0.42,
                Texture("stripes", (0.2, 0.65, 0.3), (0.9, 0.95, 0.6), period=0.28, axis=2),
                "green_sphere",
            ),
            Sphere(
                (-0.6, 0.55, 0.28),
                0.28,
                Texture("gradient", (0.55, 0.2, 0.6), (0.95, 0.6, 0.75), period=0.3, axis=0),
                "pink_sphere",
            ),
        ),
        ground=Ground(
            2.2,
            Texture("checker", (0.45, 0.42, 0.38), (0.8, 0.78, 0.72), period=0.45, sharpness=2.0),
        ),
        background=background,
    )


# ---------------------------------------------------------------------------------- cameras
def look_at(
    eyes: Tensor, target: Tensor, up: tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> Tensor:
    """[N, 4, 4] OpenCV world-to-camera matrices of cameras at ``eyes`` [N, 3] looking at ``target`` [3]."""
    f = torch.nn.functional.normalize(target - eyes, dim=-1)
    r = torch.nn.functional.normalize(
        torch.cross(f, torch.tensor(up, dtype=eyes.dtype).expand_as(f), dim=-1), dim=-1
    )
    dn = torch.cross(f, r, dim=-1)  # x right, y down, z forward: r x dn = f
    c2w = torch.eye(4, dtype=eyes.dtype).repeat(eyes.shape[0], 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = r, dn, f, eyes
    return torch.linalg.inv(c2w)


def camera_positions(
    num_views: int, layout: str, radius: float, gen: torch.Generator, jitter: float = 1.0
) -> Tensor:
    """[N, 3] camera centres around the origin.

    ``"ring"``: equal azimuth steps at 25 degrees elevation; ``"hemisphere"``: a Fibonacci spiral
    between 12 and 65 degrees elevation. A seeded global azimuth offset and small per-camera
    jitter (scaled by ``jitter``) make each seed a different capture.
    """
    i = torch.arange(num_views, dtype=torch.float64)
    az0 = float(torch.rand(1, generator=gen, dtype=torch.float64)) * 2.0 * math.pi
    noise = (torch.rand(num_views, 3, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * jitter
    if layout == "ring":
        az = az0 + 2.0 * math.pi * i / num_views + noise[:, 0] * math.radians(3.0)
        el = math.radians(25.0) + noise[:, 1] * math.radians(3.0)
    elif layout == "hemisphere":
        az = az0 + i * math.pi * (3.0 - math.sqrt(5.0))  # golden angle
        lo, hi = math.sin(math.radians(12.0)), math.sin(math.radians(65.0))
        el = torch.asin(lo + (hi - lo) * (i + 0.5) / num_views) + noise[:, 1] * math.radians(2.0)
    else:
        raise ValueError(f"unknown camera layout {layout!r}: use 'ring' or 'hemisphere'")
    r = radius * (1.0 + 0.04 * noise[:, 2])
    return torch.stack([r * el.cos() * az.cos(), r * el.cos() * az.sin(), r * el.sin()], dim=-1)


# ---------------------------------------------------------------------------------- rendering
def camera_rays(cameras: Cameras, offsets: Tensor) -> tuple[Tensor, Tensor]:
    """World rays through sub-pixel ``offsets`` [S, 2] (in [0, 1)) of every pixel.

    Returns:
        origins [V, S, H, W, 3] and directions [V, S, H, W, 3] scaled so that t = camera z.
    """
    W, H = cameras.width, cameras.height
    K = cameras.Ks.double()
    c2w = torch.linalg.inv(cameras.viewmats.double())
    jj, ii = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    u = ii[None] + offsets[:, 0, None, None]  # [S, H, W]
    v = jj[None] + offsets[:, 1, None, None]
    x = (u[None] - K[:, 0, 2, None, None, None]) / K[:, 0, 0, None, None, None]  # [V, S, H, W]
    y = (v[None] - K[:, 1, 2, None, None, None]) / K[:, 1, 1, None, None, None]
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    d = torch.einsum("vij,vshwj->vshwi", c2w[:, :3, :3], d_cam)
    o = c2w[:, None, None, None, :3, 3].expand_as(d)
    return o, d


def render_world(
    world: SyntheticWorld,
    cameras: Cameras,
    supersample: int = 2,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """Ray-casts ``world`` into every camera (all of one size) in precision ``dtype``.

    Returns:
        images [V, H, W, 3] (mean of supersample^2 rays per pixel), depths [V, H, W] (camera z
        at the pixel centre, 0 on background), masks [V, H, W] (1 where an object is hit).
    """
    s = supersample
    grid = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    offsets = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), dim=-1).reshape(-1, 2)
    centre = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    o, d = camera_rays(cameras, torch.cat([centre, offsets]))  # [V, 1+S, H, W, 3]
    V, S1, H, W, _ = d.shape
    ts, sids, ps = [], [], []
    with single_thread():
        for v in range(V):  # one origin per view makes every intersection test cheaper
            ov, dv = o[v, 0, 0, 0].to(dtype), d[v].reshape(-1, 3).to(dtype)
            t, sid = world.cast(ov, dv)
            ts.append(t)
            sids.append(sid)
            ps.append(ov + torch.where(torch.isfinite(t), t, 0.0)[:, None] * dv)
        t, sid, p = torch.cat(ts), torch.cat(sids), torch.cat(ps)
        rgb = world.shade(p, sid).reshape(V, S1, H, W, 3)
    t, sid = t.reshape(V, S1, H, W), sid.reshape(V, S1, H, W)
    images = rgb[:, 1:].mean(1)
    depths = torch.where(sid[:, 0] >= 0, t[:, 0], torch.zeros_like(t[:, 0]))
    masks = (sid[:, 0] >= 1).to(torch.float32)
    return images.float().clamp(0.0, 1.0), depths.float(), masks


def surface_points(
    world: SyntheticWorld, num_points: int, gen: torch.Generator, cameras: Cameras, depths: Tensor
) -> tuple[Tensor, Tensor]:
    """Area-uniform surface samples seen by at least one camera, with their shaded colours.

    A sample is seen by a view when it projects inside the image and its camera z is within 1 %
    of the rendered depth at that pixel (it is the first hit, not occluded).

    Returns:
        points [P, 3] and colours [P, 3] (float32), P <= num_points.
    """
    dt = torch.float64
    areas = torch.tensor([s.area for s in world.surfaces], dtype=dt)
    n_draw = 2 * num_points
    counts = torch.bincount(
        torch.multinomial(areas, n_draw, replacement=True, generator=gen), minlength=len(areas)
    )
    pts, sids = [], []
    for k, (surf, n) in enumerate(zip(world.surfaces, counts.tolist())):
        pts.append(surf.sample(n, gen, dt))
        sids.append(torch.full((n,), k, dtype=torch.long))
    p, sid = torch.cat(pts), torch.cat(sids)
    perm = torch.randperm(p.shape[0], generator=gen)
    p, sid = p[perm], sid[perm]

    uv, z = cameras.to("cpu").project(p.float())  # [V, P, 2], [V, P]
    W, H = cameras.width, cameras.height
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    v_idx = torch.arange(len(cameras))[:, None].expand_as(col)
    d_img = depths[v_idx, row.clamp(0, H - 1), col.clamp(0, W - 1)]
    seen = (inside & (d_img > 0) & ((z - d_img).abs() <= 0.01 * d_img)).any(0)
    p, sid = p[seen][:num_points], sid[seen][:num_points]
    return p.float(), world.shade(p, sid).float()


# ---------------------------------------------------------------------------------- scene
@dataclass(frozen=True)
class SyntheticSpec:
    """The arguments of :func:`make_synthetic_scene`, stored in ``scene.meta["synthetic"]``."""

    num_views: int = 24
    width: int = 128
    height: int = 96
    seed: int = 0
    layout: str = "ring"
    fov_deg: float = 50.0
    radius: float = 4.2
    supersample: int = 2
    num_points: int = 4000
    test_every: int = 8
    background: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))


def make_synthetic_scene(
    num_views: int = 24,
    width: int = 128,
    height: int = 96,
    seed: int = 0,
    layout: str = "ring",
    *,
    fov_deg: float = 50.0,
    radius: float = 4.2,
    supersample: int = 2,
    num_points: int = 4000,
    test_every: int = 8,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> SceneData:
    """Renders the embedded demo scene (see the module docstring for what is exact).

    Args:
        num_views: number of cameras.
        width: image width in pixels.
        height: image height in pixels.
        seed: seeds the camera azimuth offset and jitter and the surface samples.
        layout: ``"ring"`` (equal steps at one elevation) or ``"hemisphere"`` (spiral).
        fov_deg: horizontal field of view; square pixels, principal point at the image centre.
        radius: camera distance from the origin.
        supersample: rays per pixel along each axis for the anti-aliased images.
        num_points: surface samples returned in ``points`` / ``point_colors``.
        test_every: ``split["test"]`` is every ``test_every``-th view (``i % test_every == 0``).
        background: RGB of the background (also in ``meta["background"]``).

    Returns:
        A ``SceneData`` of format ``"synthetic"`` with images, cameras, depths, masks, points,
        a ``split`` and ``meta`` (``background``, ``synthetic`` = these arguments, ``near``/``far``).
    """
    if num_views < 1 or width < 1 or height < 1 or supersample < 1:
        raise ValueError("num_views, width, height and supersample must be positive")
    spec = SyntheticSpec(
        num_views,
        width,
        height,
        seed,
        layout,
        fov_deg,
        radius,
        supersample,
        num_points,
        test_every,
        tuple(float(c) for c in background),
    )
    gen = torch.Generator().manual_seed(seed)
    world = default_world(spec.background)
    eyes = camera_positions(num_views, layout, radius, gen)
    viewmats = look_at(eyes, torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64))
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
    cameras = Cameras.create(np.tile(K, (num_views, 1, 1)), viewmats.numpy(), width, height)

    with single_thread():
        images, depths, masks = render_world(world, cameras, supersample)
        points, colors = surface_points(world, num_points, gen, cameras, depths)
    test = [i for i in range(num_views) if test_every > 0 and i % test_every == 0]
    fg = depths[depths > 0]
    return SceneData(
        images=list(images.unbind(0)),
        cameras=cameras,
        names=[f"view_{i:03d}.png" for i in range(num_views)],
        format="synthetic",
        root=Path("<synthetic>"),
        masks=list(masks.unbind(0)),
        depths=list(depths.unbind(0)),
        points=points,
        point_colors=colors,
        split={"train": [i for i in range(num_views) if i not in test], "test": test},
        meta={
            "background": list(spec.background),
            "synthetic": asdict(spec),
            "near": float(fg.min()) if fg.numel() else 0.1,
            "far": float(fg.max()) if fg.numel() else 10.0,
            "objects": [s.name for s in world.objects],
        },
    )
