"""Times the embedded demo scene generator and the image metrics.

Target (issue 2): 24 views at 128x96 with 2x2 supersampling in < 2 s on the CPU machine.

    python scripts/bench_synthetic.py [--repeats 5]   (with recon installed, or PYTHONPATH=.)
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from recon.data.synthetic import make_synthetic_scene
from recon.eval.metrics import psnr, ssim


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    make_synthetic_scene(num_views=2, width=16, height=12)  # warm up
    for kwargs in (
        dict(num_views=24, width=128, height=96),
        dict(num_views=24, width=128, height=96, layout="hemisphere"),
        dict(num_views=24, width=256, height=192),
    ):
        t = _best(lambda kw=kwargs: make_synthetic_scene(**kw), args.repeats)
        print(
            f"make_synthetic_scene({', '.join(f'{k}={v}' for k, v in kwargs.items())}): {t:.3f} s"
        )
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(24, 300, 400, 3, generator=gen), torch.rand(24, 300, 400, 3, generator=gen)
    print(f"psnr 24 x 400x300: {_best(lambda: psnr(a, b), args.repeats) * 1e3:.1f} ms")
    print(f"ssim 24 x 400x300: {_best(lambda: ssim(a, b), args.repeats) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
