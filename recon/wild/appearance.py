"""Per-image appearance: an affine colour transform per training image (NeRF-W / gsplat app-opt,
without the network).

Image ``v`` is modelled as ``A_v @ rgb + b_v`` of the scene's render, with ``A_v`` [3, 3] and
``b_v`` [3]; the pair is stored as one [3, 4] matrix ``[A | b]`` per image, initialised at the
identity and pulled back to it by an L2 penalty. Renders and evaluation use a reference
appearance: one image's transform, or the mean over the training images.
"""

from __future__ import annotations

import torch
from torch import Tensor

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


def fit_affine(src: Tensor, dst: Tensor, ridge: float = 1e-6) -> Tensor:
    """Least-squares ``[A | b]`` [3, 4] mapping ``src`` colours onto ``dst`` colours.

    A small ridge pulls the solution toward the identity, so flat regions (rank-deficient
    colours) stay well posed.

    Args:
        src: [..., 3] colours (a render).
        dst: [..., 3] colours of the same pixels (a photo).
        ridge: weight of ``|[A | b] - I|^2`` per pixel count.
    """
    x = src.reshape(-1, 3).double()  # [P, 3]
    y = dst.reshape(-1, 3).double()  # [P, 3]
    xh = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # [P, 4]
    lam = ridge * x.shape[0]
    eye = IDENTITY.double().to(x.device)  # [3, 4]
    gram = xh.T @ xh + lam * torch.eye(4, dtype=x.dtype, device=x.device)  # [4, 4]
    rhs = xh.T @ y + lam * eye.T  # [4, 3]
    return torch.linalg.solve(gram, rhs).T.to(src.dtype)  # [3, 4]


class AffineAppearance:
    """Trainable [3, 4] colour transforms of the training images, with their own Adam.

    One parameter per image, so Adam moves only the transforms of the images a step rendered
    (a shared [V, 3, 4] tensor would let the momentum of the other images drift them).

    Args:
        num_images: number of training images.
        lr: Adam learning rate.
        device: where the transforms live.
    """

    def __init__(self, num_images: int, lr: float, device: torch.device | str = "cpu"):
        self.params = [torch.nn.Parameter(IDENTITY.to(device).clone()) for _ in range(num_images)]  # V x [3, 4]
        self.optimizer = torch.optim.Adam(self.params, lr=lr)

    @property
    def transforms(self) -> Tensor:
        """[V, 3, 4] all transforms (detached)."""
        return torch.stack([p.detach() for p in self.params])

    def __call__(self, v: int, rgb: Tensor) -> Tensor:
        """[..., 3] render of training image ``v`` in that image's appearance."""
        return apply_affine(rgb, self.params[v])

    def regulariser(self, v: int) -> Tensor:
        """Squared distance of image ``v``'s transform from the identity (sum over its 12 entries)."""
        return (self.params[v] - IDENTITY.to(self.params[v].device)).square().sum()

    def reference(self, which: int | None = None) -> Tensor:
        """[3, 4] transform of training image ``which``, or the mean over all of them (None)."""
        return self.transforms.mean(0) if which is None else self.params[which].detach()

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """Transforms and per-image Adam state as plain JSON values (float32 round-trips exactly)."""
        adam = []
        for p in self.params:
            st = self.optimizer.state.get(p, {})
            adam.append(
                None
                if "step" not in st
                else {
                    "step": float(st["step"]),
                    "exp_avg": st["exp_avg"].cpu().tolist(),
                    "exp_avg_sq": st["exp_avg_sq"].cpu().tolist(),
                }
            )
        return {"transforms": self.transforms.cpu().tolist(), "lr": self.optimizer.param_groups[0]["lr"], "adam": adam}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` wrote (the image count must match)."""
        values = torch.tensor(state["transforms"], dtype=torch.float32)  # [V, 3, 4]
        if values.shape[0] != len(self.params):
            raise ValueError(f"appearance of {values.shape[0]} images for {len(self.params)} training images")
        self.optimizer.param_groups[0]["lr"] = state.get("lr", self.optimizer.param_groups[0]["lr"])
        for p, value, adam in zip(self.params, values, state.get("adam") or [None] * len(self.params), strict=True):
            with torch.no_grad():
                p.copy_(value)
            if adam:
                self.optimizer.state[p] = {
                    "step": torch.tensor(adam["step"], dtype=torch.float32),
                    "exp_avg": torch.tensor(adam["exp_avg"], dtype=torch.float32, device=p.device),
                    "exp_avg_sq": torch.tensor(adam["exp_avg_sq"], dtype=torch.float32, device=p.device),
                }
