"""match_boxes / match_boxes_batched: the fused matcher equals torchvision's Matcher on box_iou
(exactly, its one documented exception aside), equals the NumPy reference, on CPU and emulated
CUDA; ties, thresholds hit exactly, duplicates, tiny and huge boxes, every dtype; the golden
case; batched == per image; bad input; torch.compile."""

import numpy as np
import pytest
import torch
from helpers import DEVICES, DTYPES, REAL_DEVICES, box_arrays, dtype_id, to_np, to_tensor
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection._utils import Matcher

import frcnn_fast
import frcnn_fast.reference as R

NP_DTYPE = {torch.float32: "float32", torch.float64: "float64"}
NP_DTYPE.update({torch.float16: "float16", torch.bfloat16: "bfloat16"})


# ------------------------------------------------------------------ expectations
def torchvision_match(iou, high, low, allow):
    """torchvision's Matcher on an IoU matrix [G, A], with our one exception: a ground truth
    whose best IoU is 0 rescues nothing. Returns (matches, max_iou) like match_boxes."""
    g, a = iou.shape
    if g == 0:
        return torch.full((a,), -1, dtype=torch.int64), torch.zeros(a, dtype=iou.dtype)
    if a == 0:  # torchvision refuses an empty matrix
        return torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=iou.dtype)
    matches = Matcher(high, low, allow_low_quality_matches=False)(iou)
    max_iou, all_matches = iou.max(dim=0)
    if allow:
        rows = iou[iou.max(dim=1).values > 0]
        if rows.shape[0]:
            Matcher(high, low, True).set_low_quality_matches_(matches, all_matches, rows)
    return matches, max_iou


def check_match(got, want, context=""):
    m, v = got
    wm, wv = want
    assert m.dtype == torch.int64, m.dtype
    mm, wmm = m.cpu().numpy(), np.asarray(wm.cpu() if torch.is_tensor(wm) else wm)
    bad = np.flatnonzero(mm != wmm)
    assert bad.size == 0, (
        f"{bad.size} matches differ, first at {bad[:8].tolist()}: got {mm[bad[:8]]}, "
        f"expected {wmm[bad[:8]]} {context}"
    )
    vv = to_np(v)
    wvv = to_np(wv) if torch.is_tensor(wv) else np.asarray(wv, dtype=np.float64)
    np.testing.assert_array_equal(vv, wvv, err_msg=f"max_iou differs {context}")


def reference(gt, anchors, high, low, allow, dtype):
    return R.match_boxes(to_np(gt), to_np(anchors), high, low, allow, dtype=NP_DTYPE[dtype])


# ------------------------------------------------------------------ scenes
@st.composite
def scenes(draw, max_g=40, max_a=60):
    """(gt [G, 4], anchors [A, 4]) float64 arrays: random, degenerate and duplicate boxes, anchors
    on a grid (many identical IoUs), copies of ground truths among the anchors (IoU 1), tiny and
    huge boxes."""
    lim = draw(st.sampled_from([16, 200, 1000]))
    g = draw(box_arrays(max_n=max_g, lim=lim, grid=draw(st.booleans())))
    kind = draw(st.sampled_from(["random", "grid", "tiny_huge"]))
    if kind == "grid":
        # identical anchor shapes at regularly spaced centres: equal IoUs across anchors
        n = draw(st.integers(1, 6))
        step = lim / n
        side = draw(st.sampled_from([step, step / 2, 2 * step]))
        c = (np.arange(n) + 0.5) * step
        cx, cy = np.meshgrid(c, c)
        cx, cy = cx.ravel(), cy.ravel()
        a = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
        a = np.round(np.concatenate([a, a[: draw(st.integers(0, len(a)))]]) * 8) / 8
    elif kind == "tiny_huge":
        a = draw(box_arrays(max_n=max_a, lim=lim, max_size=1.0))
        huge = np.array([[-1e4, -1e4, 1e4, 1e4], [-lim, -lim, lim, lim], [0, 0, 1e-3, 1e-3]])
        a = np.concatenate([a, huge[: draw(st.integers(0, 3))]])
    else:
        a = draw(box_arrays(max_n=max_a, lim=lim, grid=draw(st.booleans())))
    if len(g) and draw(st.booleans()):  # anchors that are ground truths: IoU exactly 1
        take = draw(st.lists(st.integers(0, len(g) - 1), max_size=3))
        a = np.concatenate([a.reshape(-1, 4), g[take]])
    if len(g) > 1 and draw(st.booleans()):  # duplicate ground truths: ties of the argmax
        take = draw(st.lists(st.integers(0, len(g) - 1), min_size=1, max_size=3))
        g = np.concatenate([g, g[take]])
        g = g[draw(st.permutations(list(range(len(g)))))]
    return g.reshape(-1, 4), a.reshape(-1, 4)


@st.composite
def thresholds(draw, iou):
    """(high, low): round values, arbitrary ones, and values equal to IoUs of the scene, so that
    the comparisons with < hit their boundaries exactly."""
    vals = iou.reshape(-1)
    pool = [st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0)]
    if vals.size:
        pool.append(st.sampled_from(sorted(set(np.clip(vals, 0.0, 1.0).tolist()))))
    a, b = draw(st.one_of(*pool)), draw(st.one_of(*pool))
    return max(a, b), min(a, b)


def iou_matrix(gt, anchors):
    # our box_iou (0 for an empty union) on CPU: the matrix torchvision's Matcher receives
    return torch.ops.frcnn_fast.box_iou.default(gt.cpu(), anchors.cpu())


# ------------------------------------------------------------------ kernel == torchvision == reference
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matches_torchvision_and_reference(device, dtype, data):
    g_np, a_np = data.draw(scenes())
    gt, anchors = to_tensor(g_np, dtype, device), to_tensor(a_np, dtype, device)
    iou = iou_matrix(gt, anchors)
    high, low = data.draw(thresholds(to_np(iou)))
    allow = data.draw(st.booleans())
    got = frcnn_fast.match_boxes(gt, anchors, high, low, allow)
    assert got[0].shape == (len(a_np),) and got[1].dtype == dtype
    assert got[1].device.type == torch.device(device).type
    ctx = f"(high={high!r}, low={low!r}, allow={allow})"
    check_match(got, torchvision_match(iou, high, low, allow), ctx)
    check_match(got, reference(gt, anchors, high, low, allow, dtype), ctx)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_many_ground_truths(device, data):
    """Up to 2,000 ground truths (several of the CUDA kernel's blocks of ground truths) against
    a few anchors; float32."""
    g = data.draw(st.integers(0, 2000))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 400, size=(g, 2))
    gt_np = np.round(np.concatenate([xy, xy + rng.uniform(1, 120, size=(g, 2))], 1) * 8) / 8
    a_np = np.asarray(data.draw(box_arrays(min_n=1, max_n=12, lim=400, grid=True)))
    if g:
        a_np = np.concatenate([a_np, gt_np[rng.integers(0, g, 3)]])
    gt = to_tensor(gt_np, torch.float32, device)
    anchors = to_tensor(a_np, torch.float32, device)
    iou = iou_matrix(gt, anchors)
    high, low = data.draw(thresholds(to_np(iou)))
    got = frcnn_fast.match_boxes(gt, anchors, high, low, True)
    check_match(got, torchvision_match(iou, high, low, True))
    check_match(got, reference(gt, anchors, high, low, True, torch.float32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_many_anchors_and_ground_truths(device, dtype):
    """Several tiles and threads on the CPU, several blocks and grid-stride steps on CUDA."""
    rng = np.random.default_rng(7)
    anchors = frcnn_fast.generate_anchors((12, 20), 16, sizes=(32, 64, 128), dtype=dtype)
    xy = rng.uniform(0, 300, size=(150, 2))
    gt_np = np.round(np.concatenate([xy, xy + rng.uniform(8, 150, size=(150, 2))], 1) * 4) / 4
    gt = to_tensor(gt_np, dtype, device)
    anchors = anchors.to(device)
    iou = iou_matrix(gt, anchors)
    for high, low, allow in [(0.7, 0.3, True), (0.5, 0.5, False), (0.6, 0.0, True)]:
        got = frcnn_fast.match_boxes(gt, anchors, high, low, allow)
        check_match(got, torchvision_match(iou, high, low, allow))
        check_match(got, reference(gt, anchors, high, low, allow, dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_same_as_torchvision_box_iou(dtype):
    """On boxes with a non-empty union torchvision's own box_iou gives the same bits, so the
    Matcher on torchvision.ops.box_iou agrees too (no exception in play: every ground truth
    overlaps some anchor)."""
    import torchvision

    rng = np.random.default_rng(3)
    anchors = frcnn_fast.generate_anchors((20, 20), 16, dtype=dtype)
    xy = rng.uniform(0, 250, size=(60, 2))
    gt = torch.as_tensor(np.concatenate([xy, xy + rng.uniform(4, 200, size=(60, 2))], 1)).to(dtype)
    iou = torchvision.ops.box_iou(gt, anchors)
    assert bool((iou.max(dim=1).values > 0).all())
    for high, low, allow in [(0.7, 0.3, True), (0.5, 0.4, False), (0.7, 0.3, False)]:
        want = Matcher(high, low, allow)(iou)
        m, v = frcnn_fast.match_boxes(gt, anchors, high, low, allow)
        assert torch.equal(m, want)
        assert torch.equal(v, iou.max(dim=0).values)


# ------------------------------------------------------------------ ties and the exception
@pytest.mark.parametrize("device", DEVICES)
def test_ties(device):
    """Duplicate ground truths: the first index wins; an anchor rescued by a ground truth keeps
    its own best ground truth, not the one whose best it attains; every anchor tied at a ground
    truth's best IoU is rescued."""
    gt = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 12, 10]], dtype=torch.float32
    )
    anchors = torch.tensor(
        [
            [0, 0, 10, 10],  # IoU 1 with gts 0, 1 (tie: 0), 10/12 with gt 3
            [5, 0, 15, 10],  # 1/3 with gt 0 and 1, 0 with 2; 7/15 with gt 3
            [25, 0, 35, 10],  # 1/3 with gt 2 (its best), another anchor ties it
            [15, 0, 25, 10],  # 1/3 with gt 2 as well
            [100, 100, 110, 110],  # nothing
        ],
        dtype=torch.float32,
    ).to(device)
    m, v = frcnn_fast.match_boxes(gt.to(device), anchors, 0.9, 0.2, False)
    assert m.tolist() == [0, -2, -2, -2, -1]
    m, v = frcnn_fast.match_boxes(gt.to(device), anchors, 0.9, 0.2, True)
    # gt 3's best is anchor 0 (10/12), which keeps its own best gt 0; gt 2's best 1/3 is tied
    # by anchors 2 and 3
    assert m.tolist() == [0, -2, 2, 2, -1]
    assert v.tolist()[4] == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_zero_best_ground_truth_rescues_nothing(device):
    """torchvision's matrix rule makes every anchor of IoU 0 a match of the ground truth that
    overlaps nothing; here it rescues nothing (and the other ground truths still do)."""
    gt = torch.tensor([[0, 0, 10, 10], [500, 500, 510, 510]], dtype=torch.float32)
    anchors = torch.tensor(
        [[0, 0, 8, 10], [100, 0, 110, 10], [200, 0, 210, 10], [0, 0, 4, 10]], dtype=torch.float32
    )
    iou = iou_matrix(gt, anchors)
    tv = Matcher(0.7, 0.3, True)(iou.clone())
    assert tv.tolist() == [0, 0, 0, 0]  # the matrix rule: every anchor positive
    m, v = frcnn_fast.match_boxes(gt.to(device), anchors.to(device), 0.7, 0.3, True)
    assert m.tolist() == [0, -1, -1, -2]  # anchor 3: IoU 0.4 with gt 0
    check_match((m, v), torchvision_match(iou, 0.7, 0.3, True))
    check_match((m, v), R.match_boxes(gt.numpy(), anchors.numpy(), 0.7, 0.3, True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_no_ground_truth_or_no_anchor(device, dtype):
    anchors = to_tensor([[0, 0, 10, 10], [5, 5, 20, 20]], dtype, device)
    gt = to_tensor(np.zeros((0, 4)), dtype, device)
    for low in (0.0, 0.3):
        m, v = frcnn_fast.match_boxes(gt, anchors, 0.7, low, True)
        assert m.tolist() == [-1, -1] and v.tolist() == [0.0, 0.0] and v.dtype == dtype
    m, v = frcnn_fast.match_boxes(anchors, gt, 0.7, 0.3, True)
    assert m.shape == (0,) and v.shape == (0,) and m.dtype == torch.int64
    m, v = frcnn_fast.match_boxes(gt, gt, 0.7, 0.3)
    assert m.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=dtype_id)
def test_half_rounding_makes_ties(device, dtype):
    """In float16/bfloat16 the IoUs are rounded as box_iou rounds them: two anchors whose float32
    IoUs differ but round alike are tied at the ground truth's best, and both are rescued."""
    y2 = 60.03125 if dtype == torch.float16 else 60.25
    gt = to_tensor([[0, 0, 100, 100]], dtype, device)
    anchors = to_tensor([[0, 0, 100, 60], [0, 0, 100, y2], [0, 0, 10, 10]], dtype, device)
    m, v = frcnn_fast.match_boxes(gt, anchors, 0.9, 0.7, True)
    iou = iou_matrix(gt, anchors)
    iou32 = iou_matrix(gt.float(), anchors.float())
    assert iou[0, 0] == iou[0, 1] and iou32[0, 0] < iou32[0, 1]
    assert m.tolist() == [0, 0, -1]
    check_match((m, v), torchvision_match(iou, 0.9, 0.7, True))


# ------------------------------------------------------------------ golden case
@pytest.mark.parametrize("device", DEVICES)
def test_golden_case(device):
    """800 x 800, stride 16, sizes 128/256/512, ratios 0.5/1/2, offset 0.5; two ground truths.
    Inside anchors only: best IoUs 0.68130493 and 0.61035156, attained by 18 anchors; with
    0.7 / 0.3 and low-quality matches 18 positives, 7,690 negatives, 1,232 in between."""
    anchors = frcnn_fast.generate_anchors((50, 50), 16).to(device)
    inside = frcnn_fast.anchors_inside(anchors, (800, 800))
    anchors = anchors[inside]
    assert anchors.shape[0] == 8940
    gt = torch.tensor([[30, 20, 500, 400], [400, 300, 600, 500]], dtype=torch.float32).to(device)
    m, v = frcnn_fast.match_boxes(gt, anchors, 0.7, 0.3, True)
    iou = iou_matrix(gt, anchors)
    best = iou.max(dim=1).values
    np.testing.assert_allclose(best.numpy(), [0.68130493, 0.61035156], rtol=0, atol=5e-8)
    attaining = (iou == best[:, None]).any(dim=0)
    assert int(attaining.sum()) == 18
    assert int((m >= 0).sum()) == 18
    assert bool((m >= 0).cpu().eq(attaining).all())
    assert int((m == -1).sum()) == 7690
    assert int((m == -2).sum()) == 1232
    check_match((m, v), torchvision_match(iou, 0.7, 0.3, True))
    # without low-quality matches nothing reaches 0.7
    m, _ = frcnn_fast.match_boxes(gt, anchors, 0.7, 0.3, False)
    assert int((m >= 0).sum()) == 0


# ------------------------------------------------------------------ batched
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_batched_equals_per_image(device, dtype, data):
    _, a_np = data.draw(scenes(max_g=1))
    anchors = to_tensor(a_np, dtype, device)
    gts = [
        to_tensor(data.draw(scenes(max_a=1))[0], dtype, device)
        for _ in range(data.draw(st.integers(0, 4)))
    ]
    high, low = data.draw(thresholds(np.zeros(0)))
    allow = data.draw(st.booleans())
    m, v = frcnn_fast.match_boxes_batched(gts, anchors, high, low, allow)
    assert m.shape == (len(gts), len(a_np)) and v.shape == m.shape and v.dtype == dtype
    for b, g in enumerate(gts):
        check_match(
            (m[b], v[b]), frcnn_fast.match_boxes(g, anchors, high, low, allow), f"image {b}"
        )
    # the padded form with its counts; padding rows are ignored, whatever they hold
    if gts:
        g_max = max(len(g) for g in gts) + 1
        padded = torch.full((len(gts), g_max, 4), float("nan"), dtype=dtype, device=device)
        for b, g in enumerate(gts):
            padded[b, : len(g)] = g
        counts = torch.tensor([len(g) for g in gts], device=device)
        pm, pv = frcnn_fast.match_boxes_batched(padded, anchors, high, low, allow, gt_counts=counts)
        check_match((pm, pv), (m, v))


@pytest.mark.parametrize("device", DEVICES)
def test_batched_padded_without_counts(device):
    rng = np.random.default_rng(1)
    anchors = frcnn_fast.generate_anchors((6, 6), 16, sizes=(16, 32)).to(device)
    gt = torch.as_tensor(rng.uniform(0, 48, size=(3, 5, 2)), dtype=torch.float32)
    gt = torch.cat([gt, gt + 20], dim=-1).to(device)
    m, v = frcnn_fast.match_boxes_batched(gt, anchors, 0.7, 0.3, True)
    for b in range(3):
        check_match((m[b], v[b]), frcnn_fast.match_boxes(gt[b], anchors, 0.7, 0.3, True))


@pytest.mark.parametrize("device", DEVICES)
def test_batched_unvalidated_counts_are_clamped(device):
    anchors = frcnn_fast.generate_anchors((4, 4), 16, sizes=(16,)).to(device)
    gt = torch.tensor([[[0, 0, 20, 20], [30, 30, 60, 60]]] * 2, dtype=torch.float32).to(device)
    counts = torch.tensor([-3, 7], device=device)
    m, v = frcnn_fast.match_boxes_batched(
        gt, anchors, 0.7, 0.3, True, gt_counts=counts, validate=False
    )
    assert m[0].eq(-1).all() and v[0].eq(0).all()
    check_match((m[1], v[1]), frcnn_fast.match_boxes(gt[1], anchors, 0.7, 0.3, True))


# ------------------------------------------------------------------ bad input
BOX = torch.tensor([[0.0, 0.0, 10.0, 10.0]])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(gt_boxes=torch.zeros(3, 3)), RuntimeError, "gt_boxes must have shape"),
        (dict(gt_boxes=torch.zeros(4)), RuntimeError, "gt_boxes must have shape"),
        (dict(anchors=torch.zeros(2, 5)), RuntimeError, "anchors must have shape"),
        (dict(anchors=BOX.double()), RuntimeError, "must have the same dtype"),
        (dict(gt_boxes=BOX.int(), anchors=BOX.int()), RuntimeError, "gt_boxes must be float32"),
        (dict(high=1.5), RuntimeError, "high_threshold must be in [0, 1], got 1.5"),
        (dict(low=-0.1), RuntimeError, "low_threshold must be in [0, 1]"),
        (dict(low=float("nan")), RuntimeError, "low_threshold must be in [0, 1]"),
        (dict(high=0.3, low=0.7), RuntimeError, "low_threshold must be <= high_threshold"),
        (dict(high="0.7"), TypeError, "high_threshold must be a number"),
        (dict(allow=1), TypeError, "allow_low_quality_matches must be a bool"),
        (dict(gt_boxes=[[0, 0, 1, 1]]), TypeError, "gt_boxes must be a torch.Tensor"),
        (
            dict(gt_boxes=torch.tensor([[0.0, 0, 1, 1], [0, float("nan"), 1, 1]])),
            RuntimeError,
            "gt_boxes must have finite coordinates, got [0, nan, 1, 1] in row 1",
        ),
        (
            dict(gt_boxes=torch.tensor([[0.0, 0, float("inf"), 1]])),
            RuntimeError,
            "gt_boxes must have finite coordinates",
        ),
    ],
)
def test_bad_input(device, kwargs, error, message):
    args = dict(gt_boxes=BOX, anchors=BOX, high=0.7, low=0.3, allow=False)
    args.update(kwargs)
    args = {k: v.to(device) if torch.is_tensor(v) else v for k, v in args.items()}
    with pytest.raises(error) as exc:
        frcnn_fast.match_boxes(
            args["gt_boxes"], args["anchors"], args["high"], args["low"], args["allow"]
        )
    assert message in str(exc.value)


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_anchors_and_unvalidated_gt_are_safe(device):
    """A non-finite anchor has IoU 0 with everything; validate=False lets a non-finite ground
    truth through without harm (its IoUs are 0)."""
    nan, inf = float("nan"), float("inf")
    anchors = torch.tensor([[0, 0, 10, 10], [nan, 0, 10, 10], [-inf, -inf, inf, inf]]).to(device)
    gt = torch.tensor([[0.0, 0, 10, 10], [nan, nan, nan, nan]]).to(device)
    m, v = frcnn_fast.match_boxes(gt, anchors, 0.7, 0.3, True, validate=False)
    assert m.tolist() == [0, -1, -1] and v.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("device", DEVICES)
def test_bad_batched_input(device):
    anchors = BOX.to(device)
    gt = torch.zeros(2, 3, 4, device=device)
    t = lambda v: torch.tensor(v, device=device)  # noqa: E731
    with pytest.raises(RuntimeError, match=r"gt_boxes must have shape \[B, G, 4\]"):
        frcnn_fast.match_boxes_batched(torch.zeros(3, 4, device=device), anchors, 0.7, 0.3)
    with pytest.raises(RuntimeError, match="gt_counts must be an int64 tensor"):
        frcnn_fast.match_boxes_batched(gt, anchors, 0.7, 0.3, gt_counts=t([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"gt_counts must have shape \[B\] with B = "):
        frcnn_fast.match_boxes_batched(gt, anchors, 0.7, 0.3, gt_counts=t([1, 2, 3]))
    with pytest.raises(RuntimeError, match=r"gt_counts must be in \[0, 3\].*got 4 for image 1"):
        frcnn_fast.match_boxes_batched(gt, anchors, 0.7, 0.3, gt_counts=t([1, 4]))
    with pytest.raises(RuntimeError, match=r"gt_counts must be in \[0, 3\].*got -1 for image 0"):
        frcnn_fast.match_boxes_batched(gt, anchors, 0.7, 0.3, gt_counts=t([-1, 0]))
    bad = gt.clone()
    bad[1, 1, 2] = float("nan")
    with pytest.raises(RuntimeError, match="finite coordinates.*for image 1, box 1"):
        frcnn_fast.match_boxes_batched(bad, anchors, 0.7, 0.3)
    # a NaN in a padding row is fine
    frcnn_fast.match_boxes_batched(bad, anchors, 0.7, 0.3, gt_counts=t([3, 1]))
    with pytest.raises(ValueError, match=r"gt_boxes\[1\] must have shape \[G, 4\]"):
        frcnn_fast.match_boxes_batched(
            [anchors, torch.zeros(2, 3, device=device)], anchors, 0.7, 0.3
        )
    with pytest.raises(ValueError, match=r"gt_boxes\[0\] and anchors must have the same dtype"):
        frcnn_fast.match_boxes_batched([anchors.double()], anchors, 0.7, 0.3)
    with pytest.raises(ValueError, match="gt_counts must be None when gt_boxes is a list"):
        frcnn_fast.match_boxes_batched([anchors], anchors, 0.7, 0.3, gt_counts=t([1]))


def test_reference_bad_input():
    with pytest.raises(ValueError, match="low_threshold must be <= high_threshold"):
        R.match_boxes(BOX.numpy(), BOX.numpy(), 0.3, 0.7)
    with pytest.raises(ValueError, match="gt_boxes must have finite coordinates"):
        R.match_boxes([[0, 0, np.nan, 1]], BOX.numpy(), 0.7, 0.3)
    with pytest.raises(ValueError, match=r"anchors must have shape \[N, 4\]"):
        R.match_boxes(BOX.numpy(), np.zeros((2, 3)), 0.7, 0.3)


# ------------------------------------------------------------------ torch.compile
def matching(gt, anchors, padded, counts):
    m, v = frcnn_fast.match_boxes(gt, anchors, 0.7, 0.3, True)
    bm, bv = frcnn_fast.match_boxes_batched(padded, anchors, 0.5, 0.4, gt_counts=counts)
    positives = (m >= 0).sum() + (bm >= 0).sum()
    return m, v, bm, bv, positives


@pytest.mark.parametrize("device", REAL_DEVICES)
def test_compile_fullgraph(device):
    anchors = frcnn_fast.generate_anchors((8, 8), 16, sizes=(32, 64)).to(device)
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 100, size=(2, 6, 2))
    padded = torch.as_tensor(np.concatenate([xy, xy + 30], -1), dtype=torch.float32).to(device)
    counts = torch.tensor([6, 2], device=device)
    torch._dynamo.reset()
    compiled = torch.compile(matching, fullgraph=True)
    got = compiled(padded[0], anchors, padded, counts)
    want = matching(padded[0], anchors, padded, counts)
    for g, w in zip(got, want):
        assert torch.equal(g, w)
