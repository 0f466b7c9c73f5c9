"""Image and mask reading: EXIF orientation, RGBA / grey / 16-bit, box downscaling, undistortion.

Every reader returns float32 tensors in [0, 1] and raises :class:`recon.errors.DataError` naming
the file when it cannot be decoded (corrupt or truncated files included).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from recon.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr")
# EXIF orientations 5..8 transpose the stored image (width and height swap).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 274
_EXIF_HEADER_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")
# EXIF orientation -> the transpose that turns the stored pixels upright (as ImageOps.exif_transpose).
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_image_file(path: Path) -> bool:
    """True for a visible file whose suffix is a known image type."""
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the file header without decoding pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = _header_orientation(im)
    except FileNotFoundError:
        raise DataError("image file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"not a readable image ({err})", path=path, hint="replace or remove the file"
        ) from None
    return (h, w) if orientation in _TRANSPOSING_ORIENTATIONS else (w, h)


def _header_orientation(im: Image.Image) -> int:
    # PNG may keep EXIF after the pixels (reading it decodes the image): only EXIF found before
    # the pixels counts, for every reader alike.
    if im.format not in _EXIF_HEADER_FORMATS and "exif" not in im.info:
        return 1
    orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    return int(orientation) if orientation in _TRANSPOSES or orientation == 1 else 1


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1..8, 1 = upright) that :func:`read_image` applies to ``path``."""
    try:
        with Image.open(path) as im:
            return _header_orientation(im)
    except (OSError, SyntaxError, ValueError):
        return 1


def open_upright(path: Path) -> Image.Image:
    """Decodes ``path`` with its EXIF orientation applied: the one orientation rule of every
    reader (the loaders through :func:`read_image`, SfM through :func:`upright_folder`).

    Raises:
        DataError: the file is missing, corrupt or truncated.
    """
    try:
        with Image.open(path) as im:
            orientation = _header_orientation(im)
            im.load()
            upright = im.transpose(_TRANSPOSES[orientation]) if orientation != 1 else im.copy()
    except FileNotFoundError:
        raise DataError("image file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"image is corrupt or truncated ({err})", path=path, hint="replace or remove the file"
        ) from None
    upright.info.pop("exif", None)
    return upright


def upright_folder(image_dir: Path, names: list[str], work_dir: Path) -> Path:
    """A folder holding ``names`` as :func:`read_image` sees them, for tools that ignore EXIF
    orientation (COLMAP): ``image_dir`` itself when every photo is upright, else ``work_dir``
    with turned copies (same names and format, EXIF kept without the orientation tag) beside
    hard links (or copies) of the upright ones.
    """
    turned = {n for n in names if exif_orientation(image_dir / n) != 1}
    if not turned:
        return image_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        src, dst = image_dir / name, work_dir / name
        if name in turned:
            with Image.open(src) as im:
                exif = im.getexif()  # camera make, focal length...: COLMAP's focal prior
            exif.pop(_EXIF_ORIENTATION_TAG, None)
            jpeg = dst.suffix.lower() in (".jpg", ".jpeg")
            quality = {"quality": 95, "subsampling": 0} if jpeg else {}  # keep detail for SIFT
            open_upright(src).save(dst, exif=exif, **quality)
        else:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    return work_dir


def has_alpha(path: Path) -> bool:
    """True when the image file has an alpha channel (read from its header)."""
    try:
        with Image.open(path) as im:
            return im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except (OSError, SyntaxError, ValueError):
        return False


def _decode(path: Path) -> np.ndarray:
    """Decodes ``path`` to a float32 array [H, W, C] in [0, 1] with C in {1, 2, 3, 4}."""
    im = open_upright(path)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey (PNG/TIFF) decodes to "I;16" or "I"; values are in [0, 65535].
        return (np.asarray(im, dtype=np.float32) / 65535.0)[..., None]
    if mode == "F":
        return np.asarray(im, dtype=np.float32)[..., None]
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return arr if arr.ndim == 3 else arr[..., None]


def downscale_array(arr: Tensor, factor: float) -> Tensor:
    """Box-downscales [H, W, C] by ``factor`` to ``floor(H / factor) x floor(W / factor)``.

    Integer factors average whole ``factor x factor`` blocks (the last partial row/column is
    dropped), so :meth:`recon.cameras.Cameras.rescale` matches the result exactly.
    """
    if factor == 1:
        return arr
    h, w = arr.shape[:2]
    nh, nw = int(h // factor), int(w // factor)
    if nh < 1 or nw < 1:
        raise ValueError(f"downscale {factor} leaves no pixels of a {w}x{h} image")
    if float(factor).is_integer():
        f = int(factor)
        blocks = arr[: nh * f, : nw * f].reshape(nh, f, nw, f, -1)
        return blocks.mean(dim=(1, 3))
    chw = arr.permute(2, 0, 1)[None]
    out = F.interpolate(chw, size=(nh, nw), mode="area")
    return out[0].permute(1, 2, 0).contiguous()


def read_image(
    path: Path | str,
    downscale: float = 1,
    background: tuple[float, float, float] | None = (1.0, 1.0, 1.0),
) -> tuple[Tensor, Tensor | None]:
    """Reads an image as RGB float32 in [0, 1].

    Args:
        path: image file (PNG, JPEG, TIFF, ...; 8 or 16 bit; grey, grey+alpha, RGB or RGBA).
        downscale: box-downscale factor (1 = full size).
        background: RGB in [0, 1] to composite images with an alpha channel on; ``None`` keeps
            the colour channels as stored.

    Returns:
        rgb [H, W, 3] and alpha [H, W] (None when the file has no alpha channel).
    """
    path = Path(path)
    arr = torch.from_numpy(np.ascontiguousarray(_decode(path)))  # [H, W, C]
    arr = downscale_array(arr, downscale)
    c = arr.shape[-1]
    alpha = arr[..., -1] if c in (2, 4) else None
    colour = arr[..., :3] if c >= 3 else arr[..., :1].expand(*arr.shape[:2], 3)
    if alpha is not None and background is not None:
        bg = torch.tensor(background, dtype=torch.float32)
        colour = colour * alpha[..., None] + bg * (1.0 - alpha[..., None])
    return colour.contiguous().clamp(0.0, 1.0), alpha


def read_mask(path: Path | str, downscale: float = 1) -> Tensor:
    """Reads a mask [H, W] in [0, 1]: the alpha channel if present, else the mean of the colours."""
    path = Path(path)
    arr = torch.from_numpy(np.ascontiguousarray(_decode(path)))
    arr = downscale_array(arr, downscale)
    c = arr.shape[-1]
    mask = arr[..., -1] if c in (2, 4) else arr.mean(dim=-1)
    return mask.contiguous()


def distort_normalized(xy: Tensor, dist: Tensor) -> Tensor:
    """Applies OpenCV radial-tangential distortion to normalized camera coordinates.

    Args:
        xy: [..., 2] undistorted normalized coordinates (x/z, y/z).
        dist: [5] coefficients ``(k1, k2, p1, p2, k3)``.

    Returns:
        [..., 2] distorted normalized coordinates.
    """
    k1, k2, p1, p2, k3 = (dist[i] for i in range(5))
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], dim=-1)


def undistorted_intrinsics(K: Tensor, dist: Tensor, width: int, height: int) -> Tensor:
    """Pinhole intrinsics [3, 3] for undistorting without blank borders.

    Keeps the principal point and scales the focal lengths up by the smallest factor (found by
    bisection, at most 2) for which every border pixel of the undistorted image samples inside
    the distorted one, as COLMAP's undistorter does with ``blank_pixels = 0``. Pincushion
    distortion (no blank border) keeps ``K`` unchanged.
    """

    def inside(scale: float) -> bool:
        K_new = K.double().clone()
        K_new[0, 0] *= scale
        K_new[1, 1] *= scale
        grid = undistortion_grid(K, dist, width, height, K_new)[0].double()
        border = torch.cat([grid[0], grid[-1], grid[:, 0], grid[:, -1]])  # [2(W + H), 2]
        # grid coordinates of the outermost pixel centres are +-(1 - 1/size).
        limit = torch.tensor([1.0 - 1.0 / width, 1.0 - 1.0 / height], dtype=torch.float64)
        return bool((border.abs() <= limit + 1e-9).all())

    lo, hi = 1.0, 2.0
    if inside(lo):
        return K.clone()
    if not inside(hi):
        return K.clone()  # extreme distortion: keep K and accept blank borders
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if inside(mid) else (mid, hi)
    K_new = K.clone()
    K_new[0, 0] *= hi
    K_new[1, 1] *= hi
    return K_new


def undistortion_grid(
    K: Tensor, dist: Tensor, width: int, height: int, K_new: Tensor | None = None
) -> Tensor:
    """The ``grid_sample`` grid [1, H, W, 2] that :func:`undistort` uses (reusable per camera).

    For every output pixel centre ``p`` the ray ``K_new^-1 p`` is distorted with ``dist`` and
    projected with ``K``; the result is in ``grid_sample``'s [-1, 1] coordinates
    (``align_corners=False``: pixel centres at ``i + 0.5``).
    """
    K = K.double()
    K_new = K if K_new is None else K_new.double()
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    x = (u - K_new[0, 2]) / K_new[0, 0]
    y = (v - K_new[1, 2]) / K_new[1, 1]
    xy_d = distort_normalized(torch.stack([x, y], dim=-1), dist.double())  # [H, W, 2]
    ud = K[0, 0] * xy_d[..., 0] + K[0, 1] * xy_d[..., 1] + K[0, 2]
    vd = K[1, 1] * xy_d[..., 1] + K[1, 2]
    return torch.stack([2 * ud / width - 1, 2 * vd / height - 1], dim=-1)[None].float()


def undistort(
    image: Tensor,
    K: Tensor,
    dist: Tensor,
    K_new: Tensor | None = None,
    grid: Tensor | None = None,
) -> Tensor:
    """Resamples a distorted image to an ideal pinhole (bilinear, same size).

    Output pixels whose source falls outside the input are 0.

    Args:
        image: [H, W, C] or [H, W] distorted image.
        K: [3, 3] intrinsics of the distorted image.
        dist: [5] OpenCV ``(k1, k2, p1, p2, k3)`` (COLMAP's RADIAL is ``(k1, k2, 0, 0, 0)``).
        K_new: [3, 3] intrinsics of the output pinhole (defaults to ``K``).
        grid: a precomputed :func:`undistortion_grid` for these arguments (faster for many
            images of one camera).

    Returns:
        The undistorted image with the shape of ``image``.
    """
    squeeze = image.ndim == 2
    img = image[..., None] if squeeze else image
    h, w = img.shape[:2]
    if grid is None:
        grid = undistortion_grid(K, dist, w, h, K_new)
    out = F.grid_sample(
        img.permute(2, 0, 1)[None],
        grid.to(img.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    out = out[0].permute(1, 2, 0)
    return out[..., 0] if squeeze else out.contiguous()
