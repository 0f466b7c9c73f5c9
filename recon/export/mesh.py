"""Triangle primitives to a game-engine mesh, and writing meshes as PLY / OBJ / GLB (trimesh).

Triangle Splatting's mesh export: every triangle whose opacity reaches a threshold becomes an
opaque face coloured by its view-independent colour (the SH DC term, ``0.5 + C0 * sh0``,
clamped to [0, 1]); the softness ``sigma`` is dropped. Vertices closer than a tolerance are
merged into their mean (single-linkage clusters), which welds the shared edges the optimiser
left a hair apart; faces that collapse (two corners in one cluster) are removed.

Colours: PLY keeps one colour per face. OBJ and GLB carry colours per vertex (glTF has no face
colours), so a merged vertex gets the mean colour of the faces around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.errors import ConfigError
from recon.primitives.sh import sh0_to_rgb

MESH_SUFFIXES = (".ply", ".obj", ".glb")


@dataclass
class Mesh:
    """A coloured triangle mesh.

    Attributes:
        vertices: [V, 3] float64 positions.
        faces: [F, 3] int64 vertex indices (counter-clockwise seen from the front).
        face_colors: [F, 3] float colours in [0, 1], or None.
        vertex_colors: [V, 3] float colours in [0, 1], or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_colors: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None


def merge_vertices(points: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Clusters points closer than ``tolerance`` (single linkage) and replaces each cluster by its mean.

    Args:
        points: [P, 3] positions.
        tolerance: merge distance (0 merges exact duplicates only).

    Returns:
        merged [M, 3] positions and [P] index of each input point's cluster.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    p = len(points)
    pairs = cKDTree(points).query_pairs(max(tolerance, 0.0), output_type="ndarray")  # [E, 2]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(p, p))
    m, labels = connected_components(graph, directed=False)
    counts = np.bincount(labels, minlength=m).astype(np.float64)
    merged = np.stack([np.bincount(labels, weights=points[:, k], minlength=m) for k in range(3)], 1)
    return merged / counts[:, None], labels


def triangle_mesh(params: dict[str, Tensor], min_opacity: float = 0.5, tolerance: float | None = None) -> Mesh:
    """The opaque mesh of raw triangle parameters (see the module docstring).

    Args:
        params: raw triangle parameters (``vertices`` [N, 3, 3], ``opacities`` [N] logits, ``sh0`` [N, 1, 3]).
        min_opacity: triangles with a lower opacity are left out.
        tolerance: vertex merge distance; None = 1e-4 of the kept triangles' bounding-box diagonal.

    Raises:
        ConfigError: no triangle reaches ``min_opacity``.
    """
    keep = torch.sigmoid(params["opacities"].detach().float().reshape(-1)) >= min_opacity  # [N]
    if not bool(keep.any()):
        raise ConfigError(f"no triangle has opacity >= {min_opacity:g}", hint="lower --min-opacity")
    corners = params["vertices"].detach().double()[keep].reshape(-1, 3).cpu().numpy()  # [3F, 3]
    colors = sh0_to_rgb(params["sh0"].detach().float()[keep].reshape(-1, 3)).clamp(0, 1).cpu().numpy()  # [F, 3]
    if tolerance is None:
        tolerance = 1e-4 * float(np.linalg.norm(corners.max(0) - corners.min(0)))
    vertices, labels = merge_vertices(corners, tolerance)
    faces = labels.reshape(-1, 3)  # [F, 3]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces, colors = faces[ok], colors[ok]
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Mesh(vertices[used], remap[faces], face_colors=colors)


def vertex_colors_from_faces(mesh: Mesh) -> np.ndarray:
    """[V, 3] mean colour of the faces around each vertex (grey for a vertex of no face)."""
    v = len(mesh.vertices)
    idx = mesh.faces.reshape(-1)  # [3F]
    cols = np.repeat(mesh.face_colors, 3, axis=0)  # [3F, 3]
    sums = np.stack([np.bincount(idx, weights=cols[:, k], minlength=v) for k in range(3)], 1)
    counts = np.bincount(idx, minlength=v)[:, None]
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.5)


def save_mesh(mesh: Mesh, path: str | Path, file_type: str) -> None:
    """Writes ``mesh`` with trimesh as ``file_type`` (``ply``, ``obj`` or ``glb``) to ``path``."""
    import trimesh

    to_u8 = lambda c: np.round(np.clip(c, 0, 1) * 255).astype(np.uint8)
    face_colors = None
    vertex_colors = mesh.vertex_colors
    if mesh.face_colors is not None and file_type == "ply":
        face_colors = to_u8(mesh.face_colors)
    elif mesh.face_colors is not None and vertex_colors is None:
        vertex_colors = vertex_colors_from_faces(mesh)
    tm = trimesh.Trimesh(
        mesh.vertices,
        mesh.faces,
        process=False,
        face_colors=face_colors,
        vertex_colors=None if vertex_colors is None else to_u8(vertex_colors),
    )
    tm.export(str(path), file_type=file_type)


def mesh_file_type(path: Path) -> str:
    """``ply``, ``obj`` or ``glb`` from the suffix of ``path``.

    Raises:
        ConfigError: another suffix.
    """
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ConfigError(
            f"a mesh is written as {', '.join(MESH_SUFFIXES)}, not {path.suffix or 'no suffix'}",
            path=path,
            hint="name --out mesh.ply, mesh.obj or mesh.glb",
        )
    return path.suffix.lower()[1:]
