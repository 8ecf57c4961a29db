"""The DDP hook: two gloo ranks on halves of a batch give the single-process result on the whole batch."""

from __future__ import annotations

import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))

from balancer_toys import one_thread  # noqa: E402, F401  (autouse fixture)

CASES = [("mgda", "parameters"), ("upgrad", "parameters"), ("uw", "parameters"), ("aligned_mtl", "features")]


def _grads(name, level, x, y):
    from balancer_toys import ToyModel

    from mtlzoo.balancers import create_balancer

    model = ToyModel()
    kwargs = {} if name == "uw" else {"level": level}
    losses, feats = model.losses(x, y)
    balancer = create_balancer(name, tasks=list(losses), **kwargs)
    info = balancer.backward(losses, model, features=feats)
    return info.weights.float(), [p.grad.clone() for p in [*model.parameters(), *balancer.parameters()]]


def _worker(rank, port, queue):
    from balancer_toys import toy_batch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    x, y = toy_batch(n=8)
    for name, level in CASES:
        weights, grads = _grads(name, level, x[rank * 4:(rank + 1) * 4], y[rank * 4:(rank + 1) * 4])
        queue.put((rank, name, weights.numpy(), [g.numpy() for g in grads]))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_match_one_process_on_the_whole_batch():
    """Every rank ends with the weights and gradients of one process on the concatenated batch."""
    from balancer_toys import toy_batch

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {(r, n): (w, g) for r, n, w, g in (queue.get(timeout=300) for _ in range(2 * len(CASES)))}
    for p in procs:
        p.join(timeout=60)
    x, y = toy_batch(n=8)
    for name, level in CASES:
        ref_w, ref_g = _grads(name, level, x, y)
        for rank in range(2):
            w, g = results[(rank, name)]
            torch.testing.assert_close(torch.from_numpy(w), ref_w, rtol=1e-4, atol=1e-6, msg=f"{name} rank {rank}")
            if level == "parameters":
                for a, b in zip(g, ref_g, strict=True):
                    torch.testing.assert_close(torch.from_numpy(a), b, rtol=1e-4, atol=1e-6, msg=name)
