"""Reproduce the checkpoints bundled under weights/: train on synthscenes, evaluate, save in float16.

    .venv/bin/python weights/train_bundled.py                       # every bundled model, recorded recipe
    .venv/bin/python weights/train_bundled.py hps_tiny --steps 100  # a quick check of the pipeline

For each model: the shipped config ``mtlzoo/configs/<config>.yaml`` with the recorded overrides is
trained by mtlzoo's Trainer (CPU, one thread by default), the final weights are saved in float16 to
``weights/<arch>.synthscenes/`` (model.safetensors, config.json, README.md), reloaded, scored on the
synthscenes val split under the ``synthscenes`` protocol (the scores of the float16 weights go into
config.json and the card), and a logits-match fixture (``logits_check.safetensors``: a small input
and the reloaded model's outputs) is written next to them. The script ends by printing the
``PretrainedCfg`` entries (sha256, results) to paste into ``mtlzoo/models/pretrained.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

WEIGHTS = Path(__file__).resolve().parent
CHECK_SIZE = (48, 64)
# arch -> (shipped config, overrides): the recipe of each bundled checkpoint.
RECIPES = {
    "hps_tiny": ("synthscenes_hps", ["train.steps=1500"]),
    # SquadNet's grouped convolutions are slow on CPU: half resolution, width 16 and equal weighting.
    "squadnet_tiny": ("synthscenes_squadnet", ["train.steps=600", "data.kwargs.size=[48, 64]", "model.kwargs.width=16",
                                               "method.name=ew"]),
    # The connection-strength two-phase rule of the shipped config, on the tiny CS model.
    "cs_tiny": ("synthscenes_cs", ["model.name=cs_tiny", "train.steps=600"]),
}
# arch -> what changed since the previous release of its weights (the card's training table shows it).
CHANGES = {
    "squadnet_tiny": "2026-11-26: retrained for SquadNet as released: no residual around the downsampling "
                     "aggregation (downsample_residual=False, the default), shuffled there only after shuffling "
                     "stages, one shared chunk (num_shared=1); the earlier weights had the old structure",
}


def _config(arch: str, steps: int | None, out_root: Path, cache_dir: Path):
    """(config name, recipe overrides, full Config) for one bundled model."""
    from mtlzoo.config import load_config, resolve_config_path

    name, recipe = RECIPES[arch]
    recipe = [*recipe, *([f"train.steps={steps}"] if steps else [])]
    plumbing = [f"train.out_dir={out_root / arch}", "train.best_metric=null", "train.progress=false",
                "train.overwrite=true", f"data.kwargs.cache_dir={cache_dir}"]
    return name, recipe, load_config(resolve_config_path(name), [*recipe, *plumbing])


class InMemory(Dataset):
    """Every sample of a dataset, read once in index order (one cached shard at a time) and kept in memory.

    Shuffled reads from synthscenes' shard cache would reload a whole shard per sample; class ids are
    kept as uint8 (all below 256) and returned as int64.
    """

    def __init__(self, dataset: Dataset) -> None:
        compact = lambda v: v.to(torch.uint8) if v.dtype == torch.int64 else v
        self.samples = [{k: compact(v) for k, v in dataset[i].items()} for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v.long() if v.dtype == torch.uint8 else v for k, v in self.samples[index].items()}


def _trainer(config):
    """The Trainer ``mtlzoo.train.run.build_trainer`` would build, over in-memory data and without evaluation."""
    import mtlzoo
    from mtlzoo.train import EvalSetup, Trainer, seed_everything
    from mtlzoo.train.optim import optimizer_factory
    from mtlzoo.train.run import build_dataset

    seed_everything(config.train.seed)
    model = mtlzoo.create_model(config.model.name, tasks=config.model.tasks, **config.model.kwargs)
    rule = mtlzoo.create_update_rule(config.method.name, model, optimizer_factory(config.optim), **config.method.kwargs)
    data = InMemory(build_dataset(config.data.name, config.data.train_split, model.tasks, config.data.kwargs))
    return Trainer(model, rule, data, options=config.train, evaluation=EvalSetup(), schedule=config.schedule,
                   batch_size=config.data.batch_size, run_config=config.to_dict())


def _evaluate(model, size: tuple[int, int], cache_dir: Path):
    from torch.utils.data import DataLoader

    from mtlzoo.data import create_dataset
    from mtlzoo.metrics import evaluate

    data = create_dataset("synthscenes", split="val", size=size, cache_dir=cache_dir, tasks=model.task_names)
    return evaluate(model, DataLoader(data, batch_size=32), protocol="synthscenes", baseline="auto", progress=False)


def write_logits_check(model, folder: Path) -> None:
    """Store a fixed small input and the model's outputs on it (the logits-match test compares against them)."""
    from safetensors.torch import save_file

    x = torch.randn(1, 3, *CHECK_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = model.eval()(x)
    save_file({"input": x, **{f"output.{k}": v.contiguous() for k, v in outputs.items()}},
              str(folder / "logits_check.safetensors"))


def build(arch: str, steps: int | None, out_root: Path, cache_dir: Path) -> dict:
    """Train, save, reload, evaluate and fixture one bundled checkpoint; returns its registry entry."""
    import mtlzoo
    from mtlzoo.hub.files import sha256_file

    name, overrides, config = _config(arch, steps, out_root, cache_dir)
    if config.model.name != arch:
        raise ValueError(f"recipe {arch!r} trains {config.model.name!r}; the recipe key must be the architecture")
    size = tuple(config.data.kwargs["size"])
    start = time.time()
    trainer = _trainer(config)  # evaluation is done below, on the saved float16 weights
    trainer.fit()
    minutes = (time.time() - start) / 60
    recipe = {"config": name, "overrides": overrides,
              "method": config.method.name, "optimizer": config.optim.name, "lr": config.optim.lr,
              "weight_decay": config.optim.weight_decay, "schedule": config.schedule.name,
              "steps": config.train.steps, "batch_size": config.data.batch_size, "input_size": list(size),
              "train_images": config.data.kwargs.get("length"), "seed": config.train.seed, "device": "cpu",
              "train_minutes": round(minutes, 1), "script": "weights/train_bundled.py"}
    if arch in CHANGES:
        recipe["changes"] = CHANGES[arch]
    folder = WEIGHTS / f"{arch}.synthscenes"
    repo_id = f"mtlzoo/{arch}.synthscenes"
    meta = {"training": recipe, "preprocessing": {"input_size": list(size)}, "name": f"{arch}.synthscenes",
            "repo_id": repo_id}
    trainer.model.save_pretrained(folder, dtype="float16", **meta)
    model = mtlzoo.from_pretrained(folder)
    result = _evaluate(model, size, cache_dir)
    trainer.model.save_pretrained(folder, dtype="float16", results=result, **meta)
    write_logits_check(mtlzoo.from_pretrained(folder), folder)
    return {"arch": arch, "tag": "synthscenes", "hub_id": repo_id, "sha256": sha256_file(folder / "model.safetensors"),
            "model_kwargs": dict(config.model.kwargs), "results": result.to_dict()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archs", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=None, help="override the recorded number of steps")
    parser.add_argument("--out-root", type=Path, default=Path("runs/bundled"), help="trainer output folders")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/bundled/synthscenes-cache"),
                        help="rendered synthscenes shards (reused across runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(WEIGHTS.parent))
    entries = [build(arch, args.steps, args.out_root, args.cache_dir) for arch in args.archs]
    print(json.dumps(entries, indent=2))


if __name__ == "__main__":
    main()
