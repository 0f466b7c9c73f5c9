"""LPIPS (Zhang et al. 2018) with VGG16 or AlexNet features, written in plain torch (no torchvision).

No weights ship with recon and nothing is downloaded. LPIPS needs two local files:

* the ImageNet backbone in torchvision's format (keys ``features.<i>.weight/bias``), e.g.
  ``vgg16-397923af.pth`` or ``alexnet-owt-7be5be79.pth`` (``.pth`` or ``.safetensors``);
* the linear heads of the ``lpips`` package (``weights/v0.1/vgg.pth`` / ``alex.pth``, keys
  ``lin<k>.model.1.weight``).

Where they are looked for, in order: the ``weights`` argument or the ``RECON_LPIPS_WEIGHTS``
environment variable (a file holding the backbone, or both parts as a full ``lpips.LPIPS``
state dict, or a folder holding the files above), then torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, where torchvision keeps its downloads); the heads also in the
``heads`` argument, ``RECON_LPIPS_HEADS``, the weights folder, or an installed ``lpips`` package
(read from disk, never imported: it needs torchvision). When a part is missing, :func:`load_lpips`
returns None with the reason and metrics report LPIPS as unavailable (never a made-up value).

Convention: inputs in [0, 1] are mapped to [-1, 1] (``normalize=True`` in the lpips package),
version 0.1 scaling layer, per-layer unit-normalised features, spatial average, sum over layers.
FSGS, DNGaussian and the triangle/convex splatting papers report the VGG variant.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from recon.errors import DataError, ReconError

ENV_WEIGHTS = "RECON_LPIPS_WEIGHTS"
ENV_HEADS = "RECON_LPIPS_HEADS"

# torchvision `features` layouts: ints are 3x3 convs (pad 1) + ReLU, "M" a 2x2 max pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_NETS = {
    # backbone file prefix, channels of the five tapped layers, index of each tapped ReLU
    "vgg": ("vgg16", (64, 128, 256, 512, 512), (3, 8, 15, 22, 29)),
    "alex": ("alexnet", (64, 192, 384, 256, 256), (1, 4, 7, 9, 11)),
}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPSUnavailable(ReconError):
    """The LPIPS weights are not on this machine."""


def _features(net: str) -> nn.Sequential:
    """The backbone's ``features`` with torchvision's module indices (so its keys load as they are)."""
    layers: list[nn.Module] = []
    if net == "vgg":
        c_in = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
    else:
        layers = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers)


def _read(path: Path) -> dict[str, Tensor]:
    """A flat tensor dict from ``.safetensors`` or a ``.pth`` (loaded with ``weights_only``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(
            f"cannot read LPIPS weights ({type(err).__name__}: {err})",
            path=path,
            hint="give a torchvision/lpips .pth or a .safetensors file",
        ) from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError("LPIPS weights file does not hold a state dict", path=path)
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _backbone_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``features.<i>.*`` from torchvision keys or from a full lpips model's ``net.slice<k>.<i>.*``."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "features":
            out[k] = v
        elif parts[0] == "net" and len(parts) == 4 and parts[1].startswith("slice"):
            out[f"features.{parts[2]}.{parts[3]}"] = v
    return out


def _head_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``lin<k>.weight`` from the lpips package's ``lin<k>.model.1.weight`` (or already plain)."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[-1] == "weight":
            out[f"{parts[0]}.weight"] = v
    return out


def _find(folder: Path, patterns: list[str]) -> Path | None:
    for pattern in patterns:
        hits = sorted(p for p in folder.glob(pattern) if p.is_file())
        if hits:
            return hits[0]
    return None


def locate_weights(
    net: str = "vgg", weights: str | Path | None = None, heads: str | Path | None = None
) -> tuple[Path, Path]:
    """Finds the backbone and heads files (they may be the same file); see the module docstring.

    Raises:
        LPIPSUnavailable: naming what is missing and how to provide it.
    """
    if net not in _NETS:
        raise ReconError(f"unknown LPIPS network {net!r}", hint="use 'vgg' or 'alex'")
    prefix = _NETS[net][0]
    given = weights if weights is not None else os.environ.get(ENV_WEIGHTS) or None
    search: list[Path] = []
    backbone: Path | None = None
    if given is not None:
        given = Path(given).expanduser()
        if given.is_file():
            backbone = given
            search.append(given.parent)
        elif given.is_dir():
            search.append(given)
            backbone = _find(given, [f"{prefix}*.pth", f"{prefix}*.safetensors", f"lpips_{net}*"])
        else:
            raise LPIPSUnavailable(
                f"LPIPS weights path does not exist ({ENV_WEIGHTS} or --lpips-weights)", path=given
            )
    if backbone is None:  # torchvision's download cache: read if present, never filled
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        search.append(hub)
        backbone = _find(hub, [f"{prefix}-*.pth"]) if hub.is_dir() else None
    if backbone is None:
        where = ", ".join(str(p) for p in search) or "nowhere"
        raise LPIPSUnavailable(
            f"LPIPS ({net}) backbone weights not found (looked in {where})",
            hint=f"set {ENV_WEIGHTS} to torchvision's {prefix} .pth file or a folder holding it "
            "and the lpips heads; nothing is downloaded",
        )

    head = heads if heads is not None else os.environ.get(ENV_HEADS) or None
    if head is not None:
        head = Path(head).expanduser()
        if not head.is_file():
            raise LPIPSUnavailable("LPIPS heads file does not exist", path=head)
        return backbone, head
    if _head_keys(_read(backbone)):
        return backbone, backbone
    for folder in search:
        found = _find(folder, [f"{net}.pth", f"{net}.safetensors", f"lpips_{net}*"])
        if found is not None and found != backbone:
            return backbone, found
    spec = importlib.util.find_spec("lpips")  # locates the package without importing it
    if spec is not None and spec.origin is not None:
        packaged = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
        if packaged.is_file():
            return backbone, packaged
    raise LPIPSUnavailable(
        f"LPIPS ({net}) linear heads not found next to {backbone}",
        hint=f"put the lpips package's weights/v0.1/{net}.pth there, set {ENV_HEADS}, "
        "or `pip install --no-deps lpips` to provide them",
    )


class LPIPS(nn.Module):
    """Learned perceptual distance; lower is more similar, 0 for identical images.

    Args:
        net: ``"vgg"`` (papers' default) or ``"alex"``.
        weights: backbone file or folder (default: ``$RECON_LPIPS_WEIGHTS``, then torch's hub cache).
        heads: linear heads file (default: inside ``weights``, its folder, ``$RECON_LPIPS_HEADS``
            or the installed ``lpips`` package).

    Raises:
        LPIPSUnavailable: when the weights are not on this machine (see :func:`load_lpips`).
        DataError: when a weights file is unreadable or does not match the network.
    """

    def __init__(
        self, net: str = "vgg", weights: str | Path | None = None, heads: str | Path | None = None
    ):
        super().__init__()
        backbone_path, heads_path = locate_weights(net, weights, heads)
        self.net = net
        _, channels, self.taps = _NETS[net]
        self.features = _features(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self._load(backbone_path, heads_path)
        self.requires_grad_(False)
        self.eval()

    def _load(self, backbone_path: Path, heads_path: Path) -> None:
        backbone = _backbone_keys(_read(backbone_path))
        heads = _head_keys(_read(heads_path))
        state = {k: v for k, v in backbone.items() if int(k.split(".")[1]) < len(self.features)}
        state.update({f"lins.{k[3:]}": v for k, v in heads.items()})
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as err:
            text = " ".join(str(err).split())
            culprit = heads_path if "lins." in text and "features." not in text else backbone_path
            raise DataError(
                f"weights do not fit LPIPS-{self.net}: {text[:300]}",
                path=culprit,
                hint=f"expected torchvision {_NETS[self.net][0]} features and lpips {self.net} heads",
            ) from err

    def layer_features(self, x: Tensor) -> list[Tensor]:
        """The five tapped ReLU outputs for images x [B, 3, H, W] in [-1, 1]."""
        h = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i == self.taps[-1]:
                break
        return out

    def forward(self, pred: Tensor, gt: Tensor) -> Tensor:
        """LPIPS between images [H, W, 3] or [B, H, W, 3] in [0, 1]: 0-dim or [B]."""
        if pred.shape != gt.shape or pred.dim() not in (3, 4) or pred.shape[-1] != 3:
            raise ValueError(
                f"LPIPS needs two [B, H, W, 3] or [H, W, 3] images, got {tuple(pred.shape)} "
                f"and {tuple(gt.shape)}"
            )
        single = pred.dim() == 3
        x = torch.cat([pred.reshape(-1, *pred.shape[-3:]), gt.reshape(-1, *gt.shape[-3:])])
        x = x.permute(0, 3, 1, 2).to(self.shift.dtype) * 2.0 - 1.0
        feats = self.layer_features(x)
        b = x.shape[0] // 2
        total = x.new_zeros(b)
        for f, lin in zip(feats, self.lins):
            f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((f[:b] - f[b:]).square()).mean((1, 2, 3))
        return total[0] if single else total


def lpips_unavailable_reason(
    net: str = "vgg", weights: str | Path | None = None, heads: str | Path | None = None
) -> str | None:
    """None when LPIPS can be loaded, else the one-line reason why not."""
    try:
        locate_weights(net, weights, heads)
    except LPIPSUnavailable as err:
        return str(err)
    return None


def lpips_available(
    net: str = "vgg", weights: str | Path | None = None, heads: str | Path | None = None
) -> bool:
    """Whether the LPIPS weights for ``net`` are on this machine (nothing is downloaded)."""
    return lpips_unavailable_reason(net, weights, heads) is None


def load_lpips(
    net: str = "vgg",
    weights: str | Path | None = None,
    heads: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> LPIPS | None:
    """The LPIPS network on ``device``, or None with a warning saying why it is unavailable."""
    try:
        return LPIPS(net, weights, heads).to(device)
    except LPIPSUnavailable as err:
        warnings.warn(f"LPIPS unavailable: {err}", stacklevel=2)
        return None
