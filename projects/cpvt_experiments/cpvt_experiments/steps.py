"""One step of the demo or the suite (train, test at sizes, probe) called in this process with its output in a
log file: ``with logged_step(path, echo=(...,)):`` sends everything printed and logged inside the block to
``path`` and shows only the lines containing one of ``echo``.

The steps are the library's own functions (:func:`cpvt_mm.apis.train`, :func:`cpvt_mm.evaluation.evaluate_sizes`),
not the command lines under ``tools/``; MMEngine's loggers print to the ``sys.stdout`` they find when a runner
is built, so both streams are replaced, for the block, by a router that writes to the active step's log (or,
outside any step, to the real stream: a logger kept from an earlier step does not write into a closed file).
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TextIO

__all__ = ["logged_step"]


class _Sink:
    def __init__(self, log: TextIO, echo: Sequence[str], out: TextIO, prefix: str) -> None:
        self.log, self.echo, self.out, self.prefix = log, tuple(echo), out, prefix
        self._line = ""

    def write(self, text: str) -> None:
        self.log.write(text)
        if not self.echo:
            return
        self._line += text
        *lines, self._line = self._line.split("\n")
        for line in lines:
            if any(e in line for e in self.echo):
                self.out.write(self.prefix + line.rstrip().split(" - mmengine - INFO - ")[-1] + "\n")
                self.out.flush()


class _Router:
    """Stands in for ``sys.stdout`` / ``sys.stderr``: writes to the active step's sink, else to ``real``."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        sink = _ACTIVE[-1] if _ACTIVE else None
        (sink or self.real).write(text)
        return len(text)

    def flush(self) -> None:
        if _ACTIVE:
            _ACTIVE[-1].log.flush()
        self.real.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):  # encoding, fileno, ...: the real stream's
        return getattr(self.real, name)


_ACTIVE: list[_Sink] = []


@contextlib.contextmanager
def logged_step(log_path: str, echo: Sequence[str] = (), prefix: str = "") -> Iterator[None]:
    """Run the block with its output appended to ``log_path``; echo lines containing any of ``echo``.

    An exception is written to the log (with its traceback) and raised on.
    """
    os.makedirs(osp.dirname(osp.abspath(log_path)), exist_ok=True)
    real_out, real_err = sys.stdout, sys.stderr
    real = real_out.real if isinstance(real_out, _Router) else real_out
    with open(log_path, "a", buffering=1) as log:
        _ACTIVE.append(_Sink(log, echo, real, prefix))
        sys.stdout = _Router(real)
        sys.stderr = _Router(real_err.real if isinstance(real_err, _Router) else real_err)
        try:
            yield
        except BaseException:
            log.write(traceback.format_exc())
            raise
        finally:
            _ACTIVE.pop()
            sys.stdout, sys.stderr = real_out, real_err
