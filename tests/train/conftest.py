import pytest
import torch

import mtlzoo


def make_batches(tasks, n=16, size=32, seed=0):
    """A learnable toy data set: every target is a fixed function of the image."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        image = torch.randn(3, size, size, generator=generator)
        item = {"image": image}
        for task in tasks:
            if task.kind in ("segmentation", "parts"):
                item[task.name] = (image[0] > 0).long() * (task.channels - 1)
            elif task.kind == "depth":
                item[task.name] = image[1:2].abs() + 0.5
            elif task.kind == "normals":
                item[task.name] = torch.nn.functional.normalize(image, dim=0)
            else:
                item[task.name] = (image[2:3] > 0.5).float()
        items.append(item)
    return items


@pytest.fixture
def toy_data():
    tasks = mtlzoo.task_preset("nyud")
    return make_batches(tasks, 16), make_batches(tasks, 8, seed=1)
