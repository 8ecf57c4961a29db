#!/usr/bin/env bash
# Every GPU benchmark of benchmarks/RESULTS.md and the CUDA tests, in one call that fits a lent device (15 minutes
# of device time a session, 10 a command): each part has its own time limit and writes its log as it goes, so a
# part that runs over loses only itself, and the whole run stops starting parts at GPU_RUN_BUDGET_S (420 s).
# Estimated from the H200 run of 2026-11-26 (219 s for the former, larger grid): about 3.5 minutes; the per-part
# limits add up to 7 minutes 15 s.
# Usage: bash benchmarks/run_gpu.sh [--dry-run] OUT_DIR
#   then OUT_DIR/{env,tests,memory,balancers,architectures,metrics}.log (+ architectures.json, memory.json);
#   --dry-run prints the plan (parts, limits, commands) and checks the scripts exist, without a GPU.
set -u
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:?usage: bash benchmarks/run_gpu.sh [--dry-run] OUT_DIR}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
budget=${GPU_RUN_BUDGET_S:-420}

if [ "$dry" = 0 ]; then
    # fail fast, before any part starts, where torch sees no CUDA device
    if ! timeout 30 "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "run_gpu.sh: no CUDA device visible to torch ($py); these benchmarks need one GPU. Nothing was run." >&2
        echo "  (use --dry-run to see the plan; the CPU benchmarks are in benchmarks/RESULTS.md)" >&2
        exit 2
    fi
    mkdir -p "$out"
fi

planned=0
part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, its output in OUT_DIR/NAME.log
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    planned=$((planned + limit))
    if [ "$dry" = 1 ]; then
        echo "== $name (limit ${limit} s): $*"
        local arg
        for arg in "${@:2}"; do  # the script, or the test paths after -m pytest
            case $arg in benchmarks/*.py|tests/*) [ -e "${arg%%::*}" ] || echo "   MISSING: $arg" ;; esac
        done
        return
    fi
    local left=$((budget - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo "== $name: skipped (the run's budget of ${budget} s is spent)"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit} s): $*"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - start)) s"
}

if [ "$dry" = 0 ]; then
    {
        date -u
        timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
        timeout 30 "$py" -c "import sys, torch, timm; print(sys.version.split()[0], 'torch', torch.__version__, 'timm', \
timm.__version__, torch.cuda.get_device_name())"
    } >"$out/env.log" 2>&1
fi
# CUDA correctness first (tests/gpu, the auto Jacobian's allocator figures, checkpointed SquadNet on the device)
part tests 90 "$py" -m pytest -q -p no:cacheprovider tests/gpu \
    tests/balancers/test_engine_auto.py::test_cuda_calibration_measures_the_allocator \
    tests/models/test_squadnet_checkpoint.py::test_checkpointed_training_step_on_cuda
# SquadNet checkpoint_experts on/off (squadnet_small, batch 8, 288x384) and what auto keeps on hps_resnet50
part memory 60 "$py" benchmarks/memory.py --device cuda --json "$out/memory.json"
# 9 of the 12 balancers of the first run (imtl and aligned_mtl cost what upgrad does, dwa what uw does)
part balancers 150 "$py" benchmarks/balancers.py --device cuda --same-process --torchjd --steps 6 --warmup 2 \
    --modes loop batched --balancers ew mgda pcgrad cagrad nash_mtl upgrad famo gradnorm uw
part architectures 75 "$py" benchmarks/architectures.py --device cuda --same-process --batch-size 8 --iters 6 \
    --warmup 2 --json "$out/architectures.json"
part metrics 40 "$py" benchmarks/metrics.py --device cuda --num-images 96
if [ "$dry" = 1 ]; then
    echo "dry run: limits add up to ${planned} s (run budget ${budget} s); nothing was run"
else
    echo "done after ${SECONDS} s"
fi
