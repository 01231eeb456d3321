"""Loading and saving checkpoints safely: no code runs, no memory is corrupted, damage is named, not guessed.

Loading (:func:`load_checkpoint_file`) is ``torch.load(weights_only=True)`` with an allow-list narrowed to
what an mmengine ``Runner`` checkpoint holds, and three guarantees on top:

* **Nothing outside the allow-list is built.** Besides tensors and plain containers, a checkpoint may hold
  mmengine's ``HistoryBuffer``, numpy arrays / scalars of *numeric* dtypes (bool, int, uint, float,
  complex), and ``getattr(HistoryBuffer, <statistic>)``. numpy objects are never handed to numpy's own
  unpickling code: ``numpy.dtype``, ``numpy.ndarray`` and ``numpy._core.multiarray._reconstruct`` /
  ``scalar`` resolve to checked stand-ins that collect the pickled description into a placeholder,
  validate it (no structured, void, object, string or datetime dtypes, no fields, data exactly as long as
  the shape says), and only then build the value. A dtype crafted through ``np.dtype.__setstate__`` (an
  int64 field overlapping an object field is a forged pointer) therefore never exists, not even briefly:
  checking after ``torch.load`` returns would be too late, since freeing such an array already crashes.
  Placeholders are swapped for the real values in one pass after unpickling, which also checks every
  ``HistoryBuffer``'s contents.
* **Damage is told apart from attack.** An empty, truncated, non-checkpoint or bit-flipped file raises
  :class:`CorruptCheckpointError`; a file asking for code raises :class:`UnsafeCheckpointError`. Both name
  the file; neither ever repeats torch's advice to retry with ``weights_only=False``.
* **Silent corruption of our own files is caught.** :func:`~cpvt_mm.checkpoint.save_checkpoint` stores a
  SHA-256 of every tensor's bytes in ``meta['cpvt_mm_digest']``; loading recomputes it and raises
  :class:`ChecksumMismatchError` on a mismatch. Foreign checkpoints (no digest) load as before. The zip
  archive's per-record CRC32 (written by torch, never checked by it) is verified as well.

Every checkpoint scheme mmengine knows (local paths, ``https://``, ``torchvision://``, ``open-mmlab://`` ...)
has a loader here that ends in :func:`load_checkpoint_file` (:data:`SAFE_LOADERS`; :mod:`cpvt_mm.compat`
registers them with mmengine), and :func:`find_resume_checkpoint` picks the newest checkpoint of a work dir
that actually loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import os.path as osp
import pickle
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlparse

import numpy as np
import torch

__all__ = [
    "DIGEST_KEY",
    "SAFE_LOADERS",
    "CheckpointError",
    "ChecksumMismatchError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "add_digest",
    "find_resume_checkpoint",
    "load_checkpoint_file",
    "safe_checkpoint_globals",
    "tensor_digest",
    "verify_digest",
]

DIGEST_KEY = "cpvt_mm_digest"
_CHECKPOINT_NAME = re.compile(r"^(?:epoch|iter)_(\d+)\.pth$")


# --------------------------------------------------------------------------- errors
class CheckpointError(Exception):
    """A checkpoint could not be loaded; the message names the file and what is wrong with it."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file asks for objects outside the allow-list (code, or values that could corrupt memory).

    Nothing it asked for was built or run. (Also a ``pickle.UnpicklingError`` for callers that catch that.)
    """


class CorruptCheckpointError(CheckpointError, ValueError):
    """The file is not a readable checkpoint: empty, truncated, not a torch file, or damaged inside."""


class ChecksumMismatchError(CorruptCheckpointError):
    """A checkpoint written by cpvt_mm no longer matches the digest stored in it (silent corruption)."""


class _Refused(pickle.UnpicklingError):
    """Raised by the stand-ins inside the unpickler; :func:`load_checkpoint_file` turns it into an
    :class:`UnsafeCheckpointError` that names the file."""


# --------------------------------------------------------------------------- checked numpy stand-ins
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex: fixed-size, no pointers


class _DTypeSpec:
    """Placeholder for a pickled ``np.dtype``: collects ``dtype(name, align, copy)`` and its state.

    The real dtype is built only from a validated description, never through ``np.dtype.__setstate__``.
    """

    def __init__(self, dtype: np.dtype | None = None) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if self.dtype is None:
            raise _Refused("dtype state without a dtype")
        # numpy's dtype state: (version, byteorder, subdescr, names, fields, elsize, alignment, flags[, meta])
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _Refused(f"malformed numpy dtype state {state!r:.200}")
        _, byteorder, subdescr, names, fields, elsize, alignment, flags = state[:8]
        if subdescr is not None or names is not None or fields is not None:
            raise _Refused("structured / sub-array numpy dtypes are not allowed in checkpoints")
        if elsize != -1 or alignment != -1 or flags != self.dtype.flags:
            raise _Refused(f"numpy dtype {self.dtype} with a forged layout {state!r:.200}")
        if len(state) == 9 and state[8] is not None:
            raise _Refused("numpy dtype metadata is not allowed in checkpoints")
        if byteorder not in ("<", ">", "|", "="):
            raise _Refused(f"numpy dtype byte order {byteorder!r}")
        if byteorder in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(byteorder)

    def resolve(self) -> np.dtype:
        if self.dtype is None:
            raise _Refused("numpy dtype placeholder that was never described")
        return self.dtype


class _ArraySpec:
    """Placeholder for a pickled ``np.ndarray``; ``__setstate__`` validates the state and builds a copy."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise _Refused(f"malformed numpy array state {state!r:.200}")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _DTypeSpec):
            raise _Refused(f"numpy array with dtype {type(dtype).__name__}, not a checked numeric dtype")
        dtype = dtype.resolve()
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused(f"numpy array shape {shape!r:.100}")
        if not isinstance(raw, bytes | bytearray):
            raise _Refused("numpy array data that is not raw bytes (object arrays are not allowed)")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if len(raw) != count * dtype.itemsize:
            raise _Refused(f"numpy array of shape {shape} {dtype} with {len(raw)} bytes of data")
        flat = np.frombuffer(bytes(raw), dtype=dtype, count=count)
        self.value = flat.reshape(shape, order="F" if is_fortran else "C").copy()

    def resolve(self) -> np.ndarray:
        if self.value is None:
            raise _Refused("numpy array placeholder without data")
        return self.value


class _NDArrayToken:
    """What the global ``numpy.ndarray`` resolves to: only usable as ``_reconstruct``'s first argument."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NDArrayToken:
        raise _Refused("direct construction of numpy.ndarray")


class _StatisticRef:
    """What ``getattr(HistoryBuffer, name)`` resolves to while unpickling; the real method afterwards.

    Torch's allowed ``_rebuild_from_type_v2`` calls any callable it is given, so handing out the real
    method would let a file call it with arbitrary arguments; calling this placeholder is refused instead.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Refused(f"checkpoint calls HistoryBuffer.{self.name} while loading")

    def resolve(self) -> Any:
        from mmengine.logging.history_buffer import HistoryBuffer

        return getattr(HistoryBuffer, self.name)


def _checked_dtype(obj: Any, align: Any = False, copy: Any = True) -> _DTypeSpec:
    if not isinstance(obj, str):
        raise _Refused(f"numpy dtype built from {type(obj).__name__} (only type names are allowed)")
    try:
        dtype = np.dtype(obj)
    except TypeError as e:
        raise _Refused(f"unknown numpy dtype {obj!r:.50}") from e
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"numpy dtype {obj!r:.50} (only bool / int / uint / float / complex are allowed)")
    return _DTypeSpec(dtype)


def _checked_reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArraySpec:
    if subtype is not _NDArrayToken:
        raise _Refused(f"numpy array of type {subtype!r:.80} (only plain numpy.ndarray is allowed)")
    return _ArraySpec()


def _checked_scalar(dtype: Any, data: Any = None) -> np.generic:
    if not isinstance(dtype, _DTypeSpec):
        raise _Refused(f"numpy scalar with dtype {type(dtype).__name__}, not a checked numeric dtype")
    dtype = dtype.resolve()
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"numpy {dtype} scalar with {type(data).__name__} data of the wrong size")
    return np.frombuffer(data, dtype=dtype, count=1)[0].copy()


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``builtins.bytes``: pickle protocol 2 writes ``b''`` (an empty array's data) as ``bytes()``."""
    if args:
        raise _Refused(f"bytes{args!r:.80} (only the empty bytes() is allowed)")
    return b""


def _checked_getattr(obj: Any, name: Any) -> _StatisticRef:
    """Stand-in for ``builtins.getattr``: only ``getattr(HistoryBuffer, <statistic>)`` (how mmengine pickles
    the buffer's statistics methods). The real ``getattr`` would reach ``__globals__`` and from there ``os``."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and name in {"min", "max", "mean", "current"}:
        return _StatisticRef(name)
    raise _Refused(f"getattr({obj!r:.80}, {name!r:.80}); only HistoryBuffer statistics are allowed")


def safe_checkpoint_globals() -> list[Any]:
    """The allow-list added to torch's defaults: mmengine's ``HistoryBuffer`` and checked stand-ins.

    Entries are ``(stand-in, "module.qualname")`` pairs, so the name a pickle asks for resolves to our
    checked function; the placeholder classes are listed so torch lets their ``__setstate__`` run (BUILD
    is only allowed on instances of allow-listed types). No numpy class or function itself is listed.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed: list[Any] = [HistoryBuffer, (_checked_getattr, "builtins.getattr"), (_empty_bytes, "builtins.bytes")]
    for core in ("numpy._core", "numpy.core"):  # numpy 2 / numpy 1 spellings of the same functions
        allowed += [
            (_checked_reconstruct, f"{core}.multiarray._reconstruct"),
            (_checked_scalar, f"{core}.multiarray.scalar"),
        ]
    allowed += [
        (_checked_dtype, "numpy.dtype"),
        (_NDArrayToken, "numpy.ndarray"),
        # reachable only as the results of the stand-ins above; their constructors take no state
        (_DTypeSpec, f"{__name__}._DTypeSpec"),
        (_ArraySpec, f"{__name__}._ArraySpec"),
        (_StatisticRef, f"{__name__}._StatisticRef"),
    ]
    return allowed


def _install_allow_list() -> None:
    """Register :func:`safe_checkpoint_globals` with torch, replacing entries an older cpvt_mm added."""
    from torch import _weights_only_unpickler as wou

    ours = safe_checkpoint_globals()
    names = {e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}" for e in ours}
    stale = [
        e
        for e in wou._marked_safe_globals_set
        if (e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}") in names
        or (not isinstance(e, tuple) and getattr(e, "__module__", "").startswith("numpy"))
    ]
    if stale:
        torch.serialization.clear_safe_globals()
        keep = [e for e in wou._marked_safe_globals_set if e not in stale]
        torch.serialization.add_safe_globals(keep)
    torch.serialization.add_safe_globals(ours)


# --------------------------------------------------------------------------- resolving placeholders
_PLACEHOLDERS = (_ArraySpec, _DTypeSpec, _StatisticRef)
_HISTORY_FIELDS = {"max_length", "_log_history", "_count_history", "_statistics_methods"}


def _resolve(obj: Any, memo: dict[int, Any]) -> Any:
    """Swap placeholders for real values in a freshly unpickled object graph (shared objects once)."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _PLACEHOLDERS):
        out = obj.resolve()
    elif isinstance(obj, torch.Tensor | str | bytes | int | float | bool | complex) or obj is None:
        return obj
    elif isinstance(obj, dict):
        memo[key] = obj
        items = [(_resolve(k, memo), _resolve(v, memo)) for k, v in obj.items()]
        obj.clear()
        obj.update(items)
        return obj
    elif isinstance(obj, list):
        memo[key] = obj
        obj[:] = [_resolve(v, memo) for v in obj]
        return obj
    elif isinstance(obj, tuple):
        out = tuple(_resolve(v, memo) for v in obj)
        if type(obj) is not tuple:  # torch.Size and friends hold ints only
            out = obj
    elif isinstance(obj, set | frozenset):
        out = type(obj)(_resolve(v, memo) for v in obj)
    else:
        from mmengine.logging.history_buffer import HistoryBuffer

        if type(obj) is HistoryBuffer:
            memo[key] = obj
            state = {k: _resolve(v, memo) for k, v in vars(obj).items()}
            _check_history_buffer(state)
            obj.__dict__.clear()
            obj.__dict__.update(state)
            return obj
        out = obj
    memo[key] = out
    return out


def _repair_statistics_methods() -> None:
    """``HistoryBuffer.__setstate__`` copies the pickled statistics into the *class-wide* method table, so
    the placeholders land there too; put the real methods back (also after a refused load)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    table = HistoryBuffer._statistics_methods
    for name, method in list(table.items()):
        if isinstance(method, _StatisticRef):
            table[name] = method.resolve()


def _check_history_buffer(state: dict[str, Any]) -> None:
    """A ``HistoryBuffer`` may only hold what mmengine puts there: numeric 1-D arrays and a length."""
    if not set(state) <= _HISTORY_FIELDS:
        raise _Refused(f"HistoryBuffer with unexpected attributes {sorted(set(state) - _HISTORY_FIELDS)}")
    for name in ("_log_history", "_count_history"):
        value = state.get(name)
        if not (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in _NUMERIC_KINDS):
            raise _Refused(f"HistoryBuffer.{name} is {type(value).__name__}, not a numeric 1-D array")
    if type(state.get("max_length")) is not int:
        raise _Refused("HistoryBuffer.max_length is not an int")
    methods = state.get("_statistics_methods", {})
    if not (isinstance(methods, dict) and all(callable(m) and not isinstance(m, type) for m in methods.values())):
        raise _Refused("HistoryBuffer statistics that are not HistoryBuffer methods")


# --------------------------------------------------------------------------- digest
def _tensors(obj: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a checkpoint, with its path, in a stable order (the pickled order of the dicts)."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{path}/{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{path}/{i}")


def tensor_digest(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """SHA-256 over the names, dtypes, shapes and bytes of every tensor outside ``meta``."""
    h = hashlib.sha256()
    count = 0
    for name, t in _tensors({k: v for k, v in checkpoint.items() if k != "meta"}):
        t = t.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        data = t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{data.nbytes}\n".encode())
        h.update(data.tobytes())
        count += 1
    return dict(algorithm="sha256", tensors=count, hexdigest=h.hexdigest())


def add_digest(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Store :func:`tensor_digest` in ``checkpoint['meta']`` (in place; returns the checkpoint)."""
    meta = checkpoint.setdefault("meta", {})
    if isinstance(meta, dict):
        meta[DIGEST_KEY] = tensor_digest(checkpoint)
    return checkpoint


def verify_digest(checkpoint: Any, filename: str) -> None:
    """Raise :class:`ChecksumMismatchError` if a digest-carrying checkpoint no longer matches it."""
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    expected = meta.get(DIGEST_KEY) if isinstance(meta, dict) else None
    if expected is None:
        return  # a foreign checkpoint: nothing to check against
    actual = tensor_digest(checkpoint)
    if not isinstance(expected, dict) or expected.get("hexdigest") != actual["hexdigest"]:
        raise ChecksumMismatchError(
            f"checkpoint {filename} is corrupted: its tensors no longer match the SHA-256 digest stored when "
            f"it was written ({actual['tensors']} tensors checked); restore it from a copy or an older checkpoint"
        )


# --------------------------------------------------------------------------- loading
_ZIP_MAGIC = b"PK\x03\x04"
_REFUSAL_MARKERS = (
    "Unsupported global",
    "Trying to call reduce",
    "Can only build",
    "Can only create new object",
    "is blocked",
)


def _describe_damage(f: IO[bytes], filename: str) -> str | None:
    """Why ``f`` cannot be a torch checkpoint, from its bytes alone (``None``: it may be one)."""
    head = f.read(4)
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    if size == 0:
        return "the file is empty (0 bytes)"
    if head == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
            return f"it is a truncated or damaged zip archive ({size} bytes; {e})"
        finally:
            f.seek(0)
        if bad is not None:
            return f"record {bad!r} inside the zip archive fails its CRC check (the file was modified or damaged)"
        return None
    if head[:1] == b"\x80":  # torch's legacy (pre-1.6) format is a sequence of pickles
        return None
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) == len(head)
    kind = "a text file" if printable else "unrecognised binary data"
    return f"it is not a PyTorch checkpoint ({kind}, {size} bytes: neither a torch zip archive nor a legacy pickle)"


def _unsafe(filename: str, reason: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"Refusing to load checkpoint {filename}: it asks for objects outside cpvt_mm's allow-list of checkpoint "
        f"contents ({reason}); nothing in it was run. Only tensors, containers, numeric numpy values and "
        "mmengine's HistoryBuffer are allowed; convert foreign checkpoints to a plain state dict first"
    )


def _reason(error: BaseException) -> str:
    """The unpickler's own reason, without torch's advice around it (which must never reach users).

    torch re-raises the weights-only unpickler's error with that advice added (``from None``, so the
    original stays in ``__context__``); the original message is used, cut before its own hints.
    """
    inner = error.__context__ if isinstance(error.__context__, pickle.UnpicklingError) else error
    text = str(inner).replace(torch.serialization.UNSAFE_MESSAGE, " ")
    text = text.split("WeightsUnpickler error:", 1)[-1].replace("Weights only load failed.", " ")
    for cut in ("Please use `torch.serialization", "Check the documentation", "Please file an issue"):
        text = text.split(cut, 1)[0]
    sentences = [p for p in text.split(". ") if "weights_only" not in p and "add_safe_globals" not in p]
    return " ".join(". ".join(sentences).split()).rstrip(" .") or "unpickling failed"


def load_checkpoint_file(source: str | os.PathLike | IO[bytes], map_location: Any = None) -> Any:
    """Load a checkpoint (a path or a seekable binary file object) without running or trusting its contents.

    Raises :class:`UnsafeCheckpointError` for disallowed contents, :class:`CorruptCheckpointError` (or its
    :class:`ChecksumMismatchError`) for damaged files, ``FileNotFoundError`` for a missing path.
    """
    if isinstance(source, str | os.PathLike):
        filename = os.fspath(source)
        with open(filename, "rb") as f:
            return _load(f, filename, map_location)
    return _load(source, getattr(source, "name", "<in-memory checkpoint>"), map_location)


def _load(f: IO[bytes], filename: str, map_location: Any) -> Any:
    damage = _describe_damage(f, filename)
    if damage is not None:
        raise CorruptCheckpointError(f"cannot load checkpoint {filename}: {damage}")
    try:
        try:
            obj = torch.load(f, map_location=map_location, weights_only=True)  # explicit: env vars can't flip it
            obj = _resolve(obj, {})
        finally:
            _repair_statistics_methods()
    except _Refused as e:
        raise _unsafe(filename, str(e)) from None
    except pickle.UnpicklingError as e:
        reason = _reason(e)
        if any(m in reason for m in _REFUSAL_MARKERS) or isinstance(e.__context__, _Refused):
            raise _unsafe(filename, reason) from None
        raise CorruptCheckpointError(
            f"cannot load checkpoint {filename}: its contents are damaged ({reason})"
        ) from None
    except (EOFError, RuntimeError, ValueError, TypeError, AttributeError, IndexError, KeyError, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno is not None:
            raise  # a real I/O error (permissions, disk), not the file's fault
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise CorruptCheckpointError(
            f"cannot load checkpoint {filename}: it is truncated or damaged ({type(e).__name__}: {reason})"
        ) from None
    verify_digest(obj, filename)
    return obj


# --------------------------------------------------------------------------- every scheme mmengine knows
def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``''`` scheme: a path on this machine."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename} not found")
    return load_checkpoint_file(filename, map_location)


def _hub_cache_path(url: str, model_dir: str | None = None) -> str:
    """Where torch hub keeps ``url`` (``$TORCH_HOME/hub/checkpoints/<name>``), the cache mmengine also uses."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), "checkpoints")
    return osp.join(model_dir, osp.basename(urlparse(url).path))


def _download(url: str, cached: str, progress: bool) -> None:
    if osp.exists(cached):
        return
    os.makedirs(osp.dirname(cached), exist_ok=True)
    sys.stderr.write(f"Downloading: {url!r} to {cached}\n")
    torch.hub.download_url_to_file(url, cached, progress=progress)  # writes a temp file, then renames


def load_from_http(
    filename: str, map_location: Any = None, model_dir: str | None = None, progress: bool = False
) -> Any:
    """``http(s)://``: download once into torch hub's cache (rank 0 first), then load it like a local file."""
    from mmengine.dist import get_dist_info

    cached = _hub_cache_path(filename, model_dir)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(filename, cached, progress)
    if world_size > 1:
        torch.distributed.barrier()
        _download(filename, cached, progress)  # ranks on other machines
    return load_checkpoint_file(cached, map_location)


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): torchvision's model URL table."""
    from mmengine.runner.checkpoint import get_torchvision_models

    name = filename.split("://", 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f"{filename}: torchvision has no model named {name!r}")
    return load_from_http(urls[name], map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's model table (URLs or files in its home)."""
    from mmengine.runner.checkpoint import _get_mmengine_home, get_deprecated_model_names, get_external_models

    name = filename.split("://", 1)[1]
    name = get_deprecated_model_names().get(name, name)
    urls = get_external_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no OpenMMLab model named {name!r}")
    url = urls[name]
    if url.startswith(("http://", "https://")):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(_get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: mmengine's mmcls model table, with mmcls's key renaming."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models

    name = filename.split("://", 1)[1]
    urls = get_mmcls_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no mmcls model named {name!r}")
    return _process_mmcls_checkpoint(load_from_http(urls[name], map_location))


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://``: download from pavi's model cloud into a temporary folder, then load safely."""
    try:
        from pavi import modelcloud
    except ImportError as e:
        raise ImportError("Please install pavi to load checkpoint from modelcloud.") from e
    model = modelcloud.get(filename[len("pavi://") :])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, model.name)
        model.download(path)
        return load_checkpoint_file(path, map_location)


def load_from_object_storage(filename: str, map_location: Any = None, backend: str = "petrel") -> Any:
    """``s3://`` / ``petrel://``: fetch the bytes with mmengine's file backend, then load them safely."""
    from mmengine.fileio import get_file_backend

    data = get_file_backend(filename, backend_args={"backend": backend}).get(filename)
    with io.BytesIO(data) as buffer:
        buffer.name = filename  # named in error messages
        return load_checkpoint_file(buffer, map_location)


# mmengine 0.10.7's schemes (runner/checkpoint.py) -> the safe loader for each. The loaders are named
# ``load_from_<backend>`` as mmengine's are: ``CheckpointLoader.load_checkpoint`` logs
# ``Loads checkpoint by {loader.__name__[10:]} backend``, so ``_load_local`` was logged as "by l backend".
SAFE_LOADERS: dict[str, Any] = {
    "": load_from_local,
    "http://": load_from_http,
    "https://": load_from_http,
    "pavi://": load_from_pavi,
    r"(\S+\:)?s3://": load_from_object_storage,
    r"(\S+\:)?petrel://": load_from_object_storage,
    "modelzoo://": load_from_torchvision,
    "torchvision://": load_from_torchvision,
    "open-mmlab://": load_from_openmmlab,
    "openmmlab://": load_from_openmmlab,
    "mmcls://": load_from_mmcls,
}


def _refuse_unknown_scheme(prefix: str) -> Any:
    def load(filename: str, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint {filename}: its scheme {prefix!r} has no weights-only loader in "
            "cpvt_mm (mmengine's own loader for it would unpickle with weights_only=False)"
        )

    load.__name__ = "load_from_refused"  # mmengine logs the name minus its first 10 characters
    return load


# --------------------------------------------------------------------------- which checkpoint to resume from
def _step(path: str) -> int:
    m = _CHECKPOINT_NAME.match(osp.basename(path))
    return int(m.group(1)) if m else -1


def find_resume_checkpoint(work_dir: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """The checkpoint to resume from: the newest one in ``work_dir`` that loads, or ``None`` if none does.

    Candidates are the file ``last_checkpoint`` names and every ``epoch_N.pth`` / ``iter_N.pth`` in the
    work dir (and ``extra_dirs``, e.g. the checkpoint hook's ``out_dir``), newest step first; a
    ``last_checkpoint`` that names another kind of file (a URL, a custom name) is tried first. Each is
    loaded with the safe loader (which also checks digests), so a truncated, damaged or missing file is
    skipped with a warning; when the choice differs from ``last_checkpoint`` the log says why.
    """
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import CheckpointLoader

    named: str | None = None
    pointer = osp.join(work_dir, "last_checkpoint")
    if osp.exists(pointer):
        try:
            with open(pointer) as f:
                named = f.read().strip() or None
        except (OSError, UnicodeDecodeError):
            named = None
        if named is None:
            print_log(f"{pointer} is empty or unreadable; looking for checkpoints instead", level=logging.WARNING)
    dirs = [work_dir, *extra_dirs]
    if named and "://" not in named:
        dirs.append(osp.dirname(named) or work_dir)
    found: dict[str, float] = {}
    for d in dict.fromkeys(dirs):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if _CHECKPOINT_NAME.match(n):
                p = osp.join(d, n)
                with contextlib.suppress(OSError):
                    found[p] = os.stat(p).st_mtime
    candidates = sorted(found, key=lambda p: (_step(p), found[p]), reverse=True)
    if named is not None and (_step(named) < 0 or named not in found):
        candidates.insert(0, named)
    reasons: list[str] = []
    for path in candidates:
        try:
            CheckpointLoader.load_checkpoint(path, map_location="cpu")
        except (CheckpointError, FileNotFoundError, KeyError, OSError) as e:
            reasons.append(f"{path}: {e}")
            print_log(f"cannot resume from {path}: {e}", level=logging.WARNING)
            continue
        if named is not None and path != named:
            print_log(
                f"Resuming from {path}, the newest loadable checkpoint; last_checkpoint names {named}, "
                + ("which is not loadable" if any(r.startswith(f"{named}:") for r in reasons) else "an older one"),
                level=logging.WARNING,
            )
        return path
    if candidates:
        print_log(f"no loadable checkpoint in {work_dir}; training starts from scratch", level=logging.WARNING)
    return None
