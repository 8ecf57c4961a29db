"""Checks shared by the tests of the zoo families (stl, cross_stitch, nddr, mtan): parameter groups, private
gradients, rebuild / save / load round trips, balancer steps and a short training run."""

from __future__ import annotations

import math
from pathlib import Path

import torch

import mtlzoo
from mtlzoo.models import create_model_from_config

TASKS = [{"name": "semseg", "kind": "segmentation", "channels": 5}, {"name": "depth", "kind": "depth"},
         {"name": "normals", "kind": "normals"}]
SIZE = 32


def batch(size: int = SIZE, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images and targets for TASKS."""
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g),
            "semseg": torch.randint(0, 5, (n, size, size), generator=g),
            "depth": torch.rand(n, 1, size, size, generator=g) * 5,
            "normals": torch.nn.functional.normalize(torch.randn(n, 3, size, size, generator=g), dim=1)}


def check_partition(model: mtlzoo.MultiTaskModel) -> None:
    """Every parameter is in exactly one group: shared, or one task's."""
    groups = [list(model.shared_parameters())] + [list(model.task_parameters(t)) for t in model.task_names]
    counts: dict[int, int] = {}
    for group in groups:
        for p in group:
            counts[id(p)] = counts.get(id(p), 0) + 1
    everything = {id(p) for p in model.parameters()}
    assert set(counts) == everything
    assert all(c == 1 for c in counts.values()), "a parameter is in two groups"


def check_private_gradients(model: mtlzoo.MultiTaskModel, size: int = SIZE) -> None:
    """A task's loss reaches its own parameters and gives exactly zero gradient to every other task's."""
    data = batch(size)
    for task in model.task_names:
        model.zero_grad(set_to_none=True)
        losses = model.losses(model(data["image"]), {k: v for k, v in data.items() if k != "image"})
        losses[task].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.task_parameters(task)), task
        for other in model.task_names:
            if other != task:
                for p in model.task_parameters(other):
                    assert p.grad is None or torch.count_nonzero(p.grad) == 0, (task, other)


def check_round_trips(model: mtlzoo.MultiTaskModel, tmp_path: Path, size: int = SIZE) -> None:
    """config.json alone rebuilds the architecture; save_pretrained -> from_pretrained gives identical outputs."""
    x = batch(size)["image"]
    rebuilt = create_model_from_config(model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    model.eval()
    path = model.save_pretrained(tmp_path / model.architecture)
    loaded = mtlzoo.from_pretrained(str(path)).eval()
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    for task in model.task_names:
        assert torch.equal(expected[task], got[task]), task


def balancer_steps(model_name: str, balancer: str, steps: int = 2) -> list[dict[str, float]]:
    """Run ``steps`` updates of ``balancer`` on a tiny model; returns the losses of every step."""
    torch.manual_seed(0)
    model = mtlzoo.create_model(model_name, tasks=TASKS)
    rule = mtlzoo.create_update_rule(balancer, model, lambda params: torch.optim.Adam(params, lr=1e-3))
    history = []
    for step in range(steps):
        result = rule.step(batch(seed=step))
        history.append({k: float(v) for k, v in result.losses.items()})
    for p in model.parameters():
        assert torch.isfinite(p).all()
    return history


def train_config_losses(config_name: str, out_dir: Path, steps: int = 24) -> list[float]:
    """Total training loss of every step of a shipped config, shrunk to tiny data (no evaluation)."""
    from mtlzoo.config import load_config, resolve_config_path
    from mtlzoo.train.run import build_trainer

    overrides = [f"train.out_dir={out_dir}", f"train.steps={steps}", f"train.eval_every={steps}", "train.log_every=1",
                 "train.progress=false", "data.kwargs={size: [32, 48], length: 32}", "data.batch_size=4",
                 "schedule.warmup_steps=0"]
    config = load_config(resolve_config_path(config_name), overrides)
    trainer = build_trainer(config)
    trainer.evaluation.data = None
    trainer.fit()
    totals = [sum(record["losses"].values()) for record in trainer.history]
    assert all(math.isfinite(v) for v in totals)
    return totals


def check_info(name: str) -> None:
    """``mtlzoo info`` figures: parameters partition the model, forward FLOPs split into encoder and heads."""
    from mtlzoo.models.info import format_info, model_info

    info = model_info(name, tasks=TASKS, input_size=(SIZE, SIZE))
    assert info["params"] == info["params_shared"] + sum(info["params_per_task"].values())
    assert info["flops"] > info["flops_encoder"] > 0
    assert all(v > 0 for v in info["flops_per_task_head"].values())
    assert name in format_info(info)


def check_feature_level_on_the_encoder(model: mtlzoo.MultiTaskModel, size: int = SIZE) -> None:
    """Models with a shared decoder after the representation (the encoder output): the parameters split into
    encoder-shared, decoder-shared and per-task; the feature-level Gramian couples the tasks; ``mgda_ub`` gives
    every parameter a gradient, and the decoder receives ``sum_t w_t dL_t/dtheta`` (recomputed here)."""
    decoder = list(model.decoder_shared_parameters())
    shared_ids, decoder_ids = {id(p) for p in model.shared_parameters()}, {id(p) for p in decoder}
    assert decoder and decoder_ids <= shared_ids and len(decoder_ids) == len(decoder)
    assert shared_ids - decoder_ids == {id(p) for p in model.encoder.parameters()}
    data = batch(size)
    targets = {k: v for k, v in data.items() if k != "image"}
    rep = model.encode(data["image"])
    info = mtlzoo.create_balancer("mgda_ub", tasks=model.task_names).backward(
        model.losses(model.decode(rep), targets), model, features=rep.features)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    silent = [n for n, p in model.named_parameters() if not n.endswith("bias") and not p.grad.abs().sum() > 0]
    assert silent == []
    rep = model.encode(data["image"])  # the same batch again: per-task gradients by hand, on leaf copies of the
    rep = rep._replace(features=tuple(f.detach().requires_grad_() for f in rep.features))  # features (direct paths)
    losses = model.losses(model.decode(rep), targets)
    flat, on_decoder = [], []
    for task in model.task_names:
        grads = torch.autograd.grad(losses[task], [*rep.features, decoder[0]], retain_graph=True, allow_unused=True)
        flat.append(torch.cat([g.reshape(-1) if g is not None else torch.zeros(f.numel())
                               for g, f in zip(grads[:-1], rep.features, strict=True)]).double())
        on_decoder.append(grads[-1])
    gram = torch.stack(flat) @ torch.stack(flat).T
    norms = gram.diagonal().sqrt()
    cosines = gram / (norms[:, None] * norms[None, :])
    off = cosines - torch.diag(cosines.diagonal())
    assert off.abs().max() > 1e-3, "the feature-level Gramian is diagonal"
    torch.testing.assert_close(info.cosines.double(), cosines, atol=1e-3, rtol=1e-3)
    expected = sum(float(w) * g for w, g in zip(info.weights, on_decoder, strict=True))
    torch.testing.assert_close(decoder[0].grad, expected, atol=1e-6, rtol=1e-4)
