"""``recon train``: the trainer's command with the live viewer attached when ``--viewer`` is on.

The trainer (:mod:`recon.train.cli`) never imports the viewer: it calls the start hooks it is
given once the primitives are initialised. This module is the one place where the two meet, and
it hands the viewer a render function over the trainer's parameters plus the scene, never the
trainer itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from recon.priors.pointcloud import PointCloud
from recon.train import cli as train_cli
from recon.train.trainer import Trainer


def attach_live_viewer(trainer: Trainer, cloud: PointCloud | None) -> None:
    """Serves the live viewer (a :data:`recon.train.cli.StartHook`): renders of the current parameters.

    Args:
        trainer: the initialised (or resumed) trainer; its parameters are read under its lock.
        cloud: the initial point cloud shown beside the primitives (None on a resume).
    """
    try:
        from viewer.app import SceneContext, make_thumbnail
        from viewer.live import start_live_viewer
        from viewer.masks import live_mask_source
        from viewer.render import make_live_render_fn
    except ImportError:
        train_cli.console.print(
            "[yellow]--viewer: the viewer is not installed (pip install 'recon[viewer]'); training without it"
        )
        return
    scene, split = trainer.scene, trainer.split
    bg = None if trainer.background is None else tuple(float(x) for x in trainer.background)
    render_fn = make_live_render_fn(
        trainer.config.primitive,
        lambda: trainer.params,
        lambda: trainer.sh_degree(trainer.step),
        lock=trainer.state.lock,
        background=bg,
        backend=trainer.config.backend,
    )
    context = SceneContext(
        cameras=scene.cameras,
        names=list(scene.names),
        split={"train": list(split.train), "test": list(split.test)},
        thumbnails=[make_thumbnail(img.numpy()) for img in scene.images],
        points=None if cloud is None else cloud.points.numpy(),
        point_colors=None if cloud is None else cloud.colors.numpy(),
        primitives=[trainer.config.primitive],
    )
    if trainer.config.primitive == "gaussian":  # the page draws them; resent every few seconds, never per step
        from viewer.splats import SplatSource

        context.splats = SplatSource(
            lambda: trainer.params, lock=trainer.state.lock, version=lambda: trainer.state.step, background=bg
        )
    train_names = [scene.names[i] for i in split.train]  # recon.wild: robust (live), user and weather masks
    context.masks = live_mask_source(train_names, trainer.images, trainer.wild, trainer.run_dir)
    start_live_viewer(render_fn, trainer.state, scene=context)


def train_main(argv: Sequence[str], prog: str = "recon train") -> int:
    """``recon train``: :func:`recon.train.cli.train_main` with :func:`attach_live_viewer` for ``--viewer``."""
    return train_cli.train_main(list(argv), prog=prog, live_viewer=attach_live_viewer)
