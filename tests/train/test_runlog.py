import importlib.util
import math

import pytest
import torch

from mtlzoo.train.runlog import RunLog, read_log, to_plain


def test_records_are_json_lines_with_plain_values(tmp_path):
    log = RunLog(tmp_path)
    log.write("train", 3, losses={"depth": torch.tensor(0.5)}, weights=torch.tensor([1.0, 2.0]), bad=math.nan)
    log.write("eval", 3, metrics={"depth": {"rmse": 1.25}})
    records = read_log(tmp_path / "log.jsonl")
    assert [r["kind"] for r in records] == ["train", "eval"]
    assert records[0]["losses"] == {"depth": 0.5} and records[0]["weights"] == [1.0, 2.0] and records[0]["bad"] == "nan"


def test_a_disabled_log_writes_nothing(tmp_path):
    RunLog(tmp_path / "rank1", enabled=False).write("train", 1, loss=1.0)
    assert not (tmp_path / "rank1").exists()


def test_to_plain_handles_nesting():
    assert to_plain({"a": (torch.tensor(1), [torch.tensor([2.0, 3.0])])}) == {"a": [1, [[2.0, 3.0]]]}


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package_says_what_to_install(tmp_path):
    with pytest.raises(ImportError, match=r"pip install 'mtlzoo\[tensorboard\]'"):
        RunLog(tmp_path, tensorboard=True)
