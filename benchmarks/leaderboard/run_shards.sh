#!/usr/bin/env bash
# Train a sweep with N processes at once (one thread each), each taking every N-th run of the same out_dir:
#   bash benchmarks/leaderboard/run_shards.sh N SPEC.yaml [more `mtlzoo benchmark run` options...]
# then `mtlzoo benchmark run SPEC.yaml` once more (it trains whatever is left and writes the results).
set -u
n=${1:?usage: run_shards.sh N SPEC.yaml [options]}
shift
py=${PYTHON:-python3}
for k in $(seq 1 "$n"); do
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$py" -m mtlzoo.cli benchmark run "$@" --shard "$k/$n" &
done
wait
