"""The synthetic experiment of the MMoE paper (Ma et al., KDD 2018, section 3.2 / figure 4): MMoE vs a shared-bottom
MLP of the same size on two regression tasks whose relatedness is set by the cosine p of their weight vectors.

Data (per seed): u1, u2 orthogonal unit vectors in R^d; w1 = c u1, w2 = c (p u1 + sqrt(1 - p^2) u2);
x ~ N(0, I_d); y_i = w_i^T x + sum_{k=1..m} sin(alpha_k w_i^T x + beta_k) + eps_i, eps_i ~ N(0, 0.01)
(variance 0.01), with alpha_k, beta_k ~ N(0, 1) drawn once per seed and shared by the two tasks.
The generator is the paper's as stated in issue 14; the paper's text could not be fetched here, so
d = 100, m = 10, c = 1, the N(0, 1) law of alpha / beta, the sizes and the optimiser are our choices.
Models: ``mmoe_mlp`` with 8 experts of 16 ReLU units and towers of 8 units, and a shared-bottom
model = ``mmoe_mlp`` with one expert (its gate's softmax over one expert is identically 1) whose
width is chosen so that the live parameter counts match. Adam, MSE on both tasks summed, equal
weights; the loss reported is the mean of the two tasks' test MSE at the end, mean over seeds.

    python benchmarks/mmoe_synthetic.py                        # 4 correlations x 5 seeds, about 8 minutes
    python benchmarks/mmoe_synthetic.py --plot benchmarks/mmoe_synthetic.png --json results.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

import mtlzoo

TASKS = [{"name": "task1", "kind": "regression", "loss": "mse"}, {"name": "task2", "kind": "regression", "loss": "mse"}]


def make_data(p: float, seed: int, n: int, d: int = 100, m: int = 10, c: float = 1.0,
              noise_var: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's generator: inputs (n, d) and labels (n, 2) for correlation (cosine) ``p``."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((d, 2)))  # two orthonormal columns
    w1 = c * u[:, 0]
    w2 = c * (p * u[:, 0] + math.sqrt(1 - p * p) * u[:, 1])
    alpha, beta = rng.standard_normal(m), rng.standard_normal(m)
    x = rng.standard_normal((n, d))
    labels = []
    for w in (w1, w2):
        z = x @ w
        y = z + np.sin(np.outer(z, alpha) + beta).sum(axis=1) + rng.normal(0.0, math.sqrt(noise_var), n)
        labels.append(y)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(np.stack(labels, 1), dtype=torch.float32)


def live_parameters(model: torch.nn.Module) -> int:
    """Parameters that can learn: a one-expert gate is constant, so its weights are left out."""
    dead = {id(p) for level in model.encoder.levels for gate in level.gates.values() if len(level.shared) == 1
            for p in gate.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in dead)


def build(kind: str, seed: int, experts: int, expert_units: int, tower_units: int, bottom_units: int):
    torch.manual_seed(seed)
    if kind == "mmoe":
        return mtlzoo.create_model("mmoe_mlp", tasks=TASKS, input_dim=100, num_shared_experts=experts,
                                   expert_hidden=[expert_units], head_width=tower_units)
    return mtlzoo.create_model("mmoe_mlp", tasks=TASKS, input_dim=100, num_shared_experts=1,
                               expert_hidden=[bottom_units], head_width=tower_units)


def matching_bottom(experts: int, expert_units: int, tower_units: int) -> int:
    """The shared-bottom width whose live parameter count is closest to the MMoE model's."""
    target = live_parameters(build("mmoe", 0, experts, expert_units, tower_units, 1))
    one, two = (live_parameters(build("shared_bottom", 0, experts, expert_units, tower_units, h)) for h in (1, 2))
    return max(1, round((target - one) / (two - one)) + 1)  # the count is linear in the width


def train(model, data, steps: int, batch: int, lr: float, eval_every: int) -> list[float]:
    """Adam on the summed MSE; returns the mean per-task test MSE every ``eval_every`` steps (and at the end)."""
    (x, y), (xt, yt) = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    curve = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g)
        out = model(x[idx])
        loss = sum(torch.nn.functional.mse_loss(out[t["name"]].squeeze(1), y[idx, i]) for i, t in enumerate(TASKS))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                out = model(xt)
                curve.append(statistics.fmean(float(torch.nn.functional.mse_loss(out[t["name"]].squeeze(1), yt[:, i]))
                                              for i, t in enumerate(TASKS)))
    return curve


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    bottom = matching_bottom(args.experts, args.expert_units, args.tower_units)
    sizes = {k: live_parameters(build(k, 0, args.experts, args.expert_units, args.tower_units, bottom))
             for k in ("mmoe", "shared_bottom")}
    results = {"config": {**vars(args), "shared_bottom_units": bottom, "live_parameters": sizes}, "runs": []}
    start = time.perf_counter()
    for p in args.correlations:
        for seed in range(args.seeds):
            train_data = make_data(p, seed, args.train + args.test)
            split = ((train_data[0][:args.train], train_data[1][:args.train]),
                     (train_data[0][args.train:], train_data[1][args.train:]))
            for kind in ("mmoe", "shared_bottom"):
                model = build(kind, 1000 + seed, args.experts, args.expert_units, args.tower_units, bottom)
                curve = train(model, split, args.steps, args.batch_size, args.lr, args.eval_every)
                results["runs"].append({"correlation": p, "seed": seed, "model": kind, "curve": curve})
        print(f"correlation {p}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    results["seconds"] = time.perf_counter() - start
    return results


def table(results: dict) -> str:
    """Markdown table: final test loss (mean and std over seeds) per correlation and model."""
    rows = ["| correlation | MMoE | shared-bottom | MMoE lower in |", "|---|---|---|---|"]
    for p in results["config"]["correlations"]:
        final = {k: [r["curve"][-1] for r in results["runs"] if r["correlation"] == p and r["model"] == k]
                 for k in ("mmoe", "shared_bottom")}
        wins = sum(a < b for a, b in zip(final["mmoe"], final["shared_bottom"], strict=True))
        cells = [f"{statistics.fmean(v):.4f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
                 for v in final.values()]
        rows.append(f"| {p} | {cells[0]} | {cells[1]} | {wins}/{len(final['mmoe'])} seeds |")
    return "\n".join(rows)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    fig, axes = plt.subplots(1, len(cfg["correlations"]), figsize=(3.2 * len(cfg["correlations"]), 3), sharey=True)
    for ax, p in zip(np.atleast_1d(axes), cfg["correlations"], strict=True):
        for kind, color in (("mmoe", "tab:blue"), ("shared_bottom", "tab:orange")):
            curves = np.array([r["curve"] for r in results["runs"] if r["correlation"] == p and r["model"] == kind])
            steps = [min(cfg["eval_every"] * (i + 1), cfg["steps"]) for i in range(curves.shape[1])]
            ax.plot(steps, curves.mean(0), color=color, label="MMoE" if kind == "mmoe" else "shared-bottom")
            ax.fill_between(steps, curves.min(0), curves.max(0), color=color, alpha=0.2)
        ax.set_title(f"correlation {p}")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    np.atleast_1d(axes)[0].set_ylabel("test MSE (mean of 2 tasks)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlations", type=float, nargs="+", default=[1.0, 0.9, 0.5, 0.0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--expert-units", type=int, default=16)
    parser.add_argument("--tower-units", type=int, default=8)
    parser.add_argument("--plot", default=None, help="write the training curves to this PNG")
    parser.add_argument("--json", default=None, help="write every run's curve to this JSON file")
    args = parser.parse_args()
    results = run(args)
    print(json.dumps(results["config"]))
    print(table(results))
    print(f"total {results['seconds']:.0f} s")
    if args.plot:
        plot(results, args.plot)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
