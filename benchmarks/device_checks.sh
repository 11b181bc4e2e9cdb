#!/usr/bin/env bash
# The GPU checks the open issues need, grouped so each group fits one 10-minute device call.
#   bash benchmarks/device_checks.sh judge|truth|search|kernelbench|tuner [more groups...]
#   judge        prebuild, then pytest -m gpu (judge, sandbox, link audit), then truth
#   truth        benchmarks/timing_truth.py for the seeds in $TRUTH (default all ten) in what is left of the call
#   search       make run (softmax, tuner, 5 rounds: time, candidates per round, best) and a
#                2-round scripted-model search whose idea prompts carry profiler feedback
#   kernelbench  benchmarks/kernelbench_gpu.sh (needs .kb/, see docs/kernelbench.md)
#   tuner        benchmarks/tuner_vs_sweep.py for softmax, layernorm, matmul_fp16, an exhaustive sweep
#                ($SWEEP_CAP, default 0: every point; layernorm and matmul_fp16 have 420 and 504), each
#                point timed by benchmarks/bench_points.py, the best re-judged beside the tuner's
# kernelbench and tuner outlast one call: both resume from what they wrote, so carry outputs/suites
# or outputs/tuner_vs_sweep (fetched from the call before and unpacked here) into the next call.
# Logs go to $OUT (or outputs/device_checks); each step has its own time limit, so a slow step
# leaves the others their time. When a module is missing, wheels are installed from .whl/ if present.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/device_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
S=$(date +%s)
say() { echo "[$(( $(date +%s) - S ))s] $*"; }
step() {  # step NAME SECONDS CMD...: run CMD with a limit, log to $OUT/NAME.log, print its tail
    local name=$1 limit=$2; shift 2
    say "$name (limit ${limit}s)"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "rc $rc" >> "$OUT/$name.log"
    grep -v -i "warn" "$OUT/$name.log" | tr '\r' '\n' | grep -v "cand/s\]$" | tail -"${TAIL:-8}"
    return $rc
}
if [ -d .whl ] && ! python3 -c "import optuna, pytest_timeout, papermill, ipykernel, ipywidgets, nbconvert, openai, google.genai" 2>/dev/null; then
    python3 -m pip install -q --no-index --find-links .whl optuna pytest-timeout papermill ipykernel ipywidgets \
        nbconvert openai google-genai > "$OUT/pip.log" 2>&1 || echo "pip from .whl failed (see $OUT/pip.log)"
fi
run_truth() {  # the seeds in $TRUTH (all ten by default), for what is left of a 10-minute call
    # shellcheck disable=SC2086
    step timing-truth $(( ${CALL_S:-570} - $(date +%s) + S )) python3 benchmarks/timing_truth.py ${TRUTH:-softmax \
        layernorm matmul_fp16 rmsnorm gelu attention_fp16 matmul_fp32 conv2d depthwise_conv2d conv2d_relu_maxpool} \
        --runs 3 --calls 20 --json "$OUT/timing-truth.json"
}
for group in "$@"; do
    case $group in
    judge)
        step prebuild 150 python3 -c "
from pathlib import Path
from workbench.pool import prebuild_all
ps = sorted(Path('tests/candidates/cuda').glob('*.py')) + sorted(Path('problems').glob('*/seeds/*.py'))
r = prebuild_all(ps, workers=max(1, __import__('os').cpu_count() - 1))
print('prebuilt', len(ps), 'failed', [p.name for p, x in zip(ps, r) if x.get('error') or any(not b['ok'] for b in x.get('builds', []))])"
        step pytest-gpu 300 python3 -m pytest -q -m gpu tests/test_judge_gpu.py tests/test_sandbox.py \
            tests/test_audit_link.py -p no:cacheprovider --timeout 120
        run_truth ;;
    truth)
        run_truth ;;
    search)
        TAIL=14 step make-run 300 make run PY=python3
        TAIL=14 step play-search 240 python3 -m tests.fakes.play_search softmax --rounds 2 --target cuda
        tar czf "$OUT/runs.tgz" --exclude='*.so' outputs/runs 2>/dev/null ;;
    kernelbench)
        TAIL=40 step kernelbench 570 bash benchmarks/kernelbench_gpu.sh  # 570: pip and the call's start inside 600
        tar czf "$OUT/suites.tgz" outputs/suites 2>/dev/null ;;
    tuner)
        TAIL=12 step tuner-vs-sweep 570 python3 benchmarks/tuner_vs_sweep.py --time-limit 420 \
            --sweep-cap "${SWEEP_CAP:-0}" --json "$OUT/tuner-vs-sweep.json"
        tar czf "$OUT/tuner-vs-sweep.tgz" --exclude='*.so' outputs/tuner_vs_sweep 2>/dev/null ;;
    *) echo "unknown group $group (judge|truth|search|kernelbench|tuner)" >&2; exit 2 ;;
    esac
done
say done
