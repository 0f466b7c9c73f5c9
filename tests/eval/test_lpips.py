"""LPIPS end to end with random weights written in torchvision's and lpips' file formats."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recon.errors import DataError
from recon.eval.lpips import (
    LPIPS,
    LPIPSUnavailable,
    load_lpips,
    lpips_available,
    lpips_unavailable_reason,
)

# conv layers of torchvision's `features` (index, in, out, kernel, stride, padding), written out
VGG_CONVS = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
    (24, 512, 512),
    (26, 512, 512),
    (28, 512, 512),
]
ALEX_CONVS = [
    (0, 3, 64, 11, 4, 2),
    (3, 64, 192, 5, 1, 2),
    (6, 192, 384, 3, 1, 1),
    (8, 384, 256, 3, 1, 1),
    (10, 256, 256, 3, 1, 1),
]
HEAD_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}


def _random_backbone(net: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    state = {}
    if net == "vgg":
        for i, cin, cout in VGG_CONVS:
            state[f"features.{i}.weight"] = (
                torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
            )
            state[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.01
    else:
        for i, cin, cout, k, _, _ in ALEX_CONVS:
            state[f"features.{i}.weight"] = (
                torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (k * k * cin)) ** 0.5
            )
            state[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.01
    state["classifier.1.weight"] = torch.randn(4, 4, generator=gen)  # present in real files, unused
    return state


def _random_heads(net: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) * 0.1
        for k, c in enumerate(HEAD_CHANNELS[net])
    }


def _reference_lpips(backbone, heads, net, x, y) -> torch.Tensor:
    """Straight-line LPIPS in the lpips package's order of operations, from the raw state dicts."""

    def feats(img):
        h = (
            img.permute(0, 3, 1, 2) * 2
            - 1
            - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        )
        h = h / torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        out = []
        if net == "vgg":
            blocks = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
            for b, convs in enumerate(blocks):
                if b > 0:
                    h = F.max_pool2d(h, 2, 2)
                for i in convs:
                    h = F.relu(
                        F.conv2d(
                            h,
                            backbone[f"features.{i}.weight"],
                            backbone[f"features.{i}.bias"],
                            padding=1,
                        )
                    )
                out.append(h)
        else:
            for n, (i, _, _, _, stride, pad) in enumerate(ALEX_CONVS):
                if n in (1, 2):
                    h = F.max_pool2d(h, 3, 2)
                h = F.relu(
                    F.conv2d(
                        h,
                        backbone[f"features.{i}.weight"],
                        backbone[f"features.{i}.bias"],
                        stride=stride,
                        padding=pad,
                    )
                )
                out.append(h)
        return out

    total = 0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + (F.conv2d((a - b) ** 2, heads[f"lin{k}.model.1.weight"])).mean((1, 2, 3))
    return total


@pytest.fixture
def no_lpips_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RECON_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("RECON_LPIPS_HEADS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_from_weight_files_matches_reference(net, tmp_path, monkeypatch, no_lpips_env):
    gen = torch.Generator().manual_seed(0)
    backbone, heads = _random_backbone(net, gen), _random_heads(net, gen)
    prefix = {"vgg": "vgg16-397923af", "alex": "alexnet-owt-7be5be79"}[net]
    torch.save(backbone, tmp_path / f"{prefix}.pth")
    torch.save(heads, tmp_path / f"{net}.pth")  # the lpips package's file name
    monkeypatch.setenv("RECON_LPIPS_WEIGHTS", str(tmp_path))
    assert lpips_available(net)
    model = LPIPS(net)

    x = torch.rand(2, 64, 72, 3, generator=gen)
    y = (x + 0.2 * torch.randn(2, 64, 72, 3, generator=gen)).clamp(0, 1)
    d = model(x, y)
    assert d.shape == (2,)
    assert torch.allclose(d, _reference_lpips(backbone, heads, net, x, y), rtol=1e-4, atol=1e-7)
    assert torch.all(d > 0)
    assert torch.allclose(model(y, x), d, rtol=1e-5, atol=1e-8)  # symmetric
    assert model(x[0], x[0]).item() == 0.0  # identical images
    assert model(x[0], y[0]).item() == pytest.approx(d[0].item(), rel=1e-5)


def test_lpips_reads_a_full_lpips_state_dict_and_safetensors(tmp_path, no_lpips_env):
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1)
    backbone, heads = _random_backbone("alex", gen), _random_heads("alex", gen)
    # lpips.LPIPS().state_dict(): backbone under net.slice<k>.<index>, heads as lin<k>.model.1
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    full = {
        f"net.slice{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
        for k, v in backbone.items()
        if k.startswith("features")
    }
    full.update(heads)
    save_file(full, str(tmp_path / "lpips_alex_full.safetensors"))
    model = LPIPS("alex", weights=tmp_path / "lpips_alex_full.safetensors")
    x, y = torch.rand(1, 64, 64, 3, generator=gen), torch.rand(1, 64, 64, 3, generator=gen)
    assert torch.allclose(model(x, y), _reference_lpips(backbone, heads, "alex", x, y), rtol=1e-4)


def test_missing_weights_give_a_reason_not_a_value(no_lpips_env, tmp_path, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # no lpips package either
    reason = lpips_unavailable_reason("vgg")
    assert reason is not None and "RECON_LPIPS_WEIGHTS" in reason
    assert not lpips_available("vgg")
    with pytest.warns(UserWarning, match="LPIPS unavailable"):
        assert load_lpips("vgg") is None
    with pytest.raises(LPIPSUnavailable, match="does not exist"):
        LPIPS("vgg", weights=tmp_path / "nope.pth")
    # backbone present, heads absent
    torch.save(
        _random_backbone("alex", torch.Generator().manual_seed(0)), tmp_path / "alexnet-x.pth"
    )
    with pytest.raises(LPIPSUnavailable, match="linear heads"):
        LPIPS("alex", weights=tmp_path)


def test_wrong_weights_name_the_file(tmp_path, no_lpips_env):
    gen = torch.Generator().manual_seed(0)
    torch.save(
        _random_backbone("alex", gen), tmp_path / "vgg16-wrong.pth"
    )  # AlexNet under a VGG name
    torch.save(_random_heads("vgg", gen), tmp_path / "vgg.pth")
    with pytest.raises(DataError, match="vgg16-wrong.pth"):
        LPIPS("vgg", weights=tmp_path)
    (tmp_path / "junk").mkdir()
    Path(tmp_path / "junk" / "vgg16-junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LPIPS("vgg", weights=tmp_path / "junk" / "vgg16-junk.pth")


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_matches_the_lpips_package_when_installed(net, tmp_path, monkeypatch, no_lpips_env):
    """The real ``lpips`` package (if on disk) as oracle, its torchvision import stubbed out."""
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")
    from recon.eval.lpips import _features  # only a container for the weights loaded below

    stub = types.ModuleType("torchvision")
    stub.models = types.SimpleNamespace(
        vgg16=lambda pretrained=False, **_: types.SimpleNamespace(features=_features("vgg")),
        alexnet=lambda pretrained=False, **_: types.SimpleNamespace(features=_features("alex")),
    )
    monkeypatch.setitem(sys.modules, "torchvision", stub)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    ref = lpips.LPIPS(
        net=net, pretrained=True, pnet_rand=True, verbose=False
    )  # the package's heads
    gen = torch.Generator().manual_seed(0)
    backbone = _random_backbone(net, gen)
    for name, p in ref.net.named_parameters():
        _, index, kind = name.split(".")
        p.data.copy_(backbone[f"features.{index}.{kind}"])
    torch.save(backbone, tmp_path / "backbone.pth")
    ours = LPIPS(net, weights=tmp_path / "backbone.pth")  # heads found through the package path
    x = torch.rand(2, 64, 80, 3, generator=gen)
    y = (x + 0.1 * torch.randn(2, 64, 80, 3, generator=gen)).clamp(0, 1)
    expected = ref(x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2), normalize=True).flatten()
    assert torch.allclose(ours(x, y), expected, rtol=1e-5, atol=1e-8)
