"""The test toolkit: running the repo's tools as a user does, fresh interpreters, and reading what runs logged.

Tests call the library (:mod:`cpvt_mm.apis`, :mod:`cpvt_mm.evaluation`, :mod:`cpvt_mm.datasets`) for what the
tools do, and :func:`run_tool` for the command lines themselves (arguments, exit status, one-line errors).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]


def run_tool(
    *args: str, procs: int = 1, timeout: int = 600, expect: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a tool the way a user does (``python tools/x.py ...``, or ``tools/dist_train.sh`` for procs > 1) and
    check that it exits with ``expect`` (argparse refuses arguments with 2, the tools' own errors exit with 1).

    One OpenMP thread per process: the machines have 2 cores, and oversubscription makes runs crawl. ``env``
    adds variables (e.g. ``CPVT_MM_MMCV_OPS``).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    if procs > 1:
        cmd = ["bash", str(ROOT / "tools/dist_train.sh"), args[0], str(procs), *args[1:]]
        env["PYTHON"] = sys.executable
        env["PORT"] = str(free_port())  # xdist workers may start two dist runs at once
    else:
        cmd = [sys.executable, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert res.returncode == expect, (res.returncode, res.stdout[-3000:], res.stderr[-5000:])
    return res


def run_tool_in_process(tool: str, *args: str, expect: int = 0) -> tuple[str, str]:
    """Run ``tool``'s ``__main__`` block in this interpreter, with ``sys.argv`` as ``python tool ARGS`` sets it,
    and check its exit status like :func:`run_tool`; returns (stdout, stderr).

    The same code path as a command line, without paying the toolkits' import again in a fresh interpreter: for
    the checks of arguments and one-line errors, and for short trainings and tests whose claim is the result, not
    the start of a process. Every tool keeps at least one :func:`run_tool` test, the proof that the command line
    itself starts; a compile, a kill or a different environment needs its own interpreter.
    """
    import contextlib
    import io
    import runpy

    path = str(tool if os.path.isabs(tool) else ROOT / tool)
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = exit_status(e)
        if isinstance(e.code, str):
            err.write(e.code + "\n")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    assert code == expect, (code, out.getvalue()[-3000:], err.getvalue()[-5000:])
    return out.getvalue(), err.getvalue()


def exit_status(e: SystemExit) -> int:
    """The status ``python TOOL`` exits with when the tool raises ``e`` (``sys.exit("message")``: 1)."""
    return e.code if isinstance(e.code, int) else 0 if e.code is None else 1


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for a torchrun rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment (no cpvt_mm imported unless the code does)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def logged(work_dir: Path, key: str = "loss") -> list[tuple[int, float]]:
    """(step, value) pairs that the last run in ``work_dir`` logged to ``vis_data/scalars.json``."""
    scalars = sorted(glob.glob(str(work_dir / "*/vis_data/scalars.json")))[-1]  # run dirs are timestamps
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [(row["step"], row[key]) for row in rows if key in row]


def logged_losses(work_dir: Path) -> list[float]:
    return [v for _, v in logged(work_dir)]


def build_model(cfg) -> torch.nn.Module:
    """Build ``cfg.model`` the way the config's toolkit does: with its ``default_scope``'s registry, mmpretrain's
    top-level ``data_preprocessor`` when the model has none, and SyncBN reverted as MMEngine's ``Runner`` does
    for a non-distributed run. The one model builder of the test suite, for all three toolkits."""
    import copy
    import importlib

    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope

    scope = cfg.default_scope
    registry = importlib.import_module(f"{scope}.registry").MODELS
    model = copy.deepcopy(cfg.model)
    if cfg.get("data_preprocessor") is not None:
        model.setdefault("data_preprocessor", copy.deepcopy(cfg.data_preprocessor))
    with DefaultScope.overwrite_default_scope(scope):
        return revert_sync_batchnorm(registry.build(model))
