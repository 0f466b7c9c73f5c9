"""Browser viewer for recon scenes, built on viser.

The viewer takes a render function ``render_fn(camera, settings) -> [H, W, 3] uint8`` and never
a trainer: :class:`viewer.app.ViewerApp` serves saved scenes (``recon view``),
:func:`viewer.live.start_live_viewer` watches training, :mod:`viewer.paths` holds camera paths
(``recon render``). viser is imported only when a server starts, so paths and camera
conversions work without the ``viewer`` extra.
"""

from viewer.cameras import ViewPose, cameras_to_poses, pose_to_cameras
from viewer.paths import CameraPath, interpolate, orbit_path, spiral_path
from viewer.render import RenderSettings, make_render_fn

__all__ = [
    "CameraPath",
    "RenderSettings",
    "ViewPose",
    "cameras_to_poses",
    "interpolate",
    "make_render_fn",
    "orbit_path",
    "pose_to_cameras",
    "spiral_path",
]
