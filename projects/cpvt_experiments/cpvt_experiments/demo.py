"""The built-in demo (``make demo``): does a PEG let a vision transformer read sizes it never saw?

Three small transformers that differ ONLY in how they encode position (configs in
``configs/classification/demo/``) are trained on real data, Fashion-MNIST at 28x28 (a 7x7 token grid), with
the library's training function (:func:`cpvt_mm.apis.train`, what ``tools/train.py`` calls):

* PEG: CPVT with one positional encoding generator after block 0, no table;
* learned table: a DeiT-style learned absolute position table, bicubic-interpolated at other grid sizes;
* none: no position information at all.

Each is then tested, with the same weights, on the test images resized to sizes it never saw
(:func:`cpvt_mm.evaluation.evaluate_sizes`, what ``tools/analysis_tools/eval_resolutions.py`` calls), and the
three records are written as one table and one plot in the work dir (``resolutions.md``, ``.json``, ``.png``).
Each step's full log goes to a file and its progress lines are echoed. Training uses a subset and a few epochs
so the whole demo takes about ten minutes on a 2-core CPU; the configs say how much, and the report repeats it.
"""

from __future__ import annotations

import os.path as osp
import time
from collections.abc import Sequence

from cpvt_mm.apis import prepare_train_config, train
from cpvt_mm.datasets.fashion_mnist import check_fashion_mnist
from cpvt_mm.evaluation import evaluate_sizes, write_report

from .steps import logged_step

__all__ = ["DEFAULT_SIZES", "DEMO_MODELS", "ROOT", "run_demo"]

# the checkout (projects/cpvt_experiments/cpvt_experiments/ -> the root): configs/
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DEMO_MODELS = (  # (label in the table, config file): the three differ only in the backbone's position encoding
    ("PEG (CPVT)", "cpvt-mini-peg_1xb128_fashion-mnist.py"),
    ("learned table (DeiT)", "cpvt-mini-abspos_1xb128_fashion-mnist.py"),
    ("none", "cpvt-mini-nopos_1xb128_fashion-mnist.py"),
)
DEFAULT_SIZES = (20, 28, 36, 44, 56)


def _training_note(config: str) -> str:
    """What the configs train on, read from the config itself so the report cannot drift from it."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    n = cfg.train_dataloader.dataset.get("indices")
    images = "all 60000" if n is None else f"the first {n} of the 60000"
    epochs = cfg.train_cfg.max_epochs
    return f"trained on {images} Fashion-MNIST training images at 28x28 for {epochs} epoch{'s' * (epochs > 1)}"


def run_demo(data_root: str, work_dir: str, sizes: Sequence[int] = DEFAULT_SIZES, root: str = ROOT) -> str:
    """Train the three models, test them at ``sizes``, write the merged report; returns the table's path.

    ``root`` is the checkout whose ``configs/classification/demo/`` are trained.
    """
    data_root, work_dir = osp.abspath(data_root), osp.abspath(work_dir)
    check_fashion_mnist(data_root)
    start = time.monotonic()
    data_opts = {f"{loader}.dataset.data_root": data_root for loader in ("train_dataloader", "test_dataloader")}
    config_dir = osp.join(root, "configs", "classification", "demo")
    note = _training_note(osp.join(config_dir, DEMO_MODELS[0][1]))
    print(f"[demo] {len(DEMO_MODELS)} models, {note}; test sizes {list(sizes)}", flush=True)
    models = []
    for i, (label, name) in enumerate(DEMO_MODELS, 1):
        config = osp.join(config_dir, name)
        model_dir = osp.join(work_dir, osp.splitext(name)[0])
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) training '{label}' [{time.monotonic() - start:.0f} s]", flush=True)
        log = osp.join(model_dir, "train.log")
        print(f"[demo]   (full log: {log})", flush=True)
        with logged_step(log, echo=("Epoch(", "Error"), prefix="[demo]   "):
            train(prepare_train_config(config, work_dir=model_dir, cfg_options=data_opts))
        with open(osp.join(model_dir, "last_checkpoint")) as f:
            checkpoint = f.read().strip()
        print(f"[demo] ({i}/{len(DEMO_MODELS)}) testing '{label}' at {list(sizes)} [{time.monotonic() - start:.0f} s]")
        out_dir = osp.join(model_dir, "resolutions")
        with logged_step(osp.join(out_dir, "eval.log"), echo=("[eval_resolutions] " + label,), prefix="[demo]   "):
            models.append(evaluate_sizes(config, checkpoint, sizes, osp.join(out_dir, "logs"), label, data_opts))
        write_report(models[-1:], out_dir)  # each model's own report, as eval_resolutions.py writes it

    write_report(models, work_dir)
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
