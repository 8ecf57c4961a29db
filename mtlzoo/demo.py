"""``mtlzoo demo``: the whole workflow on synthscenes in a few minutes on a CPU.

Generate data -> train squadnet_tiny with Aligned-MTL, hps_tiny with EW and single-task
baselines -> evaluate and compare (delta_m) -> save an HF-layout checkpoint -> reload it with
``torch.hub.load(..., source="local")`` -> write plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mtlzoo.config import TrainConfig
from mtlzoo.extras import MissingExtraError
from mtlzoo.tasks import Task, task_preset

# hubconf.py inside the package (a link to the repository's, copied into the wheel): torch.hub.load works installed
HUBCONF_DIR = Path(__file__).resolve().parent / "_torchhub"
# CPU-sized: half-resolution scenes, squadnet_tiny at base width 8 (7 chunks x 8 = 56 channels) with light heads
DEMO_SIZE = (48, 64)
SQUADNET_DEMO_KWARGS = {"width": 8, "head": "light", "head_width": 32}


@dataclass(frozen=True)
class DemoRun:
    """One model to train in the demo."""

    label: str
    model: str
    method: str
    tasks: tuple[Task, ...]
    steps: int


def _materialise(split: str, length: int, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    from mtlzoo.data import create_dataset

    dataset = create_dataset("synthscenes", split=split, length=length, size=size)
    return [dataset[i] for i in tqdm(range(length), desc=f"generate synthscenes/{split}", leave=False)]


def _plan(steps: int) -> list[DemoRun]:
    """The demo's runs; the single-task baselines get the multi-task runs' steps, so delta_m compares like with
    like (fewer baseline steps would flatter the multi-task models)."""
    tasks = tuple(task_preset("synthscenes"))
    runs = [DemoRun("squadnet_tiny + aligned_mtl", "squadnet_tiny", "aligned_mtl", tasks, steps),
            DemoRun("hps_tiny + ew", "hps_tiny", "ew", tasks, steps)]
    runs += [DemoRun(f"single-task {t.name}", "hps_tiny", "ew", (t,), steps) for t in tasks]
    return runs


def _train(run: DemoRun, train_data: list, val_data: list, out_dir: Path, model_kwargs: dict) -> tuple[Any, Any]:
    import mtlzoo
    from mtlzoo.config import OptimConfig, ScheduleConfig
    from mtlzoo.train import EvalSetup, Trainer, seed_everything
    from mtlzoo.train.optim import optimizer_factory

    seed_everything(0)
    model = mtlzoo.create_model(run.model, tasks=[t.to_dict() for t in run.tasks], **model_kwargs)
    rule = mtlzoo.create_update_rule(run.method, model, optimizer_factory(OptimConfig(lr=2e-3, weight_decay=1e-4)))
    options = TrainConfig(steps=run.steps, eval_every=run.steps, log_every=5, out_dir=str(out_dir), keep_last=1,
                          device="cpu", progress=True, overwrite=True)
    trainer = Trainer(model, rule, train_data, options=options, schedule=ScheduleConfig(name="poly", warmup_steps=20),
                      evaluation=EvalSetup(val_data, "synthscenes", batch_size=32), batch_size=8)
    trainer.fit()
    return trainer, model


def _shown_metric(task: Task, metrics: dict) -> str:
    """The metric the synthscenes protocol scores a task by (edges are auxiliary: their first metric)."""
    from mtlzoo.metrics import get_protocol

    chosen = (get_protocol("synthscenes").delta_metrics or {}).get(task.name)
    return chosen[0] if chosen else next(iter(metrics[task.name]))


def _table(results: dict[str, dict], tasks: list[Task]) -> str:
    reference = next(iter(results.values()))["metrics"]
    shown = {t.name: _shown_metric(t, reference) for t in tasks}
    header = ["model"] + [f"{t.name} {shown[t.name]}" for t in tasks] + ["delta_m %"]
    rows = [header]
    for label, result in results.items():
        metrics = result["metrics"]
        cells = [label] + [f"{metrics[t.name][shown[t.name]]:.3f}" if t.name in metrics else "-" for t in tasks]
        cells.append(f"{result['delta_m']:+.2f}" if result.get("delta_m") is not None else "-")
        if result.get("dominated_by"):  # one task's relative change outweighs the others': say so beside it
            cells[-1] += f" (dominated by {result['dominated_by']})"
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _reload_with_torch_hub(checkpoint: Path, model: Any, batch: torch.Tensor) -> float:
    reloaded = torch.hub.load(str(HUBCONF_DIR), "from_pretrained", str(checkpoint), source="local", trust_repo=True)
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        expected, got = model(batch), reloaded(batch)
    return max(float((expected[k] - got[k]).abs().max()) for k in expected)


def _plots(trainers: dict[str, Any], model: Any, val_data: list, out: Path) -> list[Path]:
    from torch.utils.data import DataLoader

    from mtlzoo.diagnose import gradient_report
    from mtlzoo.plots import plot_curves, plot_heatmap

    paths = []
    for label, trainer in trainers.items():
        slug = label.split(" ")[0]
        history = trainer.history
        losses = {t: [(h["step"], h["losses"][t]) for h in history] for t in history[0]["losses"]}
        paths.append(plot_curves(losses, out / f"loss_curves_{slug}.png", f"Task losses: {label}", "loss", log=True))
        weights = {k.split("/", 1)[1]: [(h["step"], h["info"][k]) for h in history]
                   for k in history[0]["info"] if k.startswith("weight/")}
        if weights:
            paths.append(plot_curves(weights, out / f"task_weights_{slug}.png", f"Task weights: {label}", "weight"))
    report = gradient_report(model, DataLoader(val_data, batch_size=8), max_batches=2)
    paths.append(plot_heatmap(report["cosine"], report["tasks"], out / "gradient_cosine.png",
                              title="Pairwise cosine of task gradients (squadnet_tiny, trained)"))
    return paths


def run_demo(out_dir: str | Path = "outputs/demo", steps: int | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the demo and return its results (also printed, with where the outputs are)."""
    start = time.time()
    out = Path(out_dir)
    n_train, n_val = (32, 16) if quick else (480, 96)
    steps = steps or (4 if quick else 200)
    train_data, val_data = _materialise("train", n_train, DEMO_SIZE), _materialise("val", n_val, DEMO_SIZE)
    runs = _plan(steps)
    trainers, models, results = {}, {}, {}
    for run in tqdm(runs, desc="demo runs"):
        kwargs = SQUADNET_DEMO_KWARGS if run.model.startswith("squadnet") else {}
        trainers[run.label], models[run.label] = _train(run, train_data, val_data, out / "runs" / _slug(run), kwargs)
        results[run.label] = trainers[run.label].last_metrics
    tasks = list(task_preset("synthscenes"))
    baseline = {t.name: results[f"single-task {t.name}"]["metrics"][t.name] for t in tasks}
    return _report(out, runs, trainers, models, results, baseline, tasks, val_data, start)


def _slug(run: DemoRun) -> str:
    return run.label.replace(" + ", "_").replace(" ", "_").replace("-", "_")


def _report(out: Path, runs: list[DemoRun], trainers: dict, models: dict, results: dict, baseline: dict,
            tasks: list[Task], val_data: list, start: float) -> dict[str, Any]:
    from mtlzoo.metrics import delta_m_breakdown

    mtl = [r.label for r in runs if len(r.tasks) > 1]
    for label in mtl:
        parts = delta_m_breakdown(results[label]["metrics"], baseline, style="vandenhende", protocol="synthscenes",
                                  tasks=tasks)
        results[label].update(delta_m=parts.value, delta_m_by_task=parts.by_task, dominated_by=parts.dominated_by)
    stl_row = {"metrics": baseline, "delta_m": 0.0}
    table = _table({**{label: results[label] for label in mtl}, "single-task baselines": stl_row}, tasks)
    squad = models[mtl[0]]
    checkpoint = Path(squad.save_pretrained(out / "squadnet_tiny-synthscenes", results=results[mtl[0]],
                                            protocol="synthscenes"))
    batch = torch.stack([val_data[i]["image"] for i in range(2)])
    max_diff = _reload_with_torch_hub(checkpoint, squad, batch)
    if max_diff > 1e-5:
        raise RuntimeError(f"the reloaded checkpoint disagrees with the trained model (max diff {max_diff:.2e})")
    try:
        plots = _plots({label: trainers[label] for label in mtl}, squad, val_data, out)
    except MissingExtraError as missing:  # everything else of the demo runs on the required dependencies
        plots, skipped = [], str(missing)
    else:
        skipped = None
    print("\n" + table + "\n")
    print("delta_m: mean relative gain over the single-task baselines on each task's headline metric "
          "(vandenhende style, synthscenes protocol); + is better.")
    print(f"checkpoint (Hugging Face layout): {checkpoint.resolve()}  [reloaded via torch.hub.load, "
          f"max |diff| = {max_diff:.1e}]")
    print(f"plots skipped: {skipped}" if skipped else f"plots: {', '.join(str(p.resolve()) for p in plots)}")
    print(f"runs and logs: {(out / 'runs').resolve()}  |  demo took {time.time() - start:.0f} s")
    return {"results": results, "checkpoint": str(checkpoint), "plots": [str(p) for p in plots]}
