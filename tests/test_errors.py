"""Bad input: every rejected call raises ValueError / RuntimeError / TypeError whose message
names the offending argument (so a vague message fails the test)."""

import math

import pytest
import torch
from helpers import HAS_CUDA

import frcnn_fast

ERRORS = (ValueError, RuntimeError, TypeError)
f32 = torch.float32


def boxes(n=3, cols=4, dtype=f32, device="cpu"):
    t = torch.arange(n * cols, dtype=torch.float64).reshape(n, cols)
    t[:, 2:] += 10
    return t.to(dtype=dtype, device=device)


ok = boxes()
FMAP = torch.randn(2, 3, 8, 8)
ROIS = torch.tensor([[1.0, 0.0, 0.0, 4.0, 4.0]])
W = (1.0, 1.0, 1.0, 1.0)
sc = torch.tensor([0.3, 0.2, 0.1])
gi = torch.tensor([0, 1, 0])

CASES = [
    # --- box_iou
    ("box_iou boxes1 [N,3]", lambda: frcnn_fast.box_iou(boxes(cols=3), ok), "boxes1"),
    ("box_iou boxes2 [N,3]", lambda: frcnn_fast.box_iou(ok, boxes(cols=3)), "boxes2"),
    # batch dims, integer and mixed dtypes are accepted as torchvision does
    # (test_torchvision_conformance.py)
    ("box_iou boxes1 1-D", lambda: frcnn_fast.box_iou(ok[0], ok), "boxes1"),
    ("box_iou fmt", lambda: frcnn_fast.box_iou(ok, ok, fmt="xxyy"), "fmt"),
    (
        "box_iou batch dims",
        lambda: frcnn_fast.box_iou(ok[None].expand(3, -1, -1), ok[None].expand(2, -1, -1)),
        "boxes1",
    ),
    ("box_iou list", lambda: frcnn_fast.box_iou([[0.0, 0.0, 1.0, 1.0]], ok), "boxes1"),
    # --- box_iou_aligned
    (
        "aligned shape mismatch",
        lambda: frcnn_fast.box_iou_aligned(boxes(3), boxes(4)),
        r"boxes[12]",
    ),
    (
        "aligned [N,5]",
        lambda: frcnn_fast.box_iou_aligned(boxes(cols=5), boxes(cols=5)),
        r"boxes[12]",
    ),
    ("aligned dtype mismatch", lambda: frcnn_fast.box_iou_aligned(ok.half(), ok), r"boxes[12]"),
    # --- box_area
    ("box_area [N,3]", lambda: frcnn_fast.box_area(boxes(cols=3)), "boxes"),
    ("box_area list", lambda: frcnn_fast.box_area([[0.0, 0.0, 1.0, 1.0]]), "boxes"),
    # --- box_convert
    ("convert unknown in_fmt", lambda: frcnn_fast.box_convert(ok, "xyzw", "xyxy"), "in_fmt"),
    ("convert unknown out_fmt", lambda: frcnn_fast.box_convert(ok, "xyxy", "XYWH"), "out_fmt"),
    ("convert [N,5]", lambda: frcnn_fast.box_convert(boxes(cols=5), "xyxy", "xywh"), "boxes"),
    # --- clip_boxes
    ("clip [N,3]", lambda: frcnn_fast.clip_boxes(boxes(cols=3), (10, 10)), "boxes"),
    ("clip size of 3", lambda: frcnn_fast.clip_boxes(ok, (10, 10, 3)), "size"),
    # --- remove_small_boxes
    ("remove_small [N,3]", lambda: frcnn_fast.remove_small_boxes(boxes(cols=3), 1.0), "boxes"),
    ("remove_small 3-D", lambda: frcnn_fast.remove_small_boxes(ok[None], 1.0), "boxes"),
    # --- encode_boxes
    ("encode weights len 3", lambda: frcnn_fast.encode_boxes(ok, ok, (1.0, 1.0, 1.0)), "weights"),
    ("encode weights len 5", lambda: frcnn_fast.encode_boxes(ok, ok, (1.0,) * 5), "weights"),
    (
        "encode shape mismatch",
        lambda: frcnn_fast.encode_boxes(boxes(3), boxes(4), W),
        "reference_boxes|target_boxes",
    ),
    (
        "encode dtype mismatch",
        lambda: frcnn_fast.encode_boxes(ok, ok.double(), W),
        "reference_boxes|target_boxes",
    ),
    (
        "encode reference int",
        lambda: frcnn_fast.encode_boxes(ok.long(), ok.long(), W),
        "reference_boxes",
    ),
    ("encode target [N,3]", lambda: frcnn_fast.encode_boxes(ok, boxes(cols=3), W), "target_boxes"),
    ("encode target list", lambda: frcnn_fast.encode_boxes(ok, ok.tolist(), W), "gt_boxes"),
    # --- decode_boxes
    ("decode deltas [N,5]", lambda: frcnn_fast.decode_boxes(boxes(cols=5), ok, W), "deltas"),
    ("decode deltas 1-D", lambda: frcnn_fast.decode_boxes(torch.zeros(12), ok, W), "deltas"),
    (
        "decode N mismatch",
        lambda: frcnn_fast.decode_boxes(boxes(4), boxes(3), W),
        "deltas|reference_boxes",
    ),
    (
        "decode reference [N,3]",
        lambda: frcnn_fast.decode_boxes(ok, boxes(cols=3), W),
        "reference_boxes",
    ),
    ("decode reference 3-D", lambda: frcnn_fast.decode_boxes(ok, ok[None], W), "reference_boxes"),
    ("decode weights len 2", lambda: frcnn_fast.decode_boxes(ok, ok, (1.0, 1.0)), "weights"),
    (
        "decode dtype mismatch",
        lambda: frcnn_fast.decode_boxes(ok.double(), ok, W),
        "deltas|reference_boxes",
    ),
    ("decode deltas int", lambda: frcnn_fast.decode_boxes(ok.long(), ok, W), "deltas"),
    # --- anchors
    (
        "anchors negative feature_size",
        lambda: frcnn_fast.generate_anchors((-1, 5), 16),
        "feature_size",
    ),
    (
        "anchors feature_size of 3",
        lambda: frcnn_fast.generate_anchors((2, 2, 2), 16),
        "feature_size",
    ),
    ("anchors zero stride", lambda: frcnn_fast.generate_anchors((2, 2), 0), "stride"),
    ("anchors negative stride", lambda: frcnn_fast.generate_anchors((2, 2), (16, -8)), "stride"),
    (
        "anchors negative size",
        lambda: frcnn_fast.generate_anchors((2, 2), 16, sizes=(32, -64)),
        "sizes",
    ),
    (
        "anchors zero ratio",
        lambda: frcnn_fast.generate_anchors((2, 2), 16, aspect_ratios=(0.0, 1.0)),
        "aspect_ratios",
    ),
    ("base_anchors negative size", lambda: frcnn_fast.base_anchors((-32,), (1.0,)), "sizes"),
    (
        "base_anchors negative ratio",
        lambda: frcnn_fast.base_anchors((32,), (-1.0,)),
        "aspect_ratios",
    ),
    (
        "multilevel level count mismatch",
        lambda: frcnn_fast.generate_anchors_multilevel(
            [(2, 2), (1, 1)], [8], [(32,), (64,)], (1.0,)
        ),
        "strides",
    ),
    ("anchors_inside [N,3]", lambda: frcnn_fast.anchors_inside(boxes(cols=3), (10, 10)), "anchors"),
    ("anchors_inside int", lambda: frcnn_fast.anchors_inside(ok.long(), (10, 10)), "anchors"),
    (
        "anchors bool feature_size",
        lambda: frcnn_fast.generate_anchors((True, 5), 16),
        "feature_size",
    ),
    (
        "anchors infinite size",
        lambda: frcnn_fast.generate_anchors((2, 2), 16, sizes=(math.inf,)),
        "sizes",
    ),
    ("anchors scalar sizes", lambda: frcnn_fast.base_anchors(128), "sizes"),
    # height * width * A wraps around int64 (2**64 + 1 cells): must be refused, not segfault
    (
        "anchors size overflow",
        lambda: frcnn_fast.generate_anchors((274177, 67280421310721), 16),
        "height",
    ),
    (
        "anchors size overflow to 0",
        lambda: frcnn_fast.generate_anchors((2**40, 2**40), 16),
        "height",
    ),
    (
        "anchor generator map larger than image",
        lambda: frcnn_fast.AnchorGenerator(((32,),), ((1.0,),))(
            torch.zeros(1, 3, 8, 8), [torch.zeros(1, 4, 16, 16)]
        ),
        "feature_maps",
    ),
    (
        "anchor generator 3-D images",
        lambda: frcnn_fast.AnchorGenerator(((32,),), ((1.0,),))(
            torch.zeros(3, 8, 8), [torch.zeros(1, 4, 4, 4)]
        ),
        "images",
    ),
    # --- nms family
    ("nms boxes [N,3]", lambda: frcnn_fast.nms(boxes(cols=3), sc, 0.5), "boxes"),
    ("nms boxes int", lambda: frcnn_fast.nms(ok.long(), sc, 0.5), "boxes"),
    ("nms scores int", lambda: frcnn_fast.nms(ok, sc.long(), 0.5), "scores"),
    ("nms scores length", lambda: frcnn_fast.nms(ok, sc[:2], 0.5), "scores"),
    ("nms scores 2-D", lambda: frcnn_fast.nms(ok, sc[None], 0.5), "scores"),
    ("nms threshold > 1", lambda: frcnn_fast.nms(ok, sc, 1.5), "iou_threshold"),
    ("nms threshold < 0", lambda: frcnn_fast.nms(ok, sc, -0.1), "iou_threshold"),
    ("nms threshold NaN", lambda: frcnn_fast.nms(ok, sc, math.nan), "iou_threshold"),
    ("nms threshold str", lambda: frcnn_fast.nms(ok, sc, "0.5"), "iou_threshold"),
    ("nms scores list", lambda: frcnn_fast.nms(ok, [0.1, 0.2, 0.3], 0.5), "scores"),
    ("batched idxs float", lambda: frcnn_fast.batched_nms(ok, sc, sc, 0.5), "idxs"),
    ("batched idxs bool", lambda: frcnn_fast.batched_nms(ok, sc, sc > 0, 0.5), "idxs"),
    ("batched idxs length", lambda: frcnn_fast.batched_nms(ok, sc, gi[:2], 0.5), "idxs"),
    ("batched scores length", lambda: frcnn_fast.batched_nms(ok, sc[:1], gi, 0.5), "scores"),
    ("batched threshold", lambda: frcnn_fast.batched_nms(ok, sc, gi, 2.0), "iou_threshold"),
    ("padded max_output < 0", lambda: frcnn_fast.nms_padded(ok, sc, 0.5, -1), "max_output"),
    ("padded max_output float", lambda: frcnn_fast.nms_padded(ok, sc, 0.5, 2.5), "max_output"),
    (
        "padded score_threshold NaN",
        lambda: frcnn_fast.nms_padded(ok, sc, 0.5, 4, math.nan),
        "score_threshold",
    ),
    (
        "padded score_threshold str",
        lambda: frcnn_fast.nms_padded(ok, sc, 0.5, 4, "x"),
        "score_threshold",
    ),
    (
        "batched padded max_output",
        lambda: frcnn_fast.batched_nms_padded(ok, sc, gi, 0.5, -3),
        "max_output",
    ),
    ("batched padded idxs", lambda: frcnn_fast.batched_nms_padded(ok, sc, sc, 0.5, 3), "idxs"),
    ("op nms scores", lambda: torch.ops.frcnn_fast.nms(ok, sc[:1], 0.5), "scores"),
    ("op nms threshold", lambda: torch.ops.frcnn_fast.nms(ok, sc, -1.0), "iou_threshold"),
    (
        "op nms_padded max_output",
        lambda: torch.ops.frcnn_fast.nms_padded(ok, sc, 0.5, -1),
        "max_output",
    ),
    ("op batched idxs float", lambda: torch.ops.frcnn_fast.batched_nms(ok, sc, sc, 0.5), "idxs"),
    # --- the raw ops check their inputs in C++ as well (TORCH_CHECK)
    ("op box_iou [N,3]", lambda: torch.ops.frcnn_fast.box_iou(boxes(cols=3), ok), "boxes1"),
    ("op box_iou int", lambda: torch.ops.frcnn_fast.box_iou(ok, ok.long()), "boxes2"),
    (
        "op box_iou dtype mismatch",
        lambda: torch.ops.frcnn_fast.box_iou(ok, ok.double()),
        r"boxes[12]",
    ),
    ("op box_convert fmt", lambda: torch.ops.frcnn_fast.box_convert(ok, "xyxy", "ltrb"), "out_fmt"),
    ("op encode weights", lambda: torch.ops.frcnn_fast.encode_boxes(ok, ok, [1.0, 1.0]), "weights"),
    (
        "op decode deltas",
        lambda: torch.ops.frcnn_fast.decode_boxes(boxes(cols=6), ok, list(W), math.log(62.5)),
        "deltas",
    ),
    (
        "op remove_small int",
        lambda: torch.ops.frcnn_fast.remove_small_boxes(ok.long(), 1.0),
        "boxes",
    ),
    (
        "op grid_anchors base [A,3]",
        lambda: torch.ops.frcnn_fast.grid_anchors(boxes(cols=3), 2, 2, 16.0, 16.0, 0.5),
        "base_anchors",
    ),
    (
        "op grid_anchors negative height",
        lambda: torch.ops.frcnn_fast.grid_anchors(ok, -2, 2, 16.0, 16.0, 0.5),
        "height",
    ),
    (
        "op grid_anchors size overflow",
        lambda: torch.ops.frcnn_fast.grid_anchors(
            torch.zeros(1, 4), 274177, 67280421310721, 1.0, 1.0, 0.0
        ),
        "height",
    ),
    # --- roi_pool / roi_align / MultiScaleRoIAlign
    *[
        (f"{name} {what}", (lambda fn=fn, args=args: fn(*args)), pattern)
        for name, fn in (("roi_pool", frcnn_fast.roi_pool), ("roi_align", frcnn_fast.roi_align))
        for what, args, pattern in (
            ("boxes [K,4]", (FMAP, boxes(cols=4), 2), "boxes"),
            ("boxes 1-D", (FMAP, torch.zeros(5), 2), "boxes"),
            ("boxes list of [K,5]", (FMAP, [boxes(cols=5)], 2), r"boxes\[0\]"),
            ("boxes list dtype mismatch", (FMAP, [boxes(), boxes().double()], 2), r"boxes\[1\]"),
            ("boxes empty list", (FMAP, [], 2), "boxes"),
            ("boxes not a tensor", (FMAP, ((0, 1, 1, 2, 2),), 2), "boxes"),
            ("batch index negative", (FMAP, torch.tensor([[-1.0, 0, 0, 4, 4]]), 2), "batch index"),
            ("batch index too large", (FMAP, torch.tensor([[2.0, 0, 0, 4, 4]]), 2), "batch index"),
            ("batch index huge", (FMAP, torch.tensor([[1e20, 0, 0, 4, 4]]), 2), "batch index"),
            ("batch index fractional", (FMAP, torch.tensor([[0.5, 0, 0, 4, 4]]), 2), "batch index"),
            ("batch index nan", (FMAP, torch.tensor([[math.nan, 0, 0, 4, 4]]), 2), "batch index"),
            ("list longer than batch", (FMAP, [boxes()] * 3, 2), "list of 3 per-image box tensors"),
            ("input 3-D", (FMAP[0], ROIS, 2), "input"),
            ("input int", (FMAP.long(), ROIS, 2), "input"),
            ("output_size 0", (FMAP, ROIS, 0), "output_size"),
            ("output_size negative", (FMAP, ROIS, (2, -1)), "output_size"),
            ("output_size of 3", (FMAP, ROIS, (2, 2, 2)), "output_size"),
            ("spatial_scale 0", (FMAP, ROIS, 2, 0.0), "spatial_scale"),
            ("spatial_scale negative", (FMAP, ROIS, 2, -0.5), "spatial_scale"),
            ("spatial_scale inf", (FMAP, ROIS, 2, math.inf), "spatial_scale"),
            ("spatial_scale nan", (FMAP, ROIS, 2, math.nan), "spatial_scale"),
        )
    ],
    (
        "roi_align sampling_ratio float",
        lambda: frcnn_fast.roi_align(FMAP, ROIS, 2, 1.0, 1.5),
        "sampling_ratio",
    ),
    (
        "op roi_align batch index",
        lambda: torch.ops.frcnn_fast.roi_align(
            FMAP, torch.tensor([[7.0, 0, 0, 4, 4]]), 1.0, 2, 2, -1, False, False
        ),
        "batch index",
    ),
    (
        "op roi_align output_size",
        lambda: torch.ops.frcnn_fast.roi_align(FMAP, ROIS, 1.0, 0, 2, -1, False, False),
        "output_size",
    ),
    (
        "op roi_align spatial_scale",
        lambda: torch.ops.frcnn_fast.roi_align(FMAP, ROIS, math.nan, 2, 2, -1, False, False),
        "spatial_scale",
    ),
    (
        "op roi_pool boxes [K,4]",
        lambda: torch.ops.frcnn_fast.roi_pool(FMAP, boxes(), 1.0, 2, 2, False),
        "boxes",
    ),
    (
        "op roi_pool_backward bad argmax",
        lambda: torch.ops.frcnn_fast._roi_pool_backward(
            torch.ones(1, 3, 1, 1), ROIS, torch.full((1, 3, 1, 1), 10**6), 2, 3, 8, 8, False, False
        ),
        "argmax",
    ),
    (
        "op roi_align_backward batch index",
        lambda: torch.ops.frcnn_fast._roi_align_backward(
            torch.ones(1, 3, 2, 2),
            torch.tensor([[5.0, 0, 0, 4, 4]]),
            1.0,
            2,
            2,
            2,
            3,
            8,
            8,
            -1,
            False,
            False,
            False,
        ),
        "batch index",
    ),
    (
        "op multilevel level out of range",
        lambda: torch.ops.frcnn_fast.multilevel_roi_align(
            [FMAP, FMAP[:, :, :4, :4]], ROIS, torch.tensor([2]), [1.0, 0.5], 2, 2, -1, False, False
        ),
        "levels",
    ),
    (
        "op multilevel levels int32",
        lambda: torch.ops.frcnn_fast.multilevel_roi_align(
            [FMAP], ROIS, torch.tensor([0], dtype=torch.int32), [1.0], 2, 2, -1, False, False
        ),
        "levels",
    ),
    (
        "op multilevel scales count",
        lambda: torch.ops.frcnn_fast.multilevel_roi_align(
            [FMAP, FMAP], ROIS, torch.tensor([0]), [1.0], 2, 2, -1, False, False
        ),
        "spatial_scales",
    ),
    (
        "op multilevel channel mismatch",
        lambda: torch.ops.frcnn_fast.multilevel_roi_align(
            [FMAP, FMAP[:, :2]], ROIS, torch.tensor([0]), [1.0, 1.0], 2, 2, -1, False, False
        ),
        "inputs",
    ),
    (
        "multiscale missing featmap",
        lambda: frcnn_fast.MultiScaleRoIAlign(["p9"], 2, 2)({"p2": FMAP}, [boxes()], [(32, 32)]),
        "featmap_names",
    ),
    (
        "multiscale boxes tensor",
        lambda: frcnn_fast.MultiScaleRoIAlign(["p2"], 2, 2)({"p2": FMAP}, ROIS, [(32, 32)]),
        "boxes",
    ),
]


@pytest.mark.parametrize("call,pattern", [pytest.param(c, p, id=i) for i, c, p in CASES])
def test_bad_input_is_rejected_with_named_argument(call, pattern):
    with pytest.raises(ERRORS, match=pattern):
        call()


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
def test_device_mismatch_is_rejected():
    gpu = ok.cuda()
    with pytest.raises(ERRORS, match=r"boxes[12]"):
        frcnn_fast.box_iou(ok, gpu)
    with pytest.raises(ERRORS, match=r"boxes[12]"):
        frcnn_fast.box_iou_aligned(gpu, ok)
    with pytest.raises(ERRORS, match="reference_boxes|target_boxes"):
        frcnn_fast.encode_boxes(gpu, ok)
    with pytest.raises(ERRORS, match="deltas|reference_boxes"):
        frcnn_fast.decode_boxes(ok, gpu)
    with pytest.raises(ERRORS, match=r"boxes[12]"):
        torch.ops.frcnn_fast.box_iou(gpu, ok)
    with pytest.raises(ERRORS, match="boxes|scores"):
        frcnn_fast.nms(gpu, sc, 0.5)
    with pytest.raises(ERRORS, match="idxs"):
        frcnn_fast.batched_nms(gpu, sc.cuda(), gi, 0.5)
