"""The ``recon`` command line: ``recon <command> [<subcommand>] [options]``.

Each command lives with the code it drives and is imported only when used, so ``recon --help``
stays fast. A command's entry point takes its argument list and the program name, parses it with
tyro (field docstrings become the help) and returns an exit status.

Expected failures (:class:`recon.errors.ReconError`) print one line and exit with status 2; pass
``--verbose`` anywhere on the command line to see the traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command words -> (module, function, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("demo",): ("recon.train.cli", "demo_main", "train and evaluate on the embedded synthetic scene"),
    ("train",): ("recon.app.train", "train_main", "reconstruct a scene from photos or a posed dataset"),
    ("eval",): ("recon.train.cli", "eval_main", "render a run's test views and report PSNR/SSIM/LPIPS"),
    ("view",): ("viewer.cli", "view_main", "serve a run or a PLY in the browser (viser)"),
    ("render",): ("viewer.cli", "render_main", "render a camera path of a run to a video"),
    ("export",): ("recon.export.cli", "export_main", "write a run as 3DGS PLY/.splat, mesh, points or cameras"),
    ("data", "inspect"): ("recon.data.cli", "inspect_main", "describe a scene folder and its splits"),
    ("data", "sfm"): ("recon.priors.cli", "sfm_main", "recover camera poses of a photo folder (pycolmap)"),
    ("data", "priors"): ("recon.priors.cli", "priors_main", "compute geometry priors (MVS, hull, mono depth)"),
    ("bench",): ("recon.bench.cli", "bench_main", "train and evaluate a benchmark matrix, report mean +- std"),
    ("bench", "compare"): ("recon.bench.compare", "compare_main", "difference of two benchmark results, with seed spread"),
    ("repair", "pairs"): ("recon.repair.cli", "pairs_main", "training pairs of a run's repair model (leave-one-out)"),
    ("repair", "fit"): ("recon.repair.cli", "fit_main", "fit and gate the scene's repair model on its pairs"),
    ("repair", "apply"): ("recon.repair.cli", "apply_main", "repair renders of a run's views, side by side"),
}


def _usage() -> str:
    lines = ["usage: recon <command> [options]   (recon <command> --help for its options)", "", "commands:"]
    for words, (_, _, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<14} {text}")
    lines.append("")
    lines.append("global options: --verbose (show tracebacks), --version")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from recon import __version__

        print(f"recon {__version__}")
        return 0

    for n in (2, 1):
        key = tuple(args[:n])
        if key in COMMANDS:
            module, func, _ = COMMANDS[key]
            rest = args[n:]
            break
    else:
        group = [w for w in COMMANDS if w[0] == args[0]]
        if group and len(args) == 1 or (group and args[1] in ("-h", "--help")):
            print(f"usage: recon {args[0]} <subcommand>\n")
            for words in group:
                print(f"  {' '.join(words):<14} {COMMANDS[words][2]}")
            return 0
        print(f"recon: unknown command {' '.join(args[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2

    from recon.errors import ReconError

    prog = "recon " + " ".join(key)
    try:
        entry = getattr(importlib.import_module(module), func)
        status = entry(rest, prog=prog)
    except ReconError as err:
        if verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
