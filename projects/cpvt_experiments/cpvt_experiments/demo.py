"""The built-in demo (``make demo``): does a PEG let a vision transformer read sizes it never saw?

Three small transformers that differ ONLY in how they encode position (configs in
``configs/classification/demo/``) are trained on real data, Fashion-MNIST at 28x28 (a 7x7 token grid), through
the real entry point ``tools/train.py``:

* PEG: CPVT with one positional encoding generator after block 0, no table;
* learned table: a DeiT-style learned absolute position table, bicubic-interpolated at other grid sizes;
* none: no position information at all.

Each is then tested, with the same weights, on the test images resized to sizes it never saw, by
``tools/analysis_tools/eval_resolutions.py``, and the three reports are merged into one table and one plot in
the work dir (``resolutions.md``, ``.json``, ``.png``). Each tool runs in its own process, as a user would run
it; its full log goes to a file and its progress lines are echoed. Training uses a subset and a few epochs so
the whole demo takes about ten minutes on a 2-core CPU; the configs say how much, and the report repeats it.
"""

from __future__ import annotations

import os
import os.path as osp
import subprocess
import sys
import time
from collections.abc import Sequence

from ..datasets.fashion_mnist import check_fashion_mnist

__all__ = ["DEFAULT_SIZES", "DEMO_MODELS", "ROOT", "run_demo"]

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # the checkout: tools/ and configs/
DEMO_MODELS = (  # (label in the table, config file): the three differ only in the backbone's position encoding
    ("PEG (CPVT)", "cpvt-mini-peg_1xb128_fashion-mnist.py"),
    ("learned table (DeiT)", "cpvt-mini-abspos_1xb128_fashion-mnist.py"),
    ("none", "cpvt-mini-nopos_1xb128_fashion-mnist.py"),
)
DEFAULT_SIZES = (20, 28, 36, 44, 56)


def _run(cmd: Sequence[str], log_path: str, echo: Sequence[str], cwd: str) -> None:
    """Run a tool, logging everything to ``log_path`` and echoing the progress lines that contain ``echo``."""
    print(f"[demo] $ {' '.join(cmd)}\n[demo]   (full log: {log_path})", flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # progress lines as they happen, not when a buffer fills
    pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    with open(log_path, "w", buffering=1) as log, subprocess.Popen(cmd, cwd=cwd, env=env, **pipe) as proc:
        for line in proc.stdout:
            log.write(line)
            if any(e in line for e in echo):
                print("[demo]   " + line.rstrip().split(" - mmengine - INFO - ")[-1], flush=True)
    if proc.returncode:
        with open(log_path) as f:
            tail = f.readlines()[-30:]
        raise RuntimeError(f"{cmd[1]} failed (exit {proc.returncode}); last lines of {log_path}:\n" + "".join(tail))


def _training_note(config: str) -> str:
    """What the configs train on, read from the config itself so the report cannot drift from it."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    n = cfg.train_dataloader.dataset.get("indices")
    images = "all 60000" if n is None else f"the first {n} of the 60000"
    epochs = cfg.train_cfg.max_epochs
    return f"trained on {images} Fashion-MNIST training images at 28x28 for {epochs} epoch{'s' * (epochs > 1)}"


def run_demo(data_root: str, work_dir: str, sizes: Sequence[int] = DEFAULT_SIZES, root: str = ROOT) -> str:
    """Train the three models, test them at ``sizes``, merge the reports; returns the table's path.

    ``root`` is the checkout whose ``tools/`` run and whose ``configs/classification/demo/`` are trained.
    """
    data_root = osp.abspath(data_root)
    check_fashion_mnist(data_root)
    start = time.monotonic()
    data_opts = [f"{loader}.dataset.data_root={data_root}" for loader in ("train_dataloader", "test_dataloader")]
    tools, config_dir = osp.join(root, "tools"), osp.join(root, "configs", "classification", "demo")
    eval_tool = osp.join(tools, "analysis_tools", "eval_resolutions.py")
    note = _training_note(osp.join(config_dir, DEMO_MODELS[0][1]))
    print(f"[demo] {len(DEMO_MODELS)} models, {note}; test sizes {list(sizes)}", flush=True)
    reports = []
    for i, (label, name) in enumerate(DEMO_MODELS, 1):
        config = osp.join(config_dir, name)
        model_dir = osp.join(work_dir, osp.splitext(name)[0])
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) training '{label}' [{time.monotonic() - start:.0f} s]", flush=True)
        train_cmd = [sys.executable, osp.join(tools, "train.py"), config, "--work-dir", model_dir, "--cfg-options"]
        _run(train_cmd + data_opts, osp.join(model_dir, "train.log"), ("Epoch(", "Error"), root)
        with open(osp.join(model_dir, "last_checkpoint")) as f:
            checkpoint = f.read().strip()
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) testing '{label}' at {list(sizes)} [{time.monotonic() - start:.0f} s]")
        out_dir = osp.join(model_dir, "resolutions")
        eval_cmd = [sys.executable, eval_tool, config, checkpoint, "--sizes", *map(str, sizes), "--label", label]
        eval_cmd += ["--out-dir", out_dir, "--cfg-options", *data_opts]
        _run(eval_cmd, osp.join(out_dir, "eval.log"), ("[eval_resolutions] " + label,), root)
        reports.append(osp.join(out_dir, "resolutions.json"))

    merge_cmd = [sys.executable, eval_tool, "--merge", *reports, "--out-dir", work_dir]
    _run(merge_cmd, osp.join(work_dir, "merge.log"), (), root)
    wall = time.monotonic() - start
    table_path = osp.join(work_dir, "resolutions.md")
    with open(table_path, "a") as f:
        f.write(
            f"\nFashion-MNIST test set (10000 images) resized to each size; models {note} (patch 4: a 7x7 token "
            "grid), identical except for the position encoding; one run each (seed 0). "
            f"Demo wall time {wall / 60:.1f} min.\n"
        )
    with open(table_path) as f:
        print("\n" + f.read())
    print(f"[demo] done in {wall / 60:.1f} min: {table_path}, resolutions.json, resolutions.png in {work_dir}")
    return table_path
