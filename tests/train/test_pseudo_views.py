"""The trainer's pseudo-view hook: densification statistics come from the real view only, and the
optimizer steps on the real gradient plus the pseudo-view gradient."""

from __future__ import annotations

import pytest
import torch

from recon.config import TrainConfig, override
from recon.render import render
from recon.repair.source import PseudoView, between_cameras
from recon.run import load_training_scene
from recon.train.losses import weighted_l1
from recon.train.setup import initial_cloud, make_split
from recon.train.trainer import Trainer


def _config(primitive: str) -> TrainConfig:
    return override(TrainConfig(), **{
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
        "data.synthetic_views": 6, "data.test_every": 3, "primitive": primitive, "iterations": 10,
        "init.max_points": 150, "optim.sh_degree": 0, "strategy.refine_start": 1000, "checkpoint_every": 0,
        "sparse.enabled": False, "loss.background": "black"})  # fmt: skip


class _Fixed:
    """A pseudo-view source with one grey view (a target the real views do not agree with)."""

    def __init__(self, view: PseudoView):
        self.view = view

    def views(self, step: int) -> list[PseudoView]:
        return [self.view]


def _trainer(config: TrainConfig) -> Trainer:
    scene = load_training_scene(config.data)
    split = make_split(scene, config.data)
    trainer = Trainer(config, scene, split, None)
    trainer.init_from_cloud(initial_cloud(scene, split.train, config.init, config.seed))
    return trainer


def _strategy_inputs(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Records the gradients the strategy's post-backward hook is handed."""
    seen: dict[str, torch.Tensor] = {}
    hook = trainer.strategy.step_post_backward

    def post(params, optimizers, state, step, info):
        seen.update({f"param_grads.{k}": g.clone() for k, g in info["param_grads"].items() if g is not None})
        if info["means2d"].grad is not None:
            seen["means2d"] = info["means2d"].grad.clone()
        return hook(params, optimizers, state, step, info)

    trainer.strategy.step_post_backward = post
    return seen


def _grads_at_step(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Records each parameter's gradient when its optimizer steps."""
    seen: dict[str, torch.Tensor] = {}
    for name, opt in trainer.optimizers.items():
        def step(*args, _name=name, _step=opt.step, **kwargs):
            seen[_name] = trainer.params[_name].grad.clone()
            return _step(*args, **kwargs)

        opt.step = step
    return seen


@pytest.mark.parametrize("primitive", ["gaussian", "convex"])
def test_pseudo_views_leave_densification_statistics_alone(primitive):
    config = _config(primitive)
    real, both = _trainer(config), _trainer(config)
    for step in range(3):  # identical warm-up: the strategies accumulate statistics every step
        real.train_step(step)
        both.train_step(step)
    cam = between_cameras(both.cameras)[0]
    h, w = cam.height, cam.width
    weight = torch.linspace(0, 1, h * w).reshape(h, w)
    view = PseudoView(cam, torch.full((h, w, 3), 0.5), weight)
    both.pseudo_source = _Fixed(view)

    # independent oracle of the pseudo-view gradient, from the parameters before the step
    params = {k: p.detach().clone().requires_grad_(True) for k, p in both.params.items()}
    out = render(primitive, params, cam, sh_degree=0, backgrounds=torch.zeros(1, 3), backend=config.backend)
    loss = weighted_l1(out.rgb[0], view.image, weight)
    names = list(params)
    pseudo = dict(zip(names, torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True), strict=True))

    g_real, g_both = _grads_at_step(real), _grads_at_step(both)
    s_real, s_both = _strategy_inputs(real), _strategy_inputs(both)
    real.train_step(3)
    stats = both.train_step(3)
    assert stats["repair"] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert s_real.keys() == s_both.keys() and "param_grads.opacities" in s_real
    for key in s_real:  # the strategy was handed the real view's gradients only
        assert torch.equal(s_real[key], s_both[key]), key
    if primitive == "gaussian":  # statistics of the default strategy: means2d gradients alone
        assert "means2d" in s_real
        for key, value in real.strategy_state.items():
            assert torch.equal(value, both.strategy_state[key]), key
    for name in g_real:  # the optimizer saw both
        expected = g_real[name] + (pseudo[name] if pseudo[name] is not None else 0)
        assert torch.allclose(g_both[name], expected, rtol=1e-5, atol=1e-8), name
    assert any(not torch.equal(real.params[k], both.params[k]) for k in real.params)
