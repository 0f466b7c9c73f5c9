"""The primitive families of the rasterization engine: one record per family, one table.

Families differ only in their projection (ENGINE.md stage 1) and their window (stage 3); tile
binning, sorting and compositing are shared. A :class:`RasterFamily` says what the public op takes
(validated, activated inputs), how they are projected (the reference twin's function, and the
kernels' ``torch.ops.recon.project_fwd`` / ``_bwd`` with its id), how the projection becomes the window tensors of
stage 3 (packed into one ``[V, N, P]`` tensor for the kernels) and which kernel id composites them.
:func:`recon.ops.rasterize.rasterize` runs the one pipeline for any record of :data:`FAMILIES`.

Projections return ``(means2d, depths, *geometry, radii)``: ``geometry`` is ``(conics,)``,
``(verts2d,)`` or ``(points2d, hull)``; its first tensor is the only one with a gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recon.ops import reference
from recon.ops.validate import InputChecker, RasterInputError

Inputs = Mapping[str, Tensor]


@dataclass(frozen=True)
class Input:
    """One per-primitive tensor a rasterization op takes (an activated value).

    Attributes:
        name: argument name (also the key of the family's inputs and raw parameters).
        shape: expected shape, symbolic dims as strings (``("N", 3)``).
        min_value: lower bound on every element (checked where values are checked).
        exclusive_min: the lower bound is strict.
        max_value: upper bound (inclusive).
    """

    name: str
    shape: tuple[int | str, ...]
    min_value: float | None = None
    exclusive_min: bool = False
    max_value: float | None = None

    def check(self, chk: InputChecker, value: object) -> Tensor:
        """Validates ``value`` (shape, dtype, device, range); returns it contiguous."""
        return chk.tensor(
            self.name, value, self.shape, min_value=self.min_value, exclusive_min=self.exclusive_min,
            max_value=self.max_value,
        )  # fmt: skip


OPACITIES = Input("opacities", ("N",), min_value=0.0, max_value=1.0)


def _positive(name: str) -> Input:
    return Input(name, ("N",), min_value=0.0, exclusive_min=True)


@dataclass(frozen=True)
class RasterFamily:
    """What the rasterization pipeline needs to know about one primitive family.

    Attributes:
        name: ``"gaussian"``, ``"triangle"``, ``"convex"``, ``"ges"`` (keys of :data:`FAMILIES`).
        plural: names the public op ``rasterize_<plural>`` and the reference's ``project_<plural>``.
        kernel_id: family id (``cuda/include/families.h``) of the ops ``torch.ops.recon.project_*`` /
            ``rasterize_*``; None when the family has no compiled kernel yet (``backend="auto"`` then
            renders with the reference).
        inputs: per-primitive inputs of the public op, validated in this order.
        position: the input that places the primitive: its centre (mean over the points of a
            triangle or convex) is where SH colours are looked at from.
        project_inputs: inputs of the projection, in order; the first ``num_grad_inputs`` receive
            gradients (the others, e.g. a convex's opacity, only size the footprint).
        num_grad_inputs: see ``project_inputs``.
        options: extra float options of the projection and their defaults (``eps2d``).
        reference_project: the pure-PyTorch projection, ENGINE.md stage 1 signature.
        reference_to_pixels: the pure-PyTorch stage 3, ENGINE.md signature (window tensors first).
        window: ``(means2d, depths, geometry, inputs) -> window tensors`` of stage 3, in the order
            of the ``*_to_pixels`` signature.
        pack_window: window tensors -> ``(wparams [V, N, P] float, hull [V, N, K] int | None)``, the
            kernels' layout (``cuda/include`` windows read ``wparams`` in this order).
        footprint_handle: ``means2d`` is exposed as a zero-valued translation leaf added to the
            projected points (triangles, convexes: the box centre has no gradient of its own);
            otherwise the projected centre's grad is retained (Gaussians, gsplat style).
        check: validation beyond the per-input checks (raises ``chk.fail(...)``), or None.
    """

    name: str
    plural: str
    kernel_id: int | None
    inputs: tuple[Input, ...]
    position: str
    project_inputs: tuple[str, ...]
    num_grad_inputs: int
    reference_project: Callable[..., tuple[Tensor, ...]]
    reference_to_pixels: Callable[..., tuple[Tensor, Tensor, Tensor]]
    window: Callable[[Tensor, Tensor, tuple[Tensor, ...], Inputs], tuple[Tensor, ...]]
    pack_window: Callable[..., tuple[Tensor, Tensor | None]]
    footprint_handle: bool
    options: Mapping[str, float] = field(default_factory=dict)
    check: Callable[[InputChecker, Inputs], None] | None = None

    @property
    def op_name(self) -> str:
        """Name of the public op, used in error messages."""
        return f"rasterize_{self.plural}"

    def centers(self, inputs: Inputs) -> Tensor:
        """[N, 3] primitive centres: the position, or the mean of its points ([N, K, 3])."""
        p = inputs[self.position]
        return p if p.dim() == 2 else p.mean(1)


def _per_view(x: Tensor, views: int, dtype: torch.dtype) -> Tensor:
    """[N] per-primitive value -> [V, N, 1] (a window parameter column)."""
    return x.to(dtype)[None, :, None].expand(views, -1, 1)


def _pack_gaussian(means2d: Tensor, conics: Tensor) -> tuple[Tensor, None]:
    return torch.cat([means2d, conics], dim=-1), None  # [V, N, 5]


def _pack_ges(means2d: Tensor, conics: Tensor, shape: Tensor) -> tuple[Tensor, None]:
    return torch.cat([means2d, conics, _per_view(shape, means2d.shape[0], means2d.dtype)], dim=-1), None  # [V, N, 6]


def _pack_triangle(verts2d: Tensor, sigma: Tensor) -> tuple[Tensor, None]:
    V, N = verts2d.shape[:2]
    return torch.cat([verts2d.reshape(V, N, 6), _per_view(sigma, V, verts2d.dtype)], dim=-1), None  # [V, N, 7]


def _pack_convex(points2d: Tensor, hull: Tensor, delta: Tensor, sigma: Tensor, depths: Tensor) -> tuple[Tensor, Tensor]:
    """``[points2d (2K), delta, sigma, depth]``; the depth is a constant of the window (no gradient)."""
    V, N, K = hull.shape
    dt = points2d.dtype
    columns = [points2d.reshape(V, N, 2 * K), _per_view(delta, V, dt), _per_view(sigma, V, dt)]
    return torch.cat(columns + [depths.detach().to(dt)[..., None]], dim=-1), hull  # [V, N, 2K + 3]


def _check_quats(chk: InputChecker, inputs: Inputs) -> None:
    quats = inputs["quats"]
    if chk.check_values and quats.numel() and bool((quats.detach().norm(dim=-1) == 0).any()):
        raise chk.fail("quats must have non-zero norm (w, x, y, z); found a zero quaternion")


def _check_points(chk: InputChecker, inputs: Inputs) -> None:
    points = inputs["points"]
    if not 3 <= points.shape[1] <= 8:
        raise chk.fail(f"points must be [N, K, 3] with 3 <= K <= 8, got {list(points.shape)}")


GAUSSIAN = RasterFamily(
    name="gaussian",
    plural="gaussians",
    kernel_id=0,
    inputs=(Input("means", ("N", 3)), Input("quats", ("N", 4)), Input("scales", ("N", 3), min_value=0.0), OPACITIES),
    position="means",
    project_inputs=("means", "quats", "scales"),
    num_grad_inputs=3,
    options={"eps2d": 0.3},
    reference_project=reference.project_gaussians,
    reference_to_pixels=reference.rasterize_gaussians_to_pixels,
    window=lambda means2d, depths, geometry, inputs: (means2d, geometry[0]),
    pack_window=_pack_gaussian,
    footprint_handle=False,
    check=_check_quats,
)
TRIANGLE = RasterFamily(
    name="triangle",
    plural="triangles",
    kernel_id=1,
    inputs=(Input("vertices", ("N", 3, 3)), OPACITIES, _positive("sigma")),
    position="vertices",
    project_inputs=("vertices",),
    num_grad_inputs=1,
    reference_project=reference.project_triangles,
    reference_to_pixels=reference.rasterize_triangles_to_pixels,
    window=lambda means2d, depths, geometry, inputs: (geometry[0], inputs["sigma"]),
    pack_window=_pack_triangle,
    footprint_handle=True,
)
CONVEX = RasterFamily(
    name="convex",
    plural="convexes",
    kernel_id=2,
    inputs=(Input("points", ("N", "K", 3)), OPACITIES, _positive("delta"), _positive("sigma")),
    position="points",
    project_inputs=("points", "delta", "sigma", "opacities"),
    num_grad_inputs=1,
    reference_project=reference.project_convexes,
    reference_to_pixels=reference.rasterize_convexes_to_pixels,
    window=lambda means2d, depths, geometry, inputs: (*geometry, inputs["delta"], inputs["sigma"], depths),
    pack_window=_pack_convex,
    footprint_handle=True,
    check=_check_points,
)

GES = RasterFamily(
    name="ges",
    plural="ges",
    kernel_id=3,
    inputs=GAUSSIAN.inputs + (Input("shape", ("N",), min_value=0.0, exclusive_min=True),),
    position="means",
    project_inputs=("means", "quats", "scales", "shape", "opacities"),
    num_grad_inputs=3,
    options={"eps2d": 0.3},
    reference_project=reference.project_ges,
    reference_to_pixels=reference.rasterize_ges_to_pixels,
    window=lambda means2d, depths, geometry, inputs: (means2d, geometry[0], inputs["shape"]),
    pack_window=_pack_ges,
    footprint_handle=False,
    check=_check_quats,
)

FAMILIES: dict[str, RasterFamily] = {f.name: f for f in (GAUSSIAN, TRIANGLE, CONVEX, GES)}


def raster_family(family: RasterFamily | str) -> RasterFamily:
    """The record of ``family`` (a record passes through, a name is looked up in :data:`FAMILIES`)."""
    if isinstance(family, RasterFamily):
        return family
    if family not in FAMILIES:
        raise RasterInputError(f"unknown primitive family {family!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[family]


__all__ = ["CONVEX", "FAMILIES", "GAUSSIAN", "GES", "TRIANGLE", "Input", "RasterFamily", "raster_family"]
