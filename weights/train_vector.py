"""Reproduce the vector-family checkpoints bundled under weights/: train mmoe_mlp, cgc_mlp, ple_mlp and
dselectk_mlp on the MMoE paper's synthetic benchmark over three seeds, score them on its test split, save seed 0's
weights in float16 with every seed's test MSE in the card.

    .venv/bin/python weights/train_vector.py                          # all four, 3 seeds each (~15 s a seed)
    .venv/bin/python weights/train_vector.py mmoe_mlp                 # one card
    .venv/bin/python weights/train_vector.py mmoe_mlp --steps 20 --seeds 0 --dest /tmp/w   # a quick check

Data: ``mmoe_synthetic`` version 1 (the portable generator: the same bytes on every machine) with correlation
p = 0.5 and data seed 0 for every run; the training seed sets the initial weights and the batch order. Each run
is one thread: Adam (lr 1e-3) through mtlzoo's ``ew`` update rule (equal weighting of the two tasks' MSE), 4000
batches of 128 drawn without replacement per epoch (a permutation seeded by the training seed). Its float16
weights are reloaded and scored on the test split under the ``mmoe_synthetic`` protocol (per-task MSE, MAE, RMSE).
Seed 0's weights go to ``weights/<arch>.mmoe_synthetic/`` (model.safetensors, config.json, README.md) with
``results.over_seeds`` (every seed's scores, their mean and sample std) and a logits-match fixture
(``logits_check.safetensors``). The script ends by printing each registry entry (sha256, headline test MSE) to
update in ``mtlzoo/models/pretrained.py``. Retrained weights differ bit-wise across CPUs and thread counts (the
data does not), so the hashes and logits fixtures change with them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

WEIGHTS = Path(__file__).resolve().parent
SEEDS = (0, 1, 2)
TAG = "mmoe_synthetic"
DATA = {"correlation": 0.5, "seed": 0}  # the data every seed trains and is scored on
CHECK_BATCH = 4
# arch -> model arguments: 8 experts of 16 ReLU units on the 100-dimensional input and towers of 8 units, as in
# benchmarks/mmoe_synthetic.py; CGC and PLE split the 8 into 4 shared and 2 per task (PLE: at each of 2 levels).
_SIZES = {"input_dim": 100, "expert_hidden": [16], "head_width": 8}
RECIPES = {
    "mmoe_mlp": {**_SIZES, "num_shared_experts": 8},
    "cgc_mlp": {**_SIZES, "num_shared_experts": 4, "num_task_experts": 2},
    "ple_mlp": {**_SIZES, "num_levels": 2, "num_shared_experts": 4, "num_task_experts": 2},
    "dselectk_mlp": {**_SIZES, "num_shared_experts": 8, "dselect_k": 2},
}
LOOP = {"steps": 4000, "batch_size": 128, "lr": 1e-3}
METHOD_CHOICE = ("EW: no leaderboard ranks the update methods on vector families, so no method is known to beat "
                 "equal weighting on them; the MMoE paper trains its synthetic benchmark on the summed losses")


def batches(data: Any, batch_size: int, steps: int, seed: int) -> Iterator[dict[str, Tensor]]:
    """``steps`` batches of an in-memory ``MMoESynthetic`` (its ``inputs`` and ``labels``): a fresh permutation
    each epoch (a generator seeded with ``seed``), the last incomplete batch of an epoch dropped."""
    generator = torch.Generator().manual_seed(seed)
    per_epoch = len(data) // batch_size
    step = 0
    while True:
        order = torch.randperm(len(data), generator=generator)
        for i in range(per_epoch):
            if step == steps:
                return
            index = order[i * batch_size:(i + 1) * batch_size]
            yield {"image": data.inputs[index], **{t: data.labels[index, k:k + 1] for k, t in enumerate(data.tasks)}}
            step += 1


def evaluate_test(model: nn.Module) -> dict[str, Any]:
    """``model`` scored on the test split under the ``mmoe_synthetic`` protocol, with the data options recorded."""
    from torch.utils.data import DataLoader

    from mtlzoo.data import create_dataset
    from mtlzoo.metrics import evaluate

    data = create_dataset(TAG, split="test", tasks=model.task_names, **DATA)
    result = evaluate(model, DataLoader(data, batch_size=256), protocol=TAG, progress=False).to_dict()
    return {**result, "split": "test", "data_options": dict(DATA)}


def train_seed(arch: str, seed: int, steps: int, out_root: Path) -> Path:
    """Train one seed of one recipe; its float16 checkpoint, scored on the test split, is saved under
    ``out_root/arch/seed<seed>`` (returned)."""
    import mtlzoo
    from mtlzoo.data import create_dataset

    torch.set_num_threads(1)
    start = time.time()
    torch.manual_seed(seed)
    model = mtlzoo.create_model(arch, tasks=TAG, **RECIPES[arch])
    rule = mtlzoo.create_update_rule("ew", model, lambda params: torch.optim.Adam(params, lr=LOOP["lr"]))
    data = create_dataset(TAG, split="train", **DATA)
    model.train()
    for batch in batches(data, LOOP["batch_size"], steps, seed):
        rule.step(batch)
    command = f".venv/bin/python weights/train_vector.py {arch}"
    recipe = {"data": TAG, "data_options": dict(DATA), "split": "train", "train_examples": len(data), "method": "ew",
              "method_choice": METHOD_CHOICE, "optimizer": "adam", "lr": LOOP["lr"], "schedule": "constant",
              "steps": steps, "batch_size": LOOP["batch_size"], "seed": seed, "device": "cpu", "threads": 1,
              "train_seconds": round(time.time() - start, 1), "script": "weights/train_vector.py",
              "command": command if steps == LOOP["steps"] else f"{command} --steps {steps}",
              "eval_command": f"mtlzoo eval {arch}.{TAG} --data {TAG} --split test",
              "parameters": sum(p.numel() for p in model.parameters())}
    folder = out_root / arch / f"seed{seed}"
    meta = {"training": recipe, "name": f"{arch}.{TAG}", "repo_id": f"mtlzoo/{arch}.{TAG}"}
    model.eval().save_pretrained(folder, dtype="float16", **meta)
    result = evaluate_test(mtlzoo.from_pretrained(folder))  # the numbers of the float16 weights, as shipped
    model.save_pretrained(folder, dtype="float16", results=result, **meta)
    return folder


def over_seeds(results: dict[int, dict]) -> dict[str, Any]:
    """Every seed's scores with their mean and sample std (ddof=1) (``results.over_seeds``)."""
    from mtlzoo.benchmark.results import seed_mean_std

    seeds = sorted(results)
    mean, std = seed_mean_std([results[s]["metrics"] for s in seeds])
    return {"seeds": seeds, "mean": mean, "std": std, "per_seed": {str(s): results[s]["metrics"] for s in seeds}}


def write_logits_check(model: nn.Module, folder: Path) -> None:
    """Store a fixed batch of input vectors and the model's outputs on it (the logits-match test compares them)."""
    from safetensors.torch import save_file

    x = torch.randn(CHECK_BATCH, model.input_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = model.eval()(x)
    tmp = folder / ".logits_check.safetensors.tmp"
    save_file({"input": x, **{f"output.{k}": v.contiguous() for k, v in outputs.items()}}, str(tmp))
    tmp.replace(folder / "logits_check.safetensors")  # never a half-written fixture


def assemble(arch: str, folders: dict[int, Path], dest: Path = WEIGHTS) -> dict[str, Any]:
    """Ship the first seed's checkpoint under ``dest`` (weights/) with every seed's scores; returns its registry
    entry."""
    import mtlzoo
    from mtlzoo.hub.files import sha256_file

    configs = {seed: json.loads((folder / "config.json").read_text()) for seed, folder in folders.items()}
    first = min(folders)
    model, config = mtlzoo.from_pretrained(folders[first]), configs[first]
    results = {**config["results"], "over_seeds": over_seeds({s: c["results"] for s, c in configs.items()})}
    training = {**config["training"], "seconds_per_seed": [c["training"]["train_seconds"] for c in configs.values()]}
    folder = dest / f"{arch}.{TAG}"
    model.save_pretrained(folder, dtype="float16", results=results, training=training, name=config["name"],
                          repo_id=f"mtlzoo/{arch}.{TAG}")
    write_logits_check(mtlzoo.from_pretrained(folder), folder)
    summary = results["over_seeds"]
    return {"arch": arch, "tag": TAG, "sha256": sha256_file(folder / "model.safetensors"),
            "model_kwargs": config["model_args"], "parameters": sum(p.numel() for p in model.parameters()),
            "results": {t: {"mse": round(m["mse"], 4)} for t, m in results["metrics"].items()},
            "mse_mean": {t: round(m["mse"], 4) for t, m in summary["mean"].items()},
            "mse_std": {t: round(m["mse"], 4) for t, m in summary["std"].items()},
            "seconds_per_seed": training["seconds_per_seed"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archs", nargs="*", help=f"some of {list(RECIPES)} (default: all)")
    parser.add_argument("--steps", type=int, default=LOOP["steps"], help="training steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds (the first is shipped)")
    parser.add_argument("--out-root", type=Path, default=Path("runs/vector"), help="each seed's scored checkpoint")
    parser.add_argument("--dest", type=Path, default=WEIGHTS, help="where the bundled folders go (default: weights/)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.archs) - set(RECIPES))
    if unknown:
        parser.error(f"no recipe for {unknown}; vector checkpoints: {list(RECIPES)}")
    sys.path.insert(0, str(WEIGHTS.parent))
    for arch in args.archs or list(RECIPES):
        folders = {seed: train_seed(arch, seed, args.steps, args.out_root) for seed in args.seeds}
        print(json.dumps(assemble(arch, folders, args.dest), indent=2), flush=True)


if __name__ == "__main__":
    main()
