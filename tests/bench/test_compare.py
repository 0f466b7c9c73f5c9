"""``recon bench compare``: differences and the seed-spread note against hand values."""

from __future__ import annotations

import contextlib
import io
import math

import pytest

from recon.bench.compare import compare_records
from recon.bench.report import write_results
from recon.cli import main
from recon.errors import ConfigError


def _recs(scene, setting, psnrs):
    return [
        {
            "id": f"{scene}-{setting}-{i}",
            "scene": scene,
            "primitive": "gaussian",
            "setting": setting,
            "seed": i,
            "status": "done",
            "metrics": {"psnr": p, "ssim": 0.9, "lpips": None},
        }
        for i, p in enumerate(psnrs)
    ]


A = _recs("x", "base", [20.0, 21.0, 22.0]) + _recs("y", "base", [30.0, 30.5, 31.0]) + _recs("z", "base", [10.0])
B = _recs("x", "base", [23.0, 24.0, 25.0]) + _recs("y", "base", [30.2, 30.7, 31.2]) + _recs("z", "base", [11.0])


def test_differences_and_notes_by_hand():
    rows = {d.key[0]: d for d in compare_records(A, B)}
    x, y, z = rows["x"], rows["y"], rows["z"]
    # x: 21 +- 1 vs 24 +- 1 over 3 seeds: delta 3, 2 SE = 2 sqrt(1/3 + 1/3) = 1.633
    assert (x.mean_a, x.std_a, x.mean_b, x.delta) == pytest.approx((21.0, 1.0, 24.0, 3.0))
    assert x.noise == pytest.approx(2 * math.sqrt(2 / 3))
    assert x.note("psnr").startswith("significant, B better")
    assert x.note("lpips").startswith("significant, B worse")  # lower LPIPS is better
    # y: 30.5 +- 0.5 vs 30.7 +- 0.5: delta 0.2 < 2 SE = 2 sqrt(0.25/3 * 2) = 0.816
    assert y.delta == pytest.approx(0.2) and y.note("psnr").startswith("within seed spread")
    assert z.noise is None and "one seed" in z.note("psnr")


def test_cli_prints_rows_and_rejects_unrelated_sets(tmp_path):
    (tmp_path / "a").mkdir()
    write_results(tmp_path / "a" / "results.jsonl", A)
    write_results(tmp_path / "b.jsonl", B)
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "b.jsonl")]) == 0
    lines = text.getvalue().splitlines()
    assert len(lines) == 4 and lines[1].split()[:2] == ["x", "gaussian/base"] and "+3.000" in lines[1]
    write_results(tmp_path / "c.jsonl", _recs("other", "base", [1.0]))
    with pytest.raises(ConfigError, match="share no finished"):
        main(["--verbose", "bench", "compare", str(tmp_path / "a"), str(tmp_path / "c.jsonl")])
    with pytest.raises(ConfigError, match="no results.jsonl"):
        main(["--verbose", "bench", "compare", str(tmp_path / "a"), str(tmp_path / "nowhere")])
