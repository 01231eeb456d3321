"""ONNX export with dynamic batch, height and width in one file, and a check against PyTorch in ONNX Runtime.

Why one file serves every size: the models contain no Python branch on a size once the size is symbolic
(:func:`cpvt_mm.models.utils.is_symbolic`): the bottom / right ``ceil`` padding of every patch embedding and
GSA sub-sampling conv is always applied (by a possibly zero amount), the LSA key-padding mask is always built
from comparisons against the runtime size, and the PEG's zero padding is the conv's own. The graph therefore
computes, at every input size, what the eager model computes at that size.

Limits (``docs/deployment.md``): the plain forward only (the padding-aware ``valid_sizes`` path is eager-only);
opset >= 18 (the dynamo exporter's minimum; GELU is exported exactly, through ``Erf``); sides >= the first
patch size; inputs are normalised images (the data preprocessor is not part of the graph).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["OnnxCheck", "check_onnx", "export_onnx"]

DEFAULT_OPSET = 18
# An example size that is a multiple of nothing the model divides by (4, 7, 8, 16, 32): the tracer then
# sees the general case, never a special one it might bake in.
EXAMPLE_SIZE = (2, 97, 131)


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    *,
    in_channels: int = 3,
    opset: int = DEFAULT_OPSET,
    input_name: str = "images",
    output_names: Sequence[str] | None = None,
) -> Path:
    """Export ``model`` (``forward(images) -> tensor or tuple of tensors``) with dynamic batch, height, width.

    The file is written atomically (a crash leaves no half-written model at ``out``). Returns the path.
    """
    model = model.eval()
    b, h, w = EXAMPLE_SIZE
    example = torch.randn(b, in_channels, h, w)
    dyn = torch.export.Dim.DYNAMIC
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with torch.no_grad():
        n_out = len(_as_tuple(model(example)))
        names = list(output_names) if output_names is not None else [f"out{i}" for i in range(n_out)]
        if len(names) != n_out:
            raise ValueError(f"output_names has {len(names)} names for a model with {n_out} outputs")
        program = torch.onnx.export(
            model,
            (example,),
            dynamic_shapes=({0: dyn, 2: dyn, 3: dyn},),
            input_names=[input_name],
            output_names=names,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    try:
        program.save(str(tmp))
        _name_input_dims(tmp, ("batch", "channels", "height", "width"))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _name_input_dims(path: Path, names: Sequence[str]) -> None:
    """Readable dynamic-axis names (the exporter writes its internal symbols: ``s77``, ``((s53 + ...)//4)``)."""
    import re

    import onnx

    proto = onnx.load(str(path))
    rename = {}
    for dim, name in zip(proto.graph.input[0].type.tensor_type.shape.dim, names):
        if dim.HasField("dim_param"):
            rename[dim.dim_param] = name
    if rename:
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
        for value in [*proto.graph.input, *proto.graph.output]:
            for dim in value.type.tensor_type.shape.dim:
                if dim.HasField("dim_param"):
                    dim.dim_param = pattern.sub(lambda m: rename[m.group(1)], dim.dim_param)
    onnx.save(proto, str(path))


def _as_tuple(out: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (out,) if isinstance(out, Tensor) else tuple(out)


@dataclass
class OnnxCheck:
    """One comparison of the exported file with the PyTorch model at one input shape."""

    shape: tuple[int, int, int, int]
    max_abs_diff: float
    output_shapes: list[tuple[int, ...]]


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    shapes: Iterable[Sequence[int]],
    *,
    threads: int | None = None,
    seed: int = 0,
) -> list[OnnxCheck]:
    """Run the exported file in ONNX Runtime (CPU) and the model in PyTorch on the same random inputs.

    Raises ValueError when an output's shape differs (a size baked in at export would show up here first).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(seed)
    results = []
    model = model.eval()
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = _as_tuple(model(x))
        got = session.run(None, {input_name: x.numpy()})
        if [tuple(g.shape) for g in got] != [tuple(e.shape) for e in expected]:
            raise ValueError(
                f"at input {tuple(shape)} ONNX Runtime gave shapes {[g.shape for g in got]}, PyTorch "
                f"{[tuple(e.shape) for e in expected]}"
            )
        diff = max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))
        results.append(OnnxCheck(tuple(shape), diff, [tuple(g.shape) for g in got]))
    return results
