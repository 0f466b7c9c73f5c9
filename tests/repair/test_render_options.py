"""``recon render RUN --repair PATH --repair-*``: the img2img options reach a pipeline loaded from disk."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("imageio.v2")

from recon.cli import main
from tests.repair.tiny_run import train_tiny_run
from tests.repair.tiny_sd import tiny_sd


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run trained with non-default pipeline options (what ``--repair-*`` falls back to)."""
    return train_tiny_run(tmp_path_factory.mktemp("run"), **{"repair.pipe_steps": 4, "repair.pipe_strength": 0.75,
                                                            "repair.pipe_prompt": "a dog"})  # fmt: skip


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of every img2img pipeline call (the real call still runs)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    seen, call = [], StableDiffusionImg2ImgPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionImg2ImgPipeline, "__call__", spy)
    return seen


def _render(run_dir, out, *extra: str) -> int:
    return main(["render", str(run_dir), "--path", "orbit", "--frames", "2", "--out", str(out), *extra])


def test_render_options_reach_the_pipeline_call(run_dir, sd_folder, tmp_path, calls):
    out = tmp_path / "v.gif"
    assert _render(run_dir, out, "--repair", str(sd_folder), "--repair-steps", "3", "--repair-strength", "0.4",
                   "--repair-guidance", "1.5", "--repair-prompt", "a cat") == 0  # fmt: skip
    assert out.is_file() and len(calls) == 2  # one call per frame
    for kw in calls:
        assert (kw["num_inference_steps"], kw["strength"], kw["guidance_scale"], kw["prompt"]) == (
            3,
            0.4,
            1.5,
            ["a cat"],
        )


def test_unset_options_fall_back_to_the_runs_training_setting(run_dir, sd_folder, tmp_path, calls):
    assert _render(run_dir, tmp_path / "v.gif", "--repair", str(sd_folder), "--repair-guidance", "2") == 0
    kw = calls[0]
    assert (kw["num_inference_steps"], kw["strength"], kw["guidance_scale"], kw["prompt"]) == (4, 0.75, 2.0, ["a dog"])


@pytest.mark.parametrize(("flag", "value", "message"), [("--repair-strength", "1.5", "strength 1.5 must be in (0, 1]"),
                                                        ("--repair-steps", "0", "steps 0 must be an integer >= 1"),
                                                        ("--repair-guidance", "-1", "guidance -1 must be >= 0")])  # fmt: skip
def test_bad_options_are_one_line_errors_before_any_frame(run_dir, sd_folder, tmp_path, capsys, calls, flag, value,
                                                          message):  # fmt: skip
    out = tmp_path / "v.gif"
    assert _render(run_dir, out, "--repair", str(sd_folder), flag, value) == 2
    [line] = [s for s in capsys.readouterr().err.splitlines() if s.strip()]
    assert message in line and f"--repair-{flag.split('-')[-1]}" in line
    assert not out.exists() and not calls
