"""The built-in demo (``make demo``): does a PEG let a vision transformer read sizes it never saw?

    bash scripts/get_fashion_mnist.sh && python tools/demo.py      # what `make demo` runs
    python tools/demo.py --data-root /path/to/fashion-mnist --sizes 28 36 44 56

Three small transformers that differ ONLY in how they encode position (configs in
``configs/classification/demo/``) are trained on real data, Fashion-MNIST at 28x28 (a 7x7 token grid), through
the real entry point ``tools/train.py``:

* PEG: CPVT with one positional encoding generator after block 0, no table;
* learned table: a DeiT-style learned absolute position table, bicubic-interpolated at other grid sizes;
* none: no position information at all.

Each is then tested, with the same weights, on the test images resized to sizes it never saw, by
``tools/analysis_tools/eval_resolutions.py``, and the three reports are merged into one table and one plot in
``work_dirs/demo/`` (``resolutions.md``, ``.json``, ``.png``). Training uses a subset and a few epochs so the
whole demo takes about ten minutes on a 2-core CPU; the configs say how much, and the report repeats it.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys
import time
from collections.abc import Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without install

import cpvt_mm  # noqa: F401, E402  (compat layer and registries before any toolkit import)

CONFIG_DIR = osp.join(ROOT, "configs", "classification", "demo")
DEMO_MODELS = (  # (label in the table, config file): the three differ only in the backbone's position encoding
    ("PEG (CPVT)", "cpvt-mini-peg_1xb128_fashion-mnist.py"),
    ("learned table (DeiT)", "cpvt-mini-abspos_1xb128_fashion-mnist.py"),
    ("none", "cpvt-mini-nopos_1xb128_fashion-mnist.py"),
)
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEFAULT_SIZES = (20, 28, 36, 44, 56)


def check_fashion_mnist(root: str) -> None:
    """Fail before any training with the layout and the ways to get it.

    mmpretrain's FashionMNIST (``download=False``) only says it "cannot find" the data and suggests
    downloading, which cannot work offline and says nothing about the expected files.
    """
    missing = [f for f in IDX_FILES if not osp.isfile(osp.join(root, f))]
    if not missing:
        return
    gz_only = [f for f in missing if osp.isfile(osp.join(root, f + ".gz"))]
    hint = (
        f" ({', '.join(f + '.gz' for f in gz_only)} found: compressed files need unpacking, which "
        f"`FASHION_MNIST_ROOT={root} bash scripts/get_fashion_mnist.sh` does)"
        if gz_only
        else ""
    )
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {root!r}: missing {', '.join(missing)}{hint}.\n"
        f"Expected layout: the four uncompressed IDX files directly in that folder:\n"
        + "".join(f"    {root}/{f}\n" for f in IDX_FILES)
        + "Get them with `make demo` or `bash scripts/get_fashion_mnist.sh` (installs Debian's "
        "dataset-fashion-mnist package and unpacks it into data/fashion_mnist), or point --data-root / "
        "FASHION_MNIST_ROOT at a folder holding them."
    )


def _run(cmd: Sequence[str], log_path: str, echo: Sequence[str]) -> None:
    """Run a tool, logging everything to ``log_path`` and echoing the progress lines that contain ``echo``."""
    print(f"[demo] $ {' '.join(cmd)}\n[demo]   (full log: {log_path})", flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # progress lines as they happen, not when a buffer fills
    pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    with open(log_path, "w", buffering=1) as log, subprocess.Popen(cmd, cwd=ROOT, env=env, **pipe) as proc:
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train PEG / learned-table / no-position transformers on Fashion-MNIST, test at unseen sizes",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data-root",
        default=os.environ.get("FASHION_MNIST_ROOT", osp.join(ROOT, "data", "fashion_mnist")),
        help="folder with the four uncompressed IDX files (env FASHION_MNIST_ROOT)",
    )
    p.add_argument("--work-dir", default="work_dirs/demo", help="checkpoints, logs and the merged report")
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="test sizes in pixels")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    data_root = osp.abspath(args.data_root)
    check_fashion_mnist(data_root)
    start = time.monotonic()
    data_opts = [f"{loader}.dataset.data_root={data_root}" for loader in ("train_dataloader", "test_dataloader")]
    tools = osp.join(ROOT, "tools")
    note = _training_note(osp.join(CONFIG_DIR, DEMO_MODELS[0][1]))
    print(f"[demo] {len(DEMO_MODELS)} models, {note}; test sizes {args.sizes}", flush=True)
    reports = []
    for i, (label, name) in enumerate(DEMO_MODELS, 1):
        config = osp.join(CONFIG_DIR, name)
        work_dir = osp.join(args.work_dir, osp.splitext(name)[0])
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) training '{label}' [{time.monotonic() - start:.0f} s]", flush=True)
        train_cmd = [sys.executable, osp.join(tools, "train.py"), config, "--work-dir", work_dir, "--cfg-options"]
        _run(train_cmd + data_opts, osp.join(work_dir, "train.log"), echo=("Epoch(", "Error"))
        with open(osp.join(work_dir, "last_checkpoint")) as f:
            checkpoint = f.read().strip()
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) testing '{label}' at {args.sizes} [{time.monotonic() - start:.0f} s]")
        out_dir = osp.join(work_dir, "resolutions")
        eval_cmd = [sys.executable, osp.join(tools, "analysis_tools", "eval_resolutions.py"), config, checkpoint]
        eval_cmd += ["--sizes", *map(str, args.sizes), "--label", label, "--out-dir", out_dir, "--cfg-options"]
        _run(eval_cmd + data_opts, osp.join(out_dir, "eval.log"), echo=("[eval_resolutions] " + label,))
        reports.append(osp.join(out_dir, "resolutions.json"))

    merge_cmd = [sys.executable, osp.join(tools, "analysis_tools", "eval_resolutions.py"), "--merge", *reports]
    _run([*merge_cmd, "--out-dir", args.work_dir], osp.join(args.work_dir, "merge.log"), echo=())
    wall = time.monotonic() - start
    table_path = osp.join(args.work_dir, "resolutions.md")
    with open(table_path, "a") as f:
        f.write(
            f"\nFashion-MNIST test set (10000 images) resized to each size; models {note} (patch 4: a 7x7 token "
            "grid), identical except for the position encoding; one run each (seed 0). "
            f"Demo wall time {wall / 60:.1f} min.\n"
        )
    with open(table_path) as f:
        print("\n" + f.read())
    print(f"[demo] done in {wall / 60:.1f} min: {table_path}, resolutions.json, resolutions.png in {args.work_dir}")
    return table_path


if __name__ == "__main__":
    main()
