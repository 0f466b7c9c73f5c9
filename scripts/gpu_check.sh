#!/usr/bin/env bash
# GPU acceptance check of recon: run from the repository root on a machine with a CUDA GPU.
#
#   bash scripts/gpu_check.sh [OUT_DIR]     # OUT_DIR: $1, else $OUT, else ./gpu_check
#
# Stages, in this order, each with its own timeout and all within GPU_CHECK_BUDGET seconds
# (default 460, so the whole check ends within 8 minutes):
#   env     torch, CUDA, the GPU, optional packages, where the real scenes are
#   build   builds the extension (C++ and CUDA kernels) from cuda/ with nvcc
#   tests   pytest -m cuda (CUDA kernels against the CPU kernels and the reference, training on CUDA);
#           tests/ops/test_cuda_families.py: every family's projection and batched shared-memory
#           rasterizer, tile sizes 8, 16 and 32, against the CPU kernels
#   raster  scripts/bench_raster.py on recon's CUDA kernels: Gaussians 200k at 800x800 (and 20k at
#           256 against the reference), triangles and convexes the same
#   dtu     recon train DTU scan24, 3 views, 300 steps on CUDA, then recon eval --json
#   gsplat  the Gaussian cases with gsplat's rasterizer (last: a first call may JIT-compile gsplat)
# Results: OUT_DIR/summary.json = {"cuda": bool, "stages": {stage: {"ok", "rc", "seconds",
# "timed_out", ...the stage's numbers}}}, plus <stage>.json and <stage>.log per stage. One failing
# stage does not stop the others. Without a GPU it writes {"cuda": false, ...} and exits 0; with one
# it exits 1 when a stage failed.
#
# Knobs: PYTHON (interpreter), GPU_CHECK_ONLY=env,tests (a subset), GPU_CHECK_FORCE=1 (run the
# stages without a GPU: tests of this script), GPU_CHECK_TIMEOUT_<STAGE>=seconds, RECON_SHARED_DATA.
set -u

OUT_DIR=${1:-${OUT:-gpu_check}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
REPO=$(pwd)
PY=${PYTHON:-$(command -v python || command -v python3)}
BUDGET=${GPU_CHECK_BUDGET:-460}
START=$SECONDS
export OUT_DIR REPO PY
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # a copied checkout runs without installing
export RECON_EXT_DIR=${RECON_EXT_DIR:-$OUT_DIR/ext}   # a fresh build, not a stale cache

if [ ! -f "$REPO/recon/__init__.py" ] || [ ! -d "$REPO/cuda" ]; then
    echo "gpu_check: run from the repository root (no recon/ and cuda/ in $REPO)" >&2
    exit 2
fi
for d in "${RECON_SHARED_DATA:-}" "$REPO/../shared/data" "$REPO/shared/data"; do
    if [ -n "$d" ] && [ -d "$d" ]; then
        export RECON_SHARED_DATA=$(cd "$d" && pwd)
        break
    fi
done

# ---- the stages (each writes $OUT_DIR/<stage>.json with its numbers) ---------------------------

stage_env() {
    "$PY" - <<'EOF'
import importlib.util, json, os, platform
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda, "shared_data": os.environ.get("RECON_SHARED_DATA")}
if info["cuda"]:
    info["gpu"] = torch.cuda.get_device_name()
    info["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
from torch.utils.cpp_extension import CUDA_HOME
info["cuda_home"] = CUDA_HOME
info["packages"] = {m: importlib.util.find_spec(m) is not None
                    for m in ("gsplat", "pytest", "tyro", "rich", "safetensors", "yaml", "pycolmap", "scipy")}
json.dump(info, open(os.path.join(os.environ["OUT_DIR"], "env.json"), "w"), indent=1)
print(json.dumps(info))
EOF
}

stage_build() {
    "$PY" - <<'EOF'
import json, os, time
t0 = time.perf_counter()
from recon.ops import kernels
ok, why = kernels.available("cuda")
info = {"ok": ok, "reason": why, "seconds_build": round(time.perf_counter() - t0, 1),
        "build_dir": os.environ.get("RECON_EXT_DIR")}
if ok:
    info["with_cuda"] = bool(kernels.load_extension().with_cuda)
json.dump(info, open(os.path.join(os.environ["OUT_DIR"], "build.json"), "w"), indent=1)
print(json.dumps(info))
raise SystemExit(0 if ok else 1)
EOF
}

stage_tests() {
    "$PY" -m pytest -m cuda -q -p no:cacheprovider --junitxml="$OUT_DIR/tests.xml" tests
    local rc=$?
    "$PY" - <<'EOF'
import json, os, xml.etree.ElementTree as ET
out = os.environ["OUT_DIR"]
root = ET.parse(os.path.join(out, "tests.xml")).getroot()
cases = list(root.iter("testcase"))
def status(c):
    for tag in ("failure", "error", "skipped"):
        if c.find(tag) is not None:
            return tag
    return "passed"
info = {"passed": 0, "failure": 0, "error": 0, "skipped": 0}
for c in cases:
    info[status(c)] += 1
info["failed_tests"] = [f"{c.get('classname')}::{c.get('name')}" for c in cases if status(c) in ("failure", "error")]
json.dump(info, open(os.path.join(out, "tests.json"), "w"), indent=1)
print(json.dumps(info))
EOF
    return $rc
}

# bench_raster.py cases "FAMILY BACKEND N SIZE REPEATS", each in its own process; <stage>.json lists them
bench_cases() {
    local stage=$1
    shift
    STAGE=$stage "$PY" - "$@" <<'EOF'
import json, os, subprocess, sys
out, rows, ok = os.environ["OUT_DIR"], [], True
for case in sys.argv[1:]:
    fam, backend, n, size, reps = case.split()
    row = {"family": fam, "backend": backend, "N": int(n), "size": int(size)}
    cmd = [os.environ["PY"], "scripts/bench_raster.py", "--case", fam, backend, n, size, reps]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
        row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired:
        row["error"] = "timed out after 150 s"
    except (IndexError, json.JSONDecodeError):
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    ok &= "ms_per_image" in row
    rows.append(row)
    print(json.dumps(row), flush=True)
    json.dump({"cases": rows}, open(os.path.join(out, os.environ["STAGE"] + ".json"), "w"), indent=1)
raise SystemExit(0 if ok else 1)
EOF
}

stage_raster() {
    bench_cases raster "gaussian cuda 200000 800 10" "gaussian cuda 20000 256 5" \
        "triangle cuda 200000 800 5" "triangle cuda 20000 256 5" \
        "convex cuda 200000 800 5" "convex cuda 20000 256 5"
}

stage_gsplat() {
    bench_cases gsplat "gaussian gsplat 200000 800 10" "gaussian gsplat 20000 256 5"
}

stage_dtu() {
    "$PY" - <<'EOF'
import json, os, subprocess, sys, time
out, data = os.environ["OUT_DIR"], os.environ.get("RECON_SHARED_DATA")
scene = os.path.join(data or "", "dtu", "scan24")
info = {"scene": scene}
if not data or not os.path.isdir(scene):
    info["error"] = "DTU scan24 not found (looked in $RECON_SHARED_DATA, ../shared/data, ./shared/data)"
else:
    run = os.path.join(out, "dtu_run")
    cmd = [os.environ["PY"], "-m", "recon", "train", "--data", scene, "--protocol", "dtu", "--views", "3",
           "--iterations", "300", "--backend", "cuda", "--device", "cuda", "--out", run, "--overwrite"]
    t0 = time.perf_counter()
    train = subprocess.run(cmd)
    info["train_seconds"], info["train_rc"] = round(time.perf_counter() - t0, 1), train.returncode
    if train.returncode == 0:
        log = [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))]
        info["train_last"] = log[-1] if log else None
        t0 = time.perf_counter()
        ev = subprocess.run([os.environ["PY"], "-m", "recon", "eval", run, "--json", "--no-images"],
                            capture_output=True, text=True)
        info["eval_seconds"], info["eval_rc"] = round(time.perf_counter() - t0, 1), ev.returncode
        if ev.returncode == 0:
            res = json.loads(ev.stdout.strip().splitlines()[-1])
            info.update({k: res.get(k) for k in ("psnr", "ssim", "lpips")}, test_views=len(res.get("views", [])))
        else:
            info["error"] = (ev.stderr.strip().splitlines() or ["eval failed"])[-1]
json.dump(info, open(os.path.join(out, "dtu.json"), "w"), indent=1)
print(json.dumps(info))
raise SystemExit(0 if info.get("psnr") is not None else 1)
EOF
}

export -f stage_env stage_build stage_tests bench_cases stage_raster stage_gsplat stage_dtu

# ---- runner ------------------------------------------------------------------------------------

STAGES="env build tests raster dtu gsplat"
declare -A TIMEOUT=([env]=60 [build]=240 [tests]=150 [raster]=120 [dtu]=200 [gsplat]=150)
: > "$OUT_DIR/stages.jsonl"

run_stage() {  # name: runs stage_<name> under its timeout (capped by the budget left), records rc/time
    local name=$1 var="GPU_CHECK_TIMEOUT_${1^^}"
    local limit=${!var:-${TIMEOUT[$name]}} left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt "$limit" ]; then limit=$left; fi
    if [ "$limit" -le 0 ]; then
        echo "{\"stage\": \"$name\", \"rc\": null, \"seconds\": 0, \"timed_out\": true, \"note\": \"no budget left\"}" \
            >> "$OUT_DIR/stages.jsonl"
        return
    fi
    echo "gpu_check: $name (up to ${limit} s)" >&2
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" bash -c "cd '$REPO' && stage_$name" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    local timed_out=false
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then timed_out=true; fi
    echo "{\"stage\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0)), \"timed_out\": $timed_out}" \
        >> "$OUT_DIR/stages.jsonl"
}

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "$CUDA" = "1" ] || [ "${GPU_CHECK_FORCE:-0}" = "1" ]; then
    for name in $STAGES; do
        case ",${GPU_CHECK_ONLY:-$name}," in *",$name,"*) run_stage "$name" ;; esac
    done
fi

"$PY" - "$CUDA" <<'EOF'
import json, os, sys
out = os.environ["OUT_DIR"]
summary = {"cuda": sys.argv[1] == "1", "stages": {}}
try:
    import torch
    summary["torch"] = torch.__version__
except ImportError:
    summary["torch"] = None
for line in open(os.path.join(out, "stages.jsonl")):
    rec = json.loads(line)
    name = rec.pop("stage")
    path = os.path.join(out, f"{name}.json")
    try:
        rec["result"] = json.load(open(path))
    except (OSError, json.JSONDecodeError):
        rec["result"] = None
    rec["ok"] = rec["rc"] == 0
    rec["log"] = f"{name}.log"
    summary["stages"][name] = rec
cases = {(c["family"], c["backend"], c["size"]): c for s in ("raster", "gsplat")
         for c in ((summary["stages"].get(s) or {}).get("result") or {}).get("cases", [])}
ours, theirs = cases.get(("gaussian", "cuda", 800), {}), cases.get(("gaussian", "gsplat", 800), {})
if "ms_per_image" in ours and "ms_per_image" in theirs:
    summary["gaussian_800_ms"] = {"recon": ours["ms_per_image"], "gsplat": theirs["ms_per_image"],
                                  "recon_over_gsplat": ours["ms_per_image"] / theirs["ms_per_image"]}
summary["ok"] = all(s["ok"] for s in summary["stages"].values())
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in summary.items() if k != "stages"}))
for name, s in summary["stages"].items():
    note = "  (timed out)" if s["timed_out"] else ""
    print(f"  {name:7} {'ok' if s['ok'] else 'FAILED'}  rc={s['rc']}  {s['seconds']} s{note}")
raise SystemExit(0 if summary["ok"] or not summary["stages"] else 1)
EOF
status=$?
if [ "$CUDA" != "1" ] && [ "${GPU_CHECK_FORCE:-0}" != "1" ]; then
    echo "gpu_check: torch sees no CUDA GPU; wrote $OUT_DIR/summary.json with \"cuda\": false" >&2
    exit 0
fi
exit $status
