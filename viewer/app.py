"""The viser application: a render function plus optional scene context, served to browsers.

:class:`ViewerApp` knows nothing about training or checkpoints. It receives a
``render_fn(camera, settings) -> [H, W, 3] uint8`` (see :mod:`viewer.render`) and a
:class:`SceneContext` (cameras, thumbnails, prior points) and gives each connected client its own
render thread (:class:`viewer.client.ClientRenderer`). Training controls are added by
:mod:`viewer.live`; camera-path recording by :mod:`viewer.recording`. For Gaussian scenes
(``SceneContext.splats``) the pages draw the splats themselves (:mod:`viewer.splats`) and the
render threads idle until the View dropdown switches back to the server render.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from recon.cameras import Cameras
from viewer.cameras import cameras_to_poses, look_at_pose
from viewer.client import ClientRenderer, RenderBudget
from viewer.masks import MaskSource, MaskView
from viewer.paths import focus_point, mean_up
from viewer.recording import PathRecorder
from viewer.render import RENDER_MODES, REPAIRED, RenderFn, RenderSettings
from viewer.splats import SplatSource, SplatView

console = Console(stderr=True)

_SPLIT_COLOURS = {"train": (40, 110, 230), "test": (240, 140, 30)}
_MAX_POINTS = 200_000


@dataclass
class SceneContext:
    """What the 3D view shows besides the rendered image.

    Attributes:
        cameras: the scene's cameras (frustums), or None.
        names: one name per camera.
        split: split name (``train``/``test``) -> camera indices; cameras in no split are
            drawn as ``train``.
        thumbnails: per camera a [h, w, 3] uint8 image shown inside its frustum (or None).
        points: [P, 3] prior point cloud (world), or None.
        point_colors: [P, 3] colours (uint8 or float in [0, 1]), or None.
        primitives: names of the primitive sets a client can toggle between.
        path_dir: folder where camera paths are saved/loaded by relative name.
        splats: Gaussians the page draws itself (:mod:`viewer.splats`), or None (server render only).
        appearances: reference appearances a client can pick (``mean`` and the training images of a run
            with per-image appearance, :mod:`recon.wild`); empty = no Appearance dropdown.
        appearance: the one to start on.
        masks: training photos and their masks (the "Masks" folder, :mod:`viewer.masks`), or None.
    """

    cameras: Cameras | None = None
    names: list[str] = field(default_factory=list)
    split: dict[str, list[int]] = field(default_factory=dict)
    thumbnails: list[np.ndarray | None] | None = None
    points: np.ndarray | None = None
    point_colors: np.ndarray | None = None
    primitives: list[str] = field(default_factory=list)
    path_dir: Path | None = None
    splats: SplatSource | None = None
    appearances: list[str] = field(default_factory=list)
    appearance: str | None = None
    masks: MaskSource | None = None

    @property
    def extent(self) -> float:
        """A length scale of the scene (camera spread, else point spread, else 1)."""
        if self.cameras is not None and len(self.cameras) > 1:
            c = self.cameras.centers.double().cpu().numpy()
            return float(max(np.linalg.norm(c - c.mean(0), axis=-1).max(), 1e-3))
        if self.points is not None and len(self.points) > 1:
            return float(max(np.linalg.norm(self.points - self.points.mean(0), axis=-1).max(), 1e-3))
        return 1.0


def make_thumbnail(image: np.ndarray, max_side: int = 96) -> np.ndarray:
    """[H, W, 3] float in [0, 1] or uint8 -> a [h, w, 3] uint8 thumbnail, longer side ``max_side``."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).resize(size, Image.BOX))


class ViewerApp:
    """A viser server rendering each client's view with ``render_fn``.

    Args:
        render_fn: the render contract; called from per-client threads, one call at a time.
        scene: frustums, thumbnails, points and primitive names to show.
        host: interface to bind (127.0.0.1 by default: only this machine can connect).
        port: first port to try; the next free one is used when it is taken.
        max_resolution: initial longer side of full-resolution renders.
        render_fraction: cap on the fraction of wall time spent rendering (1 = no cap); the
            live viewer uses a small value so training keeps its speed.
        title: label shown at the top of the GUI panel.
        modes: the render modes ``render_fn`` has (the Mode dropdown); :data:`viewer.render.RENDER_MODES`
            plus ``repaired`` when it was given a repair model.
    """

    def __init__(
        self,
        render_fn: RenderFn,
        scene: SceneContext | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_resolution: int = 512,
        render_fraction: float = 1.0,
        title: str = "recon",
        verbose: bool = True,
        modes: Sequence[str] = RENDER_MODES,
    ):
        import viser  # the viewer extra; imported where used

        self.render_fn = render_fn
        self.scene = scene or SceneContext()
        self.budget = RenderBudget(render_fraction)
        self.renderers: dict[int, ClientRenderer] = {}
        self._lock = threading.Lock()
        self.requested_port = port
        self.server = viser.ViserServer(host=host, port=port, label=title, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self.splats: SplatView | None = None
        self._build_gui(max_resolution, tuple(modes))
        self._build_scene()
        self.masks = MaskView(self.server, self.scene.masks) if self.scene.masks is not None else None
        self.recorder = PathRecorder(self.server, self.scene.path_dir, scale=0.06 * self.scene.extent)
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)
        if verbose:
            self.print_banner()

    # ------------------------------------------------------------------ info
    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def print_banner(self) -> None:
        if self.port != self.requested_port:
            console.print(f"[yellow]port {self.requested_port} is in use; serving on {self.port} instead[/yellow]")
        console.print(f"[bold]viewer[/bold] running at [link={self.url}]{self.url}[/link]")
        if self.host in ("127.0.0.1", "localhost", "::1"):
            console.print(
                "  only this machine can connect; to open it from another one pass "
                "[bold]--host 0.0.0.0[/bold] (anyone on the network can then watch) or "
                f"forward the port: ssh -L {self.port}:127.0.0.1:{self.port} <this host>"
            )

    @property
    def num_clients(self) -> int:
        with self._lock:
            return len(self.renderers)

    # ------------------------------------------------------------------ settings
    def settings(self) -> RenderSettings:
        primitive = self._primitive.value if self._primitive is not None else None
        appearance = self._appearance.value if self._appearance is not None else None
        return RenderSettings(mode=self._mode.value, primitive=primitive, appearance=appearance)

    def max_resolution(self) -> int:
        return int(self._max_res.value)

    def server_render_on(self) -> bool:
        """Whether clients get server renders (False while their pages draw the browser splats)."""
        return self.splats is None or not self.splats.active

    def _view_toggled(self, splats_on: bool) -> None:
        if not splats_on:
            self.refresh_all()
            return
        with self._lock:
            renderers = list(self.renderers.values())
        for r in renderers:
            self._show_splats(r)

    def _show_splats(self, renderer: ClientRenderer) -> None:
        """The page draws the splats over the scene background instead of a server image."""
        renderer.client.scene.set_background_image(self.splats.background_image(), format="png")
        if renderer.on_stats is not None:
            renderer.on_stats("browser splats (drawn by this page)")

    def _show_server_render(self, switch: bool = True) -> None:
        """A render setting changed: the browser splats cannot show it, so pages switch to the
        server render (when ``switch``); every client re-renders."""
        if switch and self.splats is not None and self.splats.active:
            self.splats.active = False  # the View dropdown's callback re-renders every client
            return
        self.refresh_all()

    def refresh_all(self) -> None:
        """Re-renders every client at full resolution (scene or settings changed)."""
        with self._lock:
            renderers = list(self.renderers.values())
        for r in renderers:
            r.refresh()

    # ------------------------------------------------------------------ clients
    def _on_connect(self, client) -> None:
        stats = client.gui.add_markdown("waiting for the first render", order=0)

        def on_stats(text: str) -> None:
            stats.content = text

        renderer = ClientRenderer(
            client,
            self.render_fn,
            self.settings,
            self.max_resolution,
            self.budget,
            on_stats=on_stats,
            active=self.server_render_on,
        )
        with self._lock:
            self.renderers[client.client_id] = renderer
        client.camera.on_update(lambda _cam: renderer.camera_moved())
        if self.server_render_on():
            renderer.camera_moved()
        else:
            self._show_splats(renderer)

    def _on_disconnect(self, client) -> None:
        with self._lock:
            renderer = self.renderers.pop(client.client_id, None)
        if renderer is not None:
            renderer.stop()

    def stop(self) -> None:
        """Stops every render thread and the server."""
        with self._lock:
            renderers = list(self.renderers.values())
            self.renderers.clear()
        for r in renderers:
            r.stop(timeout=2.0)
        if self.splats is not None:
            self.splats.stop()
        self.server.stop()

    # ------------------------------------------------------------------ GUI
    def _build_gui(self, max_resolution: int, modes: tuple[str, ...]) -> None:
        gui = self.server.gui
        with gui.add_folder("Render"):
            if self.scene.splats is not None:
                self.splats = SplatView(
                    self.server, self.scene.splats, self._view_toggled, lambda: self.num_clients > 0
                )
            hint = "RGB, colour-mapped depth, alpha, primitive density"
            if REPAIRED in modes:
                hint += ", RGB through the diffusion repair model (per frame: flickers while moving)"
            self._mode = gui.add_dropdown("Mode", modes, initial_value=modes[0], hint=hint)
            self._primitive = None
            if len(self.scene.primitives) > 1:
                self._primitive = gui.add_dropdown(
                    "Primitive", tuple(self.scene.primitives), initial_value=self.scene.primitives[0]
                )
                self._primitive.on_update(lambda _: self._show_server_render())
            self._appearance = None
            if self.scene.appearances:
                self._appearance = gui.add_dropdown(
                    "Appearance", tuple(self.scene.appearances),
                    initial_value=self.scene.appearance or self.scene.appearances[0],
                    hint="colours of a training photo (its exposure, white balance), or their mean",
                )  # fmt: skip
                self._appearance.on_update(lambda _: self._show_server_render())
            self._max_res = gui.add_slider(
                "Max resolution",
                min=64,
                max=2048,
                step=32,
                initial_value=int(min(max(max_resolution, 64), 2048)),
                hint="longer side of the still image, in pixels",
            )
        self._mode.on_update(lambda _: self._show_server_render(self._mode.value != "rgb"))
        self._max_res.on_update(lambda _: self.refresh_all())

    def _build_scene(self) -> None:
        sc, scene = self.scene, self.server.scene
        extent = sc.extent
        with self.server.gui.add_folder("Scene"):
            show_cams = self.server.gui.add_checkbox("Cameras", initial_value=True)
            show_points = self.server.gui.add_checkbox("Prior points", initial_value=True)
            show_axes = self.server.gui.add_checkbox("World axes", initial_value=True)
        axes = scene.add_frame("/world_axes", axes_length=0.25 * extent, axes_radius=0.004 * extent)
        show_axes.on_update(lambda _: setattr(axes, "visible", show_axes.value))

        if sc.points is not None and len(sc.points) > 0:
            pts, cols = np.asarray(sc.points, np.float32), sc.point_colors
            cols = np.full_like(pts, 0.6) if cols is None else np.asarray(cols)
            if len(pts) > _MAX_POINTS:
                keep = np.random.default_rng(0).choice(len(pts), _MAX_POINTS, replace=False)
                pts, cols = pts[keep], cols[keep]
            if cols.dtype != np.uint8:
                cols = (np.clip(cols, 0, 1) * 255).astype(np.uint8)
            cloud = scene.add_point_cloud("/prior_points", pts, cols, point_size=0.004 * extent)
            show_points.on_update(lambda _: setattr(cloud, "visible", show_points.value))

        if sc.cameras is None or len(sc.cameras) == 0:
            return
        split_of = {i: s for s, ids in sc.split.items() for i in ids}
        poses = cameras_to_poses(sc.cameras)
        frustums = []
        for i, pose in enumerate(poses):
            split = split_of.get(i, "train")
            w, h = int(sc.cameras.widths[i]), int(sc.cameras.heights[i])
            thumb = sc.thumbnails[i] if sc.thumbnails is not None else None
            frustum = scene.add_camera_frustum(
                f"/cameras/{split}/{i:04d}",
                fov=pose.fov,
                aspect=w / h,
                scale=0.08 * extent,
                color=_SPLIT_COLOURS.get(split, (120, 120, 120)),
                image=thumb,
                format="jpeg",
                thickness=1.5,
                thickness_units="screen",
                wxyz=pose.wxyz,
                position=pose.position,
            )
            frustum.on_click(self._jump_to(pose))
            frustums.append(frustum)

        def toggle(_):
            for f in frustums:
                f.visible = show_cams.value

        show_cams.on_update(toggle)
        # Open on the first camera, looking at what the cameras look at, with their up.
        up = mean_up(sc.cameras)
        scene.set_up_direction(tuple(float(v) for v in up))
        start = look_at_pose(poses[0].position, focus_point(sc.cameras), up, poses[0].fov)
        self.server.initial_camera.position = tuple(start.position)
        self.server.initial_camera.look_at = tuple(focus_point(sc.cameras))
        self.server.initial_camera.up = tuple(float(v) for v in up)
        self.server.initial_camera.fov = float(poses[0].fov)

    @staticmethod
    def _jump_to(pose):
        def on_click(event) -> None:
            camera = event.client.camera
            with event.client.atomic():
                camera.wxyz = pose.wxyz
                camera.position = pose.position
                camera.fov = pose.fov

        return on_click
