"""``recon render`` writes a whole video or nothing; ``--checkpoint`` on view and render."""

from __future__ import annotations

import pytest
import torch

from recon.cli import main
from recon.run import load_checkpoint, save_checkpoint
from viewer.loading import load_viewable

imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")


def _render(run, out, *extra: str) -> int:
    return main(["render", str(run), "--path", "orbit", "--out", str(out), "--frames", "3", "--backend", "reference",
                 *extra])


def test_odd_width_is_rounded_to_an_even_video(tiny_run, tmp_path, capsys):
    out = tmp_path / "odd.mp4"
    assert _render(tiny_run, out, "--width", "65", "--height", "47") == 0  # was an ffmpeg BrokenPipe, 0-byte mp4
    frames = imageio.mimread(out)
    assert len(frames) == 3 and frames[0].shape == (46, 64, 3)
    assert "65x47 rounded to 64x46" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4", "run"]  # no partial file beside it
    gif = tmp_path / "odd.gif"  # GIFs take any size
    assert _render(tiny_run, gif, "--width", "65", "--height", "47") == 0
    assert imageio.mimread(gif)[0].shape[:2] == (47, 65)


@pytest.mark.parametrize("option", [["--frames", "0"], ["--width", "0"], ["--fps", "-1"]])
def test_empty_or_negative_sizes_are_rejected(tiny_run, tmp_path, capsys, option):
    out = tmp_path / "v.mp4"
    assert main(["render", str(tiny_run), "--out", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} {option[1]} must be positive" in err and not out.exists()


def test_a_failed_render_leaves_the_previous_video_untouched(tiny_run, tmp_path, monkeypatch):
    import viewer.cli

    out = tmp_path / "v.mp4"
    out.write_bytes(b"an earlier, good video")
    calls = []

    def failing_render_fn(sets, backend="auto", repair=None, appearance=None):
        def render(camera, settings):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("renderer crashed")
            return torch.zeros(camera.height, camera.width, 3, dtype=torch.uint8).numpy()

        return render

    monkeypatch.setattr(viewer.cli, "make_render_fn", failing_render_fn)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        _render(tiny_run, out)
    assert out.read_bytes() == b"an earlier, good video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "v.mp4"]


def test_checkpoint_option_picks_the_step(tiny_run, tmp_path, capsys):
    ckpts = tiny_run / "checkpoints"
    first = load_checkpoint(ckpts / "step_000010.json").params
    later = {k: torch.nn.Parameter(v + 1.0) for k, v in first.items()}
    save_checkpoint(ckpts, 20, later, {}, {}, extra={"sh_degree": 1})
    assert torch.equal(load_viewable(tiny_run).sets["gaussian"].params["means"], later["means"].detach())
    old = load_viewable(tiny_run, checkpoint=10).sets["gaussian"].params
    assert all(torch.equal(old[k], v) for k, v in first.items())
    assert main(["view", str(tiny_run), "--checkpoint", "7", "--port", "0"]) == 2
    assert "no checkpoint at step 7" in capsys.readouterr().err
    assert _render(tiny_run, tmp_path / "c.mp4", "--checkpoint", "10") == 0


def test_an_encoder_that_writes_nothing_is_an_error_not_a_0_byte_video(tiny_run, tmp_path, monkeypatch, capsys):
    import viewer.cli

    monkeypatch.setattr(viewer.cli, "even_size", lambda w, h, out: (w, h))  # odd sizes straight to libx264
    out = tmp_path / "odd.mp4"
    assert _render(tiny_run, out, "--width", "65", "--height", "47") == 2
    # ffmpeg either closes its pipe while frames are sent (BrokenPipe) or fails at the end
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "writing the video failed ([Errno 32] Broken pipe" in line or "encoder wrote an empty video" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
