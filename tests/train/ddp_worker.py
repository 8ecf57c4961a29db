"""Run by torchrun (2 CPU processes) from test_ddp.py, and in-process for the single-process reference.

Trains hps_tiny for a few steps with each method and writes the final parameters of this rank.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import mtlzoo
from mtlzoo.config import TrainConfig
from mtlzoo.train import Trainer, seed_everything

METHODS = ["ew", "pcgrad", "aligned_mtl", "nash_mtl", "ius"]
MODEL_CASES = [("invpt_tiny", "pcgrad"), ("invpt_tiny", "mgda_ub"),
               ("padnet_tiny", "pcgrad"), ("padnet_tiny", "mgda_ub"), ("mtinet_tiny", "ew"),
               ("mtinet_tiny", "pcgrad"), ("mtinet_tiny", "mgda_ub")]  # (model, method) beyond hps_tiny
STEPS = 3


def dense_valid_data(n: int = 16, size: int = 32) -> list[dict]:
    """Targets valid at every pixel, so a mean over a rank's pixels averages to the union's mean."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        image = torch.randn(3, size, size, generator=generator)
        items.append({
            "image": image,
            "semseg": (image[0] > 0).long() * 3,
            "depth": image[1:2].abs() + 0.5,
            "normals": torch.nn.functional.normalize(image, dim=0),
            "edge": (image[2:3] > 0.5).float(),
        })
    return items


def train(method: str, out_dir: Path, batch_size: int, model_name: str = "hps_tiny") -> dict[str, torch.Tensor]:
    """Train with ``method`` (BN frozen so the forward does not depend on how the batch is split)."""
    seed_everything(0)
    model = mtlzoo.create_model(model_name, tasks="nyud")
    rule = mtlzoo.create_update_rule(method, model, lambda params: torch.optim.SGD(params, lr=0.05))
    options = TrainConfig(steps=STEPS, eval_every=1000, log_every=1, out_dir=str(out_dir / method), device="cpu",
                          progress=False, freeze_norm=True)
    trainer = Trainer(model, rule, dense_valid_data(), options=options, batch_size=batch_size)
    trainer.fit()
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def main() -> None:
    out_dir, per_rank_batch = Path(sys.argv[1]), int(sys.argv[2])
    for method in METHODS:
        state = train(method, out_dir, per_rank_batch)
        rank = torch.distributed.get_rank()
        save_file(state, str(out_dir / f"{method}.rank{rank}.safetensors"))
    for model_name, method in MODEL_CASES:
        state = train(method, out_dir / model_name, per_rank_batch, model_name)
        save_file(state, str(out_dir / f"{model_name}.{method}.rank{torch.distributed.get_rank()}.safetensors"))


if __name__ == "__main__":
    main()
