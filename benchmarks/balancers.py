"""Per-step time and peak memory of every balancer relative to the plain summed-loss step (``ew``).

One step = forward + balanced backward + Adam step, on the same model and batch. Every
configuration runs in its own subprocess (so peak memory is per configuration: CUDA peak
allocated on the GPU, peak resident set size on the CPU). Also times the balancers' own T x T
solves alone and, when installed, TorchJD 0.18 (``mtl_backward`` + ``jac_to_grad``) on the same
model. Usage::

    python benchmarks/balancers.py --device cuda                       # hps_resnet50, 288x384, batch 8
    python benchmarks/balancers.py --device cpu --model hps_resnet18 --size 72 96 --batch 2 --steps 2
    python benchmarks/balancers.py --model mlp --threads 1 --steps 60 --torchjd   # small models: see small_models.py
    python benchmarks/balancers.py --model toy --threads 1 --steps 60 --torchjd
    python benchmarks/balancers.py --solves --device cpu --threads 1   # only the T x T solves
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

GRADIENT = ["mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad", "nash_mtl", "aligned_mtl", "upgrad",
            "db_mtl", "pomsi"]
LOSS = ["fixed", "uw", "dwa", "rlw", "gls", "si", "famo", "gradnorm"]
SMALL_MODELS = ("mlp", "toy")
TORCHJD = {"upgrad": "UPGrad", "mgda": "MGDA", "pcgrad": "PCGrad", "cagrad": "CAGrad", "aligned_mtl": "AlignedMTL",
           "imtl": "IMTLG", "nash_mtl": "NashMTL"}


def _batch(model, batch: int, size: tuple[int, int], device: str) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(0)
    h, w = size
    x = torch.randn(batch, 3, h, w, generator=g)
    y = {task.name: task.spec.example_target(task, batch, (h, w), g) for task in model.tasks}
    return x.to(device), {k: v.to(device) for k, v in y.items()}


def _step_fn(args, model, balancer_name: str, library: str):
    """The training step of one configuration as a closure."""
    from mtlzoo.balancers import create_balancer

    if library == "torchjd":
        import torchjd.aggregation as agg
        from torchjd.autojac import jac_to_grad, mtl_backward

        cls = getattr(agg, TORCHJD[balancer_name])
        extra = {"nash_mtl": {"n_tasks": len(model.tasks)}, "cagrad": {"c": 0.4}}.get(balancer_name, {})
        aggregator = cls(**extra)
        shared = list(model.shared_parameters())
        heads = [list(model.task_parameters(t.name)) for t in model.tasks]
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(x, y):
            opt.zero_grad(set_to_none=True)
            rep = model.encode(x)
            losses = model.losses(model.decode(rep), y)
            # the ASPP heads read only the last feature map
            mtl_backward(list(losses.values()), features=rep.features[-1], tasks_params=heads, shared_params=shared,
                         parallel_chunk_size=args.chunk)
            jac_to_grad(shared, aggregator)
            opt.step()
        return step

    kwargs = {"level": args.level, "jacobian_mode": args.mode} if balancer_name in GRADIENT else {}
    balancer = create_balancer(balancer_name, **kwargs).bind([t.name for t in model.tasks])
    balancer.to(args.device)
    opt = torch.optim.Adam(list(model.parameters()) + list(balancer.parameters()), lr=1e-4)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        rep = model.encode(x)
        losses = model.losses(model.decode(rep), y)
        balancer.backward(losses, model, features=rep.features)
        opt.step()
    return step


def run_one(args) -> dict:
    """Time one configuration against ``ew`` in this process, steps interleaved (ew, config, ew, ...)
    so that both see the same machine load; returns medians and the median of the paired ratios."""
    import mtlzoo

    torch.manual_seed(0)
    model = mtlzoo.create_model(args.model, tasks=args.tasks).to(args.device).train()
    x, y = _batch(model, args.batch, tuple(args.size), args.device)
    base = _step_fn(args, model, "ew", "mtlzoo")
    step = _step_fn(args, model, args.balancer, args.library)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(args.warmup):
        base(x, y)
        step(x, y)
    sync()
    pairs, peaks = [], []
    for _ in range(args.steps):
        times = []
        for fn in (base, step):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            fn(x, y)
            sync()
            times.append(time.perf_counter() - start)
            if cuda:
                peaks.append(torch.cuda.max_memory_allocated() / 2**20)
        pairs.append(times)
    med = lambda v: sorted(v)[len(v) // 2]
    out = {"ms": 1000 * med([t for _, t in pairs]), "ew_ms": 1000 * med([b for b, _ in pairs]),
           "ratio": med([t / b for b, t in pairs])}
    if cuda:
        out.update(peak_mb=max(peaks[1::2]), ew_peak_mb=max(peaks[0::2]))
    else:  # resident set size of the whole process: the larger of ew and the configuration
        out.update(peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def solve_times(device: str, repeats: int = 50) -> dict:
    """Milliseconds per T x T solve (the balancer's ``weights`` alone, synchronised) for T = 3 and T = 10: the
    median of ``repeats`` calls (the mean of 20 unsynchronised calls before 2026-12-06)."""
    from mtlzoo.balancers import GramianBalancer, StepContext, create_balancer

    out = {}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for T in (3, 10):
        jac = torch.randn(T, 1000, dtype=torch.float64, device=device)
        gram = jac @ jac.T
        tasks = [f"t{i}" for i in range(T)]
        values = torch.rand(T, device=device) + 0.5
        for name in GRADIENT:
            b = create_balancer(name).bind(tasks).to(device)
            if not isinstance(b, GramianBalancer):
                continue
            ctx = StepContext(tasks, values, list(values), values, [], None, "parameters")
            b.weights(gram, ctx)
            times = []
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                b.weights(gram, ctx)
                sync()
                times.append(time.perf_counter() - start)
            out[(name, T)] = 1000 * sorted(times)[repeats // 2]
    return out


def _configs(args) -> list[dict]:
    names = args.balancers or (["ew"] + GRADIENT + LOSS)
    configs = []
    for name in names:
        if name in GRADIENT:
            for mode in args.modes:
                configs.append({"balancer": name, "level": "parameters", "mode": mode, "library": "mtlzoo"})
            configs.append({"balancer": name, "level": "features", "mode": "loop", "library": "mtlzoo"})
        else:
            configs.append({"balancer": name, "level": "parameters", "mode": "-", "library": "mtlzoo"})
    if args.torchjd:
        for name in TORCHJD:
            if name in names:
                for chunk in (None, 1):
                    configs.append({"balancer": name, "level": "parameters", "mode": f"chunk={chunk}",
                                    "library": "torchjd", "chunk": chunk})
    return configs


def _in_process(args, config: dict) -> dict:
    """``run_one`` for ``config`` in this process, its memory released afterwards (``--same-process``)."""
    import copy
    import gc

    one = copy.copy(args)
    for k, v in config.items():
        setattr(one, k, v)
    one.chunk = config.get("chunk")
    try:
        return run_one(one)
    except Exception as error:  # noqa: BLE001 - one failed configuration must not end the table
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        gc.collect()
        torch.cuda.empty_cache()


def _subprocess(args, config: dict) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps(config), "--device", args.device, "--model", args.model,
           "--tasks", args.tasks, "--batch", str(args.batch), "--size", *map(str, args.size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="hps_resnet50")
    p.add_argument("--tasks", default="nyuv2_mtan")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, nargs=2, default=[288, 384])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--balancers", nargs="*", default=None)
    p.add_argument("--modes", nargs="*", default=["batched", "loop"])
    p.add_argument("--torchjd", action="store_true", help="also time TorchJD (pip install torchjd)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="small models: time steps by wall clock or by this process's CPU time (less disturbed by "
                        "other jobs on a shared machine)")
    p.add_argument("--same-process", action="store_true",
                   help="CUDA only: run every configuration in this process (peak memory is the allocator's "
                        "per-step peak either way; saves a CUDA start per configuration)")
    p.add_argument("--solves", action="store_true", help="only time the balancers' T x T solves (T = 3, 10)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.solves:
        _print_solves(args.device)
        return
    if args.model in SMALL_MODELS:
        _small(args)
        return
    if args.one:
        config = json.loads(args.one)
        for k, v in config.items():
            setattr(args, k, v)
        args.chunk = config.get("chunk")
        print(json.dumps(run_one(args)))
        return
    if args.same_process and not args.device.startswith("cuda"):
        p.error("--same-process needs a CUDA device (peak RSS cannot be reset between configurations on a CPU)")
    results = []
    for config in _configs(args):
        res = _in_process(args, config) if args.same_process else _subprocess(args, config)
        results.append((config, res))
        print(json.dumps({**config, **res}), file=sys.stderr, flush=True)
    _print_table(args, results)
    _print_solves(args.device)


def _print_solves(device: str) -> None:
    print("\nT x T solve alone (ms, median of 50 calls, float64 on", device + "):")
    for (name, T), ms in sorted(solve_times(device).items()):
        print(f"  {name:12s} T={T:2d}: {ms:7.3f}")


def _small(args) -> None:
    """Paired per-step times on a small model (``mlp`` or ``toy``), mtlzoo and TorchJD in this one process."""
    import small_models

    from mtlzoo.benchmark.results import machine_name

    methods = args.balancers or list(small_models.TORCHJD)
    cpu = machine_name("cpu")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"{args.model}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, median of {args.steps} paired ratios "
          f"(each method step against a plain summed-loss step), {args.clock} clock, load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3]) if sys.platform == 'linux' else '?'}\n")
    print(small_models.table(args.model, methods, args.steps, torchjd=args.torchjd, clock=clock))


def _print_table(args, results: list[tuple[dict, dict]]) -> None:
    base = next((r for c, r in results if c["balancer"] == "ew" and "ms" in r), None)
    print(f"\n{args.model}, tasks {args.tasks}, batch {args.batch} x 3 x {args.size[0]} x {args.size[1]}, "
          f"{args.device}, {args.steps} paired steps after {args.warmup} warm-up\n")
    print("| balancer | library | level | Jacobian | ms/step | ew ms/step | x ew (paired) | peak MB | x ew peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, r in results:
        head = f"| {c['balancer']} | {c['library']} | {c['level']} | {c['mode']} |"
        if "ms" not in r:
            print(f"{head} failed: {r['error'][:70]} |||||")
            continue
        ew_peak = r.get("ew_peak_mb", base["peak_mb"] if base else float("nan"))
        print(f"{head} {r['ms']:.1f} | {r['ew_ms']:.1f} | {r['ratio']:.2f} | {r['peak_mb']:.0f} | "
              f"{r['peak_mb'] / ew_peak:.2f} |")


if __name__ == "__main__":
    main()
