"""The embedded demo scene against analytic geometry (independent of the ray caster's code paths)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.cameras import Cameras
from recon.data.synthetic import (
    Box,
    Ground,
    Sphere,
    SyntheticWorld,
    Texture,
    default_world,
    look_at,
    make_synthetic_scene,
    render_world,
)

GREY = Texture("gradient", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def scene():
    return make_synthetic_scene(num_views=8, width=64, height=48, seed=3, num_points=1500)


def _camera(eye, target, width=65, height=49, f=60.0) -> Cameras:
    """One camera whose centre pixel's centre ray is exactly the optical axis (odd sizes)."""
    viewmat = look_at(
        torch.tensor([eye], dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    )
    K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
    return Cameras.create(K[None], viewmat.numpy(), width, height)


def _unproject(cameras: Cameras, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [V, H, W, 3] of pixel centres at the given camera-z depths, computed in float64."""
    _, H, W = depths.shape
    jj, ii = torch.meshgrid(
        torch.arange(H, dtype=torch.float64) + 0.5,
        torch.arange(W, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    K = cameras.Ks.double()
    x = (ii - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None] * depths.double()
    y = (jj - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None] * depths.double()
    cam = torch.stack([x, y, depths.double()], dim=-1)
    c2w = torch.linalg.inv(cameras.viewmats.double())
    return torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], cam) + c2w[:, None, None, :3, 3], cam


def _distance_to_surfaces(world: SyntheticWorld, p: torch.Tensor) -> torch.Tensor:
    """[P] distance of points [P, 3] to the nearest surface, from each shape's analytic SDF."""
    dists = [p[:, 2].abs()]  # the ground plane
    for obj in world.objects:
        if isinstance(obj, Sphere):
            dists.append(
                ((p - torch.tensor(obj.center, dtype=p.dtype)).norm(dim=-1) - obj.radius).abs()
            )
        else:
            c, s = math.cos(obj.yaw), math.sin(obj.yaw)
            q = p - torch.tensor(obj.center, dtype=p.dtype)
            q = torch.stack(
                [c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1], q[:, 2]], dim=-1
            )
            e = q.abs() - torch.tensor(obj.half_size, dtype=p.dtype)
            sdf = e.clamp_min(0).norm(dim=-1) + e.amax(-1).clamp_max(0)
            dists.append(sdf.abs())
    return torch.stack(dists).amin(0)


def test_centre_ray_hits_sphere_at_distance_minus_radius():
    sphere = Sphere((0.3, -0.2, 0.5), 0.4, GREY)
    world = SyntheticWorld(objects=(sphere,), ground=Ground(1.0, GREY))
    eye = (2.5, 1.7, 1.9)
    cams = _camera(eye, sphere.center)
    _, depth, mask = render_world(world, cams, supersample=1)
    expected = math.dist(eye, sphere.center) - sphere.radius
    assert depth[0, 24, 32].item() == pytest.approx(expected, rel=1e-5)
    assert mask[0, 24, 32] == 1


def test_box_top_seen_from_above_and_ground_depth():
    box = Box((0.0, 0.0, 0.3), (0.2, 0.3, 0.3), 0.4, GREY)
    world = SyntheticWorld(objects=(box,), ground=Ground(3.0, GREY))
    # looking straight down needs an up vector that is not parallel to the view direction
    viewmat = look_at(
        torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float64),
        torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64),
        up=(0.0, 1.0, 0.0),
    )
    K = np.array([[40.0, 0.0, 32.5], [0.0, 40.0, 24.5], [0.0, 0.0, 1.0]])
    cams = Cameras.create(K[None], viewmat.numpy(), 65, 49)
    _, depth, mask = render_world(world, cams, supersample=1)
    assert depth[0, 24, 32].item() == pytest.approx(3.0 - 0.6, rel=1e-6)  # top face at z = 0.6
    assert mask[0, 24, 32] == 1
    # a corner pixel sees the ground (z = 0) at camera z = 3, and it is not masked
    assert depth[0, 0, 0].item() == pytest.approx(3.0, rel=1e-6)
    assert mask[0, 0, 0] == 0


def test_every_depth_pixel_lies_on_a_surface(scene):
    world = default_world()
    pts, _ = _unproject(scene.cameras, torch.stack(scene.depths))
    valid = torch.stack(scene.depths) > 0
    assert valid.float().mean() > 0.5
    dist = _distance_to_surfaces(world, pts[valid])
    assert dist.max() < 2e-4 * scene.meta["far"]


def test_masks_are_objects_and_ground_is_unmasked(scene):
    depths, masks = torch.stack(scene.depths), torch.stack(scene.masks)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert bool((depths[masks > 0] > 0).all())  # every masked pixel has depth
    pts, _ = _unproject(scene.cameras, depths)
    ground = (depths > 0) & (masks == 0)
    assert pts[ground][:, 2].abs().max() < 1e-3  # unmasked hits are on the plane z = 0
    assert pts[masks > 0][:, 2].min() > -1e-3
    assert masks.mean() > 0.05 and (masks == 0).any()


def test_depth_maps_reproject_between_views(scene):
    depths = torch.stack(scene.depths)
    a, b = 0, 1
    pts, _ = _unproject(scene.cameras[a], depths[a : a + 1])
    valid = depths[a] > 0
    uv, z = scene.cameras[b].project(pts[0][valid].float())
    uv, z = uv[0].double(), z[0].double()
    H, W = depths.shape[1:]
    # bilinear lookup of B's inverse depth at the projected sub-pixel position, away from depth edges
    d_pad = torch.nn.functional.pad(depths[b][None, None], (1, 1, 1, 1), mode="replicate")
    spread = torch.nn.functional.max_pool2d(d_pad, 3, 1) + torch.nn.functional.max_pool2d(
        -d_pad, 3, 1
    )
    grid = torch.stack([(uv[:, 0] / W) * 2 - 1, (uv[:, 1] / H) * 2 - 1], dim=-1)[None, None].float()
    look = lambda img, mode: torch.nn.functional.grid_sample(
        img, grid, mode=mode, align_corners=False
    )[0, 0, 0].double()
    # inverse depth is affine in the pixel coordinates on a plane, so interpolate it
    inv_b = torch.where(depths[b] > 0, 1.0 / depths[b], 0.0)[None, None]
    d_b, edge = 1.0 / look(inv_b, "bilinear"), look(spread, "nearest")
    inside = (uv >= 0.5).all(-1) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] <= H - 0.5)
    smooth = inside & (look(depths[b][None, None], "nearest") > 0)
    smooth &= edge < 0.05 * d_b
    assert smooth.sum() > 0.3 * valid.sum()
    err = (z - d_b)[smooth] / d_b[smooth]
    # a point of A is either seen by B at B's depth, or occluded (farther than B's depth)
    # (interpolation across a box crease is not exact: allow a few percent there)
    visible = err.abs() < 2e-3
    assert visible.float().mean() > 0.6
    assert err[visible].abs().median() < 1e-5
    assert (err > -0.02).float().mean() > 0.99


def test_cameras_look_at_target_and_split(scene):
    uv, z = scene.cameras.project(torch.tensor([[0.0, 0.0, 0.3]]))
    assert torch.allclose(uv[:, 0], torch.tensor([[32.0, 24.0]]).expand(8, 2), atol=1e-3)
    assert bool((z > 0).all())
    c2w = scene.cameras.camtoworlds
    # OpenCV axes: rotation is proper, and the camera's y (down) points toward world -z
    assert torch.allclose(torch.linalg.det(c2w[:, :3, :3]), torch.ones(8), atol=1e-5)
    assert bool((c2w[:, 2, 1] < 0).all())
    assert scene.split == {"train": [1, 2, 3, 4, 5, 6, 7], "test": [0]}
    assert scene.format == "synthetic" and scene.names[3] == "view_003.png"


def test_points_on_surfaces_with_image_colours(scene):
    world = default_world()
    assert 0 < scene.num_points <= 1500
    assert _distance_to_surfaces(world, scene.points.double()).max() < 1e-4
    # colour of a point = image colour where a view sees it (image is a 2x2 average: tolerance)
    uv, z = scene.cameras.project(scene.points)
    depths = torch.stack(scene.depths)
    col, row = uv[..., 0].floor().long().clamp(0, 63), uv[..., 1].floor().long().clamp(0, 47)
    v = torch.arange(8)[:, None].expand_as(col)
    gap = (depths[v, row, col] - z).abs()
    assert (gap < 0.02 * z).any(0).float().mean() > 0.98  # each point is seen by some view
    seen = gap < 0.002 * z
    images = torch.stack(scene.images)
    diff = (images[v, row, col] - scene.point_colors[None]).abs().amax(-1)[seen]
    assert diff.median() < 0.03


def test_deterministic_in_seed_and_layouts():
    a = make_synthetic_scene(num_views=4, width=32, height=24, seed=1, num_points=200)
    b = make_synthetic_scene(num_views=4, width=32, height=24, seed=1, num_points=200)
    c = make_synthetic_scene(num_views=4, width=32, height=24, seed=2, num_points=200)
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    assert torch.equal(a.points, b.points) and torch.equal(a.cameras.viewmats, b.cameras.viewmats)
    assert not torch.equal(a.cameras.viewmats, c.cameras.viewmats)
    h = make_synthetic_scene(num_views=12, width=32, height=24, layout="hemisphere", num_points=100)
    centers = h.cameras.centers
    elevation = torch.rad2deg(torch.asin(centers[:, 2] / centers.norm(dim=-1)))
    assert elevation.min() > 8 and elevation.max() < 70 and elevation.max() - elevation.min() > 30
    assert h.meta["synthetic"]["layout"] == "hemisphere"
    with pytest.raises(ValueError, match="layout"):
        make_synthetic_scene(num_views=2, width=8, height=8, layout="spiral")


def test_cast_with_per_ray_origins_matches_a_shared_origin():
    world = default_world()
    gen = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(4000, 3, generator=gen, dtype=torch.float64), dim=-1)
    d[:, 2] = -d[:, 2].abs()  # look down toward the scene
    o = torch.tensor([2.5, -1.0, 2.0], dtype=torch.float64) - 0.8 * d.mean(0)
    t1, s1 = world.cast(o, d - (o / 4.0))
    t2, s2 = world.cast(o.expand(4000, 3).contiguous(), d - (o / 4.0))
    assert torch.equal(s1, s2) and (s1 >= 1).any() and (s1 == 0).any() and (s1 == -1).any()
    assert torch.allclose(t1[s1 >= 0], t2[s2 >= 0], rtol=1e-12)
