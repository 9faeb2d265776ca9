#!/usr/bin/env bash
# The GPU check of OnnxChat, for a machine with an NVIDIA GPU and no network.
#
# Usage, from a copy of the repository (a git checkout or `git archive` of it):
#
#     tests/gpu/run.sh [OUTPUT_DIR]          # default: ./gpu-results
#
# What the machine needs:
#   - an NVIDIA driver (nvidia-smi) and the CUDA 12/13 + cuDNN 9 runtime libraries that the
#     onnxruntime-gpu wheel was built for (pip's nvidia-* packages are found on their own);
#   - Python 3.10+ with the project's runtime dependencies (numpy, tokenizers, jinja2,
#     platformdirs, pygments) and pytest; wheels of any that are missing can go in the
#     wheel folder below (pytest: pytest, pluggy, iniconfig, packaging);
#   - the onnxruntime-gpu wheel: $ORT_WHEEL, or the one onnxruntime_gpu-*.whl found in
#     $WHEEL_DIR (default: ./wheels, then the repository root). Every other *.whl in that
#     folder (onnx, say) is installed beside it: onnx lets the tests build the exact fp32
#     reference and add a CUDA graph to a model folder exported before fused exports had one;
#   - the default model folder: models/smollm2-135m-instruct, or $MODEL_DIR (linked there).
#
# Nothing is downloaded: the wheels go into a private folder with
# `pip install --no-deps --no-index --target`, put first on PYTHONPATH so they shadow any
# CPU onnxruntime. Then, each step with a time limit and its exit status recorded:
#   1. env.txt             the GPU, driver, Python and onnxruntime (providers) in use;
#   2. pytest.log          the GPU tests (marker `gpu`); figures.json their measurements;
#   3. bench_cuda.json     `onnxchat bench --device cuda --no-cuda-graph --json` (128-token
#      bench_cuda_graph.json  prompt, 64 greedy tokens, 5 runs), the same as users run it
#                          (no flag: decode steps captured, the default),
#      bench_cpu.json      and on this machine's CPU (2 threads) for the speed ratio;
#   4. profile_summary.json  ONNX Runtime's profile of 16 decode steps on CUDA, per op;
#   5. summary.md          the figures above in one page.
# PYTEST_TIMEOUT (default 900 s) and BENCH_TIMEOUT (600 s) bound each step.
# The exit status is 0 only if every step succeeded.

set -u
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$(mkdir -p "${1:-./gpu-results}" && cd "${1:-./gpu-results}" && pwd)"
PYTHON="${PYTHON:-python3}"
MODEL_LINK="$REPO/models/smollm2-135m-instruct"
SITE="$(mktemp -d)"
WORK="$(mktemp -d)"
trap 'rm -rf "$SITE" "$WORK"' EXIT
status=0
steps=()

note() { echo "== $*" >&2; }
record() { steps+=("$1: exit $2"); [ "$2" -eq 0 ] || status=1; }

# -- wheels, without network ---------------------------------------------------------------
WHEEL_DIR="${WHEEL_DIR:-}"
if [ -z "$WHEEL_DIR" ]; then
    if [ -d "$REPO/wheels" ]; then WHEEL_DIR="$REPO/wheels"; else WHEEL_DIR="$REPO"; fi
fi
ORT_WHEEL="${ORT_WHEEL:-$(ls "$WHEEL_DIR"/onnxruntime_gpu-*.whl 2>/dev/null | head -n 1)}"
if [ -z "$ORT_WHEEL" ] || [ ! -f "$ORT_WHEEL" ]; then
    echo "run.sh: no onnxruntime-gpu wheel: set ORT_WHEEL or put onnxruntime_gpu-*.whl in $WHEEL_DIR" >&2
    exit 2
fi
wheels=("$ORT_WHEEL")
for extra in "$WHEEL_DIR"/*.whl; do
    [ -f "$extra" ] && [ "$extra" != "$ORT_WHEEL" ] && wheels+=("$extra")
done
note "installing ${wheels[*]##*/} into a private folder"
"$PYTHON" -m pip install --quiet --no-deps --no-index --target "$SITE" "${wheels[@]}" \
    >"$WORK/pip.log" 2>&1
record "install wheels" $?
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export ONNXCHAT_GPU_RESULTS="$OUT"
export HF_HUB_OFFLINE=1

# -- the model folder ------------------------------------------------------------------------
if [ -n "${MODEL_DIR:-}" ] && [ ! -e "$MODEL_LINK" ]; then
    mkdir -p "$REPO/models" && ln -s "$(cd "$MODEL_DIR" && pwd)" "$MODEL_LINK"
fi
if [ ! -f "$MODEL_LINK/manifest.json" ]; then
    echo "run.sh: no model folder at $MODEL_LINK: set MODEL_DIR to the default model's folder" >&2
    exit 2
fi

# -- 1. environment ------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
    "$PYTHON" - <<'EOF'
import platform, onnxruntime as ort
print("python", platform.python_version(), "on", platform.platform())
print("onnxruntime", ort.__version__, "from", ort.__file__)
print("available providers:", ort.get_available_providers())
from desktop.engine.runtime import cuda_unavailable_reason
print("CUDA in OnnxChat:", cuda_unavailable_reason() or "works")
EOF
    cat "$WORK/pip.log"
} >"$OUT/env.txt" 2>&1
record "environment" $?

# -- 2. GPU tests --------------------------------------------------------------------------
tests=(tests/gpu)
if "$PYTHON" -c "import onnx" 2>/dev/null; then
    tests+=(tests/export/test_accuracy_levels.py)
fi
note "GPU tests: ${tests[*]}"
(cd "$REPO" && timeout "${PYTEST_TIMEOUT:-900}" "$PYTHON" -m pytest -m gpu -p no:cacheprovider -rs \
    "${tests[@]}") >"$OUT/pytest.log" 2>&1
record "pytest -m gpu" $?

# -- 3. benchmarks -------------------------------------------------------------------------
bench() {  # NAME, then onnxchat bench arguments
    local name="$1"; shift
    note "bench $name"
    (cd "$REPO" && timeout "${BENCH_TIMEOUT:-600}" "$PYTHON" -m desktop bench --model "$MODEL_LINK" --json \
        --runs 5 "$@") >"$OUT/bench_$name.json" 2>"$WORK/bench_$name.err"
    local code=$?
    [ $code -eq 0 ] || cat "$WORK/bench_$name.err" >>"$OUT/bench_$name.json"
    record "bench $name" $code
}
bench cuda --device cuda --no-cuda-graph
bench cuda_graph --device cuda  # the default: decode steps captured
bench cpu --device cpu --threads 2

# -- 4. profile of decode steps ------------------------------------------------------------
note "profiling 16 decode steps on CUDA"
(cd "$REPO" && timeout "${BENCH_TIMEOUT:-300}" "$PYTHON" tests/gpu/profile_step.py "$MODEL_LINK" --device cuda \
    --steps 16 --out "$WORK/profile") >"$WORK/profile.log" 2>&1
code=$?
if [ -f "$WORK/profile/profile_summary.json" ]; then
    cp "$WORK/profile/profile_summary.json" "$OUT/"
else
    cp "$WORK/profile.log" "$OUT/profile_summary.json"
fi
record "profile" $code

# -- 5. one page -----------------------------------------------------------------------------
printf '%s\n' "${steps[@]}" >"$WORK/steps.txt"
"$PYTHON" - "$OUT" "$WORK/steps.txt" <<'EOF' >"$OUT/summary.md" 2>&1
import json, sys
from pathlib import Path
out, steps = Path(sys.argv[1]), Path(sys.argv[2]).read_text().splitlines()
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
print("# OnnxChat GPU check\n")
print("```\n" + (out / "env.txt").read_text().split("\n\n")[0].strip() + "\n```\n")
print("Steps: " + "; ".join(steps) + "\n")
print("| run | device | load s | prefill tok/s | decode tok/s | TTFT turn 1 / 10 ms |")
print("|---|---|---|---|---|---|")
for name in ("cuda", "cuda_graph", "cpu"):
    report = load(f"bench_{name}.json")
    if not report:
        print(f"| {name} | failed: see bench_{name}.json | | | | |")
        continue
    r, w = report["results"][0], report["workload"]
    gpu = w.get("gpu", {}).get("name", "")
    print(f"| {name} | {w['device']} {gpu} | {r['load_s']} | {r['prefill_tok_s']} | "
          f"{r['decode_tok_s']} | {r['ttft_turn1_ms']} / {r['ttft_turn10_ms']} |")
cuda, cpu = load("bench_cuda_graph.json") or load("bench_cuda.json"), load("bench_cpu.json")
if cuda and cpu:
    ratio = cuda["results"][0]["decode_tok_s"] / cpu["results"][0]["decode_tok_s"]
    print(f"\nDecode, CUDA against this machine's CPU: {ratio:.1f}x\n")
figures = load("figures.json")
if figures:
    print("## Parity and quality (tests/gpu)\n\n```json\n" + json.dumps(figures, indent=1)
          + "\n```\n")
profile = load("profile_summary.json")
if profile:
    print(f"## One decode step on CUDA: {profile['step_ms_median']} ms wall, "
          f"{profile['nodes_per_step']} nodes, {profile['node_ms_per_step']} ms in node "
          "launches (host time)\n")
    print("| op | ms per step | calls | share |\n|---|---|---|---|")
    for row in profile["per_op"][:12]:
        print(f"| {row['op']} | {row['ms_per_step']} | {row['calls_per_step']:g} | "
              f"{row['share']:.1%} |")
EOF
record "summary" $?
cat "$OUT/summary.md"
exit $status
