"""Training: the Trainer loop and the pieces it is made of (sampler, schedules, EMA, checkpoints, logs)."""

from mtlzoo.train.trainer import EvalSetup, Trainer, seed_everything

__all__ = ["EvalSetup", "Trainer", "seed_everything"]
