"""``report.html``: parsed back, its tables, images and curves checked against the cells' files."""

from __future__ import annotations

import base64
import io
import json
import statistics
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.bench.html import curves_svg, error_image


class _Page(HTMLParser):
    """Collects tables (rows of cell text), images (alt, data URI) and SVG polylines."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[tuple[str, str]] = []
        self.polylines: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append((attrs["alt"], attrs["src"]))
        elif tag == "polyline":
            self.polylines.append(attrs["points"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")  # self-contained: no file links
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def pair_path(record) -> Path:
    """The side-by-side eval image of a cell's first test view."""
    return Path(record["run_dir"]) / "eval" / f"{Path(record['metrics']['views'][0]['name']).stem}.png"


def test_html_report_tables_images_and_curves(finished):
    _, out, _ = finished
    page = _Page()
    page.feed((out / "report.html").read_text())
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    metrics = page.tables[0]
    assert metrics[0][:4] == ["primitive", "setting", "seeds", "PSNR"]
    psnr = [r["metrics"]["psnr"] for r in records]  # oracle: statistics.stdev (n - 1)
    assert metrics[1][:4] == [
        "gaussian",
        "default",
        "0,1",
        f"{statistics.mean(psnr):.2f} +- {statistics.stdev(psnr):.2f}",
    ]
    # the grid: truth | render | error of the seed-0 cell's first test view, from its eval image
    assert [alt for alt, _ in page.images] == ["truth", "render", "error", "depth"]
    truth, render, error, depth = (_decode(uri) for _, uri in page.images)
    seed0 = next(r for r in records if r["seed"] == 0)
    view = Path(seed0["metrics"]["views"][0]["name"]).stem
    pair = np.asarray(Image.open(pair_path(seed0)).convert("RGB"))
    w = pair.shape[1] // 2
    np.testing.assert_array_equal(truth, pair[:, :w])
    np.testing.assert_array_equal(render, pair[:, w:])
    want = np.clip(np.round(np.abs(pair[:, :w].astype(float) - pair[:, w:]).mean(axis=2) * 4), 0, 255)
    np.testing.assert_allclose(error, want, atol=1)
    np.testing.assert_array_equal(depth, np.asarray(Image.open(pair_path(seed0).with_name(f"{view}_depth.png"))))
    # one curve per seed, one point per logged step
    logged = [len((Path(r["run_dir"]) / "log.jsonl").read_text().splitlines()) for r in records]
    assert [len(points.split()) for points in page.polylines] == logged
    assert page.tables[-1][0][:2] == ["#", "primitive/setting"]  # the ranking


def test_error_image_and_curves_by_hand():
    a = np.zeros((1, 2, 3), np.uint8)
    b = np.array([[[10, 20, 30], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(error_image(a, b), [[80, 255]])  # mean 20 x 4; 255 x 4 clipped
    svg = curves_svg({"g": [[(0, 10.0), (100, 20.0)]]}, width=200, height=100)
    # pad 40: step 0 at x=40, step 100 at x=160; PSNR 10 at the bottom (y=60), 20 at the top (y=40)
    assert 'points="40.0,60.0 160.0,40.0"' in svg
    assert curves_svg({}) == ""


@pytest.mark.parametrize("key", ["views", "run_dir"])
def test_grid_skips_cells_without_images(finished, key, tmp_path):
    from recon.bench.html import view_triplet

    _, out, _ = finished
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    if key == "views":
        record["metrics"]["views"] = []
    else:
        record["run_dir"] = str(tmp_path)
    assert view_triplet(record) is None


def test_depth_preview_is_brighter_where_the_render_is_nearer(finished):
    import torch

    from recon.render import render
    from recon.run import load_run

    _, out, _ = finished
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    run = load_run(record["run_dir"])
    i = run.split.test[0]
    with torch.no_grad():  # oracle: the run's depth rendered here
        res = render(run.primitive, run.params, run.cameras[i], sh_degree=run.sh_degree)
    depth, alpha = res.depth[0, ..., 0].numpy(), res.alpha[0, ..., 0].numpy()
    preview = np.asarray(Image.open(pair_path(record).with_name(f"{Path(run.names[i]).stem}_depth.png"))).astype(int)
    covered = (alpha > 0.5) & (depth > 0)
    assert covered.sum() > 50
    level = preview[covered] / alpha[covered]  # the preview is scaled by alpha; undo it (rounding: < 1 level)
    along = level[np.argsort(depth[covered], kind="stable")]
    assert np.all(np.diff(along) <= 2)  # farther is never brighter
    assert along.max() - along.min() > 100
