"""User code reaches the CLI: ``mtlzoo --import MODULE``, a config's ``imports:`` list, ``mtlzoo.plugins`` entry points.

Each test writes its own plugin module (a model and a balancer) into tmp_path under a unique name, so the
registries of this process never see the same name twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import mtlzoo
from mtlzoo.cli import main
from mtlzoo.plugins import import_modules, load_entry_point_plugins

TASKS = "model.tasks=[{name: semseg, kind: segmentation, channels: 8}, {name: depth, kind: depth}]"
SMALL = ["data.kwargs={size: [32, 48], length: 8}", "data.batch_size=4", "data.eval_batch_size=8",
         "train.steps=2", "train.eval_every=2", "train.progress=false", "train.best_metric=null", TASKS]

PLUGIN = '''
"""A user plugin: one model and one balancer, registered on import."""
import torch

from mtlzoo.balancers import LossBalancer, register_balancer
from mtlzoo.models import register_model
from mtlzoo.models.hps import HardParameterSharing

CALLS = []


def {model}(tasks, **kwargs):
    """hps with a tiny encoder and narrow heads."""
    return HardParameterSharing(tasks, encoder="tiny", output_stride=32, head="light", head_width=8, **kwargs)


register_model({model})


@register_balancer("{balancer}")
class HalveTheFirst(LossBalancer):
    """Weight 0.5 on the first task, 1 on the others."""

    def total_loss(self, ctx):
        CALLS.append(len(self.tasks))
        weights = torch.ones_like(ctx.values)
        weights[0] = 0.5
        return (weights * ctx.losses).sum(), weights
'''


def _plugin(folder: Path) -> tuple[str, str, str]:
    """Write a plugin module into ``folder``; returns (module, model name, balancer name), all unique."""
    tag = uuid.uuid4().hex[:8]
    module, model, balancer = f"user_plugin_{tag}", f"plugin_net_{tag}", f"halve_first_{tag}"
    (folder / f"{module}.py").write_text(PLUGIN.replace("{model}", model).replace("{balancer}", balancer))
    return module, model, balancer


def _train(out: Path, *extra: str) -> int:
    return main(["train", "--config", "synthscenes_hps", f"train.out_dir={out}", *SMALL, *extra])


def test_import_option_makes_a_user_model_and_balancer_trainable(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model, balancer = _plugin(tmp_path)
    out = tmp_path / "run"
    assert _train(out, f"model.name={model}", f"method.name={balancer}") == 2  # not imported: unknown name
    assert "Unknown model" in capsys.readouterr().err
    assert main(["--import", module, "train", "--config", "synthscenes_hps", f"train.out_dir={out}", *SMALL,
                 f"model.name={model}", f"method.name={balancer}"]) == 0
    assert sys.modules[module].CALLS == [2, 2]  # the user balancer took both steps
    config = json.loads(next(out.glob("checkpoints/step_*/config.json")).read_text())
    assert config["architecture"] == model and config["architecture_module"] == module
    assert model in mtlzoo.list_models() and balancer in mtlzoo.list_balancers()


def test_config_imports_list(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model, balancer = _plugin(tmp_path)
    assert _train(tmp_path / "run", f"imports=[{module}]", f"model.name={model}", f"method.name={balancer}") == 0
    assert sys.modules[module].CALLS == [2, 2]
    assert _train(tmp_path / "bad", "imports=[no_such_module_xyz]") == 2
    err = capsys.readouterr().err
    assert "imports: cannot import module 'no_such_module_xyz'" in err and len(err.strip().splitlines()) == 1


def test_import_option_errors_are_one_line(capsys) -> None:
    assert main(["--import", "no_such_module_xyz", "list", "balancers"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot import module 'no_such_module_xyz'" in err and len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="dotted name"):
        import_modules([""])


def test_entry_point_plugins_are_imported(tmp_path: Path, monkeypatch) -> None:
    module, model, balancer = _plugin(tmp_path)
    dist = tmp_path / "user_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[mtlzoo.plugins]\nnets = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module not in sys.modules
    assert module in load_entry_point_plugins()
    assert model in mtlzoo.list_models() and balancer in mtlzoo.list_balancers()


@pytest.mark.slow
def test_a_new_process_loads_a_plugin_checkpoint_only_with_the_import(tmp_path: Path, monkeypatch) -> None:
    """from_pretrained / eval of a checkpoint whose architecture a plugin registers names that module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model, _ = _plugin(tmp_path)
    assert _train(tmp_path / "run", f"imports=[{module}]", f"model.name={model}") == 0
    checkpoint = next((tmp_path / "run").glob("checkpoints/step_*"))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mtlzoo.cli", "eval", str(checkpoint), "--data-opt", "size=[32,48]",
               "--data-opt", "length=4", "--batch-size", "4"]
    failed = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and f"mtlzoo --import {module}" in failed.stderr
    ok = subprocess.run([command[0], "-m", "mtlzoo.cli", "--import", module, *command[3:]], cwd=elsewhere, env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    script = textwrap.dedent(f"""
        import sys, mtlzoo, {module}
        print(mtlzoo.from_pretrained(sys.argv[1]).architecture)
    """)
    loaded = subprocess.run([sys.executable, "-c", script, str(checkpoint)], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.stdout.strip() == model, loaded.stderr
