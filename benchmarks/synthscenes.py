"""Throughput of the synthscenes generator: images per second per size, in one process and through a DataLoader.

Usage: python benchmarks/synthscenes.py [--num-images 300] [--sizes 96x128 192x256 288x384] [--workers 2]
Prints a markdown table (wall-clock and process-CPU rates) to paste into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from mtlzoo.data import SynthScenes, render_scene


def _rate(fn, count: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return count / (time.perf_counter() - wall), count / max(time.process_time() - cpu, 1e-9)


def _measure(size: tuple[int, int], n: int, workers: int) -> str:
    """One table row: render_scene (wall and CPU rates), Dataset indexing and a DataLoader."""
    render_scene(0, "train", 0, size)  # warm the ray cache
    wall, cpu = _rate(lambda: [render_scene(0, "train", i, size) for i in range(n)], n)
    ds = SynthScenes("train", size=size, length=n)
    item, _ = _rate(lambda: [ds[i] for i in range(n)], n)
    loader = DataLoader(ds, batch_size=16, num_workers=workers)
    loaded, _ = _rate(lambda: list(loader), n)
    return f"| {size[0]}x{size[1]} | {wall:.0f} | {cpu:.0f} | {item:.0f} | {loaded:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--sizes", nargs="+", default=["96x128", "192x256", "288x384"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.num_images
    print(f"cpus={os.cpu_count()} torch={torch.__version__} images per measurement={n}")
    print("| size | render_scene img/s (wall) | render_scene img/s (cpu) | Dataset[i] img/s (wall) "
          f"| DataLoader {args.workers} workers, batch 16, img/s (wall) |")
    print("|---|---|---|---|---|")
    for text in args.sizes:
        h, w = (int(v) for v in text.split("x"))
        print(_measure((h, w), n, args.workers))


if __name__ == "__main__":
    main()
