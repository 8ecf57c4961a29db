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


@pytest.fixture
def make_trainer():
    """A factory of small Trainers (hps_tiny on the nyud tasks, Adam, evaluation every 3 steps) writing to ``out``."""
    from mtlzoo.config import ScheduleConfig, TrainConfig
    from mtlzoo.schemes import create_update_rule
    from mtlzoo.train import EvalSetup, Trainer, seed_everything

    def make(out, data, steps=6, **options):
        train, val = data
        seed_everything(0)
        model = mtlzoo.create_model("hps_tiny", tasks="nyud")
        rule = create_update_rule("ew", model, lambda params: torch.optim.Adam(params, lr=3e-3))
        opts = TrainConfig(**{"steps": steps, "eval_every": 3, "log_every": 1, "out_dir": str(out),
                              "device": "cpu", "progress": False, **options})
        return Trainer(model, rule, train, options=opts, evaluation=EvalSetup(val, "synthscenes", batch_size=4),
                       schedule=ScheduleConfig(name="poly"), batch_size=4)

    return make
