"""model-index.yml and the metafiles: unique names, every Config exists, every config is listed once."""

import glob
import os

import yaml
from helpers import ROOT


def _models():
    index = yaml.safe_load((ROOT / "model-index.yml").read_text())
    models = []
    for path in index["Import"]:
        meta = yaml.safe_load((ROOT / path).read_text())
        collections = {c["Name"] for c in meta["Collections"]}
        for m in meta["Models"]:
            assert m["In Collection"] in collections, m["Name"]
        models += meta["Models"]
    return models


def test_names_unique_and_configs_exist():
    models = _models()
    names = [m["Name"] for m in models]
    assert len(names) == len(set(names)), "duplicate model names"
    for m in models:
        assert (ROOT / m["Config"]).is_file(), m["Config"]
        assert os.path.splitext(os.path.basename(m["Config"]))[0] == m["Name"]


def test_collections_point_at_the_readme_next_to_their_configs():
    index = yaml.safe_load((ROOT / "model-index.yml").read_text())
    for path in index["Import"]:
        for collection in yaml.safe_load((ROOT / path).read_text())["Collections"]:
            readme = collection["README"]
            assert (ROOT / readme).is_file() and os.path.dirname(readme) == os.path.dirname(path), readme


def test_every_config_is_listed():
    listed = {m["Config"] for m in _models()}
    for task in ("classification", "detection", "segmentation"):
        for path in glob.glob(str(ROOT / "configs" / task / "*.py")):
            assert os.path.relpath(path, ROOT) in listed, path


def test_cpvt_mm_config_reference_resolves_through_the_index(tmp_path):
    """``_base_ = 'cpvt_mm::...'`` from outside the repository (mmengine reads model-index.yml for it)."""
    from mmengine.config import Config  # conftest imported cpvt_mm, which registers the cpvt_mm:: package

    child = tmp_path / "child.py"
    child.write_text("_base_ = ['cpvt_mm::detection/mask-rcnn_pcpvt-s_fpn_1x_coco.py']\n")
    cfg = Config.fromfile(str(child))
    assert cfg.model.backbone.type == "cpvt_mm.PCPVT"
