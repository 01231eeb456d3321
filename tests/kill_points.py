"""A hook that SIGKILLs its own training process at a chosen point (imported by the kill tests' configs).

``CPVT_KILL_AT`` says where, counted from the start of this process:

* ``iter:N``: after the N-th training iteration;
* ``save:N``: when the N-th checkpoint save begins (``before_save_checkpoint``), before anything is written;
* ``write:N:F``: during the N-th ``torch.save``, after a fraction F of its bytes reached the file;
* ``replace:N``: right after the N-th ``.pth`` file was renamed into place (before ``last_checkpoint``).
"""

from __future__ import annotations

import io
import os
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillPoint(Hook):
    priority = "LOWEST"

    def __init__(self) -> None:
        spec = os.environ.get("CPVT_KILL_AT", "")
        self.event, _, rest = spec.partition(":")
        n, _, frac = rest.partition(":")
        self.n = int(n or 0)
        self.frac = float(frac or 0.5)
        self.count = 0
        if self.event == "write":
            real_save = torch.save

            def save(obj, f, *args, **kwargs):
                if hasattr(f, "write") and not isinstance(f, io.BytesIO) and self._hit():
                    buf = io.BytesIO()
                    real_save(obj, buf, *args, **kwargs)
                    f.write(buf.getvalue()[: int(len(buf.getvalue()) * self.frac)])
                    f.flush()
                    os.fsync(f.fileno())
                    _die()
                return real_save(obj, f, *args, **kwargs)

            torch.save = save
        elif self.event == "replace":
            real_replace = os.replace

            def replace(src, dst, *args, **kwargs):
                real_replace(src, dst, *args, **kwargs)
                if str(dst).endswith(".pth") and self._hit():
                    _die()

            os.replace = replace

    def _hit(self) -> bool:
        self.count += 1
        return self.count == self.n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.event == "iter" and self._hit():
            _die()

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if self.event == "save" and self._hit():
            _die()
