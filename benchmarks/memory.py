"""Peak memory of a training step where mtlzoo trades it for something: SquadNet's checkpointed experts, and
the Jacobian path that ``jacobian_mode="auto"`` keeps.

Sections:
  squadnet  one training step (forward, summed losses, backward, Adam) of a SquadNet with and without
            ``checkpoint_experts=True``: seconds per step and the peak memory the steps add to the built
            model, batch and optimizer. CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated
            before the steps. CPU: each configuration in a fresh process, the growth of its peak resident set
            (VmHWM) over its resident set before the steps.
  auto      hps_resnet50 (nyuv2_mtan tasks) with UPGrad at ``jacobian_mode="auto"``: what its calibration
            measured for each Jacobian path, ``(base + extra) / base``, and the path it kept; on CUDA also
            the peak of a plain summed-loss step and of a step on the kept path.

    python benchmarks/memory.py --device cpu --sections squadnet --model squadnet_small --size 128 160 --batch 2
    python benchmarks/memory.py --device cuda          # squadnet_small and hps_resnet50, batch 8, 288x384
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp

import torch
from architectures import seconds_per_step, sync_device  # benchmarks/ is the script's folder


def _vm(field: str) -> float:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _batch(model, batch: int, size: tuple[int, int], device: str) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *size, generator=g)
    y = {t.name: t.spec.example_target(t, batch, size, g) for t in model.tasks}
    return x.to(device), {k: v.to(device) for k, v in y.items()}


def squadnet_case(model_name: str, tasks: str, checkpoint: bool, device: str, batch: int, size: tuple[int, int],
                  steps: int, warmup: int, threads: int) -> dict:
    """Seconds per training step and the peak memory the steps add, for one SquadNet configuration."""
    import mtlzoo

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = mtlzoo.create_model(model_name, tasks=tasks, checkpoint_experts=checkpoint).to(device).train()
    x, y = _batch(model, batch, size, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        sum(model.losses(model(x), y).values()).backward()
        opt.step()

    sync_device(device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _vm("VmRSS")
    seconds = seconds_per_step(step, device, warmup, steps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _vm("VmHWM")
    return {"model": model_name, "checkpoint_experts": checkpoint, "seconds_per_step": seconds,
            "peak_mb": peak - base, "base_mb": base, "absolute_peak_mb": peak}


def auto_case(device: str, batch: int, size: tuple[int, int]) -> dict:
    """UPGrad's auto calibration on hps_resnet50: the figures it measured and the path it kept."""
    import mtlzoo
    from mtlzoo.balancers import create_balancer

    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_resnet50", tasks="nyuv2_mtan").to(device).train()
    x, y = _batch(model, batch, size, device)
    balancer = create_balancer("upgrad").bind(model.task_names)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    cuda = device.startswith("cuda")

    def step(plain: bool) -> float | None:
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        rep = model.encode(x)
        losses = model.losses(model.decode(rep), y)
        if plain:
            sum(losses.values()).backward()
        else:
            balancer.backward(losses, model, features=rep.features)
        opt.step()
        sync_device(device)
        return torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    plain_peak = [step(True) for _ in range(3)][-1]
    for _ in range(4):  # the calibration: a warm-up of each path, then one measured call of each
        step(False)
    kept_peak = [step(False) for _ in range(2)][-1]
    memory = {mode: {"base_mb": b / 2**20, "extra_mb": e / 2**20, "ratio": (b + e) / b if b else float("nan")}
              for mode, (b, e) in balancer._auto_memory.items()}
    out = {"times_ms": {m: 1000 * t for m, t in balancer._auto_times.items()}, "memory": memory,
           "kept": balancer._resolved_mode}
    if cuda:  # the allocator's peak of a plain step and of a step on the kept path (the last of each)
        out.update(plain_peak_mb=plain_peak, kept_peak_mb=kept_peak, kept_x_plain=kept_peak / plain_peak)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sections", nargs="+", default=["squadnet", "auto"], choices=["squadnet", "auto"])
    p.add_argument("--model", default="squadnet_small")
    p.add_argument("--tasks", default="nyud")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, nargs=2, default=[288, 384], metavar=("H", "W"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the raw results here")
    args = p.parse_args()
    results: dict = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"}
    if "squadnet" in args.sections:
        rows = []
        for checkpoint in (False, True):
            options = (args.model, args.tasks, checkpoint, args.device, args.batch, tuple(args.size), args.steps,
                       args.warmup, args.threads)
            if args.device.startswith("cuda"):
                rows.append(squadnet_case(*options))
                torch.cuda.empty_cache()
            else:  # a fresh process per configuration: the peak resident set cannot be reset
                with mp.get_context("spawn").Pool(1) as pool:
                    rows.append(pool.apply(squadnet_case, options))
        results["squadnet"] = rows
        print(f"{args.model}, tasks {args.tasks}, batch {args.batch} x 3 x {args.size[0]} x {args.size[1]}, "
              f"{args.device}, {args.steps} timed steps after {args.warmup} warm-up\n")
        print("| checkpoint_experts | s/step | peak MB added by the steps | x default |\n|---|---|---|---|")
        for row in rows:
            print(f"| {row['checkpoint_experts']} | {row['seconds_per_step']:.3f} | {row['peak_mb']:.0f} | "
                  f"{row['peak_mb'] / rows[0]['peak_mb']:.2f} |")
    if "auto" in args.sections:
        results["auto"] = auto_case(args.device, args.batch, tuple(args.size))
        print("\nhps_resnet50 + upgrad, jacobian_mode='auto':", json.dumps(results["auto"], indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
