"""Position probe (the paper's RQ: does a PEG give the tokens usable *absolute* position?).

A linear read-out is fitted, in closed form (ridge regression on one-hot targets), from each patch token's
features after block 0 (and after the PEG that follows it, if any) to the token's row and to its column; it
is scored on tokens of other images. Chance is ``1 / H`` per coordinate and ``1 / (H * W)`` for the exact
``(row, col)``. A model without any position encoding still scores above chance, because content alone
hints at position (Fashion-MNIST's borders are mostly background): that model is the baseline the others
must beat. Scores are reported for all tokens, for the border ring and for the interior separately, since the
paper credits the PEG's zero padding at the border as the source of absolute position.

The suite calls :func:`probe_checkpoint`; by hand (with ``projects/cpvt_experiments`` on ``PYTHONPATH``):

    python -m cpvt_experiments.position_probe CONFIG CHECKPOINT --out probe.json [--cfg-options ...]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cpvt_mm.analysis.attention_maps import config_test_side, load_model
from cpvt_mm.apis.config import load_config
from cpvt_mm.datasets.fashion_mnist import idx_image_count, read_idx_images
from cpvt_mm.fileio import atomic_write_text

__all__ = ["fit_probe", "probe_checkpoint", "probe_model", "token_features"]


def token_features(model: nn.Module, x: Tensor, after_block: int = 0) -> tuple[Tensor, tuple[int, int]]:
    """``(B, N, C)`` patch tokens of a plain CPVT after block ``after_block`` (and its PEG), and the grid."""
    backbone = getattr(model, "backbone", model)
    saved = backbone.out_indices, backbone.out_type
    backbone.out_indices, backbone.out_type = (after_block,), "raw"
    try:
        with torch.no_grad():
            (tokens,) = backbone(x)
    finally:
        backbone.out_indices, backbone.out_type = saved
    hw = (x.shape[-2] // backbone.patch_size, x.shape[-1] // backbone.patch_size)
    return tokens[:, backbone.num_prefix_tokens :], hw


def _ridge(x: Tensor, y: Tensor, alpha: float) -> Tensor:
    """Weights ``W`` (with a bias row) minimising ``|[x 1] W - y|^2 + alpha |W|^2``."""
    x1 = torch.cat((x, x.new_ones(x.shape[0], 1)), dim=1)
    gram = x1.T @ x1 + alpha * torch.eye(x1.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, x1.T @ y)


def fit_probe(train: Tensor, test: Tensor, hw: tuple[int, int], alpha: float = 1e-2) -> dict[str, float]:
    """Fit on ``train`` tokens ``(B1, N, C)``, score on ``test`` tokens ``(B2, N, C)``; accuracies in percent."""
    H, W = hw
    rows = torch.arange(H).repeat_interleave(W)  # token n sits at (n // W, n % W)
    cols = torch.arange(W).repeat(H)

    def flat(t: Tensor) -> Tensor:
        t = t.double()
        mean, std = train.double().mean((0, 1)), train.double().std((0, 1)).clamp_min(1e-6)
        return ((t - mean) / std).reshape(-1, t.shape[-1])  # (B, N, C) -> (B*N, C)

    xs, xt = flat(train), flat(test)
    targets = torch.cat((nn.functional.one_hot(rows, H), nn.functional.one_hot(cols, W)), dim=1).double()
    weights = _ridge(xs, targets.repeat(train.shape[0], 1), alpha * xs.shape[0])
    scores = torch.cat((xt, xt.new_ones(xt.shape[0], 1)), dim=1) @ weights
    pred_r = scores[:, :H].argmax(1).reshape(test.shape[0], -1)
    pred_c = scores[:, H:].argmax(1).reshape(test.shape[0], -1)
    ok_r, ok_c = pred_r == rows, pred_c == cols
    exact = ok_r & ok_c
    border = (rows == 0) | (rows == H - 1) | (cols == 0) | (cols == W - 1)
    pct = lambda t: round(100.0 * t.double().mean().item(), 2)  # noqa: E731
    return {
        "row": pct(ok_r),
        "col": pct(ok_c),
        "exact": pct(exact),
        "exact_border": pct(exact[:, border]),
        "exact_interior": pct(exact[:, ~border]) if bool((~border).any()) else float("nan"),
        "chance_exact": round(100.0 / (H * W), 2),
    }


def probe_model(model: nn.Module, train_images: Tensor, test_images: Tensor) -> dict[str, Any]:
    """Probe ``model`` (a classifier or its backbone) on raw ``(B, C, H, W)`` uint8 images of both splits."""
    prep = model.data_preprocessor

    def feats(images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = prep(dict(inputs=list(images)), False)["inputs"]
        return token_features(model, x)

    train, hw = feats(train_images)
    test, _ = feats(test_images)
    return {"grid": list(hw), **fit_probe(train, test, hw)}


def probe_checkpoint(
    config: str,
    checkpoint: str,
    out: str,
    cfg_options: Mapping[str, Any] | None = None,
    train_images: int = 2000,
    test_images: int = 1000,
) -> dict[str, Any]:
    """Probe a Fashion-MNIST checkpoint on the config's data at its test size; writes ``out`` (JSON)."""
    cfg = load_config(config, cfg_options)
    model = load_model(cfg, checkpoint)
    size = config_test_side(cfg)
    if size is None:
        raise ValueError(f"{config}: the test pipeline has no Resize / CenterCrop step giving the test size")
    root = cfg.test_dataloader.dataset.data_root
    # as many images as asked for, or all there are (a small dataset, the suite's --quick runs)
    counts = {s: min(n, idx_image_count(root, s)) for s, n in (("train", train_images), ("test", test_images))}
    train = read_idx_images(root, "train", counts["train"], size)
    test = read_idx_images(root, "test", counts["test"], size)
    result = {**probe_model(model, train, test), "images": counts}
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Linear position probe of a Fashion-MNIST CPVT checkpoint")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="JSON file for the scores")
    p.add_argument("--train-images", type=int, default=2000, help="training images the read-out is fitted on")
    p.add_argument("--test-images", type=int, default=1000, help="test images it is scored on")
    p.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = p.parse_args(argv)
    return probe_checkpoint(
        args.config, args.checkpoint, args.out, args.cfg_options, args.train_images, args.test_images
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(main()))
