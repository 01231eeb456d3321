import contextlib
import fcntl
import os
import shutil
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/toy.py, tests/helpers.py

import cpvt_mm  # noqa: F401  (compat layer first, before timm / mmpretrain import torchvision)

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `make test`; None in a plain run
if XDIST_WORKER:
    # `make test` runs the suite on pytest-xdist workers, one per core: each worker computes on one thread, and
    # so does every tool it starts (run_tool and the other subprocess helpers set OMP_NUM_THREADS=1 as well),
    # so that the workers don't fight over the cores.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

# The longest tests (about 25 s or more each on 2 cores; 145 s for the first), longest first. Under xdist they are
# dealt out to the workers before anything else (see pytest_collection_modifyitems). A name missing here costs
# balance, never coverage.
LONGEST_FIRST = (
    "test_gpu_check.py::test_gpu_check_dry_run",
    "test_segmentation.py::test_toy_training_learns",  # ~30 s
    "test_experiments.py::test_experiments_suite_end_to_end",
    "test_custom_classification.py::test_the_classification_walkthrough",
    "test_custom_data.py::test_the_detection_walkthrough",
    "test_custom_data.py::test_segmentation_of_a_2000x3000",
    "test_checkpoint_safety.py::test_training_killed_repeatedly",
    "test_classification.py::test_key_config_trains_and_tests",  # cpvt-tiny (with --compile) ~25 s, others ~6 s
    "test_detection.py::test_resume_continues_the_iteration_count",
    "test_padding.py::test_every_dense_config_batches_padding_aware",
)


def pytest_collection_modifyitems(config, items):
    """Under xdist, one queue per worker laid end to end, in the order ``--dist worksteal`` splits the tests: each
    worker's queue starts with its share of LONGEST_FIRST (dealt round-robin, longest first) and goes on with a
    contiguous run of the other tests in their own order (so a module-scoped fixture is mostly set up once per
    worker). An idle worker takes over the end of another's queue, and the last tests of a queue cannot be taken
    over: with the long tests at the front, what is left at the end is short. Without xdist nothing changes."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not XDIST_WORKER or workers < 2:
        return

    def rank(item) -> int:
        name = item.nodeid.split("/")[-1]
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if name.startswith(prefix)), len(LONGEST_FIRST))

    ranked = sorted(items, key=rank)  # stable
    longest = [item for item in ranked if rank(item) < len(LONGEST_FIRST)]
    rest = ranked[len(longest) :]
    queues, left = [], len(items)
    for w in range(workers):  # worksteal gives each idle worker len(pending) // workers_remaining tests
        size = left // (workers - w)
        left -= size
        queues.append(longest[w::workers])
        take = max(0, size - len(queues[-1]))
        queues[-1] += rest[:take]
        rest = rest[take:]
    queues[-1] += rest
    items[:] = [item for queue in queues for item in queue]


@contextlib.contextmanager
def shared_dir(tmp_path_factory, name: str):
    """A folder for something a session fixture makes once: yields (folder, fresh); make it only when fresh.

    Under xdist the workers of one run share it (pytest-xdist's recipe for session fixtures that must run
    once): the first worker that needs it makes it while holding a lock, the others wait for it and reuse it.
    A failed attempt is removed, and the next worker that needs it tries again. Without xdist: a new folder.
    """
    if not XDIST_WORKER:
        yield tmp_path_factory.mktemp(name), True
        return
    base = tmp_path_factory.getbasetemp().parent  # the run's folder, above every worker's own
    folder, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, also if this worker dies
        if done.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        yield folder, True
        done.touch()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def toy_coco(tmp_path_factory) -> str:
    """16 train / 6 val images of the toy shapes set, in the COCO 2017 layout (shared by every test module)."""
    from cpvt_mm.datasets import make_toy_coco

    with shared_dir(tmp_path_factory, "coco") as (folder, fresh):
        if fresh:
            make_toy_coco(str(folder), num_train=16, num_val=6, seed=0)
    return str(folder)


@pytest.fixture(scope="session")
def mask_rcnn_run(toy_coco, tmp_path_factory):
    """A tiny Mask R-CNN (PCPVT) trained once per session (once for all xdist workers) for 8 epochs
    (64 iterations) on the toy set through tools/train.py; returns (config path, checkpoint path)."""
    from helpers import ROOT, run_tool
    from toy_configs import dump, tiny_config

    with shared_dir(tmp_path_factory, "mask_rcnn") as (folder, fresh):
        work, path = folder / "work", folder / "mask-rcnn_tiny.py"
        if fresh:
            cfg = tiny_config("mask-rcnn_pcpvt-s_fpn_1x_coco.py", toy_coco, work, max_epochs=8)
            dump(cfg, path)
            run_tool(str(ROOT / "tools/train.py"), str(path))
    return path, work / "epoch_8.pth"
