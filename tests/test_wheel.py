"""A wheel built from the repository installs in a fresh virtual environment and runs ``mtlzoo demo``.

Offline: the wheel is built without build isolation (setuptools from this environment) and installed with
``--no-deps --no-index``; the fresh environment reaches the dependencies (torch, timm...) through a .pth line
naming this environment's site-packages, whose own .pth files (the editable install of this checkout) are not
processed there. The demo runs in its short mode (``--quick``) from a folder outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so no build/ or egg-info lands in (or stale files come from) the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    shutil.copytree(REPO / "mtlzoo", source / "mtlzoo", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "hubconf.py"):
        shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
          str(source)], cwd=out)
    return next(out.glob("mtlzoo-*.whl"))


def test_the_wheel_holds_the_package_and_its_data(wheel: Path) -> None:
    import mtlzoo

    assert wheel.name.startswith(f"mtlzoo-{mtlzoo.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        hubconf = archive.read("mtlzoo/_torchhub/hubconf.py").decode()
        metadata = archive.read(f"mtlzoo-{mtlzoo.__version__}.dist-info/METADATA").decode()
    assert "def from_pretrained(" in hubconf  # the file itself, not a link
    assert "mtlzoo/configs/synthscenes_hps.yaml" in names and "mtlzoo/version.py" in names
    assert not any(n.startswith(("tests/", "weights/", "hubconf.py")) for n in names)
    requires = [line.split(":", 1)[1].replace(" ", "").lower() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert any(r.startswith("pillow>=") for r in requires)
    assert any(r.startswith("torch") and ">=2.3" in r for r in requires)
    assert any(r.startswith("segmentation-models-pytorch") and 'extra=="smp"' in r for r in requires)


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "zz_outer_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run([str(python), "-c", "import mtlzoo; print(mtlzoo.__file__)"], cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(REPO)
    demo = _run([str(env_dir / "bin" / "mtlzoo"), "demo", "--quick", "--out", str(tmp_path / "demo")], cwd=tmp_path)
    assert "reloaded via torch.hub.load" in demo.stdout
    assert (tmp_path / "demo" / "squadnet_tiny-synthscenes" / "model.safetensors").is_file()
