"""Time to score NYUD-size predictions under the mtinet_nyud protocol: mtlzoo's streaming meters vs a
straightforward per-image numpy implementation of the same metrics, side by side on the same data.

The numpy reference is written the way evaluation scripts of the field usually are: per image, a loop
over classes for TP / FP / FN, arccos angles kept for an exact median, float64 sums for depth and edges.
Both compute the same 18 numbers (semseg 3, depth 8, normals 6, edge BCE); their largest relative
difference is printed.
Only the metric updates and the final compute are timed; making the synthetic predictions is not.

Usage: python benchmarks/metrics.py [--num-images 654] [--batch-size 8] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mtlzoo.metrics import create_meter
from mtlzoo.tasks import task_preset

H, W, CLASSES = 480, 640, 40


def _batch(index: int, size: int, device: str) -> dict[str, torch.Tensor]:
    """Deterministic targets and noisy predictions for ``size`` images starting at ``index``."""
    g = torch.Generator().manual_seed(index)
    semseg = torch.randint(0, CLASSES, (size, H // 16, W // 16), generator=g).repeat_interleave(16, 1)
    semseg = semseg.repeat_interleave(16, 2)
    semseg[:, :8] = 255
    flip = torch.rand(size, H, W, generator=g) < 0.3
    depth = torch.rand(size, 1, H, W, generator=g) * 9.5 + 0.5
    depth[:, :, :10] = 0.0
    up = torch.tensor([0, 0, 3.0])[:, None, None]
    normals = torch.nn.functional.normalize(torch.randn(size, 3, H, W, generator=g) + up, dim=1)
    edge = (torch.rand(size, 1, H, W, generator=g) < 0.05).float()
    out = {
        "semseg": semseg,
        "semseg_pred": torch.where(flip, torch.randint(0, CLASSES, (size, H, W), generator=g), semseg),
        "depth": depth, "depth_pred": depth * (1 + 0.2 * torch.randn(size, 1, H, W, generator=g)).clamp_min(0.05),
        "normals": normals,
        "normals_pred": torch.nn.functional.normalize(normals + 0.3 * torch.randn(size, 3, H, W, generator=g), dim=1),
        "edge": edge, "edge_pred": torch.rand(size, 1, H, W, generator=g),
    }
    return {k: v.to(device) for k, v in out.items()}


class NumpyReference:
    """Per-image numpy versions of the same metrics: pooled IoU / accuracies (absent class = 0), pooled depth
    errors and delta accuracies, normal angles kept for an exact median, balanced edge BCE."""

    def __init__(self) -> None:
        self.tp, self.fp, self.fn = np.zeros(CLASSES), np.zeros(CLASSES), np.zeros(CLASSES)
        self.depth = np.zeros(9)  # sq, log sq, abs, abs rel, sq rel, delta1..3, count
        self.angles: list[np.ndarray] = []
        self.edge = np.zeros(2)

    def update(self, pred: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> None:
        valid = gt["semseg"] != 255
        for c in range(CLASSES):
            p, g = (pred["semseg"] == c) & valid, (gt["semseg"] == c) & valid
            self.tp[c] += np.sum(p & g)
            self.fp[c] += np.sum(p & ~g)
            self.fn[c] += np.sum(~p & g)
        mask = gt["depth"] > 0
        p, g = pred["depth"][mask].astype(np.float64), gt["depth"][mask].astype(np.float64)
        diff = p - g
        ratio = np.maximum(p / g, g / p)
        log_diff = np.log(np.maximum(p, 1e-9)) - np.log(g)
        self.depth += [np.sum(diff**2), np.sum(log_diff**2), np.sum(np.abs(diff)), np.sum(np.abs(diff) / g),
                       np.sum(diff**2 / g), np.sum(ratio < 1.25), np.sum(ratio < 1.25**2), np.sum(ratio < 1.25**3),
                       mask.sum()]
        valid_n = np.linalg.norm(gt["normals"], axis=0) > 0
        unit = pred["normals"] / np.maximum(np.linalg.norm(pred["normals"], axis=0), 1e-12)
        dot = np.clip(np.sum(unit * gt["normals"], axis=0), -1, 1)
        self.angles.append(np.degrees(np.arccos(dot[valid_n])).astype(np.float32))
        p = np.clip(pred["edge"].astype(np.float64), 1e-7, 1 - 1e-7)
        y = gt["edge"]
        self.edge += [np.sum(-(0.95 * y * np.log(p) + 0.05 * (1 - y) * np.log(1 - p))), y.size]

    def compute(self) -> dict[str, float]:
        angles = np.concatenate(self.angles).astype(np.float64)
        iou = self.tp / np.maximum(self.tp + self.fp + self.fn, 1e-8)
        d = self.depth[:8] / self.depth[8]
        return {
            "semseg.miou": iou.mean(), "semseg.pixel_acc": self.tp.sum() / (self.tp.sum() + self.fn.sum()),
            "semseg.mean_acc": np.mean(self.tp / np.maximum(self.tp + self.fn, 1)),
            "depth.rmse": np.sqrt(d[0]), "depth.log_rmse": np.sqrt(d[1]), "depth.abs_err": d[2],
            "depth.abs_rel": d[3], "depth.sq_rel": d[4], "depth.delta1": d[5], "depth.delta2": d[6],
            "depth.delta3": d[7], "normals.mean": angles.mean(), "normals.median": float(np.median(angles)),
            "normals.rmse": np.sqrt(np.mean(angles**2)), "normals.within_11_25": np.mean(angles < 11.25),
            "normals.within_22_5": np.mean(angles < 22.5), "normals.within_30": np.mean(angles < 30),
            "edge.bce": self.edge[0] / self.edge[1],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-images", type=int, default=654)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (numpy runs on one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {t.name: t for t in task_preset("nyud")}
    meters = {name: create_meter(task, "mtinet_nyud") for name, task in tasks.items()}
    reference = NumpyReference()
    ours_s = ref_s = 0.0
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    warm = {name: create_meter(task, "mtinet_nyud") for name, task in tasks.items()}  # kernels loaded, untimed
    warm_batch = _batch(0, min(args.batch_size, args.num_images), args.device)
    for name, meter in warm.items():
        meter.update(warm_batch[f"{name}_pred"], warm_batch[name])
        meter.compute()
    for start in range(0, args.num_images, args.batch_size):
        size = min(args.batch_size, args.num_images - start)
        batch = _batch(start, size, args.device)
        sync()
        t0 = time.perf_counter()
        for name, meter in meters.items():
            meter.update(batch[f"{name}_pred"], batch[name])
        sync()
        ours_s += time.perf_counter() - t0
        host = {k: v.cpu().numpy() for k, v in batch.items()}
        t0 = time.perf_counter()
        for i in range(size):
            reference.update({k: host[f"{k}_pred"][i] for k in tasks}, {k: host[k][i] for k in tasks})
        ref_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = {f"{t}.{m}": v for t, meter in meters.items() for m, v in meter.compute().items()}
    ours_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference.compute()
    ref_s += time.perf_counter() - t0
    gap = max(abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-12) for k in ref)
    print(f"images={args.num_images} size={H}x{W} batch={args.batch_size} device={args.device} "
          f"torch_threads={torch.get_num_threads()}")
    print("| implementation | seconds | images/s |\n|---|---|---|")
    print(f"| mtlzoo meters ({args.device}) | {ours_s:.2f} | {args.num_images / ours_s:.1f} |")
    print(f"| numpy per-image reference | {ref_s:.2f} | {args.num_images / ref_s:.1f} |")
    print(f"speed-up: {ref_s / ours_s:.1f}x; largest relative difference over the {len(ref)} metrics: {gap:.1e}")


if __name__ == "__main__":
    main()
