"""torchrun, 2 CPU processes (gloo): the ranks end with the same weights, equal to one process on the union batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402

PER_RANK_BATCH = 2


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", ddp_worker.__file__, str(out),
                             str(PER_RANK_BATCH)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.mark.parametrize("method", ddp_worker.METHODS)
def test_ranks_agree_and_match_the_union_batch(ddp_run, method, tmp_path):
    rank0 = load_file(str(ddp_run / f"{method}.rank0.safetensors"))
    rank1 = load_file(str(ddp_run / f"{method}.rank1.safetensors"))
    single = ddp_worker.train(method, tmp_path, 2 * PER_RANK_BATCH)
    initial = ddp_worker.train.__globals__["mtlzoo"].create_model("hps_tiny", tasks="nyud").state_dict()
    moved = False
    for name, value in single.items():
        assert torch.equal(rank0[name], rank1[name]), f"{method}: ranks differ on {name}"
        assert torch.allclose(rank0[name], value, rtol=1e-4, atol=1e-5), f"{method}: {name} differs from 1 process"
        moved |= value.shape == initial[name].shape and not torch.equal(value, initial[name])
    assert moved, "training did not change the weights"
    assert (ddp_run / method / "checkpoints" / "latest").exists(), "rank 0 writes the checkpoint"


@pytest.mark.parametrize("model_name,method", ddp_worker.MODEL_CASES)
def test_other_models_ranks_agree_and_match_the_union_batch(ddp_run, model_name, method, tmp_path):
    rank0 = load_file(str(ddp_run / f"{model_name}.{method}.rank0.safetensors"))
    rank1 = load_file(str(ddp_run / f"{model_name}.{method}.rank1.safetensors"))
    single = ddp_worker.train(method, tmp_path, 2 * PER_RANK_BATCH, model_name)
    ddp_worker.seed_everything(0)
    initial = ddp_worker.mtlzoo.create_model(model_name, tasks="nyud").state_dict()
    for name, value in single.items():
        assert torch.equal(rank0[name], rank1[name]), f"{model_name} {method}: ranks differ on {name}"
        assert torch.allclose(rank0[name], value, rtol=1e-4, atol=1e-5), f"{model_name} {method}: {name} differs"
    assert any(not torch.equal(single[k], v) for k, v in initial.items()), "training did not change the weights"
