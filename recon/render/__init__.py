"""The one render function the trainer, evaluation, viewer and exports call."""

from recon.render.render import RenderOutput, render, render_views, solid_background

__all__ = ["RenderOutput", "render", "render_views", "solid_background"]
