"""Each compatibility fix in cpvt_mm.compat, shown to be needed (without it) and to work (with it)."""

import copy
import os
import pickle

import numpy as np
import pytest
import torch
from helpers import ROOT, run_python
from mmengine.hooks import Hook
from mmengine.runner import Runner
from toy import ToyClassifier, ToyImages

from cpvt_mm.compat import UnsafeCheckpointError, load_checkpoint_file
from cpvt_mm.compat.torchvision_cpu import _nms_reference

CPU_ONLY_TORCH = not (torch.version.cuda or getattr(torch.version, "hip", None))


# --------------------------------------------------------------------------- torchvision
@pytest.mark.skipif(not CPU_ONLY_TORCH, reason="torchvision imports natively with a GPU torch")
def test_torchvision_needs_the_shim_on_cpu_only_torch():
    without = run_python("import torchvision")
    if without.returncode == 0:
        pytest.skip("this torchvision imports natively; the shim is a no-op here")
    assert "torchvision::nms does not exist" in without.stderr


def test_torchvision_and_its_dependents_import_with_cpvt_mm():
    res = run_python(
        "import cpvt_mm, torch, torchvision, timm, mmpretrain.models\n"
        "b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]])\n"
        "print(torchvision.ops.nms(b, torch.tensor([.9, .8, .7]), .5).tolist())\n"
        "print(torchvision.ops.batched_nms(b, torch.tensor([.9, .8, .7]), torch.tensor([0, 1, 0]), .5).tolist())"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["[0,", "2]", "[0,", "1,", "2]"]


def test_nms_fallback_matches_mmcv():
    from mmcv.ops import nms as mmcv_nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 30 + 1], dim=1)
    scores = torch.rand(300, generator=g)
    for thr in (0.3, 0.5, 0.7):
        _, keep_mmcv = mmcv_nms(boxes, scores, thr)
        assert torch.equal(_nms_reference(boxes, scores, thr), keep_mmcv)
    assert _nms_reference(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


# --------------------------------------------------------------------------- numpy 2
def test_numpy_in1d_available_for_mmpretrain_metrics():
    assert np.in1d(np.array([1, 2, 3]), np.array([2])).tolist() == [False, True, False]


# --------------------------------------------------------------------------- checkpoints
def _runner(work_dir, max_epochs, resume=False, hooks=None):
    torch.manual_seed(0)  # same initial weights for every runner
    return Runner(
        model=ToyClassifier(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyImages(),
            sampler=dict(type="DefaultSampler", shuffle=True),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05)),
        param_scheduler=dict(type="CosineAnnealingLR", T_max=2, by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook", interval=1)
        ),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        resume=resume,
        default_scope="mmengine",
        experiment_name=f"exp_{max_epochs}_{resume}",
    )


class _CaptureOptimizerState(Hook):
    """Records the optimizer state and epoch right after resume (``before_train`` runs after loading)."""

    def __init__(self):
        self.state = None
        self.epoch = None

    def before_train(self, runner):
        self.state = copy.deepcopy(runner.optim_wrapper.optimizer.state_dict())
        self.epoch = runner.epoch


class _Interrupted(Exception):
    pass


class _KillAfterFirstEpoch(Hook):
    """Simulates a job killed after epoch 1's checkpoint was written (CheckpointHook runs before it)."""

    def after_train_epoch(self, runner):
        raise _Interrupted


@pytest.mark.slow
def test_runner_resume_continues_exactly(tmp_path):
    straight = _runner(tmp_path / "straight", max_epochs=2)
    straight.train()

    first = _runner(tmp_path / "resumed", max_epochs=2)
    first.register_hook(_KillAfterFirstEpoch(), priority="LOWEST")
    with pytest.raises(_Interrupted):
        first.train()
    saved = load_checkpoint_file(str(tmp_path / "resumed" / "epoch_1.pth"))
    assert "message_hub" in saved and "optimizer" in saved

    capture = _CaptureOptimizerState()
    second = _runner(tmp_path / "resumed", max_epochs=2, resume=True)
    second.register_hook(capture, priority="VERY_LOW")
    second.train()

    assert capture.epoch == 1
    for pid, st in saved["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(capture.state["state"][pid][k], v), (pid, k)
    assert second.epoch == 2
    a = straight.model.state_dict()
    b = second.model.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)


@pytest.mark.slow
def test_runner_checkpoint_fails_to_load_without_compat(tmp_path):
    _runner(tmp_path, max_epochs=1).train()
    ckpt = tmp_path / "epoch_1.pth"
    res = run_python(f"import torch; torch.load({str(ckpt)!r})")
    assert res.returncode != 0 and "HistoryBuffer" in res.stderr
    # with cpvt_mm's allow-list the same file loads, through mmengine's own loader
    res = run_python(
        f"import cpvt_mm\nfrom mmengine.runner import CheckpointLoader\n"
        f"ck = CheckpointLoader.load_checkpoint({str(ckpt)!r}, map_location='cpu')\nprint(sorted(ck))"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "message_hub" in res.stdout


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ReachesGlobals:
    """``getattr(HistoryBuffer, '__init__')`` is the first step towards ``__globals__`` and ``os``."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer

        return (getattr, (HistoryBuffer, "__init__"))


class _Evals:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {self.marker}')",))


@pytest.mark.parametrize("payload", [_RunsCode, _Evals, _ReachesGlobals])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = payload() if payload is _ReachesGlobals else payload(marker)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {"x": evil}}, path)

    with pytest.raises(UnsafeCheckpointError, match="Refusing to load checkpoint"):
        load_checkpoint_file(str(path))
    # mmengine's own entry points go through the same loader
    from mmengine.runner import load_checkpoint

    with pytest.raises(pickle.UnpicklingError, match="allow-list"):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


def test_refused_checkpoint_also_refused_by_runner_resume(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": {}, "x": _RunsCode(marker)}, path)
    runner = _runner(tmp_path / "w", max_epochs=2)
    with pytest.raises(UnsafeCheckpointError):
        runner.load_checkpoint(str(path))
    assert not marker.exists()


# --------------------------------------------------------------------------- switching fixes off
def _run_with_disabled(names: str, code: str):
    import subprocess
    import sys

    env = dict(os.environ, CPVT_MM_COMPAT_DISABLE=names)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_every_fix_reports_its_status_and_why():
    from cpvt_mm import compat

    state = compat.status()
    assert set(state) == {f.name for f in compat.FIXES}
    assert set(state.values()) <= {"applied", "not needed"}
    assert all(f.why for f in compat.FIXES)
    line = compat.summary()
    assert all(f.name in line for f in compat.FIXES) and compat.DISABLE_ENV in line


@pytest.mark.parametrize(
    "name, code, symptom",
    [
        ("numpy_in1d", "import cpvt_mm, numpy as np; np.in1d", "has no attribute 'in1d'"),
        (
            "config_package",
            "import cpvt_mm; from mmengine.config import Config; "
            "Config._get_cfg_path('cpvt_mm::classification/pcpvt-small_8xb128_in1k.py', '.')",
            "cpvt_mm",
        ),
        (
            "checkpoints",  # mmengine's own https:// loader is back: torch.hub with weights_only=False
            "import cpvt_mm; from mmengine.runner.checkpoint import CheckpointLoader, load_from_http; "
            "assert CheckpointLoader._schemes['https://'] is not load_from_http, 'mmengine loader'",
            "AssertionError",
        ),
    ],
)
def test_a_disabled_fix_leaves_its_symptom(name, code, symptom):
    """Each fix can be switched off, and switching it off brings its symptom back (so each is needed)."""
    off = _run_with_disabled(name, code)
    assert off.returncode != 0 and symptom in off.stderr, off.stderr[-2000:]
    on = _run_with_disabled("", code)
    assert on.returncode == 0, on.stderr[-2000:]


def test_unknown_fix_names_are_refused():
    res = _run_with_disabled("numpy_in1d,no_such_fix", "import cpvt_mm")
    assert res.returncode != 0 and "unknown fixes ['no_such_fix']" in res.stderr


SEG_CONFIG = "pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py"


def test_host_package_bases_resolve_without_pkg_resources():
    """setuptools >= 82 has no pkg_resources, through which mmengine finds ``mmpretrain::`` / ``mmseg::`` bases."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pkg_resources':\n"
        "            raise ModuleNotFoundError(\"No module named 'pkg_resources'\", name='pkg_resources')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import cpvt_mm\n"
        "from mmengine.config import Config\n"
        f"cfg = Config.fromfile({str(ROOT / 'configs/segmentation' / SEG_CONFIG)!r})\n"
        "assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'\n"
    )
    assert _run_with_disabled("", code).returncode == 0
    off = _run_with_disabled("config_package", code)
    assert off.returncode != 0 and "No module named 'pkg_resources'" in off.stderr


def test_a_packages_model_index_is_read_once_and_answers_as_mmengines_lookup(monkeypatch):
    """MMEngine read mmseg's 212 metafiles for each ``mmseg::`` base (4-5 s a segmentation config); cpvt_mm reads a
    package's index once per process. Configs of all three toolkits (``mmpretrain::``, ``mmdet::``, ``mmseg::``
    bases, full configs and ``_base_/`` files) load exactly as with MMEngine's lookup."""
    import mmengine.config.utils as utils
    import mmengine.fileio
    from mmengine.config import Config

    from cpvt_mm.compat import config_package

    paths = [ROOT / "configs/segmentation" / SEG_CONFIG, ROOT / "configs/detection/retinanet_svt-s_fpn_1x_coco.py",
             ROOT / "configs/classification/pcpvt-small_8xb128_in1k.py"]  # fmt: skip
    config_package._model_index.cache_clear()
    reads, load = [], mmengine.fileio.load
    monkeypatch.setattr(mmengine.fileio, "load", lambda f, *a, **k: reads.append(str(f)) or load(f, *a, **k))
    fast = [Config.fromfile(str(p)).to_dict() for p in paths * 2]
    indexes = [f for f in reads if f.endswith("model-index.yml")]
    assert len(indexes) == len(set(indexes)) == 3, indexes  # one per host package, in a process that loads six
    monkeypatch.setattr(utils, "_get_cfg_metainfo", utils._get_cfg_metainfo.__wrapped__)  # MMEngine's own
    assert fast == [Config.fromfile(str(p)).to_dict() for p in paths * 2]


def test_mmpretrain_imports_next_to_transformers_5(tmp_path):
    """A transformers 5 (here a stand-in whose import fails, as mmpretrain's BLIP imports do under the real one)
    must not take mmpretrain's classifiers down with its multimodal models."""
    (tmp_path / "transformers").mkdir()
    (tmp_path / "transformers/__init__.py").write_text("raise ImportError('transformers 5 has no such API')\n")
    (tmp_path / "transformers-5.0.0.dist-info").mkdir()
    (tmp_path / "transformers-5.0.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: transformers\n"
                                                                    "Version: 5.0.0\n")  # fmt: skip
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import cpvt_mm, mmpretrain.models"
    assert _run_with_disabled("", code).returncode == 0
    off = _run_with_disabled("mmpretrain_multimodal", code)
    assert off.returncode != 0 and "transformers 5 has no such API" in off.stderr
