"""Peak memory is the rise over what the process held at the start of a cell; memory held before does not count."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlzoo.benchmark.measure import MIB, PeakMemory

LINUX = Path("/proc/self/clear_refs").exists()


@pytest.mark.skipif(not LINUX, reason="the CPU peak is read from Linux /proc")
def test_cpu_peak_is_the_rise_of_the_resident_set():
    # in a fresh process: memory that earlier tests freed but the allocator kept would hide the rise
    code = """
import torch
from mtlzoo.benchmark.measure import MIB, PeakMemory
held = bytearray(64 * MIB)  # before the cell: not counted
memory = PeakMemory(torch.device("cpu"))
memory.start()
block = bytearray(96 * MIB)  # zero-filled, so resident
del block
print(memory.method, "|", memory.stop())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    method, peak = out.rsplit("|", 1)
    assert method.startswith("peak RSS rise") and 90 <= float(peak) < 140


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_is_the_rise_of_allocated_memory():
    device = torch.device("cuda")
    held = torch.empty(64 * MIB, dtype=torch.uint8, device=device)  # noqa: F841
    memory = PeakMemory(device)
    memory.start()
    block = torch.empty(96 * MIB, dtype=torch.uint8, device=device)
    del block
    assert memory.stop() == pytest.approx(96, abs=1)
