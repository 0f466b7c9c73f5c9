"""Scene loading: one parser per format, all returning :class:`SceneData`."""

from recon.data.scene import SceneData

__all__ = ["SceneData", "load_scene"]


def load_scene(path, format: str = "auto", **kwargs) -> SceneData:  # noqa: A002
    """Loads a scene folder; see :func:`recon.data.formats.load_scene`."""
    from recon.data.formats import load_scene as _load

    return _load(path, format=format, **kwargs)
