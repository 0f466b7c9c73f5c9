"""``BENCH_DIR/report.html``: the report as one self-contained page.

The same tables as ``report.md`` (:mod:`recon.bench.report`), plus per scene an image grid (one row
per primitive/setting, first seed, first test view: ground truth | render | error x4 | depth) read
from the cells' ``eval/<view>.png`` side-by-side images and ``eval/<view>_depth.png`` previews
(:func:`write_depth_preview`), and training-PSNR-vs-step curves from their
``log.jsonl`` as inline SVG (no plotting library needed). Images are embedded as PNG data URIs, so
the file can be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from recon.bench.report import Group, Table, group_records, ranking_table, scene_table, summary_line

ERROR_GAIN = 4.0  # |render - truth| is scaled by this in the error image
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
img{image-rendering:pixelated;height:144px;margin-right:4px}.grid td{text-align:center;vertical-align:middle}"""


def _table(table: Table, cls: str = "") -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _png_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def error_image(truth: np.ndarray, render: np.ndarray, gain: float = ERROR_GAIN) -> np.ndarray:
    """[H, W] uint8: the mean absolute error over channels of two [H, W, 3] uint8 images, x ``gain``."""
    diff = np.abs(truth.astype(np.float32) - render.astype(np.float32)).mean(axis=2)
    return np.clip(np.round(diff * gain), 0, 255).astype(np.uint8)


def depth_preview(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """[H, W] uint8 from [H, W] expected depth and alpha: inverse depth between the 1st and 99th
    percentile of covered pixels (alpha > 0.5) from black (far) to white (near), times alpha."""
    covered = (alpha > 0.5) & (depth > 0)
    if not covered.any():
        return np.zeros(depth.shape, np.uint8)
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-9), 0.0)
    lo, hi = np.percentile(inv[covered], [1.0, 99.0])
    x = np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * np.clip(alpha, 0.0, 1.0)
    return np.round(x * 255).astype(np.uint8)


def write_depth_preview(run_dir: Path) -> Path | None:
    """Renders the depth of a run's first test view into ``eval/<view>_depth.png`` (for the grid)."""
    import torch

    from recon.render import render
    from recon.run import load_run
    from recon.train.evaluate import render_device

    run = load_run(run_dir)
    if not run.split.test:
        return None
    i = run.split.test[0]
    device, backend = render_device(run)
    bg = run.background if run.background is not None else torch.ones(3)
    with torch.no_grad():
        out = render(
            run.primitive,
            {k: v.to(device) for k, v in run.params.items()},
            run.cameras[i],
            sh_degree=run.sh_degree,
            backgrounds=bg.reshape(1, 3),
            backend=backend,
        )
    image = depth_preview(out.depth[0, ..., 0].cpu().numpy(), out.alpha[0, ..., 0].cpu().numpy())
    path = Path(run_dir) / "eval" / f"{Path(run.names[i]).stem}_depth.png"
    Image.fromarray(image).save(path)
    return path


def view_triplet(record: dict[str, Any]) -> tuple[str, list[np.ndarray]] | None:
    """(view name, [truth, render, error, depth]) of the first test view of a finished cell (depth
    only when its preview exists), or None when its side-by-side image is missing."""
    views = record.get("metrics", {}).get("views") or []
    if not views:
        return None
    path = Path(record["run_dir"]) / "eval" / f"{Path(views[0]['name']).stem}.png"
    if not path.is_file():
        return None
    pair = np.asarray(Image.open(path).convert("RGB"))  # [H, 2W, 3]: truth | render
    w = pair.shape[1] // 2
    truth, render = pair[:, :w], pair[:, w:]
    images = [truth, render, error_image(truth, render)]
    depth = path.with_name(f"{path.stem}_depth.png")
    if depth.is_file():
        images.append(np.asarray(Image.open(depth)))
    return views[0]["name"], images


def _grid(groups: Sequence[Group]) -> str:
    rows = []
    for g in groups:
        record = min(g.records, key=lambda r: r["seed"])
        triplet = view_triplet(record)
        if triplet is None:
            continue
        name, images = triplet
        label = html.escape(f"{g.primitive}/{g.setting} (seed {record['seed']}, {name})")
        cells = "".join(
            f'<td><img alt="{kind}" src="{_png_uri(im)}"></td>'
            for kind, im in zip(("truth", "render", "error", "depth"), images)
        )
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    if not rows:
        return ""
    head = f"<tr><th></th><th>ground truth</th><th>render</th><th>error x{ERROR_GAIN:g}</th><th>depth</th></tr>"
    return f'<table class="grid">{head}{"".join(rows)}</table>'


def training_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, training PSNR) pairs of a run's ``log.jsonl`` (empty when it has none)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(int(r["step"]), float(r["psnr"])) for r in rows if "step" in r and "psnr" in r]


def curves_svg(curves: dict[str, list[list[tuple[int, float]]]], width: int = 640, height: int = 240) -> str:
    """An SVG line chart: per label (one colour) one polyline per seed, training PSNR over steps."""
    points = [p for runs in curves.values() for run in runs for p in run]
    if not points:
        return ""
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = 40
    frame = f'x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}"'

    def xy(step: int, psnr: float) -> str:
        x = pad + (step - x0) / max(x1 - x0, 1) * (width - 2 * pad)
        y = height - pad - (psnr - y0) / max(y1 - y0, 1e-9) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
        f'<rect {frame} fill="none" stroke="#999"/>',
        f'<text x="{pad}" y="{height - 10}" font-size="11">step {x0}</text>',
        f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end">{x1}</text>',
        f'<text x="4" y="{height - pad}" font-size="11">{y0:.1f}</text>',
        f'<text x="4" y="{pad}" font-size="11">{y1:.1f} dB</text>',
    ]
    for i, (label, runs) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        for run in runs:
            line = " ".join(xy(*p) for p in run)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{line}"/>')
        parts.append(
            f'<text x="{pad + 8}" y="{pad + 14 * (i + 1)}" font-size="11" fill="{color}">{html.escape(label)}</text>'
        )
    return "".join(parts) + "</svg>"


def render_html(
    name: str,
    records: Sequence[dict[str, Any]],
    skipped: Sequence[str] = (),
    command: str = "",
    total: int | None = None,
) -> str:
    """The self-contained HTML report (module docstring); arguments as :func:`render_markdown`."""
    groups = group_records(records)
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Benchmark {html.escape(name)}</title>",
        f"<style>{STYLE}</style></head><body><h1>Benchmark {html.escape(name)}</h1>",
    ]
    if command:
        out.append(f"<p>Regenerate: <code>{html.escape(command)}</code></p>")
    out.append(f"<p>{html.escape(summary_line(records, total))}</p>")
    for scene in dict.fromkeys(g.scene for g in groups):
        mine = [g for g in groups if g.scene == scene]
        out += [f"<h2>{html.escape(scene)}</h2>", _table(scene_table(groups, scene), "metrics"), _grid(mine)]
        curves = {f"{g.primitive}/{g.setting}": [training_curve(Path(r["run_dir"])) for r in g.records] for g in mine}
        svg = curves_svg(curves)
        if svg:
            out += ["<h3>Training PSNR over steps (one line per seed)</h3>", svg]
    ranked = ranking_table(groups)
    if ranked[1]:
        out += ["<h2>Ranking (mean PSNR rank over scenes)</h2>", _table(ranked, "ranking")]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        items = "".join(
            f"<li><code>{html.escape(r['id'])}</code>: {html.escape(str(r.get('error')))}</li>" for r in failed
        )
        out.append(f"<h2>Failed cells</h2><ul>{items}</ul>")
    if skipped:
        out.append(
            "<h2>Skipped (scene not on this machine)</h2><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in skipped)
            + "</ul>"
        )
    return "\n".join(out) + "\n</body></html>\n"
