#!/usr/bin/env bash
# Every GPU benchmark of benchmarks/RESULTS.md and the CUDA tests, in one call sized for a 10-minute device
# lease: each part has its own time limit and writes its log as it goes, so a part that runs over loses only
# itself. Usage: bash benchmarks/run_gpu.sh OUT_DIR   (then OUT_DIR/{env,balancers,architectures,metrics,tests}.log)
set -u
out=${1:?usage: bash benchmarks/run_gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, its output in OUT_DIR/NAME.log
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "== $name (limit ${limit} s): $*"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - start)) s"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$py" -c "import sys, torch, timm; print(sys.version.split()[0], 'torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
} >"$out/env.log" 2>&1
part balancers 240 "$py" benchmarks/balancers.py --device cuda --same-process --torchjd --steps 8 --warmup 2 \
    --modes loop batched --balancers ew mgda pcgrad cagrad imtl nash_mtl aligned_mtl upgrad famo gradnorm uw dwa
part architectures 150 "$py" benchmarks/architectures.py --device cuda --same-process --batch-size 8 --iters 10 \
    --warmup 3 --json "$out/architectures.json"
part metrics 60 "$py" benchmarks/metrics.py --device cuda --num-images 96
part tests 90 "$py" -m pytest -q tests/gpu -p no:cacheprovider
