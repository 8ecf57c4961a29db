"""Architectures and update schemes: throughput, peak memory and step cost, measured side by side in one run.

Sections (each case runs in a fresh process so peak-memory figures do not leak between cases):
  models   forward + backward throughput (images/s) and peak memory of squadnet_small, hps_resnet18,
           hps_resnet50, invpt_vit_small, padnet_resnet18, mtinet_hrnet18, mtinet_resnet18 on the nyud preset;
  experts  SquadNet encoder forward + backward with fused (grouped conv) vs per-task loop experts, T = 4;
  schemes  time of one update step of cs_two_phase (phase 1, phase 2) and ius / io (group size 1),
           relative to a plain ``ew`` step on the same model.

Peak memory is what the steps add on top of the built model and batch (activations, gradients,
optimizer state, workspace): on CPU the growth of the process's peak RSS, on CUDA the growth of
``torch.cuda.max_memory_allocated``.

    python benchmarks/architectures.py --device cpu              # small batch on 2 cores
    python benchmarks/architectures.py --device cuda --batch-size 8 --iters 20 --warmup 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class Case:
    """One measurement: what to build, how to step it, at which size."""

    section: str
    label: str
    model: str
    kwargs: dict = field(default_factory=dict)
    method: str = "ew"
    method_kwargs: dict = field(default_factory=dict)
    encoder_only: bool = False
    size: tuple = (288, 384)


def _batch(tasks, b, size, device):
    h, w = size
    out = {"image": torch.randn(b, 3, h, w, device=device)}
    for task in tasks:
        out[task.name] = task.spec.example_target(task, b, (h, w), None).to(device)
    return out


def sync_device(device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds_per_step(step, device, warmup: int, iters: int) -> float:
    """Run ``step`` ``warmup`` times, then time ``iters`` more (the device synchronised around the timed loop)."""
    for _ in range(warmup):
        step()
    sync_device(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync_device(device)
    return (time.perf_counter() - start) / max(iters, 1)


def _run_case(case: Case, device_name: str, batch_size: int, iters: int, warmup: int, threads: int) -> dict:
    import mtlzoo
    from mtlzoo.schemes import create_update_rule

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device_name)
    model = mtlzoo.create_model(case.model, tasks="nyud", **case.kwargs).to(device).train()
    batch = _batch(model.tasks, batch_size, case.size, device)
    if case.encoder_only:
        def step():
            model.zero_grad(set_to_none=True)
            sum(f.float().mean() for f in model.encode(batch["image"]).features).backward()
    else:
        rule = create_update_rule(case.method, model, lambda p: torch.optim.Adam(p, lr=1e-4), **case.method_kwargs)

        def step():
            rule.step(batch, 0, 1)
    sync_device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_bytes = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = seconds_per_step(step, device, warmup, iters)
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base_bytes) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {**asdict(case), "seconds_per_step": seconds, "images_per_s": batch_size / seconds, "peak_mb": peak_mb}


def _cases(cpu: bool, size: tuple) -> list[Case]:
    scheme_size = (size[0] // 2, size[1] // 2) if cpu else size
    return [
        Case("models", "squadnet_small", "squadnet_small", size=size),
        Case("models", "hps_resnet18", "hps_resnet18", size=size),
        Case("models", "hps_resnet50", "hps_resnet50", size=size),
        Case("models", "invpt_vit_small", "invpt_vit_small", size=size),
        Case("models", "padnet_resnet18", "padnet_resnet18", size=size),
        Case("models", "mtinet_hrnet18", "mtinet_hrnet18", size=size),
        Case("models", "mtinet_resnet18", "mtinet_resnet18", size=size),
        Case("experts", "fused", "squadnet_small", encoder_only=True, size=size),
        Case("experts", "loop", "squadnet_small", {"experts": "loop"}, encoder_only=True, size=size),
        Case("schemes", "cs_resnet18 ew", "cs_resnet18", size=scheme_size),
        Case("schemes", "cs phase 1", "cs_resnet18", method="cs_two_phase", method_kwargs={"schedule": "phase1"},
             size=scheme_size),
        Case("schemes", "cs phase 2", "cs_resnet18", method="cs_two_phase", method_kwargs={"schedule": "phase2"},
             size=scheme_size),
        Case("schemes", "hps_resnet18 ew", "hps_resnet18", size=scheme_size),
        Case("schemes", "ius k=1", "hps_resnet18", method="ius", method_kwargs={"group_size": 1}, size=scheme_size),
        Case("schemes", "io k=1", "hps_resnet18", method="io", method_kwargs={"group_size": 1}, size=scheme_size),
    ]


def _table(results: list[dict], batch_size: int) -> str:
    lines = []
    by_label = {r["label"]: r for r in results}
    models = [r for r in results if r["section"] == "models"]
    if models:
        lines += [f"Forward + backward + Adam step, nyud preset (4 tasks), batch {batch_size}, "
                  f"{models[0]['size'][0]}x{models[0]['size'][1]}:", "",
                  "| model | images/s | s/step | peak memory (MB) |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['images_per_s']:.3g} | {r['seconds_per_step']:.3g} | {r['peak_mb']:.0f} |"
                  for r in models]
    if "fused" in by_label and "loop" in by_label:
        fused, loop = by_label["fused"], by_label["loop"]
        lines += ["", "SquadNet-small encoder forward + backward, T = 4:", "",
                  "| experts | images/s | peak memory (MB) |", "|---|---|---|"]
        lines += [f"| {r['label']} | {r['images_per_s']:.3g} | {r['peak_mb']:.0f} |" for r in (fused, loop)]
        lines.append(f"\nfused / loop throughput: {fused['images_per_s'] / loop['images_per_s']:.2f}x")
    schemes = [r for r in results if r["section"] == "schemes"]
    if schemes:
        lines += ["", f"One update step, batch {batch_size}, {schemes[0]['size'][0]}x{schemes[0]['size'][1]}, "
                  "relative to ew on the same model:", "", "| step | s/step | x ew |", "|---|---|---|"]
        for r in schemes:
            base = by_label[f"{r['model']} ew"]["seconds_per_step"]
            lines.append(f"| {r['label']} | {r['seconds_per_step']:.3g} | {r['seconds_per_step'] / base:.2f} |")
    return "\n".join(lines)


def main() -> None:
    """Run the selected sections and print a markdown table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 1 on CPU, 8 on CUDA")
    parser.add_argument("--iters", type=int, default=None, help="timed steps per case (default: 2 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per case (default: 1 CPU, 5 CUDA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(288, 384), metavar=("H", "W"),
                        help="input size (the scheme section uses half of it on CPU)")
    parser.add_argument("--sections", nargs="+", default=["models", "experts", "schemes"])
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--labels", nargs="+", default=None, help="run only the cases with these labels")
    parser.add_argument("--same-process", action="store_true",
                        help="CUDA only: run every case in this process (peak memory from the allocator's "
                             "per-case peak, so no fresh process is needed; saves a CUDA start per case)")
    args = parser.parse_args()
    cpu = torch.device(args.device).type == "cpu"
    batch_size = args.batch_size or (1 if cpu else 8)
    iters = args.iters or (2 if cpu else 20)
    warmup = args.warmup if args.warmup is not None else (1 if cpu else 5)
    if args.same_process and cpu:
        parser.error("--same-process needs a CUDA device (peak RSS cannot be reset between cases on a CPU)")
    results = []
    context = mp.get_context("spawn")
    for case in (c for c in _cases(cpu, tuple(args.size)) if c.section in args.sections and
                 (args.labels is None or c.label in args.labels)):
        options = (case, args.device, batch_size, iters, warmup, args.threads)
        if args.same_process:
            result = _run_case(*options)
            torch.cuda.empty_cache()
        else:
            with context.Pool(1) as pool:
                result = pool.apply(_run_case, options)
        print(f"{case.section:8s} {case.label:18s} {result['seconds_per_step']:.3f} s/step", flush=True)
        results.append(result)
    print()
    print(_table(results, batch_size))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
