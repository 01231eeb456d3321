"""Helpers the end-to-end tests share: running the repo's tools and reading what they logged."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_tool(relpath: str) -> ModuleType:
    """Import a script under tools/ (not a package) as a module."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def run_tool(*args: str, procs: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a tool the way a user does (``python tools/x.py ...``, or ``tools/dist_train.sh`` for procs > 1).

    One OpenMP thread per process: the machines have 2 cores, and oversubscription makes runs crawl.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if procs > 1:
        cmd = ["bash", str(ROOT / "tools/dist_train.sh"), args[0], str(procs), *args[1:]]
        env["PYTHON"] = sys.executable
        env["PORT"] = str(29500 + os.getpid() % 1000)
    else:
        cmd = [sys.executable, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-5000:])
    return res


def logged(work_dir: Path, key: str = "loss") -> list[tuple[int, float]]:
    """(step, value) pairs that the last run in ``work_dir`` logged to ``vis_data/scalars.json``."""
    scalars = sorted(glob.glob(str(work_dir / "*/vis_data/scalars.json")))[-1]  # run dirs are timestamps
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [(row["step"], row[key]) for row in rows if key in row]


def logged_losses(work_dir: Path) -> list[float]:
    return [v for _, v in logged(work_dir)]
