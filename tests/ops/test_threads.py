"""Thread policy of the CPU kernels (recon/ops/threads.py): its decisions on fake loads, the
/proc/stat parser, and kernels that give the same bits for any thread count."""

from __future__ import annotations

import os

import pytest
import torch

from recon.errors import ConfigError
from recon.ops import threads
from recon.ops.threads import ThreadPolicy, policy_from_env, read_busy_seconds, threads_for_free_cores


@pytest.mark.parametrize(
    "n_cpus,others,max_threads,expected",
    [
        (2, 0.0, 2, 2),  # quiet machine: every core
        (2, 0.2, 2, 2),  # a fifth of a core taken: still counts as free
        (2, 0.3, 2, 1),  # more than a quarter taken: that core is not free
        (2, 1.0, 2, 1),  # one busy process beside us: the one free core
        (2, 5.0, 2, 1),  # overloaded: never below one
        (16, 4.0, 8, 8),  # capped by the bound
        (16, 9.9, 16, 6),  # 6.1 free cores
    ],
)
def test_threads_for_free_cores(n_cpus, others, max_threads, expected):
    assert threads_for_free_cores(n_cpus, others, max_threads) == expected


class FakeMachine:
    """Clock, machine-wide busy seconds and this process's CPU seconds, advanced by hand."""

    def __init__(self):
        self.t = self.busy = self.own = 0.0
        self.readable = True

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.t += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)

    def policy(self, **kw) -> ThreadPolicy:
        return ThreadPolicy(
            read_busy=lambda cpus: self.busy if self.readable else None,
            own_cpu=lambda: self.own,
            clock=lambda: self.t,
            cpus={0, 1},
            **kw,
        )


def test_policy_backs_off_beside_a_busy_process_and_returns_when_it_stops():
    m = FakeMachine()
    p = m.policy(max_threads=2, interval=0.5)
    assert p.threads() == 2  # nothing measured yet: the bound
    m.run(0.6, own_cores=1.0, other_cores=1.0)  # we spin on one core, a busy loop on the other
    assert p.threads() == 1
    assert p.others == pytest.approx(1.0)
    m.run(0.3, own_cores=1.9, other_cores=0.0)  # quiet again, but within the interval: kept
    assert p.threads() == 1
    m.run(0.3, own_cores=1.9, other_cores=0.0)
    assert p.threads() == 2
    assert p.others == pytest.approx(0.0)


def test_policy_counts_its_own_cpu_time_out():
    """Our own two busy threads are not 'others': a process alone keeps both cores."""
    m = FakeMachine()
    p = m.policy(max_threads=2, interval=0.5)
    m.run(1.0, own_cores=2.0, other_cores=0.0)
    assert p.threads() == 2


def test_policy_without_proc_stat_keeps_the_bound():
    m = FakeMachine()
    m.readable = False
    p = m.policy(max_threads=2, interval=0.5)
    m.run(1.0, own_cores=1.0, other_cores=1.0)
    assert p.threads() == 2
    assert p.others is None


def test_policy_from_env(monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    p = policy_from_env(max_threads=2)
    assert p.fixed == 1 and p.threads() == 1
    monkeypatch.setenv(threads.ENV, "auto")
    assert policy_from_env(max_threads=2).fixed is None
    monkeypatch.setenv(threads.ENV, "two")
    with pytest.raises(ConfigError, match="RECON_THREADS"):
        policy_from_env()


def test_read_busy_seconds_parses_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  900 900 900 900 900 900 900 900 0 0\n"
        "cpu0 10 20 30 1000 50 6 7 8 0 0\n"  # busy: 10+20+30+6+7+8 = 81 (idle, iowait excluded)
        "cpu1 100 0 0 5000 0 0 0 0 0 0\n"
        "intr 12345 1 2\nctxt 999\n"
    )
    hz = os.sysconf("SC_CLK_TCK")
    assert read_busy_seconds({0}, str(stat)) == pytest.approx(81 / hz)
    assert read_busy_seconds({0, 1}, str(stat)) == pytest.approx(181 / hz)
    assert read_busy_seconds({7}, str(stat)) is None
    assert read_busy_seconds({0}, str(tmp_path / "missing")) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat")
def test_read_busy_seconds_of_this_machine_grows_with_our_work():
    cpus = os.sched_getaffinity(0)
    b0, c0 = read_busy_seconds(cpus), os.times()
    x = 0
    while os.times().user - c0.user < 0.1:  # ~0.1 s of our own CPU time
        x += 1
    assert read_busy_seconds(cpus) - b0 >= 0.05


# ---- the kernels under the policy ----------------------------------------------------------------

kernels = pytest.importorskip("recon.ops.kernels")


@pytest.fixture
def fixed_threads(monkeypatch):
    """Sets the policy to a fixed count (with torch allowed 2 threads); restores torch after."""
    ok, why = kernels.available("cpu")
    if not ok:
        pytest.skip(f"CPU kernels unavailable: {why}")
    before = torch.get_num_threads()
    torch.set_num_threads(2)

    def set_count(n: int):
        monkeypatch.setattr(threads, "_policy", ThreadPolicy(max_threads=2, fixed=n))

    yield set_count
    torch.set_num_threads(before)


def test_apply_sets_kernel_and_torch_threads_and_respects_the_caller(fixed_threads):
    ext = kernels.load_extension()
    fixed_threads(1)
    assert threads.apply(ext) == 1
    assert ext.cpu_threads() == 1 and torch.get_num_threads() == 1
    fixed_threads(2)
    assert threads.apply(ext) == 2
    assert ext.cpu_threads() == 2 and torch.get_num_threads() == 2
    torch.set_num_threads(1)  # the caller's own choice is an upper bound
    assert threads.apply(ext) == 1
    assert ext.cpu_threads() == 1


def test_kernels_give_the_same_bits_for_one_and_two_threads(fixed_threads):
    from tests.ops.test_kernels_gaussians import cameras, gaussians, render_and_grad
    from tests.ops.test_kernels_triangles_convexes import convexes, render, triangles

    torch.manual_seed(0)
    W, H = 64, 48
    viewmats, Ks = cameras(2, W, H)
    g = gaussians(5000)  # 2 views x 5000: projection loops long enough for two threads
    feats = torch.rand(2, 5000, 3)
    bg = torch.rand(2, 4)
    prims = {"triangle": triangles(300), "convex": convexes(300)}
    pfeats = torch.rand(2, 300, 3)
    outs = []
    for n in (1, 2):
        fixed_threads(n)
        out = list(render_and_grad(kernels, g, feats, bg, viewmats, Ks, W, H))
        assert kernels.load_extension().cpu_threads() == n
        for family, p in prims.items():
            key = "vertices" if family == "triangle" else "points"
            p = {**p, key: p[key].clone().requires_grad_()}
            (colors, alphas, max_w), proj, _ = render(kernels, family, p, pfeats, viewmats, Ks, W, H)
            (colors * torch.linspace(-1, 1, colors.numel()).reshape(colors.shape)).sum().backward()
            out += [colors, alphas, max_w, *proj, p[key].grad]
        outs.append(torch.utils._pytree.tree_leaves(out))
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)
