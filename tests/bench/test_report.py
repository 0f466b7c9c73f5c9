"""Report figures against hand-computed values."""

from __future__ import annotations

import math

import pytest

from recon.bench.report import group_records, mean_std, ranking, read_results, render_markdown, write_results


def _rec(scene, primitive, psnr, seed=0, setting="default", **extra):
    return {
        "id": f"{scene}-{primitive}-{setting}-s{seed}",
        "scene": scene,
        "primitive": primitive,
        "setting": setting,
        "seed": seed,
        "status": "done",
        "metrics": {"psnr": psnr, "ssim": 0.5, "lpips": None},
        "train_seconds": 10.0 + seed,
        "cpu_seconds": 20.0,
        "num_primitives": 100 * (seed + 1),
        "peak_rss_mb": 500.0 + 10 * seed,
        "peak_gpu_mb": None,
        **extra,
    }


def test_mean_std_hand_values():
    # 20, 21, 22.5: mean 127/6; squared deviations 49/36 + 1/36 + 64/36 = 19/6; / (n - 1) = 19/12
    m, s = mean_std([20.0, 21.0, 22.5])
    assert m == pytest.approx(127 / 6, abs=1e-12)
    assert s == pytest.approx(math.sqrt(19 / 12), abs=1e-12)
    assert mean_std([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_ranking_mean_rank_over_scenes_ties_by_psnr():
    records = [
        _rec("a", "gaussian", 25.0),
        _rec("a", "triangle", 24.0),
        _rec("b", "gaussian", 20.0),
        _rec("b", "triangle", 22.0),
        _rec("b", "convex", 23.0),
    ]
    rows = ranking(group_records(records))
    # ranks: gaussian (1, 3) -> 2.0, triangle (2, 2) -> 2.0, convex (1) -> 1.0 over one scene
    assert [(name, rank, n) for name, rank, _, n in rows] == [
        ("convex/default", 1.0, 1),
        ("triangle/default", 2.0, 2),
        ("gaussian/default", 2.0, 2),
    ]
    assert rows[1][2] == pytest.approx(23.0) and rows[2][2] == pytest.approx(22.5)


def test_markdown_tables_mean_std_failed_and_skipped(tmp_path):
    records = [
        _rec("a", "gaussian", 20.0, seed=0),
        _rec("a", "gaussian", 21.0, seed=1),
        _rec("a", "gaussian", 22.5, seed=2),
        {
            "id": "a-triangle-default-s0",
            "scene": "a",
            "primitive": "triangle",
            "setting": "default",
            "seed": 0,
            "status": "failed",
            "error": "boom",
        },
    ]
    text = render_markdown("t", records, skipped=["scene z: /nope not found"], total=6)
    row = next(line for line in text.splitlines() if line.startswith("| gaussian"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # PSNR, SSIM, LPIPS (None -> n/a), train s (10, 11, 12: mean 11, std 1), CPU s, primitives (100, 200, 300),
    # peak RSS (500, 510, 520); no peak GPU column (no GPU)
    assert cells == [
        "gaussian",
        "default",
        "0,1,2",
        "21.17 +- 1.26",
        "0.5000 +- 0.0000",
        "n/a",
        "11.0 +- 1.0",
        "20.0 +- 0.0",
        "200 +- 100",
        "510 +- 10",
    ]
    assert "peak GPU" not in text
    assert "3 of 6 cells finished" in text
    assert "`a-triangle-default-s0`: boom" in text and "scene z: /nope not found" in text
    write_results(tmp_path / "r.jsonl", records)
    assert read_results(tmp_path / "r.jsonl") == records


def test_results_file_is_replaced_whole(tmp_path, monkeypatch):
    import os

    path = tmp_path / "results.jsonl"
    first = [_rec("a", "gaussian", 20.0)]
    write_results(path, first)
    before = path.read_text()

    def killed(src, dst):  # the driver dies after writing the new text, before it replaces the file
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_results(path, [*first, _rec("a", "gaussian", 21.0, seed=1)])
    assert path.read_text() == before and read_results(path) == first
    monkeypatch.undo()
    write_results(path, [*first, _rec("a", "gaussian", 21.0, seed=1)])  # the next start rewrites it whole
    assert [r["seed"] for r in read_results(path)] == [0, 1]
