"""Format detection and the one entry point that loads any scene: :func:`load_scene`.

Detection order, first match wins, so formats with true calibration beat estimates beside
them (DTU's ``cameras_sphere.npz`` over an LLFF ``poses_bounds.npy`` in the same folder):

1. ``blender``: ``transforms_train.json``
2. ``dtu``: ``cameras_sphere.npz``
3. ``middlebury``: ``*_par.txt``
4. ``nerfstudio``: ``transforms.json`` (or a ``*.json`` file passed directly)
5. ``colmap``: a model (``cameras``/``images`` ``.bin``/``.txt``) at most two levels down
6. ``llff``: ``poses_bounds.npy``
7. ``folder``: images in the folder or in ``images/`` (no poses: SfM comes later)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from recon.data.scene import SceneData
from recon.data.source import SceneSource
from recon.errors import DataError

FORMATS = ("blender", "dtu", "middlebury", "nerfstudio", "colmap", "llff", "folder")


def _detectors() -> list[tuple[str, Callable[[Path], str | None]]]:
    from recon.data.colmap import find_model_dir, is_model_dir
    from recon.data.folder import photo_folder
    from recon.data.middlebury import find_par_file

    def colmap(p: Path) -> str | None:
        if p.is_file():
            return None
        found = p if is_model_dir(p) else find_model_dir(p)
        return None if found is None else f"model in {found.relative_to(p).as_posix() or '.'}"

    def nerfstudio(p: Path) -> str | None:
        if p.is_file():
            return p.name if p.suffix == ".json" and not p.name.startswith("transforms_t") else None
        return "transforms.json" if (p / "transforms.json").is_file() else None

    def file_named(name: str) -> Callable[[Path], str | None]:
        return lambda p: name if (p / name).is_file() or (p.is_file() and p.name == name) else None

    return [
        ("blender", file_named("transforms_train.json")),
        ("dtu", file_named("cameras_sphere.npz")),
        ("middlebury", lambda p: None if (f := find_par_file(p)) is None else f.name),
        ("nerfstudio", nerfstudio),
        ("colmap", colmap),
        ("llff", file_named("poses_bounds.npy")),
        (
            "folder",
            lambda p: (
                None if p.is_file() or (d := photo_folder(p)) is None else f"images in {d.name}/"
            ),
        ),
    ]


def detect_formats(path: Path) -> list[tuple[str, str]]:
    """Every format whose files are present, best first, each with the evidence found."""
    found = []
    for name, detect in _detectors():
        evidence = detect(path)
        if evidence is not None:
            found.append((name, evidence))
    return found


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise DataError("does not exist", path=path, hint="check the scene path")
    if path.is_dir() and not any(path.iterdir()):
        raise DataError(
            "is an empty folder", path=path, hint="point to a folder holding images or a scene"
        )
    return path


def parse_scene(
    path: str | Path,
    format: str = "auto",
    prefer_factor: float = 1,
    skip_missing: bool = False,
    verbose: bool = True,
) -> SceneSource:
    """Parses a scene's metadata (cameras, file lists, points) without decoding images.

    Args:
        path: the scene folder, or a format's main file (``transforms.json``, ``*_par.txt``...).
        format: ``"auto"`` or one of :data:`FORMATS`.
        prefer_factor: the ``images_<factor>`` folder to prefer when there are several (LLFF, DTU).
        skip_missing: for transforms files, drop frames whose images do not exist.
        verbose: print the detected format on stderr.
    """
    path = _check_path(Path(path).expanduser())
    if format == "auto":
        found = detect_formats(path)
        if not found:
            looked = (
                "transforms_train.json, cameras_sphere.npz, *_par.txt, transforms.json, a COLMAP "
                "model (cameras/images .bin/.txt, up to two levels down), poses_bounds.npy, images"
            )
            raise DataError(
                f"no known scene layout (looked for {looked})",
                path=path,
                hint="pass --format or point to the folder that holds these files",
            )
        format = found[0][0]
        if verbose:
            from rich.console import Console

            others = (
                "; also matched " + ", ".join(f"{n} ({e})" for n, e in found[1:])
                if found[1:]
                else ""
            )
            Console(stderr=True).print(
                f"format: {format} ({found[0][1]}){others}", highlight=False, soft_wrap=True
            )
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    if format == "blender":
        from recon.data.blender import parse_blender

        return parse_blender(path.parent if path.is_file() else path, skip_missing=skip_missing)
    if format == "dtu":
        from recon.data.dtu import parse_dtu

        return parse_dtu(path, prefer_factor=prefer_factor)
    if format == "middlebury":
        from recon.data.middlebury import parse_middlebury

        return parse_middlebury(path)
    if format == "nerfstudio":
        from recon.data.nerfstudio import parse_nerfstudio

        return parse_nerfstudio(path, skip_missing=skip_missing)
    if format == "colmap":
        from recon.data.colmap import parse_colmap

        return parse_colmap(path)
    if format == "llff":
        from recon.data.llff import parse_llff

        return parse_llff(path, prefer_factor=prefer_factor)
    from recon.data.folder import parse_folder

    return parse_folder(path)


def load_scene(
    path: str | Path,
    format: str = "auto",
    downscale: float = 1,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    verbose: bool = True,
    indices: Sequence[int] | None = None,
    skip_missing: bool = False,
) -> SceneData:
    """Loads any supported scene into a :class:`SceneData`.

    Args:
        path: the scene folder or a format's main file.
        format: ``"auto"`` (detect, see the module docstring) or one of :data:`FORMATS`.
        downscale: image downscale factor. Where the scene ships a pre-downscaled folder
            (``images_<downscale>``) it is read directly; otherwise images are box-filtered.
            LLFF/DTU scenes that ship only downscaled folders (``images_8`` alone) are read
            from the smallest-factor folder and ``downscale`` applies on top of it.
        background: RGB in [0, 1] that RGBA images are composited on.
        verbose: print the detected format and show progress on stderr.
        indices: load only these views (e.g. a few for a quick look).
        skip_missing: for transforms files, skip frames whose images do not exist.

    Returns:
        The scene: float32 images in [0, 1], undistorted pinhole cameras matching them exactly.
    """
    source = parse_scene(
        path, format, prefer_factor=downscale, skip_missing=skip_missing, verbose=verbose
    )
    remaining = downscale
    if source.meta.get("image_factor", 1) == downscale:
        remaining = 1  # the folder is already downscaled by the requested factor
    return source.load(downscale=remaining, background=background, indices=indices, verbose=verbose)
