"""Per-image appearance: an affine colour transform per training image (NeRF-W / gsplat app-opt,
without the network).

Image ``v`` is modelled as ``A_v @ rgb + b_v`` of the scene's render, with ``A_v`` [3, 3] and
``b_v`` [3]; the pair is stored as one [3, 4] matrix ``[A | b]`` per image, initialised at the
identity and pulled toward it by a ridge. By default each step refits the rendered image's
transform in closed form (least squares against its photo, on the pixels the masks keep); gradient steps with Adam are
the alternative, and the way :mod:`recon.wild.bilateral` grids learn. Renders and evaluation use a
reference appearance: one image's transform, or the mean over the training images.
"""

from __future__ import annotations

import base64

import numpy as np
import torch
from torch import Tensor

from recon.errors import ConfigError

IDENTITY = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)  # [3, 4]


def apply_affine(rgb: Tensor, transform: Tensor) -> Tensor:
    """``A @ rgb + b`` per pixel.

    Args:
        rgb: [..., 3] colours.
        transform: [3, 4] ``[A | b]``.

    Returns:
        [..., 3] transformed colours (not clamped).
    """
    return rgb @ transform[:, :3].T + transform[:, 3]


def fit_affine(src: Tensor, dst: Tensor, ridge: float = 1e-6, weight: Tensor | None = None) -> Tensor:
    """Least-squares ``[A | b]`` [3, 4] mapping ``src`` colours onto ``dst`` colours.

    A small ridge pulls the solution toward the identity, so flat regions (rank-deficient
    colours) stay well posed.

    Args:
        src: [..., 3] colours (a render).
        dst: [..., 3] colours of the same pixels (a photo).
        ridge: weight of ``|[A | b] - I|^2`` per pixel count (per unit of total weight).
        weight: [...] per-pixel weights of the squared errors (0 = ignored), or None (all 1).
    """
    x = src.reshape(-1, 3).double()  # [P, 3]
    y = dst.reshape(-1, 3).double()  # [P, 3]
    xh = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # [P, 4]
    w = torch.ones_like(x[:, :1]) if weight is None else weight.reshape(-1, 1).double()  # [P, 1]
    lam = ridge * float(w.sum())
    eye = IDENTITY.double().to(x.device)  # [3, 4]
    gram = xh.T @ (w * xh) + lam * torch.eye(4, dtype=x.dtype, device=x.device)  # [4, 4]
    rhs = xh.T @ (w * y) + lam * eye.T  # [4, 3]
    return torch.linalg.solve(gram, rhs).T.to(src.dtype)  # [3, 4]


def encode_tensor(t: Tensor, compact: bool = False) -> list | dict:
    """A float32 tensor as JSON: nested lists, or (``compact``) its shape and little-endian bytes in base64.

    Both round-trip float32 exactly; the compact form keeps large grids small in a checkpoint's JSON.
    """
    t = t.detach().float().cpu().contiguous()
    if not compact:
        return t.tolist()
    return {"shape": list(t.shape), "float32_b64": base64.b64encode(t.numpy().astype("<f4").tobytes()).decode()}


def decode_tensor(value: list | dict, device: torch.device | str = "cpu") -> Tensor:
    """Inverse of :func:`encode_tensor` (either form)."""
    if isinstance(value, dict):
        raw = np.frombuffer(base64.b64decode(value["float32_b64"]), dtype="<f4").reshape(value["shape"])
        return torch.from_numpy(raw.astype(np.float32)).to(device)
    return torch.tensor(value, dtype=torch.float32, device=device)


class PerImageAppearance:
    """Trainable per-image colour parameters with their own Adam (base of the appearance models).

    One parameter per image, so Adam moves only the parameters of the images a step rendered
    (a shared [V, ...] tensor would let the momentum of the other images drift them). Subclasses
    set :attr:`kind`, apply the parameters in ``__call__`` and list their penalties in
    :meth:`regularisers`.

    Args:
        initial: [...] the identity value every image starts from.
        num_images: number of training images.
        lr: Adam learning rate.
        device: where the parameters live.
    """

    kind = ""
    compact = False  # state as base64 (large grids) instead of nested lists

    def __init__(self, initial: Tensor, num_images: int, lr: float, device: torch.device | str = "cpu"):
        self.params = [torch.nn.Parameter(initial.to(device).clone()) for _ in range(num_images)]  # V x [...]
        self.optimizer = torch.optim.Adam(self.params, lr=lr)

    @property
    def transforms(self) -> Tensor:
        """[V, ...] all parameters (detached)."""
        return torch.stack([p.detach() for p in self.params])

    def reference(self, which: int | None = None) -> Tensor:
        """[...] parameters of training image ``which``, or the mean over all of them (None)."""
        return self.transforms.mean(0) if which is None else self.params[which].detach()

    def regularisers(self, v: int) -> dict[str, Tensor]:
        """Weighted penalties of image ``v``'s parameters (loss-term name -> scalar)."""
        raise NotImplementedError

    def fit(self, v: int, rgb: Tensor, target: Tensor, weight: Tensor | None = None) -> None:
        """Closed-form update of image ``v``'s parameters from its render and photo, before the loss;
        models learnt by gradient steps only leave it out."""

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """Model kind, parameters and per-image Adam state as JSON values (float32 round-trips exactly)."""
        adam = [self._adam_state(p) for p in self.params]
        transforms = encode_tensor(self.transforms, self.compact)
        return {"model": self.kind, "transforms": transforms, "lr": self.optimizer.param_groups[0]["lr"], "adam": adam}

    def _adam_state(self, p: Tensor) -> dict | None:
        st = self.optimizer.state.get(p, {})
        if "step" not in st:
            return None
        moments = {k: encode_tensor(st[k], self.compact) for k in ("exp_avg", "exp_avg_sq")}
        return {"step": float(st["step"]), **moments}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` wrote (the model kind and the image count must match)."""
        kind = state.get("model", "affine")  # runs saved before the bilateral grid hold affine transforms
        if kind != self.kind:
            raise ConfigError(
                f"wild.appearance: the checkpoint holds a {kind} appearance, the run is configured for {self.kind}",
                hint=f"resume with wild.appearance {kind}",
            )
        values = decode_tensor(state["transforms"])  # [V, ...]
        if values.shape[0] != len(self.params) or values.shape[1:] != self.params[0].shape:
            raise ValueError(
                f"appearance of shape {tuple(values.shape)} for {len(self.params)} training images "
                f"of shape {tuple(self.params[0].shape)}"
            )
        self.optimizer.param_groups[0]["lr"] = state.get("lr", self.optimizer.param_groups[0]["lr"])
        for p, value, adam in zip(self.params, values, state.get("adam") or [None] * len(self.params), strict=True):
            with torch.no_grad():
                p.copy_(value)
            if adam:
                self.optimizer.state[p] = {
                    "step": torch.tensor(adam["step"], dtype=torch.float32),
                    "exp_avg": decode_tensor(adam["exp_avg"], p.device),
                    "exp_avg_sq": decode_tensor(adam["exp_avg_sq"], p.device),
                }


class AffineAppearance(PerImageAppearance):
    """[3, 4] colour transforms ``[A | b]`` of the training images, initialised at the identity.

    Two ways to learn them: ``closed`` refits image ``v``'s transform in closed form to the current
    render at every step it is rendered (:meth:`fit`; the ridge ``reg`` toward the identity, no
    learning rate, no Adam); ``adam`` takes gradient steps at ``lr`` with the squared distance from
    the identity as a loss term (:meth:`regularisers`). Adam moves each entry by about ``lr`` per
    step of its image, so with many images and few steps each the transforms lag far behind.

    Args:
        num_images: number of training images.
        lr: Adam learning rate (``adam``).
        device: where the transforms live.
        reg: weight of the squared distance from the identity.
        fit: ``closed`` or ``adam``.
    """

    kind = "affine"

    def __init__(
        self, num_images: int, lr: float, device: torch.device | str = "cpu", reg: float = 0.0, fit: str = "adam"
    ):
        super().__init__(IDENTITY, num_images, lr, device)
        self.reg = reg
        self.closed = fit == "closed"

    def __call__(self, v: int, rgb: Tensor) -> Tensor:
        """[..., 3] render of training image ``v`` in that image's appearance."""
        return apply_affine(rgb, self.params[v].detach() if self.closed else self.params[v])

    def fit(self, v: int, rgb: Tensor, target: Tensor, weight: Tensor | None = None) -> None:
        """``closed``: image ``v``'s transform := the ridge least-squares fit of ``rgb`` onto ``target``.

        (Trimming the worst 10 % of the pixels, or those over 3x the median error, measured 0.2-0.4 dB
        worse on the clean and appearance variants: the masks of ``weight`` are what leave transients out.)

        Args:
            rgb: [..., H, W, 3] the render of image ``v`` (detached here).
            target: [..., H, W, 3] the photo.
            weight: [H, W] pixels to trust (user and transient masks), or None.
        """
        if self.closed:
            with torch.no_grad():
                self.params[v].copy_(fit_affine(rgb.detach(), target, max(self.reg, 1e-6), weight))

    def step(self) -> None:
        if not self.closed:
            super().step()

    def regulariser(self, v: int) -> Tensor:
        """Squared distance of image ``v``'s transform from the identity (sum over its 12 entries)."""
        return (self.params[v] - IDENTITY.to(self.params[v].device)).square().sum()

    def regularisers(self, v: int) -> dict[str, Tensor]:
        """``appearance_reg``: ``reg`` x :meth:`regulariser` (nothing when ``reg`` is 0, or ``closed``:
        the ridge of the fit holds it)."""
        return {"appearance_reg": self.reg * self.regulariser(v)} if self.reg > 0 and not self.closed else {}
