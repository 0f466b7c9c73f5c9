"""The priors step of training: initial clouds, depth priors and the files in RUN/priors/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recon.data.scene import SceneData
from recon.errors import ConfigError, DataError
from recon.priors import init as init_mod
from recon.priors.init import depth_priors, initial_point_cloud, load_priors, save_priors

from .synthetic_views import make_views


def _scene(num_views: int = 4, with_masks: bool = True) -> tuple[SceneData, torch.Tensor]:
    images, cams, depth, masks = make_views(num_views, 80, 60, arc_deg=40)
    scene = SceneData(
        images=list(images), cameras=cams, names=[f"v{i}.png" for i in range(num_views)],
        format="synthetic", root=Path("synthetic"), masks=list(masks) if with_masks else None,
    )
    return scene, depth


def _surface_distance(p: torch.Tensor) -> torch.Tensor:
    p = p.double()
    return torch.minimum((p.norm(dim=-1) - 1).abs(), (p[:, 2] - 2.5).abs())


def test_mvs_cloud_uses_only_training_views_and_lies_on_surfaces():
    scene, _ = _scene(4, with_masks=False)
    # Corrupt the held-out view: if it were used, the cloud would carry its colour.
    scene.images[3] = torch.ones_like(scene.images[3])
    cloud = initial_point_cloud(scene, [0, 1, 2], method="mvs")
    assert cloud.source == "mvs" and len(cloud) > 500
    assert float(_surface_distance(cloud.points).median()) < 0.03
    assert float((cloud.colors.min(dim=-1).values > 0.99).float().mean()) < 0.01


def test_depth_priors_are_accurate_where_known():
    scene, depth = _scene(4, with_masks=False)
    depths = depth_priors(scene, [0, 1, 2], method="mvs")
    assert depths is not None and len(depths) == 3
    for k, d in enumerate(depths):
        assert d.shape == (60, 80)
        known = d > 0
        assert float(known.float().mean()) > 0.3
        assert float(((d - depth[k]).abs() / depth[k])[known].median()) < 0.02
    assert depth_priors(scene, [0, 1, 2], method="random") is None
    assert depth_priors(scene, [0], method="auto") is None  # one view: no stereo


def test_hull_auto_and_random():
    scene, _ = _scene(4, with_masks=True)
    hull = initial_point_cloud(scene, [0, 1, 2, 3], method="hull")
    assert hull.source == "hull" and len(hull) > 100
    auto = initial_point_cloud(scene, [0, 1, 2, 3], method="auto")
    assert auto.source == "mvs"
    # With masks, stereo is restricted to the object: the cloud hugs the unit sphere.
    r = auto.points.norm(dim=-1)
    assert float(r.median()) < 1.15 and float(r.quantile(0.9)) < 1.6
    rnd = initial_point_cloud(scene, [0, 1], method="random")
    assert rnd.source == "random" and len(rnd) == 10_000
    c2w = torch.linalg.inv(scene.cameras.viewmats[:2].double())
    half = 0.5 * float(c2w[:, :3, 3].norm(dim=-1).mean())  # cameras look at the origin
    assert float(rnd.points.abs().max()) <= half * 1.05


def test_bad_requests_raise_clear_errors():
    scene, _ = _scene(3, with_masks=False)
    with pytest.raises(ConfigError, match="unknown prior method"):
        initial_point_cloud(scene, [0, 1], method="magic")
    with pytest.raises(ConfigError, match="train ids"):
        initial_point_cloud(scene, [0, 7], method="mvs")
    with pytest.raises(DataError, match="masks"):
        initial_point_cloud(scene, [0, 1], method="hull")
    scene.masks = [torch.ones(10, 10)] * 3  # a mask folder that does not match the images
    with pytest.raises(DataError, match="mask"):
        initial_point_cloud(scene, [0, 1], method="hull")


def test_save_priors_round_trip_and_atomicity(tmp_path, monkeypatch):
    scene, depth = _scene(3, with_masks=False)
    cloud = initial_point_cloud(scene, [0, 1, 2], method="mvs")
    depths = [depth[0], torch.where(depth[1] > 3, depth[1], torch.zeros_like(depth[1]))]
    folder = save_priors(tmp_path, cloud, depths, names=["a", "b"])
    assert folder == tmp_path / "priors"
    back_cloud, back_depths = load_priors(tmp_path)
    torch.testing.assert_close(back_cloud.points, cloud.points)
    for d, b in zip(depths, back_depths):
        assert torch.equal(d > 0, b > 0)
        assert float((d - b).abs().max()) <= float(d.max()) / 65535 + 1e-5
    o3d = pytest.importorskip("open3d")
    assert len(o3d.io.read_point_cloud(str(folder / "points.ply")).points) == len(cloud)

    # A failure while writing leaves the previous priors untouched and no temp folder behind.
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(init_mod, "write_ply", boom)
    with pytest.raises(RuntimeError):
        save_priors(tmp_path, cloud, depths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["priors"]
    assert len(load_priors(tmp_path)[1]) == 2


def test_auto_falls_back_in_measured_order(monkeypatch):
    """auto: stereo, else SfM points, else the hull, else random; a prior that fails or finds
    too few points hands over to the next one."""
    scene, _ = _scene(3, with_masks=True)
    tried = []

    def failing(name, exc=None, n=0):
        def make(*_a, **_k):
            tried.append(name)
            if exc is not None:
                raise exc
            return init_mod.PointCloud(torch.rand(n, 3), torch.rand(n, 3), name)
        return make

    class FakeMVS:
        cloud = init_mod.PointCloud(torch.rand(50, 3), torch.rand(50, 3), "mvs")  # < AUTO_MIN_STEREO_POINTS

    monkeypatch.setattr(init_mod, "mvs_prior", lambda *a, **k: tried.append("mvs") or FakeMVS())
    monkeypatch.setattr(init_mod, "sfm_prior", failing("sfm", DataError("no matches")))
    assert initial_point_cloud(scene, [0, 1, 2], method="auto").source == "hull"
    assert tried == ["mvs", "sfm"]
    monkeypatch.setattr(init_mod, "hull_prior", failing("hull", n=20))
    assert initial_point_cloud(scene, [0, 1, 2], method="auto").source == "random"
    monkeypatch.setattr(init_mod, "sfm_prior", failing("sfm", n=500))
    assert initial_point_cloud(scene, [0, 1, 2], method="auto").source == "sfm"


def test_sparse_points_bound_the_plane_sweep_without_masks(monkeypatch):
    """A photo folder has SfM points but no masks: they set each view's sweep range (the same
    bounds depth_bounds gives for those points), tighter than the camera-spacing fallback."""
    from recon.priors.bounds import depth_bounds

    scene, _ = _scene(3, with_masks=False)
    seen = []
    monkeypatch.setattr(init_mod, "run_mvs", lambda images, Ks, viewmats, bounds, *a, **k: seen.append(bounds) or "res")
    init_mod._MVS_CACHE.clear()
    init_mod.mvs_prior(scene, [0, 1, 2])
    unbounded = seen.pop()
    gen = torch.Generator().manual_seed(0)
    scene.points = torch.nn.functional.normalize(torch.randn(200, 3, generator=gen), dim=-1)  # the unit sphere
    init_mod._MVS_CACHE.clear()
    init_mod.mvs_prior(scene, [0, 1, 2])
    init_mod._MVS_CACHE.clear()
    expected = depth_bounds(scene.cameras.viewmats, scene.points)
    assert torch.allclose(seen[0], expected)
    assert bool(((seen[0][:, 1] - seen[0][:, 0]) < (unbounded[:, 1] - unbounded[:, 0])).all())
