"""The resolution sweep (cpvt_mm.evaluation, tools/analysis_tools/eval_resolutions.py), the Fashion-MNIST demo
configs, driver and data script."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, run_tool, run_tool_in_process
from mmengine.config import Config
from toy import make_fashion_mnist

import cpvt_mm.evaluation as er
from cpvt_experiments.demo import run_demo
from cpvt_mm.apis import prepare_train_config, train
from cpvt_mm.datasets import IDX_FILES, check_fashion_mnist

DEMO_DIR = ROOT / "configs/classification/demo"
DEMO_CONFIGS = {
    "peg": DEMO_DIR / "cpvt-mini-peg_1xb128_fashion-mnist.py",
    "abspos": DEMO_DIR / "cpvt-mini-abspos_1xb128_fashion-mnist.py",
    "nopos": DEMO_DIR / "cpvt-mini-nopos_1xb128_fashion-mnist.py",
}


# --------------------------------------------------------------------------- the re-sizing rule
def test_imagenet_pipeline_follows_deit_protocol():
    """ResizeEdge(256) -> CenterCrop(224) becomes ResizeEdge(size*256/224) -> CenterCrop(size)."""
    pipeline = Config.fromfile(str(ROOT / "configs/classification/cpvt-tiny_8xb256_in1k.py")).test_dataloader.dataset
    pipeline = pipeline.pipeline
    assert er.native_size(pipeline) == 224
    assert er.rescale_pipeline(pipeline, 224) == [dict(s) for s in pipeline]
    resized = {s["type"]: s for s in er.rescale_pipeline(pipeline, 384)}
    assert resized["ResizeEdge"]["scale"] == round(384 * 256 / 224) == 439
    assert resized["CenterCrop"]["crop_size"] == 384
    assert resized["ResizeEdge"]["interpolation"] == "bicubic"  # everything else untouched
    assert pipeline[1]["scale"] == 256  # the input is not modified


def test_small_image_pipeline_and_refusals():
    pipeline = [dict(type="mmpretrain.Resize", scale=(28, 28)), dict(type="PackInputs")]
    assert er.native_size(pipeline) == 28
    assert er.rescale_pipeline(pipeline, 44)[0] == dict(type="mmpretrain.Resize", scale=(44, 44))
    with pytest.raises(ValueError, match="no Resize / ResizeEdge / CenterCrop"):
        er.native_size([dict(type="PackInputs")])
    with pytest.raises(ValueError, match="not a square"):
        er.native_size([dict(type="Resize", scale=(32, 28))])
    with pytest.raises(ValueError, match="scale_factor"):
        er.native_size([dict(type="Resize", scale_factor=2.0)])


# --------------------------------------------------------------------------- reports and merging
def record(label: str, sizes: dict[int, float], native: int = 28) -> dict:
    results = {str(s): {"accuracy/top1": v, "accuracy/top5": 100.0} for s, v in sizes.items()}
    return dict(label=label, config=f"{label}.py", checkpoint=f"{label}.pth", native_size=native, results=results)


def merge(paths: list[str], out_dir: Path, metric: str | None = None) -> dict[str, str]:
    """What ``eval_resolutions.py --merge PATHS [--metric M] --out-dir OUT_DIR`` does."""
    models, first_metric = er.load_reports(paths)
    return er.write_report(models, str(out_dir), metric or first_metric)


def test_merge_combines_reports_into_one_table(tmp_path):
    a = er.write_report([record("a", {28: 90.0, 36: 80.0})], str(tmp_path / "a"))
    b = er.write_report([record("b", {28: 85.0, 56: 70.5})], str(tmp_path / "b"))
    paths = merge([a["json"], b["json"]], tmp_path / "merged")
    report = json.loads(Path(paths["json"]).read_text())
    assert report["metric"] == "accuracy/top1"
    assert [r["size"] for r in report["rows"]] == [28, 36, 56]
    assert report["rows"][2]["values"] == {"a": None, "b": 70.5}
    table = Path(paths["md"]).read_text().splitlines()
    assert table[2] == "| size | a | b |"
    assert table[4:] == ["| 28 | 90.00 | 85.00 |", "| 36 | 80.00 | — |", "| 56 | — | 70.50 |"]
    assert Path(paths["png"]).read_bytes()[:4] == b"\x89PNG"
    top5 = merge([a["json"], b["json"]], tmp_path / "t5", metric="accuracy/top5")
    assert "| 28 | 100.00 | 100.00 |" in Path(top5["md"]).read_text()
    with pytest.raises(ValueError, match="labels must be unique"):
        merge([a["json"], a["json"]], tmp_path / "dup")
    with pytest.raises(ValueError, match="no model reported 'mAP'"):
        er.write_report([record("a", {28: 1.0})], str(tmp_path / "x"), metric="mAP")


def test_cli_arguments_are_checked():
    """In process (the command line itself runs in test_eval_resolutions_end_to_end)."""
    tool = "tools/analysis_tools/eval_resolutions.py"
    cases = {
        "give CONFIG CHECKPOINT pairs": ["cfg.py"],
        "--sizes is required": ["cfg.py", "a.pth"],
        "--label needs one name per pair": ["cfg.py", "a.pth", "--sizes", "28", "--label", "x", "y"],
        "--merge takes only JSON files": ["--merge", "a.json", "--sizes", "28"],
        "at least 1 pixel": ["cfg.py", "a.pth", "--sizes", "224", "0"],
    }
    for message, argv in cases.items():
        err = run_tool_in_process(tool, *argv, expect=2)[1]  # argparse's exit status
        assert message in err
    assert "--sizes" in err  # the last case names the argument with the zero size


def test_a_test_size_is_a_whole_number_of_pixels():
    import argparse

    assert er.positive_int("28") == 28
    for bad, message in (("0", "at least 1 pixel"), ("-3", "at least 1 pixel"), ("x", "whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            er.positive_int(bad)


# --------------------------------------------------------------------------- end to end on tiny data
def test_eval_resolutions_end_to_end(tmp_path):
    """A tiny CPVT trained for one epoch (cpvt_mm.apis.train), then tested at three sizes through the tool."""
    data = tmp_path / "data"
    make_fashion_mnist(data)
    cfg = Config.fromfile(str(DEMO_CONFIGS["peg"]))
    cfg.model.backbone.arch = dict(embed_dims=16, depth=1, num_heads=2, mlp_ratio=2.0)
    cfg.model.head.in_channels = 16
    cfg.param_scheduler = [dict(type="ConstantLR", factor=1.0)]
    cfg.train_cfg.max_epochs = 1
    cfg.train_dataloader.dataset.indices = None
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.update(num_workers=0, persistent_workers=False, batch_size=100)
        # no dataset serialisation: it is for loader workers (none here), and costs a full garbage collection
        loader.dataset.update(data_root=str(data), serialize_data=False)
    config = tmp_path / "tiny.py"
    cfg.dump(str(config))
    train(prepare_train_config(str(config), work_dir=str(tmp_path / "train")))
    checkpoint = str(tmp_path / "train" / "epoch_1.pth")

    out = tmp_path / "out"
    tool = str(ROOT / "tools/analysis_tools/eval_resolutions.py")
    res = run_tool(tool, str(config), checkpoint, "--sizes", "20", "28", "44", "--label", "tiny", "--out-dir", str(out))
    paths = {ext: str(out / f"resolutions.{ext}") for ext in ("json", "md", "png")}
    assert f"wrote {paths['json']}, {paths['md']}, {paths['png']}" in res.stdout
    report = json.loads(Path(paths["json"]).read_text())
    assert [r["size"] for r in report["rows"]] == [20, 28, 44]
    (model,) = report["models"]
    assert model["label"] == "tiny" and model["native_size"] == 28 and model["checkpoint"] == checkpoint
    assert all(0.0 <= r["values"]["tiny"] <= 100.0 for r in report["rows"])
    table = Path(paths["md"]).read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[4:]] == ["| 20", "| 28", "| 44"]
    assert Path(paths["png"]).stat().st_size > 1000
    assert any((out / "logs" / "tiny").iterdir())  # runner logs go under the out dir by default

    from mmengine.registry import DATASETS, DefaultScope

    dataset_cfg = dict(cfg.test_dataloader.dataset, pipeline=er.rescale_pipeline(cfg.test_pipeline, 44))
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        sample = DATASETS.build(dataset_cfg)[0]
    assert tuple(sample["inputs"].shape) == (1, 44, 44)  # what the model saw at "44"


# --------------------------------------------------------------------------- the demo
def test_demo_configs_differ_only_in_position_encoding():
    from mmpretrain.registry import MODELS

    cfgs = {k: Config.fromfile(str(p)) for k, p in DEMO_CONFIGS.items()}
    stripped = []
    for cfg in cfgs.values():
        d = cfg.to_dict()
        d["model"]["backbone"] = {
            k: v for k, v in d["model"]["backbone"].items() if k not in ("peg_positions", "abs_pos_embed")
        }
        stripped.append(d)
    assert stripped[0] == stripped[1] == stripped[2]
    expect = {"peg": ({"pegs.0.proj.weight"}, set()), "abspos": (set(), {"pos_embed"}), "nopos": (set(), set())}
    for key, cfg in cfgs.items():
        assert cfg.custom_imports == dict(imports=["cpvt_mm"], allow_failed_imports=False)
        names = {n for n, _ in MODELS.build(cfg.model).backbone.named_parameters()}
        pegs, table = expect[key]
        assert {n for n in names if n.startswith("pegs.") and n.endswith("weight")} == pegs
        assert names & {"pos_embed"} == table


def test_demo_missing_dataset_names_the_layout(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        run_demo(str(missing), str(tmp_path / "wd"))
    msg = str(e.value)
    assert all(f"{missing}/{f}" in msg for f in IDX_FILES)
    assert "scripts/get_fashion_mnist.sh" in msg and "FASHION_MNIST_ROOT" in msg
    assert not (tmp_path / "wd").exists()  # nothing trained

    gz = tmp_path / "gz"
    gz.mkdir()
    for f in IDX_FILES:
        (gz / f"{f}.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="compressed files need unpacking"):
        check_fashion_mnist(str(gz))


@pytest.mark.slow
def test_demo_end_to_end_on_shrunk_configs(tmp_path, capsys):
    """The demo's three models trained and tested in this process (cpvt_mm.apis.train, evaluate_sizes), each
    step's output in its log file and only progress lines echoed; the configs shrunk to 200 images, 1 epoch,
    and without dataset serialisation (for loader workers, which these loaders don't have; each costs a full
    garbage collection, ~0.4 s in this process, nine times)."""
    data = tmp_path / "data"
    make_fashion_mnist(data, n_train=300, n_test=120)
    root = tmp_path / "root"
    (root / "configs/classification/demo").mkdir(parents=True)
    for path in DEMO_CONFIGS.values():
        (root / "configs/classification/demo" / path.name).write_text(
            f"_base_ = [{str(path)!r}]\n"
            "train_dataloader = dict(dataset=dict(indices=200, serialize_data=False), num_workers=0, "
            "persistent_workers=False)\n"
            "test_dataloader = dict(dataset=dict(indices=100, serialize_data=False), num_workers=0, "
            "persistent_workers=False)\n"
            "train_cfg = dict(max_epochs=1)\nparam_scheduler = [dict(type='ConstantLR', factor=1.0)]\n"
        )
    work = tmp_path / "wd"
    table = run_demo(str(data), str(work), sizes=(20, 28), root=str(root))
    out = capsys.readouterr().out
    assert "[demo]   Epoch(train) [1][2/2]" in out and "[demo]   [eval_resolutions] none @ 28" in out
    assert "mmengine - INFO" not in out  # the rest went to the logs
    assert "| size | PEG (CPVT) | learned table (DeiT) | none |" in Path(table).read_text()
    model_dir = work / DEMO_CONFIGS["peg"].stem
    assert "Epoch(train)" in (model_dir / "train.log").read_text()
    assert "PEG (CPVT) @ 20" in (model_dir / "resolutions/eval.log").read_text()
    assert json.loads((work / "resolutions.json").read_text())["rows"][1]["size"] == 28


def test_fetch_script_unpacks_local_gz_files(tmp_path):
    """FASHION_MNIST_ROOT with the .gz files: unpacked in place, no package manager involved; idempotent."""
    src = tmp_path / "raw"
    make_fashion_mnist(src, n_train=8, n_test=4)
    root = tmp_path / "fm"
    root.mkdir()
    for f in IDX_FILES:
        (root / f"{f}.gz").write_bytes(gzip.compress((src / f).read_bytes()))
    env = {"FASHION_MNIST_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    script = str(ROOT / "scripts/get_fashion_mnist.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert all((root / f).read_bytes() == (src / f).read_bytes() for f in IDX_FILES)
    check_fashion_mnist(str(root))
    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stdout
