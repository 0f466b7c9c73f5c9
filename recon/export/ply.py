"""Gaussians to the files splat viewers open: the Inria 3DGS PLY and antimatter15's ``.splat``.

**3DGS PLY** (binary little-endian, one ``vertex`` element, float32 properties in the order of
the Inria ``GaussianModel.save_ply``): ``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2
rot_0..3``. Values are the raw (pre-activation) parameters, as the Inria code stores them: the
opacity logit, log standard deviations, an unnormalised ``wxyz`` quaternion, and SH coefficients
with ``f_rest`` channel-major (all red coefficients of bands >= 1, then green, then blue). Normals
are zero. recon's ``sh0`` / ``shN`` are exactly Inria's ``features_dc`` / ``features_rest``
(colour = 0.5 + SH . basis), so no conversion is needed.

**.splat** (antimatter15/splat ``convert.py``): 32 bytes per Gaussian, sorted by decreasing
``exp(sum of log scales) * opacity``: position (3 x float32), linear scale (3 x float32), RGBA
(4 x uint8: ``0.5 + C0 * f_dc`` and the opacity, times 255, truncated), and the normalised ``wxyz``
quaternion as ``q * 128 + 128`` (4 x uint8, truncated). View-dependent colour is dropped.

Coordinate frame: recon's loaders keep every scene in the frame of its own files (COLMAP model,
``transforms.json``, DTU ``world_mat``; no recentring or rescaling is applied: DTU's
``scale_mat`` is only recorded), so the exported Gaussians are already in the scene's original
frame and no transform (hence no SH rotation) is applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.errors import ConfigError
from recon.geometry import normalize_quats
from recon.primitives.sh import SH_C0

SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def gaussian_ply_dtype(num_rest: int) -> np.dtype:
    """The structured dtype of one 3DGS PLY vertex with ``num_rest`` ``f_rest_*`` properties."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return np.dtype([(n, "<f4") for n in names])


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def gaussian_ply_records(params: dict[str, Tensor]) -> np.ndarray:
    """Raw Gaussian parameters -> [N] structured array of 3DGS PLY vertices (see the module docstring)."""
    n = int(params["means"].shape[0])
    shN = params["shN"].reshape(n, -1, 3)  # [N, K-1, 3]
    rest = _numpy(shN.transpose(1, 2).reshape(n, -1))  # [N, 3 (K-1)] channel-major
    data = np.zeros(n, dtype=gaussian_ply_dtype(rest.shape[1]))
    columns = {
        ("x", "y", "z"): _numpy(params["means"]),
        ("f_dc_0", "f_dc_1", "f_dc_2"): _numpy(params["sh0"].reshape(n, 3)),
        tuple(f"f_rest_{i}" for i in range(rest.shape[1])): rest,
        ("opacity",): _numpy(params["opacities"].reshape(n, 1)),
        ("scale_0", "scale_1", "scale_2"): _numpy(params["scales"]),
        ("rot_0", "rot_1", "rot_2", "rot_3"): _numpy(params["quats"]),
    }
    for names, values in columns.items():
        for j, name in enumerate(names):
            data[name] = values[:, j]
    return data


def ply_header(element: str, dtype: np.dtype, count: int, comment: str | None = None) -> bytes:
    """A binary little-endian PLY header for one element of ``dtype`` (float32 / uint8 fields)."""
    kinds = {"<f4": "float", "|u1": "uchar", "<i4": "int"}
    lines = ["ply", "format binary_little_endian 1.0"]
    if comment:
        lines.append(f"comment {comment}")
    lines.append(f"element {element} {count}")
    lines += [f"property {kinds[dtype.fields[n][0].str]} {n}" for n in dtype.names]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_gaussian_ply(path: str | Path, params: dict[str, Tensor]) -> int:
    """Writes raw Gaussian parameters as a 3DGS PLY at ``path`` (not atomic: see :mod:`recon.export.output`).

    Returns:
        The number of Gaussians written.
    """
    data = gaussian_ply_records(params)
    with open(path, "wb") as f:
        f.write(ply_header("vertex", data.dtype, len(data), "recon export (3DGS, raw parameters)"))
        f.write(data.tobytes())
    return len(data)


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """The ``vertex`` element of a binary little-endian PLY whose only element it is, as a structured array.

    Raises:
        ConfigError: not a PLY, not binary little-endian, or more than one element.
    """
    kinds = {
        "float": "<f4",
        "float32": "<f4",
        "double": "<f8",
        "uchar": "u1",
        "uint8": "u1",
        "int": "<i4",
        "int32": "<i4",
        "uint": "<u4",
        "uint32": "<u4",
    }
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ConfigError("not a PLY file", path=path)
        fields, count, fmt, elements = [], None, None, 0
        while (line := f.readline()) and line.strip() != b"end_header":
            words = line.decode("ascii", "replace").split()
            if words[:1] == ["format"]:
                fmt = words[1]
            elif words[:1] == ["element"]:
                elements += 1
                count = int(words[2]) if words[1] == "vertex" else count
            elif words[:1] == ["property"] and len(words) == 3 and words[1] in kinds:
                fields.append((words[2], kinds[words[1]]))
        if fmt != "binary_little_endian" or count is None or elements != 1:
            raise ConfigError(
                "expected a binary little-endian PLY with one vertex element",
                path=path,
                hint="export it with `recon export --format ply`",
            )
        data = np.fromfile(f, dtype=np.dtype(fields), count=count)
    if len(data) != count:
        raise ConfigError(f"PLY is truncated ({len(data)} of {count} vertices)", path=path)
    return data


def load_ply(path: str | Path) -> tuple[str, dict[str, Tensor]]:
    """Reads a 3DGS PLY (Inria field names) into ``("gaussian", raw parameters)``.

    The inverse of :func:`write_gaussian_ply`; also reads PLYs written by the Inria code or
    gsplat's ``export_splats`` (without normals).

    Raises:
        ConfigError: not a Gaussian splat PLY.
    """
    data = read_ply_vertices(path)
    names = set(data.dtype.names or ())
    need = {"x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2"}
    need |= {f"rot_{i}" for i in range(4)}
    if not need <= names:
        raise ConfigError(
            f"not a Gaussian splat PLY (missing {sorted(need - names)})",
            path=path,
            hint="export one with `recon export --format ply` or the Inria 3DGS code",
        )

    def stack(keys: list[str]) -> Tensor:  # [N, len(keys)]
        return torch.from_numpy(np.stack([data[k].astype(np.float32) for k in keys], axis=-1))

    rest = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k[7:]))
    if len(rest) % 3:
        raise ConfigError(f"has {len(rest)} f_rest properties, not a multiple of 3", path=path)
    n = len(data)
    shN = stack(rest).reshape(n, 3, -1).transpose(1, 2).contiguous() if rest else torch.zeros(n, 0, 3)
    return "gaussian", {
        "means": stack(["x", "y", "z"]),
        "quats": stack([f"rot_{i}" for i in range(4)]),
        "scales": stack([f"scale_{i}" for i in range(3)]),
        "opacities": torch.from_numpy(data["opacity"].astype(np.float32)),
        "sh0": stack(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],
        "shN": shN,
    }


def splat_records(params: dict[str, Tensor]) -> np.ndarray:
    """Raw Gaussian parameters -> [N] ``.splat`` records, largest ``size * opacity`` first."""
    means = params["means"].detach().float().cpu()  # [N, 3]
    log_scales = params["scales"].detach().float().cpu()  # [N, 3]
    logits = params["opacities"].detach().float().cpu().reshape(-1)  # [N]
    order = torch.argsort(-(log_scales.sum(1).exp() * torch.sigmoid(logits)), stable=True)
    rgb = SH_C0 * params["sh0"].detach().float().cpu().reshape(-1, 3) + 0.5  # [N, 3]
    rgba = torch.cat([rgb, torch.sigmoid(logits)[:, None]], dim=1)
    q = normalize_quats(params["quats"].detach().float().cpu())  # [N, 4] wxyz
    data = np.zeros(len(order), dtype=SPLAT_RECORD)
    data["position"] = _numpy(means[order])
    data["scale"] = _numpy(log_scales[order].exp())
    data["rgba"] = _numpy((rgba[order] * 255).clamp(0, 255)).astype(np.uint8)
    data["rot"] = _numpy((q[order] * 128 + 128).clamp(0, 255)).astype(np.uint8)
    return data


def write_splat(path: str | Path, params: dict[str, Tensor]) -> int:
    """Writes raw Gaussian parameters as a ``.splat`` file; returns the number of Gaussians."""
    data = splat_records(params)
    Path(path).write_bytes(data.tobytes())
    return len(data)
