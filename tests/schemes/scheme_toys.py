"""Tiny batches and a minimal equal-weight balancer for the update-rule tests."""

import torch

import mtlzoo


def make_batch(preset="nyud", b=2, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = {"image": torch.randn(b, 3, size, size, generator=gen)}
    for task in mtlzoo.task_preset(preset):
        if task.kind in ("segmentation", "parts"):
            batch[task.name] = torch.randint(0, task.channels, (b, size, size), generator=gen)
        elif task.kind == "normals":
            batch[task.name] = torch.nn.functional.normalize(torch.randn(b, 3, size, size, generator=gen), dim=1)
        elif task.kind == "depth":
            batch[task.name] = torch.rand(b, 1, size, size, generator=gen) * 5
        else:
            batch[task.name] = (torch.rand(b, 1, size, size, generator=gen) > 0.8).float()
    return batch


class EqualWeight:
    """The balancer contract at its smallest: sum the losses, one backward."""

    class needs:  # noqa: N801
        features = False

    def __init__(self):
        self.calls = 0

    def backward(self, losses, model, features=None, scaler=None):
        self.calls += 1
        total = sum(losses.values())
        (scaler.scale(total) if scaler is not None else total).backward()
        return {"weights": torch.ones(len(losses))}
