"""The catalogue is one file at the repository's root, and a built wheel carries it."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_one_catalogue_at_the_top_level() -> None:
    from llamaembed.hub.registry import shipped_catalogue

    assert (ROOT / "models.toml").is_file()
    assert not (ROOT / "llamaembed" / "models.toml").exists()  # no second copy in the tree
    text, origin = shipped_catalogue()  # this checkout's (editable) install reads the root file
    assert Path(origin) == ROOT / "models.toml"
    assert text == (ROOT / "models.toml").read_text("utf-8")


def test_wheel_ships_the_catalogue_and_a_fresh_venv_lists_it(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "models.toml"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "llamaembed", source / "llamaembed",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(source), "-w", str(dist)],
                   check=True, capture_output=True, text=True)
    (wheel,) = dist.glob("llamaembed-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("llamaembed/models.toml").decode("utf-8")
    assert shipped == (ROOT / "models.toml").read_text("utf-8")

    # A fresh virtualenv with the wheel in it; its dependencies are borrowed from this
    # environment through a .pth line, which adds the folder without running this
    # environment's editable-install hook, so only the wheel's llamaembed can be imported.
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True, text=True)
    fresh_site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {**os.environ, "LLAMAEMBED_CACHE": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "HF_HUB_OFFLINE": "1"}
    env.pop("LLAMAEMBED_MODELS", None)
    where = subprocess.run([str(python), "-c", "import llamaembed; print(llamaembed.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(fresh_site)
    listed = subprocess.run([str(fresh / "bin" / "llamaembed"), "models", "list"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = tomllib.loads(shipped)["models"]
    listed_names = [line.lstrip("* ").split()[0] for line in listed.stdout.splitlines()
                    if line.strip()]
    assert sorted(listed_names) == sorted(names)
