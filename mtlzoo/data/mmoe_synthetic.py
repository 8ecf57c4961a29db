"""mmoe_synthetic: the synthetic regression benchmark of the MMoE paper (Ma et al., KDD 2018, section 3.2), whose
two tasks are as related as the cosine ``correlation`` of their weight vectors says.

For a data ``seed``: u1, u2 orthonormal in R^100 (Gram-Schmidt on two normal draws); w1 = u1,
w2 = p u1 + sqrt(1 - p^2) u2; alpha_k, beta_k ~ N(0, 1) for k = 1..10, shared by the two tasks. Each example:
x ~ N(0, I_100), y_i = w_i^T x + sum_k sin(alpha_k w_i^T x + beta_k) + eps_i, eps_i ~ N(0, 0.01). The task
constants and each split come from their own random streams, and example ``i`` of a split depends only on
(seed, split, i): a longer split starts with the examples of a shorter one. Version 1 is the same bytes on
every machine (see :mod:`mtlzoo.data._portable`); ``benchmarks/mmoe_synthetic.py`` draws the same law with
BLAS and numpy's sine, whose last bits depend on the CPU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mtlzoo.data._portable import dot, sin_cos, standard_normal, vector_dot
from mtlzoo.data._tasks import chosen_task_names
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

VERSION = 1
INPUT_DIM, SINES, NOISE_STD = 100, 10, 0.1  # d, m and the noise's standard deviation (variance 0.01)
SPLITS = {"train": 1, "val": 2, "test": 3}  # stream 0 draws the task constants
DEFAULT_LENGTHS = {"train": 10000, "val": 2000, "test": 2000}
TASK_NAMES = ("task1", "task2")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / math.sqrt(vector_dot(v, v))


def task_constants(correlation: float, seed: int) -> dict[str, np.ndarray]:
    """The weight vectors ``w`` (2, 100), whose cosine is ``correlation``, and the sine parameters ``alpha``,
    ``beta`` (10,) of data ``seed`` (float64)."""
    rng = np.random.default_rng([seed, 0])
    g = standard_normal(rng, (2, INPUT_DIM))
    u1 = _unit(g[0])
    u2 = g[1]
    for _ in range(2):  # Gram-Schmidt twice ("twice is enough"): orthogonal to within rounding
        u2 = u2 - vector_dot(u1, u2) * u1
    u2 = _unit(u2)
    w2 = correlation * u1 + math.sqrt(1.0 - correlation * correlation) * u2
    sines = standard_normal(rng, (2, SINES))
    return {"w": np.stack([u1, w2]), "alpha": sines[0], "beta": sines[1]}


def generate(split: str, length: int, correlation: float = 0.5, seed: int = 0) -> dict[str, np.ndarray]:
    """The first ``length`` examples of ``split``: inputs ``x`` (length, 100) and labels ``y`` (length, 2),
    float64, the same bytes on every machine."""
    _check_split(split)
    _check_options(correlation, seed, length)
    constants = task_constants(correlation, seed)
    rng = np.random.default_rng([seed, SPLITS[split]])
    draws = standard_normal(rng, (length, INPUT_DIM + 2))  # one row per example: x, then the two noises
    x = np.ascontiguousarray(draws[:, :INPUT_DIM])
    labels = []
    for task, w in enumerate(constants["w"]):
        z = dot(x, w)
        wave = sin_cos(constants["alpha"][0] * z + constants["beta"][0])[0]
        for k in range(1, SINES):
            wave = wave + sin_cos(constants["alpha"][k] * z + constants["beta"][k])[0]
        labels.append((z + wave) + NOISE_STD * draws[:, INPUT_DIM + task])
    return {"x": x, "y": np.stack(labels, axis=1)}


def _check_split(split: str) -> None:
    if not isinstance(split, str):
        raise TypeError(f"mmoe_synthetic split must be one of {list(SPLITS)}, got {split!r} ({type(split).__name__})")
    if split not in SPLITS:
        raise unknown_name_error("mmoe_synthetic split", split, list(SPLITS))


def _check_options(correlation: float, seed: int, length: int) -> None:
    """One-line errors naming the option and what it accepts."""
    if not isinstance(correlation, numbers.Real) or isinstance(correlation, bool):
        raise TypeError(f"mmoe_synthetic correlation must be a number in [-1, 1], got {correlation!r} "
                        f"({type(correlation).__name__})")
    if not -1.0 <= float(correlation) <= 1.0:
        raise ValueError(f"mmoe_synthetic correlation must lie in [-1, 1] (the cosine of the tasks' weight "
                         f"vectors), got {correlation!r}")
    for name, value, least in (("seed", seed, 0), ("length", length, 1)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"mmoe_synthetic {name} must be an integer >= {least}, got {value!r} "
                            f"({type(value).__name__})")
        if value < least:
            raise ValueError(f"mmoe_synthetic {name} must be an integer >= {least}, got {value!r}")


def _task_names(tasks: Iterable[str | Task] | None) -> tuple[str, ...]:
    if isinstance(tasks, (str, Task)):
        raise TypeError(f"mmoe_synthetic tasks must be a list of task names from {list(TASK_NAMES)}, got {tasks!r}")
    return chosen_task_names(tasks, TASK_NAMES, "mmoe_synthetic")


class MMoESynthetic(Dataset):
    """The MMoE synthetic benchmark as a torch Dataset of ``{"image": x (100,), "task1": (1,), "task2": (1,)}``
    (float32; ``image`` is the input key every model reads).

    ``correlation`` is the cosine p of the two tasks' weight vectors (default 0.5, the shipped checkpoints'),
    ``seed`` picks the task constants and the examples, ``length`` the number of examples (default 10000 for
    train, 2000 for val and test), ``tasks`` the targets returned (default both). The arrays are generated once,
    when the data set is built, and kept as ``inputs`` (N, 100) and ``labels`` (N, 2) for loops that slice batches
    themselves.
    """

    default_protocol = "mmoe_synthetic"  # what it is scored under unless told otherwise
    task_preset = "mmoe_synthetic"  # the tasks a model built for it gets
    draws_randomness = False  # items only index the arrays made in __init__: the trainer need not seed them
    version = VERSION

    def __init__(self, split: str = "train", correlation: float = 0.5, seed: int = 0, length: int | None = None,
                 tasks: Iterable[str | Task] | None = None) -> None:
        _check_split(split)
        self.split, self.correlation, self.seed = split, correlation, seed
        self.length = DEFAULT_LENGTHS[split] if length is None else length
        self.tasks = _task_names(tasks)
        arrays = generate(split, self.length, correlation, seed)  # checks the options
        self.inputs = torch.from_numpy(arrays["x"].astype(np.float32))
        self.labels = torch.from_numpy(arrays["y"].astype(np.float32))

    @property
    def name(self) -> str:
        """The versioned name numbers should be reported under: ``mmoe_synthetic-v1``."""
        return f"mmoe_synthetic-v{self.version}"

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"mmoe_synthetic {self.split} index {index} out of range for length {self.length}")
        sample = {"image": self.inputs[index]}
        for name in self.tasks:
            column = TASK_NAMES.index(name)
            sample[name] = self.labels[index, column:column + 1]
        return sample
