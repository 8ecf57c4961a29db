"""What data a result or a baseline was measured on, and whether that is the data being scored.

A data set says it by its name (``SynthScenes.name`` is ``"synthscenes-v3"``, a real benchmark's ``dataset_name``
is ``"nyud"``, ``folder:`` / ``hf:`` sets have names of their own) and, when it has generator versions, its
``version``; a saved result by its ``dataset`` and ``data_version`` keys; a shipped baseline by its protocol's
``dataset`` and its ``data_version``. A delta_m against a baseline measured on other data compares two problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtlzoo.metrics.baselines import Baseline
from mtlzoo.metrics.protocols import PROTOCOLS

_VERSIONED = re.compile(r"^(?P<family>.+)-v(?P<version>\d+)$")


@dataclass(frozen=True)
class MeasuredOn:
    """A data set (its registered name, e.g. ``"synthscenes"``) and its version; None where not known."""

    dataset: str | None = None
    version: str | None = None

    def describe(self) -> str:
        """``"synthscenes version 2"``, ``"nyud"``, ``"version 2 of the data"`` or ``"unknown data"``."""
        if self.dataset and self.version:
            return f"{self.dataset} version {self.version}"
        if self.version:
            return f"version {self.version} of the data"
        return self.dataset or "unknown data"

    def differs_from(self, other: MeasuredOn) -> bool:
        """Known to be other data: another data set, or the same one (or an unnamed one) at another version."""
        if self.dataset and other.dataset and self.dataset != other.dataset:
            return True
        return bool(self.version and other.version and self.version != other.version)


def _preset_data_sets() -> dict[str, str]:
    """Task preset name -> the data set its protocols measure on (a saved result that names no data set records
    its protocol's task preset in that place, e.g. ``cityscapes2`` for ``cityscapes_mtan``)."""
    protocols = [PROTOCOLS.get(name) for name in PROTOCOLS.names()]
    return {p.task_preset: p.dataset for p in protocols if p.task_preset and p.dataset}


def measured_on(name: Any, version: Any = None) -> MeasuredOn:
    """From a data set's reported name (``"synthscenes-v3"``, ``"nyud"``, a task preset name) and its version
    (default: the ``-vN`` suffix of the name)."""
    name = name if isinstance(name, str) and name else None
    if name is not None:
        match = _VERSIONED.match(name)
        if match:
            name, version = match["family"], match["version"] if version is None else version
        name = _preset_data_sets().get(name, name)
    return MeasuredOn(name, None if version is None else str(version))


def data_name(data: Any) -> str | None:
    """The name a data set (or a DataLoader over one) reports its numbers under: ``name``, else ``dataset_name``."""
    dataset = getattr(data, "dataset", data)
    name = getattr(dataset, "name", None)
    name = name if isinstance(name, str) else getattr(dataset, "dataset_name", None)
    return name if isinstance(name, str) else None


def data_version(data: Any) -> int | str | None:
    """The generator version of a data set (or a DataLoader over one) that has versions, else None."""
    version = getattr(getattr(data, "dataset", data), "version", None)
    return version if isinstance(version, (int, str)) and not isinstance(version, bool) else None


def data_measured_on(data: Any) -> MeasuredOn:
    """What ``data`` (a data set, a DataLoader over one, or plain batches) is, as far as it says."""
    return measured_on(data_name(data), data_version(data))


def result_measured_on(result: Mapping[str, Any] | None) -> MeasuredOn:
    """What a saved result (``EvalResult.to_dict()``, a checkpoint's ``results``) records it was measured on."""
    if not isinstance(result, Mapping):
        return MeasuredOn()
    return measured_on(result.get("dataset"), result.get("data_version"))


def baseline_measured_on(baseline: Baseline) -> MeasuredOn:
    """A shipped baseline: its protocol's data set at its ``data_version``."""
    protocol = PROTOCOLS.get(baseline.protocol) if baseline.protocol in PROTOCOLS else None
    version = None if baseline.data_version is None else str(baseline.data_version)
    return MeasuredOn(protocol.dataset if protocol is not None else None, version)
