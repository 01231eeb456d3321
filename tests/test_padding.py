"""Padding invariance: an image's features must not depend on its batch-mates or on the padding.

Every check compares an image run through a padded batch (next to a larger image, padded to a divisor) with the
same image run alone and unpadded (the plain forward, which is what classification at a fixed size uses).
Weights are perturbed away from their init (zero biases, unit LayerNorms) so that "zero in, zero out" cannot
hide a leak.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import build_model
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy import TINY_CPVT, TINY_PCPVT
from toy_configs import FPN, UPER, load, tiny

import cpvt_mm
from cpvt_mm.models import CPVT, PCPVT, SVT, SimpleFeaturePyramid, attach, lookup
from cpvt_mm.models.padding import Grid

TINY_SVT7 = dict(TINY_PCPVT, window_sizes=[7, 7, 7, 7])  # the paper's 7x7 windows, so windows get padded
# (h, w) of the image under test: a multiple of the total stride 32; neither a multiple of 32 nor of 7; and
# one whose stage-0 grid (28 x 14 tokens) is a whole number of 7x7 windows while 112 is no multiple of 32.
SIZES = [(64, 96), (61, 77), (112, 56)]
BIG = (150, 141)  # the batch-mate, larger than every image above
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


class BackboneAndNeck(torch.nn.Module):
    """Plain CPVT with its simple feature pyramid: the pair must be padding-aware together."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = CPVT(TINY_CPVT, patch_size=8, out_type="featmap")
        self.neck = SimpleFeaturePyramid(TINY_CPVT["embed_dims"], 16, num_outs=5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.neck(self.backbone(x))


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = {
        "pcpvt": lambda: PCPVT(TINY_PCPVT),
        "svt": lambda: SVT(TINY_SVT7),
        "cpvt+sfp": BackboneAndNeck,
    }[name]()
    return perturb_(model).eval()


def preprocessor(divisor: int, aware: bool = True) -> torch.nn.Module:
    """mmdet's preprocessor as the detection configs build it (the padding-aware one unless ``aware=False``)."""
    kind = "cpvt_mm.PaddingAwareDetDataPreprocessor" if aware else "mmdet.DetDataPreprocessor"
    return cpvt_mm.MODELS.build(dict(type=kind, mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=divisor))


def images(*sizes: tuple[int, int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]


def det_batch(prep: torch.nn.Module, imgs: list[torch.Tensor], training: bool = False) -> torch.Tensor:
    from mmdet.structures import DetDataSample

    samples = [DetDataSample(metainfo=dict(img_shape=tuple(i.shape[-2:]))) for i in imgs]
    return prep(dict(inputs=list(imgs), data_samples=samples), training)["inputs"]


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def region_diffs(batched: tuple[torch.Tensor, ...], alone: tuple[torch.Tensor, ...], i: int = 0) -> list[float]:
    """Relative difference of image ``i``'s maps inside its own region, one per output level."""
    return [rel_diff(b[i, :, : a.shape[-2], : a.shape[-1]], a[0]) for b, a in zip(batched, alone, strict=True)]


# --------------------------------------------------------------------------- inference through mmdet's batching
@pytest.mark.parametrize("divisor", [1, 32])
@pytest.mark.parametrize("name", ["pcpvt", "svt", "cpvt+sfp"])
def test_features_ignore_batch_mates_and_padding(name, divisor):
    model = make_model(name)
    prep = preprocessor(divisor)
    big = images(BIG, seed=1)[0]
    with torch.no_grad():
        big_alone = model(det_batch(preprocessor(1), [big]))
        for size in SIZES:
            (img,) = images(size)
            alone = model(det_batch(preprocessor(1), [img]))  # unpadded: the plain forward
            alone_padded = model(det_batch(prep, [img]))  # padded to the divisor only
            batched = model(det_batch(prep, [img, big]))
            assert max(region_diffs(batched, alone)) <= 1e-5, (size, region_diffs(batched, alone))
            assert max(region_diffs(alone_padded, alone)) <= 1e-5, (size, region_diffs(alone_padded, alone))
            assert max(region_diffs(batched, big_alone, i=1)) <= 1e-5  # the batch-mate is unaffected too
            for a, b in zip(alone, batched):  # padded positions come out zero
                assert b[0, :, a.shape[-2] :].abs().max() == 0 and b[0, :, :, a.shape[-1] :].abs().max() == 0


@pytest.mark.parametrize("name", ["pcpvt", "svt", "cpvt+sfp"])
def test_without_the_mode_padding_leaks_into_every_level(name):
    """What the configs did before: the same comparison with mmdet's own preprocessor fails by far."""
    model = make_model(name)
    img, big = images((61, 77)), images(BIG, seed=1)
    with torch.no_grad():
        alone = model(det_batch(preprocessor(1), img))
        batched = model(det_batch(preprocessor(32, aware=False), img + big))
    assert min(region_diffs(batched, alone)[1:]) > 1e-2


# --------------------------------------------------------------------------- training on mixed-size batches
@pytest.mark.parametrize("name", ["pcpvt", "svt", "cpvt+sfp"])
def test_training_forward_and_gradients_ignore_padding(name):
    """Train mode (dropout / drop-path are 0 here): features match, and a loss on one image's features gives
    the same parameter gradients whether that image is alone or padded into a batch with a larger one."""
    model = make_model(name).train()
    prep = preprocessor(32)
    img, big = images((61, 77)), images(BIG, seed=1)
    g = torch.Generator().manual_seed(2)

    def loss_and_grads(inputs: torch.Tensor, weights: list[torch.Tensor] | None = None):
        model.zero_grad()
        outs = model(inputs)
        alone_shapes = [o.shape[-2:] for o in outs] if weights is None else [w.shape[-2:] for w in weights]
        if weights is None:
            weights = [torch.randn(o[0].shape, generator=g) for o in outs]
        loss = sum((o[0, :, : s[0], : s[1]] * w).sum() for o, s, w in zip(outs, alone_shapes, weights))
        loss.backward()
        return outs, weights, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    alone, weights, grads_alone = loss_and_grads(det_batch(preprocessor(1), img, training=True))
    batched, _, grads_batched = loss_and_grads(det_batch(prep, img + big, training=True), weights)
    assert max(region_diffs(batched, alone)) <= 1e-5
    assert grads_alone.keys() == grads_batched.keys() and len(grads_alone) == len(list(model.parameters()))
    worst = max(rel_diff(grads_batched[n], grads_alone[n]) for n in grads_alone)
    assert worst <= 1e-4, worst


# --------------------------------------------------------------------------- segmentation
@pytest.mark.parametrize("name", [FPN.format("pcpvt", "s"), UPER.format("svt", "s")])
def test_segmentor_training_batch_of_two_sizes(name):
    """mmseg pads training images smaller than the crop up to it; each image's backbone features (and the
    decode head's logits inside the image) are those of the image alone."""
    from mmseg.structures import SegDataSample

    model = perturb_(build_model(tiny(load(name)))).train()
    small, other = images((40, 52), (64, 61), seed=3)

    def run(imgs):
        samples = [SegDataSample(metainfo=dict(img_shape=tuple(i.shape[-2:]))) for i in imgs]
        inputs = model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=True)["inputs"]
        assert inputs.shape[-2:] == (64, 64)  # padded to the crop size
        return model.backbone(inputs)

    with torch.no_grad():
        batched = run([small, other])
        x = model.data_preprocessor.cast_data(small.float())[[2, 1, 0]]  # bgr -> rgb as configured
        x = ((x - model.data_preprocessor.mean) / model.data_preprocessor.std)[None]
        alone = model.backbone(x)  # unpadded, plain forward
    assert max(region_diffs(batched, alone)) <= 1e-5


@pytest.mark.parametrize("size", [(61, 77), (250, 170)])
def test_whole_image_segmentation_is_pixel_aligned_at_any_size(size):
    """Whole-image logits equal an explicit reference: the image zero-padded to a multiple of 32, logits
    upsampled to that size, then cropped. Resizing stride-ceil'd logits straight onto a side that is not a
    multiple of 32 (what the configs did before) shifts them by up to a few pixels, which this catches."""
    from mmseg.structures import SegDataSample

    cfg = tiny(load(FPN.format("pcpvt", "s")))
    model = perturb_(build_model(cfg)).eval()
    h, w = size
    (img,) = images(size, seed=4)
    with torch.no_grad():
        (pred,) = model.test_step(
            dict(inputs=[img], data_samples=[SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))])
        )
        x = ((img.float()[[2, 1, 0]] - model.data_preprocessor.mean) / model.data_preprocessor.std)[None]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        padded = attach(F.pad(x, (0, pw - w, 0, ph - h)), [[h, w]])
        logits = model.decode_head.forward(model.extract_feat(padded))
        reference = F.interpolate(logits, size=(ph, pw), mode="bilinear", align_corners=False)[0, :, :h, :w]
        old_way = F.interpolate(model.decode_head.forward(model.extract_feat(x)), size=size, mode="bilinear")[0]
    torch.testing.assert_close(pred.seg_logits.data, reference, rtol=1e-4, atol=1e-4)
    assert (old_way - reference).abs().max() > 1e-2


# --------------------------------------------------------------------------- configs and the plain path
def test_every_dense_config_batches_padding_aware():
    import glob

    from helpers import ROOT

    for path in glob.glob(str(ROOT / "configs/detection/**/*.py"), recursive=True):
        if "_base_" in path:
            continue
        model = Config.fromfile(path).model
        assert model.data_preprocessor.type == "cpvt_mm.PaddingAwareDetDataPreprocessor", path
        head = model.rpn_head if "rpn_head" in model else model.bbox_head
        assert head.type in ("cpvt_mm.PaddingAwareRPNHead", "cpvt_mm.PaddingAwareRetinaHead"), path
    for path in glob.glob(str(ROOT / "configs/segmentation/**/*.py"), recursive=True):
        if "_base_" in path:
            continue
        prep = Config.fromfile(path).model.data_preprocessor
        assert prep.type == "cpvt_mm.PaddingAwareSegDataPreProcessor" and prep.test_cfg.size_divisor == 32


@pytest.mark.parametrize("cls", [PCPVT, SVT])
def test_unpadded_batches_take_the_plain_path_bit_for_bit(cls):
    """Nothing padded: sizes equal to the input change nothing (classification parity stays exact)."""
    model = perturb_(cls(TINY_SVT7 if cls is SVT else TINY_PCPVT)).eval()
    x = torch.randn(2, 3, 61, 77)
    plain = model(x)
    full = model(x, valid_sizes=torch.tensor([[61, 77], [61, 77]]))
    for a, b in zip(plain, full):
        assert torch.equal(a, b)


def test_valid_sizes_are_a_field_of_the_batch_and_the_unpadded_grid_is_a_no_op():
    x = attach(torch.zeros(2, 3, 8, 8), [[4, 8], [8, 8]])
    assert x.valid_sizes.tolist() == lookup(x).tolist() == [[4, 8], [8, 8]]
    # a tensor derived from the batch is another batch: it gets the plain forward
    assert lookup(x[:, :, :4]) is None and lookup(x.clone()) is None and lookup(x + 0) is None
    assert lookup(copy.deepcopy(x)).tolist() == [[4, 8], [8, 8]]  # a copy of the same batch
    assert attach(torch.zeros(1, 3, 8, 8), None).__dict__ == {}
    grid = Grid.of_batch(x, [[8, 8], [8, 8]])  # nothing padded: every masking method returns its input
    tokens, fmap = torch.randn(2, 64, 4), torch.randn(2, 4, 8, 8)
    assert not grid.padded and grid.key_mask() is None and grid.window_key_mask(4, tokens) is None
    assert grid.zero_tokens(tokens) is tokens and grid.zero_map(fmap) is fmap and grid.fill(fmap, 1.0) is fmap
    assert Grid.of_batch(x, lookup(x)).padded and Grid.of_batch(x, lookup(x)).key_mask().shape == (2, 1, 1, 64)
    with pytest.raises(ValueError, match="one \\(h, w\\) per image"):
        attach(torch.zeros(2, 3, 8, 8), [[4, 8]])
    with pytest.raises(ValueError, match="within the \\(8, 8\\) map"):
        attach(torch.zeros(1, 3, 8, 8), [[9, 8]])
    with pytest.raises(ValueError, match="valid_sizes"):
        PCPVT(TINY_PCPVT)(torch.zeros(1, 3, 32, 32), valid_sizes=torch.tensor([[0, 32]]))


def test_detector_uses_the_mode_through_its_config():
    """An unmodified mmdet detector built from a shipped config hands the sizes to the backbone."""
    from test_detection import tiny_config

    cfg = tiny_config("mask-rcnn_pcpvt-s_fpn_1x_coco.py", "unused")
    det = perturb_(build_model(cfg)).eval()
    img, big = images((61, 77)), images(BIG, seed=1)
    with torch.no_grad():
        alone = det.backbone(det_batch(det.data_preprocessor, img))
        batched = det.backbone(det_batch(det.data_preprocessor, img + big))
    assert max(region_diffs(batched, alone)) <= 1e-5


@pytest.mark.slow
def test_trained_detector_predicts_the_same_alone_and_batched(mask_rcnn_run):
    """End to end through mmdet's Mask R-CNN built from the shipped config (padding-aware preprocessor and RPN
    head) and trained on the toy set: each validation image alone and padded into a batch with a larger one
    gives the same boxes, scores, labels and masks. (With mmdet's own RPNHead, anchors in the batch padding
    took proposal slots: 9 detections above 0.05 alone, 6 batched, on the first image.)"""
    from mmdet.apis import init_detector
    from mmdet.registry import DATASETS
    from mmdet.structures import DetDataSample

    cfg_path, checkpoint = mask_rcnn_run
    det = init_detector(str(cfg_path), str(checkpoint), device="cpu")
    with DefaultScope.overwrite_default_scope("mmdet"):
        dataset = DATASETS.build(det.cfg.test_dataloader.dataset)
    (big,) = images((200, 230), seed=5)
    big_sample = DetDataSample(metainfo=dict(img_shape=(200, 230), ori_shape=(200, 230), scale_factor=(1.0, 1.0)))
    compared = 0
    for i in range(len(dataset)):
        item = dataset[i]
        with torch.no_grad():
            (alone,) = det.test_step(dict(inputs=[item["inputs"]], data_samples=[item["data_samples"]]))
            batched, _ = det.test_step(
                dict(inputs=[item["inputs"], big], data_samples=[item["data_samples"], big_sample])
            )
        a, b = alone.pred_instances, batched.pred_instances
        a, b = a[a.scores > 0.05], b[b.scores > 0.05]
        assert len(a) == len(b) > 0
        torch.testing.assert_close(b.scores, a.scores, rtol=0, atol=1e-5)
        torch.testing.assert_close(b.bboxes, a.bboxes, rtol=0, atol=1e-3)
        assert torch.equal(b.labels, a.labels) and torch.equal(b.masks, a.masks)
        compared += len(a)
    assert compared >= len(dataset)


@pytest.mark.parametrize("kind", ["RetinaHead", "RPNHead"])
def test_dense_heads_predict_over_each_images_own_grid(kind):
    """Head outputs that agree inside the image but hold high scores in the batch padding: the padding-aware
    head predicts exactly what it predicts for the image alone; mmdet's own head picks boxes from the padding."""
    from test_detection import tiny_config

    name = "retinanet_pcpvt-s_fpn_1x_coco.py" if kind == "RetinaHead" else "mask-rcnn_pcpvt-s_fpn_1x_coco.py"
    model = tiny_config(name, "unused").model
    head_cfg = model.bbox_head if kind == "RetinaHead" else model.rpn_head
    test_cfg = model.test_cfg if kind == "RetinaHead" else model.test_cfg.rpn
    if kind == "RPNHead":
        head_cfg = dict(head_cfg, train_cfg=None, test_cfg=test_cfg)
    else:
        head_cfg = dict(head_cfg, test_cfg=test_cfg)
    with DefaultScope.overwrite_default_scope("mmdet"):
        aware = cpvt_mm.MODELS.build(head_cfg)
        plain = cpvt_mm.MODELS.build(dict(head_cfg, type=f"mmdet.{kind}"))
    strides = [s[0] for s in aware.prior_generator.strides]
    (h, w), (H, W) = (61, 77), (160, 160)
    g = torch.Generator().manual_seed(0)
    alone_maps, batch_maps = [], []
    for per_loc in (aware.num_base_priors * aware.cls_out_channels, aware.num_base_priors * 4):
        alone, batch = [], []
        for s in strides:
            a = torch.randn(1, per_loc, -(-h // s), -(-w // s), generator=g)
            b = torch.full((2, per_loc, -(-H // s), -(-W // s)), 8.0)  # confident nonsense in the padding
            b[0, :, : a.shape[-2], : a.shape[-1]] = a[0]
            alone.append(a)
            batch.append(b)
        alone_maps.append(alone)
        batch_maps.append(batch)
    metas = [dict(img_shape=(h, w), scale_factor=(1.0, 1.0)), dict(img_shape=(H, W), scale_factor=(1.0, 1.0))]
    with torch.no_grad():
        (ref,) = aware.predict_by_feat(*alone_maps, batch_img_metas=metas[:1])
        got = aware.predict_by_feat(*batch_maps, batch_img_metas=metas)[0]
        leaked = plain.predict_by_feat(*batch_maps, batch_img_metas=metas)[0]
    torch.testing.assert_close(got.bboxes, ref.bboxes)
    torch.testing.assert_close(got.scores, ref.scores)
    assert leaked.scores.max() > ref.scores.max()  # the host's head takes the padding's scores
