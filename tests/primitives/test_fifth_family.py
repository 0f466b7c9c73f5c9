"""A fifth primitive family defined entirely in this file and registered with one call.

"student" primitives are Gaussians (same parameters, projection and activations) with a heavy-tailed
radial window ``(1 + p / 2)^-4`` (``p = q / 2``, half the Mahalanobis distance squared) and a
reference backend only. Nothing in ``recon`` names them: ``render()`` draws them, a per-pixel
float64 oracle written below agrees, and the Trainer trains them from a config section of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig, config_from_dict, override
from recon.ops.family import GAUSSIAN, RasterFamily
from recon.ops.reference.composite import ALPHA_MIN
from recon.ops.reference.project import project_gaussians
from recon.ops.reference.rasterize import composite_window, conic_power
from recon.primitives import FAMILIES, Family, PrimitiveSpec, gaussian, register_family
from recon.render import render, render_views
from recon.run import load_training_scene
from recon.train.losses import psnr
from recon.train.setup import initial_cloud, make_split
from recon.train.trainer import Trainer
from tests.ops.scenes import cameras

# ----------------------------------------------------------------------------- the family (all of it)
SPEC = PrimitiveSpec("student", gaussian.SPEC.activations)
POWER = 4.0  # window exponent


def student_extent(opacities: Tensor) -> Tensor:
    """[N] footprint half size in standard deviations: ``o (1 + p/2)^-4 >= 1/255`` iff
    ``p <= 2 ((255 o)^(1/4) - 1)``, the ellipse ``q = 2p``."""
    with torch.no_grad():
        p_max = 2.0 * ((opacities.double() / ALPHA_MIN).clamp_min(1.0) ** (1.0 / POWER) - 1.0)
        return (torch.sqrt(2.0 * p_max) * (1.0 + 1e-6)).to(opacities.dtype)


def project_students(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10,
                     eps2d=0.3):  # fmt: skip
    return project_gaussians(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
                             extent=student_extent(opacities))  # fmt: skip


def student_window(ids: Tensor, pixels: Tensor, means2d: Tensor, conics: Tensor) -> Tensor:
    power = conic_power(ids, pixels, means2d, conics)  # [B, K, P]
    return torch.where(power >= 0, (1.0 + 0.5 * power.clamp_min(0)) ** -POWER, torch.zeros_like(power))


def rasterize_students_to_pixels(means2d: Tensor, conics: Tensor, *args, **kwargs):
    return composite_window(student_window, (means2d, conics), *args, **kwargs)


RASTER = RasterFamily(
    name="student", plural="students", kernel_id=None, inputs=GAUSSIAN.inputs, position="means",
    project_inputs=("means", "quats", "scales", "opacities"), num_grad_inputs=3, options={"eps2d": 0.3},
    reference_project=project_students, reference_to_pixels=rasterize_students_to_pixels, window=GAUSSIAN.window,
    pack_window=GAUSSIAN.pack_window, footprint_handle=False, check=GAUSSIAN.check,
)  # fmt: skip


@dataclass(frozen=True)
class StudentConfig:
    init_opacity: float = 0.3
    init_scale_mult: float = 0.7
    means_lr: float = 1.6e-4
    quats_lr: float = 1e-3
    scales_lr: float = 5e-3
    opacities_lr: float = 5e-2


FAMILY = Family(SPEC, RASTER, StudentConfig, gaussian.init_from_points, gaussian.centers, ("default", "none"))


@pytest.fixture
def student():
    fam = register_family(FAMILY)  # the table line
    yield fam
    del FAMILIES["student"]


# ----------------------------------------------------------------------------- the oracle
def _rotmat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])  # fmt: skip


def oracle(act: dict[str, np.ndarray], viewmat: np.ndarray, K: np.ndarray, W: int, H: int, bg: np.ndarray):
    """One view, pixel by pixel in float64: EWA projection (+0.3 px^2 dilation), the student window,
    primitives front to back, alpha = min(0.99, o w) skipped below 1/255, stop before T <= 1e-4.
    Returns rgb [H, W, 3] and alpha [H, W]."""
    prims = []
    for n in range(len(act["opacities"])):
        R, s = _rotmat(act["quats"][n]), act["scales"][n]
        cov3 = R @ np.diag(s * s) @ R.T
        x, y, z = viewmat[:3, :3] @ act["means"][n] + viewmat[:3, 3]
        assert abs(x / z) < 0.5 and abs(y / z) < 0.4  # well inside the view: gsplat's clamp is inactive
        fx, fy = K[0, 0], K[1, 1]
        J = np.array([[fx / z, 0, -fx * x / z**2], [0, fy / z, -fy * y / z**2]])
        cov2 = J @ viewmat[:3, :3] @ cov3 @ viewmat[:3, :3].T @ J.T + 0.3 * np.eye(2)
        color = np.maximum(0.28209479177387814 * act["sh0"][n, 0] + 0.5, 0.0)
        prims.append((z, np.array([fx * x / z + K[0, 2], fy * y / z + K[1, 2]]), np.linalg.inv(cov2), color,
                      act["opacities"][n]))  # fmt: skip
    prims.sort(key=lambda p: p[0])
    rgb, alpha = np.zeros((H, W, 3)), np.zeros((H, W))
    for py in range(H):
        for px in range(W):
            T, c = 1.0, np.zeros(3)
            for _, mean, conic, color, o in prims:
                d = np.array([px + 0.5, py + 0.5]) - mean
                a = min(0.99, o * (1.0 + 0.25 * d @ conic @ d) ** -POWER)  # p/2 = q/4
                if a < 1 / 255:
                    continue
                if T * (1 - a) <= 1e-4:
                    break
                c, T = c + a * T * color, T * (1 - a)
            rgb[py, px], alpha[py, px] = c + T * bg, 1 - T
    return rgb, alpha


def _raw(n: int, gen: torch.Generator) -> dict[str, Tensor]:
    raw = gaussian.init_from_points((torch.rand(n, 3, generator=gen) - 0.5) * 0.8, torch.rand(n, 3, generator=gen),
                                    sh_degree=0)  # fmt: skip
    raw["quats"] = torch.randn(n, 4, generator=gen)
    raw["scales"] = torch.log(0.04 + 0.12 * torch.rand(n, 3, generator=gen))
    raw["opacities"] = torch.logit(0.3 + 0.65 * torch.rand(n, generator=gen))
    return raw


def test_render_of_a_registered_family_matches_the_per_pixel_oracle(student):
    W, H = 28, 20
    viewmats, Ks = cameras(2, W, H)
    raw = _raw(14, torch.Generator().manual_seed(3))
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    cams = Cameras.create(Ks.float(), viewmats.float(), W, H)
    out = render("student", raw, cams, sh_degree=0, backgrounds=bg, backend="reference")
    auto = render("student", raw, cams, sh_degree=0, backgrounds=bg)  # no kernel: auto renders the reference
    torch.testing.assert_close(auto.rgb, out.rgb, rtol=0, atol=0)
    act = {k: v.double().numpy() for k, v in SPEC.activate(raw).items()}
    for v in range(2):
        rgb, alpha = oracle(act, viewmats[v].float().double().numpy(), Ks[v].float().double().numpy(), W, H,
                            bg[v].double().numpy())  # fmt: skip
        assert alpha.max() > 0.8 and alpha.min() < 0.1  # primitives and background both on screen
        np.testing.assert_allclose(out.rgb[v].numpy(), rgb, rtol=0, atol=1e-5)
        np.testing.assert_allclose(out.alpha[v, ..., 0].numpy(), alpha, rtol=0, atol=1e-5)
    as_gaussians = render("gaussian", raw, cams, sh_degree=0, backgrounds=bg, backend="reference")
    assert (as_gaussians.rgb - out.rgb).abs().max() > 0.05  # the family's own window was drawn


def test_trainer_trains_a_registered_family_from_its_own_config_section(student):
    cfg = override(TrainConfig(), **{
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24, "data.synthetic_views": 8,
        "data.test_every": 4, "data.protocol": "generic", "primitive": "student", "student.init_opacity": 0.4,
        "iterations": 50, "init.method": "scene", "init.max_points": 300, "optim.sh_degree": 0,
        "strategy.refine_start": 20, "strategy.refine_every": 20, "strategy.reset_every": 100000,
        "checkpoint_every": 0, "sparse.enabled": False, "backend": "reference",
    })  # fmt: skip
    assert config_from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["student"]["init_opacity"] == 0.4
    scene = load_training_scene(cfg.data)
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, None)
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    torch.testing.assert_close(torch.sigmoid(tr.params["opacities"].detach()), torch.full((tr.num_primitives,), 0.4))
    assert tr.optimizers["means"].param_groups[0]["lr"] == pytest.approx(1.6e-4 * scene.scene_scale)

    def test_psnr() -> float:
        outs = render_views("student", tr.params, scene.cameras[list(split.test)], sh_degree=0,
                            background=tr.background, backend="reference")  # fmt: skip
        return sum(psnr(o.rgb[0].clamp(0, 1), scene.images[i]) for o, i in zip(outs, split.test)) / len(outs)

    before, n0 = test_psnr(), tr.num_primitives
    res = tr.train(install_sigint=False)
    assert res.step == 50 and tr.num_primitives > n0  # the Gaussian strategy densified them
    assert test_psnr() > before + 1.0


def test_register_family_rejects_records_the_trainer_could_not_use(student):
    with pytest.raises(ValueError, match="already registered"):
        register_family(dataclasses.replace(FAMILY, strategies=("none",)))

    @dataclass(frozen=True)
    class NoQuatsLr:
        means_lr: float = 1.0
        scales_lr: float = 1.0
        opacities_lr: float = 1.0

    other = dataclasses.replace(FAMILY, spec=PrimitiveSpec("other", SPEC.activations), raster=dataclasses.replace(
        RASTER, name="other"))  # fmt: skip
    with pytest.raises(ValueError, match=r"no learning rate for \['quats'\]"):
        register_family(dataclasses.replace(other, config=NoQuatsLr))
    with pytest.raises(ValueError, match="frozen dataclass"):
        register_family(dataclasses.replace(other, config=dataclass(type("Mutable", (), {"__annotations__": {}}))))
    with pytest.raises(ValueError, match="identifier other than"):
        register_family(dataclasses.replace(other, spec=PrimitiveSpec("loss", SPEC.activations),
                                            raster=dataclasses.replace(RASTER, name="loss")))  # fmt: skip
    assert "other" not in FAMILIES and "loss" not in FAMILIES
