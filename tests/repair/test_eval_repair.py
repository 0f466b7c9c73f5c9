"""``recon eval RUN --repair [PATH]``: the test views scored through the repair post-pass (Difix3D+)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from recon.cli import main
from recon.eval import metrics
from recon.render import render
from recon.repair.fixer import Fixer, FixerConfig
from recon.run import load_run, load_run_scene
from tests.repair.tiny_run import train_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # a random background: the evaluation renders on white, the repair model sees black (training's pseudo views)
    return train_tiny_run(tmp_path_factory.mktemp("run"), **{"loss.background": "random"})


def _fixer(bias: float = 0.0, any_background: bool = True) -> Fixer:
    config = FixerConfig(channels=(8, 16), norm_groups=8, random_background=any_background)
    fixer = Fixer.create(config)  # zero output convolution = identity
    with torch.no_grad():
        fixer.unet.conv_out.bias.fill_(bias)
    return fixer


def _eval(run_dir, capsys, *extra: str) -> dict:
    assert main(["eval", str(run_dir), "--json", *extra]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()  # the JSON alone (notes go to stderr)
    return json.loads(line)


def test_identity_scores_the_plain_render_and_a_darkening_model_its_image_on_the_background_it_knows(run_dir, tmp_path, capsys):
    plain = _eval(run_dir, capsys)
    assert load_run(run_dir).background is None and "repaired" not in plain
    _fixer().save_pretrained(run_dir / "repair" / "model")
    same = _eval(run_dir, capsys, "--repair")  # the run's own model
    assert same["repaired"] is True
    # the identity repairs the render on the evaluation's white background into itself
    for a, b in zip(plain["views"], same["views"], strict=True):
        assert a["index"] == b["index"] and a["psnr"] == pytest.approx(b["psnr"], abs=1e-3)
    assert json.loads((run_dir / "eval_repaired" / "metrics.json").read_text())["repaired"] is True
    assert "repaired" not in json.loads((run_dir / "eval" / "metrics.json").read_text())

    run = load_run(run_dir)
    scene = load_run_scene(run)

    def renders(i: int, bg: float):
        return render(run.primitive, run.params, scene.cameras[i], sh_degree=run.sh_degree,
                      backgrounds=torch.full((1, 3), bg))  # fmt: skip

    # a fixer fitted on the pairs' black alone sees black, and its change goes onto white
    _fixer(-0.2, any_background=False).save_pretrained(tmp_path / "darker_on_black")  # -0.1 in [0, 1]
    dark = _eval(run_dir, capsys, "--repair", str(tmp_path / "darker_on_black"))
    for row in dark["views"]:
        out = renders(row["index"], 0.0)
        expected = ((out.rgb[0] - 0.1).clamp(0, 1) + (1 - out.alpha[0])).clamp(0, 1)
        assert row["psnr"] == pytest.approx(float(metrics.psnr(expected, scene.images[row["index"]])), abs=1e-3)
    assert dark["psnr"] != pytest.approx(plain["psnr"], abs=0.05)
    # one fitted on random backgrounds sees the evaluation's white, and its output is scored as it is
    _fixer(-0.2).save_pretrained(tmp_path / "darker")
    anywhere = _eval(run_dir, capsys, "--repair", str(tmp_path / "darker"), "--out", str(tmp_path / "scores"))
    assert json.loads((tmp_path / "scores" / "metrics.json").read_text())["psnr"] == anywhere["psnr"]
    for row in anywhere["views"]:
        expected = (renders(row["index"], 1.0).rgb[0] - 0.1).clamp(0, 1)  # empty pixels: 0.9, not 1
        assert row["psnr"] == pytest.approx(float(metrics.psnr(expected, scene.images[row["index"]])), abs=1e-3)
    assert anywhere["psnr"] != pytest.approx(dark["psnr"], abs=0.05)


def test_bad_repair_paths_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    run_dir = train_tiny_run(tmp_path / "run")
    assert main(["eval", str(run_dir), "--repair"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "the run has no repair model" in err[0]
    assert main(["eval", str(run_dir), "--repair", str(tmp_path / "missing")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "missing" in err[0]
    assert not (run_dir / "eval_repaired").exists()
