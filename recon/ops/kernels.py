"""Compiled backends (``cpu``: C++/OpenMP, ``cuda``: CUDA) of the rasterization engine.

The extension is built from ``cuda/`` (shipped in the wheel, see :mod:`recon.resources`) on first
use with ``torch.utils.cpp_extension.load`` and ninja into a cache directory (``RECON_EXT_DIR``,
default ``~/.cache/recon/ext/<hash>``) and loaded from there afterwards. The CUDA kernels are
compiled in only when torch sees a GPU and ``nvcc`` is found. This module exports exactly the
stage functions of ``ENGINE.md``, each a ``torch.autograd.Function`` whose backward calls an
explicit backward kernel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from recon.errors import ReconError
from recon.ops import threads
from recon.resources import shipped_dir

CUDA_DIR = shipped_dir("cuda")
FAMILY_GAUSSIAN, FAMILY_TRIANGLE, FAMILY_CONVEX = 0, 1, 2

_CPP_SOURCES = ("bindings.cpp", "cpu_project.cpp", "cpu_isect.cpp", "cpu_raster.cpp", "cpu_threads.cpp")
_CU_SOURCES = ("cuda_project.cu", "cuda_isect.cu", "cuda_raster.cu")
# -ffp-contract=off: no FMA contraction, so CPU results do not depend on the build machine.
# -Wno-psabi: GCC notes about 32-byte vector arguments of inlined SIMD helpers (no ABI involved).
_CFLAGS = ("-O3", "-fopenmp", "-ffp-contract=off", "-Wno-psabi")

_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None


class ExtensionBuildError(ReconError):
    """The compiled extension could not be built or loaded."""


def _want_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.cuda.is_available() and torch.version.cuda is not None and CUDA_HOME is not None


def _sources(with_cuda: bool) -> list[Path]:
    names = _CPP_SOURCES + (_CU_SOURCES if with_cuda else ())
    return [CUDA_DIR / "src" / n for n in names]


def _build_dir(with_cuda: bool) -> Path:
    """Cache folder keyed by the sources, headers, torch version and build flavour."""
    h = hashlib.sha256()
    headers = sorted((CUDA_DIR / "include").glob("*.h")) + sorted((CUDA_DIR / "src").glob("*.h"))
    files = headers + _sources(with_cuda)
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(f"{torch.__version__}|{sys.version_info[:2]}|cuda={with_cuda}|{_CFLAGS}".encode())
    root = Path(os.environ.get("RECON_EXT_DIR", Path.home() / ".cache" / "recon" / "ext"))
    return root / h.hexdigest()[:16]


def _compiler_missing() -> str | None:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None and shutil.which("g++") is None:
        return (
            f"no C++ compiler found (looked for {cxx!r} and 'g++'); install one "
            "(e.g. `apt-get install g++`) or use backend='reference'"
        )
    if shutil.which("ninja") is None:
        try:
            import ninja  # noqa: F401
        except ImportError:
            return "ninja is missing: `pip install ninja` or use backend='reference'"
    return None


def load_extension() -> ModuleType:
    """Builds (first call) or loads (cached) the extension.

    Raises:
        ExtensionBuildError: no compiler, or the build failed (the message says what to do).
    """
    global _module, _error
    with _lock:
        if _module is not None:
            return _module
        if _error is not None:
            raise ExtensionBuildError(_error)
        missing = _compiler_missing()
        if missing is not None:
            _error = missing
            raise ExtensionBuildError(missing)
        from torch.utils.cpp_extension import load

        with_cuda = _want_cuda()
        build_dir = _build_dir(with_cuda)
        build_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MAX_JOBS", str(min(4, os.cpu_count() or 1)))
        cflags = list(_CFLAGS)
        cuda_flags = ["-O3", "-DRECON_WITH_CUDA"]
        if with_cuda:
            cflags.append("-DRECON_WITH_CUDA")
        try:
            _module = load(
                name="recon_kernels_cuda" if with_cuda else "recon_kernels_cpu",
                sources=[str(s) for s in _sources(with_cuda)],
                extra_include_paths=[str(CUDA_DIR / "include")],
                extra_cflags=cflags,
                extra_cuda_cflags=cuda_flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                with_cuda=with_cuda,
                verbose=os.environ.get("RECON_EXT_VERBOSE") == "1",
            )
        except Exception as err:  # noqa: BLE001 - compiler output is in the message
            _error = (
                f"building the recon kernels in {build_dir} failed: {err}; "
                "set RECON_EXT_VERBOSE=1 to see the compiler output, or use backend='reference'"
            )
            raise ExtensionBuildError(_error) from err
        return _module


def available(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether the compiled backend runs on ``device``; the reason when it does not.

    Builds the extension on the first call (tens of seconds, then cached).
    """
    device = torch.device(device)
    missing = _compiler_missing()
    if missing is not None:
        return False, missing
    if device.type == "cuda" and not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    try:
        ext = load_extension()
    except ExtensionBuildError as err:
        return False, str(err)
    if device.type == "cuda" and not ext.with_cuda:
        return False, "the extension was built without CUDA (nvcc / CUDA_HOME not found)"
    if device.type not in ("cpu", "cuda"):
        return False, f"no kernels for device type {device.type!r}"
    return True, ""


def _f32(t: Tensor) -> Tensor:
    return t.detach().to(torch.float32).contiguous()


def _ext_for(t: Tensor) -> ModuleType:
    ext = load_extension()
    if t.is_cuda and not ext.with_cuda:
        raise ExtensionBuildError(
            "the recon extension was built without CUDA; use backend='reference' or 'gsplat'"
        )
    if not t.is_cuda:
        threads.apply(ext)  # thread count from the free cores (recon/ops/threads.py)
    return ext


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad.to(torch.float32).contiguous()


# ---- stage 1: projection ---------------------------------------------------------------------


class _ProjectGaussians(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d):
        args = [_f32(t) for t in (means, quats, scales, viewmats, Ks)]
        means2d, depths, conics, radii = _ext_for(means).project_gaussians_fwd(
            *args, width, height, near_plane, far_plane, eps2d
        )
        ctx.save_for_backward(*args, radii)
        ctx.config = (width, height, eps2d)
        ctx.mark_non_differentiable(radii)
        return means2d, depths, conics, radii

    @staticmethod
    def backward(ctx, v_means2d, v_depths, v_conics, _v_radii):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        width, height, eps2d = ctx.config
        v_means, v_quats, v_scales = _ext_for(means).project_gaussians_bwd(
            means, quats, scales, viewmats, Ks, width, height, eps2d, radii,
            _zeros_if_none(v_means2d, radii.float()),
            _zeros_if_none(v_depths, radii[..., 0].float()),
            _zeros_if_none(v_conics, torch.zeros(radii.shape[:2] + (3,), device=radii.device)),
        )  # fmt: skip
        return v_means, v_quats, v_scales, None, None, None, None, None, None, None


class _ProjectTriangles(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vertices, viewmats, Ks, width, height, near_plane, far_plane):
        args = [_f32(t) for t in (vertices, viewmats, Ks)]
        means2d, depths, verts2d, radii = _ext_for(vertices).project_triangles_fwd(
            *args, width, height, near_plane, far_plane
        )
        ctx.save_for_backward(*args, radii)
        ctx.config = (width, height)
        ctx.mark_non_differentiable(radii)
        return means2d, depths, verts2d, radii

    @staticmethod
    def backward(ctx, v_means2d, v_depths, v_verts2d, _v_radii):
        vertices, viewmats, Ks, radii = ctx.saved_tensors
        V, N = radii.shape[:2]
        zeros = lambda *shape: torch.zeros(shape, device=radii.device)  # noqa: E731
        v_vertices = _ext_for(vertices).project_triangles_bwd(
            vertices, viewmats, Ks, *ctx.config, radii,
            _zeros_if_none(v_means2d, zeros(V, N, 2)), _zeros_if_none(v_depths, zeros(V, N)),
            _zeros_if_none(v_verts2d, zeros(V, N, 3, 2)),
        )  # fmt: skip
        return v_vertices, None, None, None, None, None, None


class _ProjectConvexes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, delta, sigma, opacities, viewmats, Ks, width, height, near_plane,
                far_plane):  # fmt: skip
        args = [_f32(t) for t in (points, delta, sigma, opacities, viewmats, Ks)]
        means2d, depths, points2d, hull, radii = _ext_for(points).project_convexes_fwd(
            *args, width, height, near_plane, far_plane
        )
        ctx.save_for_backward(args[0], args[4], args[5], radii)
        ctx.config = (width, height)
        ctx.mark_non_differentiable(hull, radii)
        return means2d, depths, points2d, hull, radii

    @staticmethod
    def backward(ctx, v_means2d, v_depths, v_points2d, _v_hull, _v_radii):
        points, viewmats, Ks, radii = ctx.saved_tensors
        V, N = radii.shape[:2]
        K = points.shape[1]
        zeros = lambda *shape: torch.zeros(shape, device=radii.device)  # noqa: E731
        v_points = _ext_for(points).project_convexes_bwd(
            points, viewmats, Ks, *ctx.config, radii,
            _zeros_if_none(v_means2d, zeros(V, N, 2)), _zeros_if_none(v_depths, zeros(V, N)),
            _zeros_if_none(v_points2d, zeros(V, N, K, 2)),
        )  # fmt: skip
        return v_points, None, None, None, None, None, None, None, None, None


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Projects Gaussians (ENGINE.md stage 1); same contract as the reference twin.

    Returns:
        means2d [V, N, 2], depths [V, N], conics [V, N, 3], radii [V, N, 2] int32 (0 = culled).
        Gradients reach means, quats and scales (not viewmats / Ks); culled entries get none.
    """
    return _ProjectGaussians.apply(
        means, quats, scales, viewmats, Ks, int(width), int(height), float(near_plane),
        float(far_plane), float(eps2d),
    )  # fmt: skip


def project_triangles(
    vertices: Tensor,  # [N, 3, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Projects triangles (ENGINE.md stage 1).

    Returns:
        means2d [V, N, 2], depths [V, N], verts2d [V, N, 3, 2], radii [V, N, 2] int32.
    """
    return _ProjectTriangles.apply(
        vertices, viewmats, Ks, int(width), int(height), float(near_plane), float(far_plane)
    )


def project_convexes(
    points: Tensor,  # [N, K, 3]
    delta: Tensor,  # [N]
    sigma: Tensor,  # [N]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Projects smooth convexes (ENGINE.md stage 1), K <= 8 points each.

    Returns:
        means2d [V, N, 2] (footprint centre, no gradient), depths [V, N], points2d [V, N, K, 2],
        hull [V, N, K] int32, radii [V, N, 2] int32.
    """
    return _ProjectConvexes.apply(
        points, delta, sigma, opacities, viewmats, Ks, int(width), int(height),
        float(near_plane), float(far_plane),
    )  # fmt: skip


# ---- stage 2: tile intersection --------------------------------------------------------------


@torch.no_grad()
def isect_tiles(
    means2d: Tensor,  # [V, N, 2]
    radii: Tensor,  # [V, N, 2]
    depths: Tensor,  # [V, N]
    width: int,
    height: int,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor]:
    """Bins footprints into tiles sorted by (view, tile, depth), stable in the primitive index.

    Returns:
        tile_offsets [V, tile_height, tile_width] int32, flatten_ids [M] int32.
    """
    ext = _ext_for(means2d)
    return ext.isect_tiles(
        _f32(means2d), radii.to(torch.int32).contiguous(), _f32(depths), int(width), int(height),
        int(tile_size),
    )  # fmt: skip


# ---- stage 3: rasterization ------------------------------------------------------------------


class _Rasterize(torch.autograd.Function):
    """Shared by every family: window parameters ``wparams`` [V, N, P] (+ ``hull`` for convexes)."""

    @staticmethod
    def forward(ctx, family, wparams, hull, features, opacities, backgrounds, width, height,
                tile_size, tile_offsets, flatten_ids):  # fmt: skip
        wparams, features, opacities = _f32(wparams), _f32(features), _f32(opacities)
        bg = None if backgrounds is None else _f32(backgrounds)
        hull = None if hull is None else hull.to(torch.int32).contiguous()
        tile_offsets = tile_offsets.to(torch.int32).contiguous()
        flatten_ids = flatten_ids.to(torch.int32).contiguous()
        colors, alphas, trans, last_ids, max_weights = _ext_for(features).rasterize_fwd(
            family, wparams, hull, features, opacities, bg, width, height, tile_size,
            tile_offsets, flatten_ids,
        )  # fmt: skip
        ctx.config = (family, width, height, tile_size, bg is not None)
        ctx.save_for_backward(wparams, hull, features, opacities, bg, tile_offsets, flatten_ids,
                              trans, last_ids)  # fmt: skip
        ctx.mark_non_differentiable(max_weights)
        return colors, alphas, max_weights

    @staticmethod
    def backward(ctx, v_colors, v_alphas, _v_max_weights):
        wparams, hull, features, opacities, bg, tile_offsets, flatten_ids, trans, last_ids = (
            ctx.saved_tensors
        )
        family, width, height, tile_size, has_bg = ctx.config
        V, N, C = features.shape
        v_colors = _zeros_if_none(v_colors, torch.zeros(V, height, width, C, device=features.device))
        v_alphas = _zeros_if_none(v_alphas, torch.zeros(V, height, width, 1, device=features.device))
        v_wparams, v_features, v_opacities, v_bg = _ext_for(features).rasterize_bwd(
            family, wparams, hull, features, opacities, bg, width, height, tile_size,
            tile_offsets, flatten_ids, trans, last_ids, v_colors, v_alphas,
        )  # fmt: skip
        return (None, v_wparams, None, v_features, v_opacities, v_bg if has_bg else None, None,
                None, None, None, None)  # fmt: skip


def rasterize_gaussians_to_pixels(
    means2d: Tensor,  # [V, N, 2]
    conics: Tensor,  # [V, N, 3]
    features: Tensor,  # [V, N, C]
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    tile_offsets: Tensor,  # [V, TH, TW]
    flatten_ids: Tensor,  # [M]
    backgrounds: Tensor | None = None,  # [V, C]
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:
    """Composites Gaussians; returns colors [V,H,W,C], alphas [V,H,W,1], max_weights [V,N]."""
    wparams = torch.cat([means2d, conics], dim=-1)  # [V, N, 5]
    return _Rasterize.apply(
        FAMILY_GAUSSIAN, wparams, None, features, opacities, backgrounds, int(width), int(height),
        int(tile_size), tile_offsets, flatten_ids,
    )  # fmt: skip


def rasterize_triangles_to_pixels(
    verts2d: Tensor,  # [V, N, 3, 2]
    sigma: Tensor,  # [N]
    features: Tensor,  # [V, N, C]
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    tile_offsets: Tensor,  # [V, TH, TW]
    flatten_ids: Tensor,  # [M]
    backgrounds: Tensor | None = None,  # [V, C]
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:
    """Composites triangles; returns colors [V,H,W,C], alphas [V,H,W,1], max_weights [V,N]."""
    V, N = verts2d.shape[:2]
    s = sigma.to(verts2d.dtype)[None, :, None].expand(V, N, 1)
    wparams = torch.cat([verts2d.reshape(V, N, 6), s], dim=-1)  # [V, N, 7]
    return _Rasterize.apply(
        FAMILY_TRIANGLE, wparams, None, features, opacities, backgrounds, int(width), int(height),
        int(tile_size), tile_offsets, flatten_ids,
    )  # fmt: skip


def rasterize_convexes_to_pixels(
    points2d: Tensor,  # [V, N, K, 2]
    hull: Tensor,  # [V, N, K]
    delta: Tensor,  # [N]
    sigma: Tensor,  # [N]
    depths: Tensor,  # [V, N]
    features: Tensor,  # [V, N, C]
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    tile_offsets: Tensor,  # [V, TH, TW]
    flatten_ids: Tensor,  # [M]
    backgrounds: Tensor | None = None,  # [V, C]
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:
    """Composites convexes; returns colors [V,H,W,C], alphas [V,H,W,1], max_weights [V,N].

    The depth enters the window as a constant (no gradient), as in the reference twin.
    """
    V, N, K = hull.shape
    dt = points2d.dtype
    per_prim = torch.stack([delta.to(dt), sigma.to(dt)], dim=-1)[None].expand(V, N, 2)
    wparams = torch.cat(
        [points2d.reshape(V, N, 2 * K), per_prim, depths.detach().to(dt)[..., None]], dim=-1
    )  # [V, N, 2K + 3]
    return _Rasterize.apply(
        FAMILY_CONVEX, wparams, hull, features, opacities, backgrounds, int(width), int(height),
        int(tile_size), tile_offsets, flatten_ids,
    )  # fmt: skip


__all__ = [
    "ExtensionBuildError",
    "available",
    "isect_tiles",
    "load_extension",
    "project_convexes",
    "project_gaussians",
    "project_triangles",
    "rasterize_convexes_to_pixels",
    "rasterize_gaussians_to_pixels",
    "rasterize_triangles_to_pixels",
]
