"""Our functions under torchvision's names behave as torchvision 0.28's: arguments, dtypes,
shapes, quantized inputs, TorchScript, torch.fx, and the errors it raises. The deliberate
differences (README, "Use it in your detector") are tested as differences."""

import warnings
from typing import List

import pytest
import torch
import torch.fx
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import frcnn_fast
from frcnn_fast import patch_torchvision

tv = torchvision.ops

FLOAT_BOXES = [
    [285.3538, 185.5758, 1193.5110, 851.4551],
    [285.1472, 188.7374, 1192.4984, 851.0669],
    [279.2440, 197.9812, 1189.4746, 849.2019],
]


def rand_boxes(n, seed=0, scale=100.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * scale
    wh = 1 + torch.rand(n, 2, generator=g) * scale / 2
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def same(ours, theirs, **tol):
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, **tol)


# --- box_iou / box_area / box_convert -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_and_area_every_axis_aligned_format(fmt):
    a = tv.box_convert(rand_boxes(7, 1), "xyxy", fmt)
    b = tv.box_convert(rand_boxes(5, 2), "xyxy", fmt)
    same(frcnn_fast.box_iou(a, b, fmt=fmt), tv.box_iou(a, b, fmt=fmt), rtol=1e-5, atol=1e-6)
    same(frcnn_fast.box_iou(a, b, fmt), tv.box_iou(a, b, fmt), rtol=1e-5, atol=1e-6)
    same(frcnn_fast.box_area(a, fmt=fmt), tv.box_area(a, fmt=fmt), rtol=1e-5, atol=1e-3)


def rotated(n, seed):
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 50
    wh = 5 + torch.rand(n, 2, generator=g) * 20
    r = torch.rand(n, 1, generator=g) * 90
    return torch.cat([c, wh, r], dim=1)


@pytest.mark.parametrize("fmt", ["cxcywhr", "xywhr", "xyxyxyxy"])
def test_rotated_formats_delegate_to_torchvision(fmt):
    a = tv.box_convert(rotated(6, 1), "cxcywhr", fmt)
    b = tv.box_convert(rotated(4, 2), "cxcywhr", fmt)
    same(frcnn_fast.box_iou(a, b, fmt=fmt), tv.box_iou(a, b, fmt=fmt))
    for out_fmt in ["cxcywhr", "xywhr", "xyxyxyxy"]:
        same(frcnn_fast.box_convert(a, fmt, out_fmt), tv.box_convert(a, fmt, out_fmt))
    with patch_torchvision():  # also while torchvision's box_iou is ours
        same(tv.box_iou(a, b, fmt=fmt), frcnn_fast.box_iou(a, b, fmt=fmt))


@pytest.mark.parametrize("fn", ["box_iou", "box_area", "box_convert"])
def test_unknown_format_is_a_value_error(fn):
    b = rand_boxes(3)
    call = {
        "box_iou": lambda m: m.box_iou(b, b, fmt="xxyy"),
        "box_area": lambda m: m.box_area(b, fmt="xxyy"),
        "box_convert": lambda m: m.box_convert(b, "xxyy", "xyxy"),
    }[fn]
    with pytest.raises(ValueError):
        call(tv)
    with pytest.raises(ValueError, match="xxyy"):
        call(frcnn_fast)


def test_box_iou_leading_batch_dimensions_broadcast():
    a = rand_boxes(2 * 3 * 5, 1).reshape(2, 3, 5, 4)
    b = rand_boxes(3 * 4, 2).reshape(3, 4, 4)
    same(frcnn_fast.box_iou(a, b), tv.box_iou(a, b), rtol=1e-5, atol=1e-6)
    same(frcnn_fast.box_area(a), tv.box_area(a), rtol=1e-5, atol=1e-3)
    e = a[:0]
    same(frcnn_fast.box_iou(e, b), tv.box_iou(e, b))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_integer_boxes_promoted_as_torchvision(dtype):
    a = torch.tensor([[0, 0, 100, 100], [0, 0, 50, 50], [20, 20, 30, 30], [0, 0, 25, 25]])
    b = a[:3]
    a, b = a.to(dtype), b.to(dtype)
    same(frcnn_fast.box_area(a), tv.box_area(a))
    if dtype != torch.int8:  # torchvision's int8 IoU overflows in its own arithmetic
        same(frcnn_fast.box_iou(a, b), tv.box_iou(a, b))
    same(frcnn_fast.box_convert(a, "xyxy", "xywh"), tv.box_convert(a, "xyxy", "xywh"))
    same(frcnn_fast.clip_boxes(a, (40, 40)), tv.clip_boxes_to_image(a, (40, 40)))
    same(frcnn_fast.remove_small_boxes(a, 20), tv.remove_small_boxes(a, 20))


def test_float16_and_mixed_float_dtypes():
    h = torch.tensor(FLOAT_BOXES, dtype=torch.float16)
    same(frcnn_fast.box_iou(h, h), tv.box_iou(h, h), atol=2e-3, rtol=0)
    same(frcnn_fast.box_area(h), tv.box_area(h), atol=1e-2, rtol=1e-3)
    a, b = rand_boxes(4, 1), rand_boxes(5, 2, dtype=torch.float64)
    same(frcnn_fast.box_iou(a, b), tv.box_iou(a, b))
    same(frcnn_fast.box_iou(b, a), tv.box_iou(b, a))


def test_deliberate_difference_iou_zero_for_empty_union():
    z = torch.zeros(1, 4)
    assert torch.isnan(tv.box_iou(z, z)).all()
    assert (frcnn_fast.box_iou(z, z) == 0).all()


# --- nms / batched_nms -------------------------------------------------------------------------


def test_batched_nms_empty_with_none_arguments():
    empty = torch.empty((0,), dtype=torch.int64)
    same(frcnn_fast.batched_nms(empty, None, None, None), tv.batched_nms(empty, None, None, None))
    e4 = torch.empty((0, 4))
    same(frcnn_fast.batched_nms(e4, None, None, None), tv.batched_nms(e4, None, None, None))


def test_tensor_iou_threshold():
    b, s = rand_boxes(200, 3), torch.rand(200, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(0.3)
    same(frcnn_fast.nms(b, s, t), tv.nms(b, s, t))
    i = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(5))
    same(frcnn_fast.batched_nms(b, s, i, t), tv.batched_nms(b, s, i, t))


@pytest.mark.parametrize("scale, zero_point", [(1, 0), (2, 50), (3, 10)])
@pytest.mark.parametrize("iou", [0.2, 0.5, 0.8])
def test_quantized_nms_gives_torchvisions_qnms(scale, zero_point, iou):
    b = rand_boxes(500, 6)
    s = torch.rand(500, generator=torch.Generator().manual_seed(7)) * 100
    qb = torch.quantize_per_tensor(b, scale=scale, zero_point=zero_point, dtype=torch.quint8)
    qs = torch.quantize_per_tensor(s, scale=scale, zero_point=zero_point, dtype=torch.quint8)
    ours = frcnn_fast.nms(qb, qs, iou)
    # torchvision's qnms ranks equal quantized scores in its own order; compare kept sets
    # through the float NMS of the dequantized values, which ranks ties stably like ours.
    same(ours, frcnn_fast.nms(qb.dequantize(), qs.dequantize(), iou))
    theirs = tv.nms(qb, qs, iou)
    assert set(ours.tolist()) == set(theirs.tolist()) or torch.equal(
        qs.dequantize()[ours], qs.dequantize()[theirs]
    )


def test_nms_mixed_devices_refused():
    b = rand_boxes(4)
    with pytest.raises(ValueError, match="same device"):
        frcnn_fast.nms(b, torch.rand(4, device="meta"), 0.5)
    with pytest.raises(ValueError, match="same device"):
        frcnn_fast.box_iou(b, b.to("meta"))


# --- RoI ops ------------------------------------------------------------------------------------


def rois(n=12, img=10, imgs=1, seed=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, img // 2, (n, 5), generator=g).to(dtype)
    r[:, 0] = torch.randint(0, imgs, (n,), generator=g)
    r[:, 3:] += r[:, 1:3]
    return r


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("scale, zero_point", [(1, 0), (2, 10), (0.1, 50)])
@pytest.mark.parametrize("qdtype", [torch.qint8, torch.quint8, torch.qint32])
def test_quantized_roi_align(aligned, scale, zero_point, qdtype):
    x = torch.randint(50, 100, (1, 2, 10, 10)).float()
    qx = torch.quantize_per_tensor(x, scale=scale, zero_point=zero_point, dtype=qdtype)
    qr = torch.quantize_per_tensor(rois(), scale=scale, zero_point=zero_point, dtype=qdtype)
    ours = frcnn_fast.roi_align(qx, qr, 5, 1.0, -1, aligned)
    theirs = tv.roi_align(qx, qr, 5, 1.0, -1, aligned)
    assert ours.is_quantized and ours.dtype == theirs.dtype
    assert ours.q_scale() == theirs.q_scale() and ours.q_zero_point() == theirs.q_zero_point()
    # torchvision's integer kernel rounds differently in rare cases (its own test allows 5%
    # of the outputs to differ by one step); ours is float RoIAlign, requantized.
    diff = ours.int_repr().long() - theirs.int_repr().long()
    assert diff.abs().max() <= 1 and (diff != 0).float().mean() < 0.05


def test_quantized_roi_align_one_image_only():
    qx = torch.quantize_per_tensor(torch.rand(2, 3, 10, 10), 1, 0, torch.qint8)
    qr = torch.quantize_per_tensor(rois(imgs=2), 1, 0, torch.qint8)
    for m in (tv, frcnn_fast):
        with pytest.raises(RuntimeError, match="Only one image per batch is allowed"):
            m.roi_align(qx, qr, 5)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_box_shape_errors_raise_what_torchvision_raises(op):
    x = torch.rand(1, 1, 8, 8)
    for m in (tv, frcnn_fast):
        with pytest.raises(AssertionError):
            getattr(m, op)(x, torch.tensor([[0.0, 0, 3, 3]]), (2, 2))
        with pytest.raises(AssertionError):
            getattr(m, op)(x, [torch.tensor([[0.0, 0, 3]])], (2, 2))
    with pytest.raises(ValueError, match=r"\[K, 5\]"):
        getattr(frcnn_fast, op)(x, torch.tensor([[0.0, 0, 3, 3]]), (2, 2))


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_more_box_lists_than_images_named(op):
    x = torch.rand(2, 1, 8, 8)
    b = [rand_boxes(2, i, scale=6) for i in range(3)]
    with pytest.raises(ValueError, match="list of 3 per-image box tensors but input holds 2"):
        getattr(frcnn_fast, op)(x, b, (2, 2))


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_mixed_float_dtypes_and_float16(op):
    x = torch.rand(2, 3, 10, 10)
    r = rois(imgs=2, dtype=torch.float64)
    out = getattr(frcnn_fast, op)(x, r, (3, 3))
    assert out.dtype == x.dtype
    same(out, getattr(tv, op)(x, r.float(), (3, 3)), rtol=1e-5, atol=1e-5)
    h = x.half()
    same(
        getattr(frcnn_fast, op)(h, r.half(), (3, 3)),
        getattr(tv, op)(h, r.half(), (3, 3)),
        rtol=4e-3,
        atol=4e-3,
    )


# --- torch.fx and TorchScript ------------------------------------------------------------------


class Wrap(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, boxes):
        return self.layer(x, boxes)


@pytest.mark.parametrize("cls", ["RoIAlign", "RoIPool"])
def test_fx_trace_and_leaf_node(cls):
    args = dict(RoIAlign=((5, 5), 1.0, -1), RoIPool=((5, 5), 1.0))[cls]
    x = torch.rand(2, 4, 5, 5)
    r = rois(imgs=2)
    for layer in (getattr(frcnn_fast, cls)(*args), getattr(tv, cls)(*args)):
        with patch_torchvision():
            gm = torch.fx.symbolic_trace(layer)
            same(gm(x, r), layer(x, r))
            names = get_graph_node_names(Wrap(layer))
            assert len(names[0]) == 3


def test_fx_feature_extractor_of_patched_pooler():
    pool = tv.MultiScaleRoIAlign(["0", "1"], 3, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = pool
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor, boxes: list[torch.Tensor]):
            feats = {"0": self.conv(x), "1": self.conv(x)[..., ::2, ::2]}
            return self.pool(feats, boxes, [(32, 32)])

    x = torch.rand(1, 4, 16, 16)
    b = [rand_boxes(6, 3, scale=20)]
    net = Net()
    with patch_torchvision():
        expected = net(x, b)
        fe = create_feature_extractor(net, return_nodes=["pool"])
        same(fe(x, b)["pool"], expected)


SCRIPTABLE = {
    "box_iou": lambda f: f(rand_boxes(4, 1), rand_boxes(3, 2)),
    "box_area": lambda f: f(rand_boxes(4, 1)),
    "box_convert": lambda f: f(rand_boxes(4, 1), "xyxy", "cxcywh"),
    "nms": lambda f: f(rand_boxes(30, 1), torch.rand(30), 0.5),
    "batched_nms": lambda f: f(rand_boxes(30, 1), torch.rand(30), torch.arange(30) % 3, 0.5),
    "remove_small_boxes": lambda f: f(rand_boxes(30, 1), 20.0),
    "clip_boxes_to_image": lambda f: f(rand_boxes(30, 1), (40, 50)),
    "roi_align": lambda f: f(torch.rand(2, 3, 10, 10), rois(imgs=2), 3),
    "roi_pool": lambda f: f(torch.rand(2, 3, 10, 10), [rand_boxes(3, 1, 8)], [3, 2]),
}


@pytest.mark.parametrize("name", list(SCRIPTABLE))
def test_torchscript_every_function_torchvision_scripts(name):
    ours = getattr(frcnn_fast, name)
    theirs = getattr(tv, name)
    torch.jit.script(theirs)  # torchvision scripts it, so must we
    scripted = torch.jit.script(ours)
    torch.manual_seed(0)
    with frcnn_fast.count_kernels() as counter:
        got = SCRIPTABLE[name](scripted)
    assert counter.counts["frcnn_fast"] > 0
    torch.manual_seed(0)
    torch.testing.assert_close(got, SCRIPTABLE[name](theirs))


class ListWrap(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, boxes: List[torch.Tensor]) -> torch.Tensor:
        return self.layer(x, boxes)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.RoIAlign([3, 3], 1.0, -1),
        lambda m: m.RoIAlign(3, 0.5, 2, True),
        lambda m: m.RoIPool((3, 3), 1.0),
    ],
)
def test_torchscript_modules(make):
    x = torch.rand(2, 1, 10, 10)
    roi = torch.tensor([[0, 0, 0, 9, 9], [0, 0, 5, 4, 9], [0, 5, 5, 9, 9], [1, 0, 0, 9, 9.0]]).t()
    boxes = [roi, roi]
    theirs = make(tv)
    for layer in (make(frcnn_fast), theirs):
        with patch_torchvision():
            scripted = torch.jit.script(ListWrap(layer))
        with frcnn_fast.count_kernels() as counter:
            got = scripted(x, boxes)
        assert counter.counts["frcnn_fast"] > 0 and counter.counts["torchvision"] == 0
        same(got, theirs(x, boxes), rtol=1e-5, atol=1e-6)


# --- porting traps -----------------------------------------------------------------------------


def test_encode_boxes_old_keywords_refused_with_explanation():
    a, g = rand_boxes(5, 1), rand_boxes(5, 2)
    with pytest.raises(TypeError, match="renamed to anchors= and gt_boxes="):
        frcnn_fast.encode_boxes(reference_boxes=a, target_boxes=g)
    with pytest.raises(TypeError, match="renamed"):
        frcnn_fast.encode_boxes(a, target_boxes=g)
    d = frcnn_fast.encode_boxes(anchors=a, gt_boxes=g)
    same(d, frcnn_fast.encode_boxes(a, g))
    # torchvision's BoxCoder names the ground truth reference_boxes: ours equals it with the
    # arguments the other way round
    coder = torchvision.models.detection._utils.BoxCoder((1.0, 1.0, 1.0, 1.0))
    same(d, coder.encode_single(g, a), rtol=1e-5, atol=1e-5)
    with pytest.warns(DeprecationWarning, match="anchors="):
        back = frcnn_fast.decode_boxes(d, reference_boxes=a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same(back, frcnn_fast.decode_boxes(d, anchors=a))


def feats(n=2):
    return {"0": torch.rand(n, 2, 16, 16), "1": torch.rand(n, 2, 8, 8)}


@pytest.mark.parametrize("which", ["ours", "patched torchvision"])
def test_multiscale_roi_align_checks_image_shapes_against_box_lists(which):
    if which == "ours":
        pool, ctx = frcnn_fast.MultiScaleRoIAlign(["0", "1"], 3, 2), patch_torchvision()
    else:
        pool, ctx = tv.MultiScaleRoIAlign(["0", "1"], 3, 2), patch_torchvision()
    b = [rand_boxes(4, i, scale=20) for i in range(3)]
    with ctx:
        with pytest.raises(ValueError, match="3 per-image box tensors but image_shapes holds 2"):
            pool(feats(2), b, [(32, 32), (32, 32)])
        with pytest.raises(ValueError, match="3 per-image box tensors"):
            pool(feats(2), b, [(32, 32)] * 3)
        out = pool(feats(2), b[:2], [(32, 32), (32, 32)])
    assert out.shape == (8, 2, 3, 3)


def test_patched_multiscale_roi_align_equals_torchvision():
    pool = tv.MultiScaleRoIAlign(["0", "1"], (3, 2), 2)
    x = feats(2)
    b = [rand_boxes(7, 1, scale=25), rand_boxes(5, 2, scale=25)]
    shapes = [(32, 32), (30, 28)]
    expected = pool(x, b, shapes)
    with patch_torchvision():
        fresh = tv.MultiScaleRoIAlign(["0", "1"], (3, 2), 2)
        same(fresh(x, b, shapes), expected, rtol=1e-5, atol=1e-6)
        assert fresh.scales == pool.scales
        same(pool(x, b, shapes), expected, rtol=1e-5, atol=1e-6)
        scripted = torch.jit.script(fresh)
        same(scripted(x, b, shapes), expected, rtol=1e-5, atol=1e-6)
