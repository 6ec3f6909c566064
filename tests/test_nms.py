"""nms, batched_nms and their padded forms: kernel == reference with exact indices (ties,
thresholds at +-1 ulp, non-finite values, every dtype), greedy properties, torchvision,
large inputs, and the sync-free padded form on a GPU."""

import cuda_emu
import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    CUDA_BACKENDS,
    DEVICES,
    DTYPES,
    FULL,
    HAS_CUDA,
    box_arrays,
    dtype_id,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast
import frcnn_fast.reference as R
from frcnn_fast.reference.nms import iou_one_to_many
from frcnn_fast.reference.nms import rank as rank_of

THRESHOLDS = st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9, 1.0]) | st.floats(0.0, 1.0)


def compute_dtype(dtype):
    """The arithmetic the kernels use for ``dtype`` (half types compute in float32)."""
    return np.float64 if dtype == torch.float64 else np.float32


def indices(t):
    assert t.dtype == torch.int64, t.dtype
    return t.cpu().numpy()


def _lim(dtype):
    # float16 holds integers exactly up to 2048 and areas up to 65504 (computed in float32 anyway)
    return 200 if dtype in (torch.float16, torch.bfloat16) else 1000


@st.composite
def clustered_boxes(draw, n, lim):
    """``n`` boxes jittered around a few centres (an RPN's proposals): many suppressions."""
    k = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2 * lim, 0.8 * lim, size=(k, 2))
    sides = rng.uniform(0.05 * lim, 0.3 * lim, size=(k, 2))
    which = rng.integers(0, k, n)
    c = centres[which] + rng.normal(0, 0.05, (n, 2)) * sides[which]
    s = sides[which] * np.exp(rng.normal(0, 0.15, (n, 2)))
    boxes = np.concatenate([c - s / 2, c + s / 2], axis=1)
    return np.round(boxes * 8) / 8


@st.composite
def scores_for(draw, n, special=True):
    """Scores with ties (few distinct values), and optionally NaN / +-inf."""
    kind = draw(st.sampled_from(["distinct", "ties", "ties", "uniform"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "ties":
        s = rng.integers(0, max(1, n // 4) + 1, n) / 8.0
    elif kind == "uniform":
        s = np.full(n, 0.5)
    else:
        s = rng.permutation(n) / max(n, 1)
    if special and n and draw(st.booleans()):
        for v in (np.nan, np.inf, -np.inf, -0.0, 0.0):
            s[rng.integers(0, n, draw(st.integers(0, 2)))] = v
    return s


@st.composite
def nms_inputs(draw, max_n=80, special=True, dtype=torch.float32):
    lim = _lim(dtype)
    n = draw(st.integers(0, max_n))
    kind = draw(st.sampled_from(["clustered", "scattered", "mixed"]))
    if kind == "clustered":
        boxes = draw(clustered_boxes(n, lim))
    elif kind == "scattered":
        boxes = draw(box_arrays(n=n, lim=lim // 2, grid=True, max_size=lim // 4))
    else:
        boxes = np.concatenate(
            [
                draw(clustered_boxes(n // 2, lim)),
                draw(box_arrays(n=n - n // 2, lim=lim // 2, grid=True)),
            ]
        )
    if n > 1 and draw(st.booleans()):  # duplicates: IoU exactly 1
        src = draw(st.lists(st.integers(0, n - 1), max_size=4))
        dst = draw(st.lists(st.integers(0, n - 1), min_size=len(src), max_size=len(src)))
        boxes[dst] = boxes[src]
    if special and n and draw(st.booleans()):
        for v in (np.nan, np.inf, -np.inf):
            rows = draw(st.lists(st.integers(0, n - 1), max_size=2))
            for r in rows:
                boxes[r, draw(st.integers(0, 3))] = v
    return boxes, draw(scores_for(n, special))


def run_both(boxes, scores, dtype, device, thr):
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    got = frcnn_fast.nms(b, s, thr)
    want = R.nms(to_np(b), to_np(s), thr, compute_dtype=compute_dtype(dtype))
    return b, s, got, want


def assert_same(got, want, **context):
    got = indices(got)
    assert got.tolist() == want.tolist(), (
        f"kernel {got.tolist()} != reference {want.tolist()}; {context}"
    )


# ============================================================ kernel == reference (exact)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), thr=THRESHOLDS)
def test_nms_matches_reference(device, dtype, data, thr):
    boxes, scores = data.draw(nms_inputs(dtype=dtype))
    b, s, got, want = run_both(boxes, scores, dtype, device, thr)
    assert got.device.type == b.device.type
    assert_same(got, want, boxes=to_np(b), scores=to_np(s), thr=thr)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), thr=THRESHOLDS, groups=st.integers(1, 6))
def test_batched_nms_matches_reference(device, dtype, data, thr, groups):
    boxes, scores = data.draw(nms_inputs(dtype=dtype))
    idxs = np.asarray(
        data.draw(st.lists(st.integers(-3, groups), min_size=len(boxes), max_size=len(boxes))),
        dtype=np.int64,
    )
    idx_dtype = data.draw(st.sampled_from([torch.int64, torch.int32, torch.int16, torch.uint8]))
    if idx_dtype == torch.uint8:
        idxs = idxs - idxs.min(initial=0)
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    i = torch.as_tensor(idxs).to(idx_dtype).to(b.device)
    got = frcnn_fast.batched_nms(b, s, i, thr)
    want = R.batched_nms(to_np(b), to_np(s), idxs, thr, compute_dtype=compute_dtype(dtype))
    assert_same(got, want, boxes=to_np(b), scores=to_np(s), idxs=idxs, thr=thr)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    thr=THRESHOLDS,
    max_output=st.integers(0, 40),
    use_score=st.booleans(),
    score_thr=st.floats(-1, 1),
)
def test_padded_matches_reference_and_unpadded(
    device, dtype, data, thr, max_output, use_score, score_thr
):
    boxes, scores = data.draw(nms_inputs(dtype=dtype))
    idxs = np.asarray(
        data.draw(st.lists(st.integers(0, 3), min_size=len(boxes), max_size=len(boxes))),
        dtype=np.int64,
    )
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    i = torch.as_tensor(idxs).to(b.device)
    st_arg = score_thr if use_score else None
    cd = compute_dtype(dtype)
    for got, (want, want_count), unpadded in (
        (
            frcnn_fast.nms_padded(b, s, thr, max_output, st_arg),
            R.nms_padded(to_np(b), to_np(s), thr, max_output, st_arg, compute_dtype=cd),
            frcnn_fast.nms(b, s, thr),
        ),
        (
            frcnn_fast.batched_nms_padded(b, s, i, thr, max_output, st_arg),
            R.batched_nms_padded(
                to_np(b), to_np(s), idxs, thr, max_output, st_arg, compute_dtype=cd
            ),
            frcnn_fast.batched_nms(b, s, i, thr),
        ),
    ):
        out, count = got
        assert out.shape == (max_output,) and count.shape == () and count.dtype == torch.int64
        assert out.device.type == count.device.type == b.device.type
        assert_same(out, want, thr=thr, max_output=max_output, score_threshold=st_arg)
        assert int(count) == want_count
        assert (indices(out)[int(count) :] == -1).all()
        if st_arg is None:  # padded == the unpadded result, cut to max_output
            assert indices(out)[: int(count)].tolist() == indices(unpadded)[:max_output].tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1025])
def test_nms_word_and_block_boundaries(device, dtype, n, request):
    """Sizes around 64-bit mask words and the kernels' block sizes, clustered (most suppressed)
    and scattered (most kept), scores with ties."""
    rng = np.random.default_rng(n)
    lim = _lim(dtype)
    kinds = (_clustered_np(rng, n, lim), np.round(_scattered_np(rng, n, lim) * 8) / 8)
    thresholds = (0.5, 0.7)
    if request.node.get_closest_marker("on_cuda_emu") is not None and cuda_emu.sanitized():
        # Under a sanitizer the 56 emulated cases took most of the NMS tests' half hour. A
        # threshold changes no code path, so one is run; above 256 boxes (a whole block) one
        # box set per size, alternating, so that every block size still runs and each kind
        # runs at several.
        thresholds = (0.5,)
        if n > 256:
            kinds = kinds[(n // 2) % 2 :][:1]
    for boxes in kinds:
        scores = rng.integers(0, n // 3 + 1, n) / 4.0
        for thr in thresholds:
            b, s, got, want = run_both(boxes, scores, dtype, device, thr)
            assert_same(got, want, n=n, thr=thr)
            idxs = rng.integers(0, 3, n)
            got = frcnn_fast.batched_nms(b, s, torch.as_tensor(idxs).to(b.device), thr)
            want = R.batched_nms(to_np(b), to_np(s), idxs, thr, compute_dtype=compute_dtype(dtype))
            assert_same(got, want, n=n, thr=thr)


def _clustered_np(rng, n, lim, k=3):
    centres = rng.uniform(0.2 * lim, 0.8 * lim, size=(k, 2))
    which = rng.integers(0, k, n)
    side = 0.2 * lim * np.exp(rng.normal(0, 0.1, (n, 2)))
    c = centres[which] + rng.normal(0, 0.03 * lim, (n, 2))
    return np.round(np.concatenate([c - side / 2, c + side / 2], axis=1) * 8) / 8


def _scattered_np(rng, n, lim):
    xy = rng.uniform(0, lim, (n, 2))
    wh = rng.uniform(lim / 100, lim / 8, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# ============================================================ thresholds at +-1 ulp
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_threshold_ties_at_one_ulp(device, dtype, data):
    """A pair whose IoU (in the kernels' arithmetic) equals the threshold is not suppressed
    (strict >); one ulp lower, it is. Kernel and reference agree on both sides."""
    lim = _lim(dtype)
    a = data.draw(
        box_arrays(n=1, lim=lim // 2, grid=True, degenerate=False, min_size=1, max_size=lim // 4)
    )[0]
    shift = data.draw(st.tuples(*[st.integers(-16, 16).map(lambda k: k / 8)] * 4))
    pair = np.stack([a, a + np.asarray(shift)])
    b = to_tensor(pair, dtype, device)
    x = to_np(b).astype(compute_dtype(dtype))
    iou = iou_one_to_many(x[0], x[1:])[0]
    if not 0 < iou < 1:
        return
    s = to_tensor([0.9, 0.8], dtype, device)
    for thr, second_kept in (
        (float(iou), True),
        (float(np.nextafter(iou, compute_dtype(dtype)(0))), False),
        (float(np.nextafter(iou, compute_dtype(dtype)(1))), True),
        # a float64 threshold between the IoU and its lower float32 neighbour
        (float(iou) - 1e-12 if dtype != torch.float64 else float(np.nextafter(iou, 0.0)), False),
    ):
        got = indices(frcnn_fast.nms(b, s, thr)).tolist()
        want = R.nms(to_np(b), to_np(s), thr, compute_dtype=compute_dtype(dtype)).tolist()
        assert got == want, (thr, float(iou), got, want)
        assert got == ([0, 1] if second_kept else [0]), (thr, float(iou), got)


def _sliver_case(side):
    """Boxes whose second-ranked box j overlaps the first, k, by a sliver 2^-22 wide on its
    ``side`` ("left" or "right"; unit squares). Box z moves the lowest corner so that an edge of
    the CPU kernel's grid (which files kept boxes by top-left corner in cells about a box wide)
    falls inside the sliver, between k's corner and the edge of j's own search window; 40 apart
    fillers make the group large enough for the grid."""
    e21, e22 = 2.0**-21, 2.0**-22
    if side == "right":  # k's left edge just inside j's right edge
        j, k, z = [0.5, 0.0, 1.5, 1.0], [1.5 - e22, 0.0, 2.5 - e22, 1.0], 0.5 - e21
    else:  # k's right edge just inside j's left edge
        j, k, z = [2.5, 0.0, 3.5, 1.0], [1.5 + e22, 0.0, 2.5 + e22, 1.0], 0.5 + e21
    rows = [k, j, [z, 100.0, z + 1.0, 101.0]]
    rows += [[j[0], 10.0 + 2 * i, j[2], 11.0 + 2 * i] for i in range(40)]
    return np.asarray(rows)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_sliver_overlap_at_threshold_zero(device, dtype, side):
    """At iou_threshold 0 any overlap suppresses, however thin. The sliver lies exactly at the
    edge of the window the CPU kernel searches for suppressors, so that window must reach a
    little past the box's side, never fall short of it."""
    rows = _sliver_case("left" if side in ("left", "top") else "right")
    if side in ("top", "bottom"):
        rows = rows[:, [1, 0, 3, 2]]  # the same case along y
    b = to_tensor(rows, dtype, device)
    s = to_tensor(np.linspace(1.0, 0.0, len(rows)), dtype, device)
    got = indices(frcnn_fast.nms(b, s, 0.0)).tolist()
    want = R.nms(to_np(b), to_np(s), 0.0, compute_dtype=compute_dtype(dtype)).tolist()
    assert got == want and 1 not in got, (got, want)
    assert 1 not in indices(torchvision.ops.nms(b.cpu(), s.cpu(), 0.0)).tolist()


# ============================================================ semantics by hand
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ranking_ties_nan_and_nonfinite_boxes(device, dtype):
    box = [0.0, 0.0, 10.0, 10.0]
    nan_box = [0.0, float("nan"), 10.0, 10.0]
    inf_box = [0.0, 0.0, float("inf"), 10.0]
    boxes = to_tensor([box, box, box, nan_box, inf_box, box, [50, 50, 60, 60]], dtype, device)
    nan = float("nan")
    scores = to_tensor([0.5, 0.5, nan, 0.9, 0.7, -float("inf"), nan], dtype, device)
    # rank: 3 (0.9), 4 (0.7), 0, 1 (0.5 tie: input order), 5 (-inf), 2, 6 (NaN, input order).
    # Non-finite boxes 3 and 4 are kept and suppress nothing; 0 suppresses its duplicates 1, 5, 2.
    assert indices(frcnn_fast.nms(boxes, scores, 0.5)).tolist() == [3, 4, 0, 6]
    # iou_threshold 1: nothing has IoU > 1, everything kept in rank order
    assert indices(frcnn_fast.nms(boxes, scores, 1.0)).tolist() == [3, 4, 0, 1, 5, 2, 6]
    # a score threshold keeps scores > t only; NaN never passes
    out, count = frcnn_fast.nms_padded(boxes, scores, 0.5, 5, score_threshold=0.5)
    assert indices(out).tolist() == [3, 4, -1, -1, -1] and int(count) == 2
    out, count = frcnn_fast.nms_padded(boxes, scores, 0.5, 2, score_threshold=-float("inf"))
    assert indices(out).tolist() == [3, 4] and int(count) == 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_zero_max_output(device, dtype):
    b = to_tensor(np.zeros((0, 4)), dtype, device)
    s = to_tensor(np.zeros(0), dtype, device)
    i = torch.zeros(0, dtype=torch.int64, device=b.device)
    for out in (frcnn_fast.nms(b, s, 0.5), frcnn_fast.batched_nms(b, s, i, 0.5)):
        assert out.shape == (0,) and out.dtype == torch.int64 and out.device.type == b.device.type
    for out, count in (
        frcnn_fast.nms_padded(b, s, 0.5, 3),
        frcnn_fast.batched_nms_padded(b, s, i, 0.5, 3),
    ):
        assert indices(out).tolist() == [-1, -1, -1] and int(count) == 0
    b1 = to_tensor([[0, 0, 1, 1]], dtype, device)
    s1 = to_tensor([1.0], dtype, device)
    out, count = frcnn_fast.nms_padded(b1, s1, 0.5, 0)
    assert out.shape == (0,) and int(count) == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
def test_non_contiguous_inputs(device, dtype):
    rng = np.random.default_rng(5)
    boxes = _clustered_np(rng, 300, 1000)
    scores = rng.uniform(size=300)
    b = to_tensor(boxes, dtype, device, "column_slice")
    s = to_tensor(np.repeat(scores, 2), dtype, device)[::2]
    assert not b.is_contiguous() and not s.is_contiguous()
    want = R.nms(to_np(b), to_np(s), 0.6, compute_dtype=compute_dtype(dtype))
    assert_same(frcnn_fast.nms(b, s, 0.6), want)


# ============================================================ properties
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data(), thr=THRESHOLDS)
def test_greedy_properties(device, dtype, data, thr):
    """Kept boxes pairwise IoU <= thr; every dropped box has IoU > thr with a higher-ranked kept
    box; output in non-increasing score; no index twice."""
    boxes, scores = data.draw(nms_inputs(special=False, dtype=dtype))
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    keep = indices(frcnn_fast.nms(b, s, thr))
    x = to_np(b).astype(compute_dtype(dtype))
    sc = to_np(s)
    assert len(set(keep.tolist())) == len(keep)
    assert np.all(np.diff(sc[keep]) <= 0)
    rank = np.empty(len(sc), dtype=np.int64)
    rank[rank_of(sc)] = np.arange(len(sc))
    for k, i in enumerate(keep):
        if k + 1 < len(keep):
            assert np.all(iou_one_to_many(x[i], x[keep[k + 1 :]]) <= thr)
    for j in sorted(set(range(len(sc))) - set(keep.tolist())):
        above = keep[rank[keep] < rank[j]]
        assert len(above) and np.any(iou_one_to_many(x[j], x[above]).astype(np.float64) > thr), j


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), thr=THRESHOLDS)
def test_permutation_invariance_with_distinct_scores(device, dtype, data, thr):
    boxes, _ = data.draw(nms_inputs(special=False, dtype=dtype))
    n = len(boxes)
    scores = np.random.default_rng(n).permutation(n) / max(n, 1)
    perm = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    if n and len(np.unique(to_np(s))) < n:  # rounding to a half type made ties
        return
    keep = indices(frcnn_fast.nms(b, s, thr))
    keep_perm = indices(
        frcnn_fast.nms(
            b[torch.as_tensor(perm).to(b.device)], s[torch.as_tensor(perm).to(b.device)], thr
        )
    )
    assert perm[keep_perm].tolist() == keep.tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data(), thr=THRESHOLDS)
def test_batched_equals_per_group_nms(device, dtype, data, thr):
    boxes, scores = data.draw(nms_inputs(dtype=dtype))
    n = len(boxes)
    idxs = np.asarray(
        data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int64
    )
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    got = indices(frcnn_fast.batched_nms(b, s, torch.as_tensor(idxs).to(b.device), thr))
    kept = []
    for g in np.unique(idxs):
        members = np.nonzero(idxs == g)[0]
        kept += members[indices(frcnn_fast.nms(b[members], s[members], thr))].tolist()
    # merged in decreasing score, ties in input order (NaN last)
    sc = to_np(s)
    key = np.where(np.isnan(sc[kept]), np.inf, -sc[kept]) if kept else np.zeros(0)
    merged = (
        np.asarray(kept, dtype=np.int64)[np.lexsort((np.asarray(kept), np.isnan(sc[kept]), key))]
        if kept
        else []
    )
    assert got.tolist() == list(merged)


# ============================================================ torchvision
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data(), thr=st.sampled_from([0.3, 0.5, 0.7]))
def test_matches_torchvision_without_ties(device, dtype, data, thr):
    boxes, _ = data.draw(nms_inputs(special=False, dtype=dtype))
    n = len(boxes)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.125)  # torchvision: no empty unions
    scores = np.random.default_rng(n).permutation(n) / max(n, 1)
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    # Pairs within 1e-6 of the threshold may round differently in torchvision's formula.
    x = to_np(b)
    for i in range(n):
        if n and np.any(np.abs(iou_one_to_many(x[i], x) - thr) < 1e-5):
            return
    assert (
        indices(frcnn_fast.nms(b, s, thr)).tolist() == torchvision.ops.nms(b, s, thr).cpu().tolist()
    )
    idxs = torch.as_tensor(np.random.default_rng(n + 1).integers(0, 3, n)).to(b.device)
    assert (
        indices(frcnn_fast.batched_nms(b, s, idxs, thr)).tolist()
        == torchvision.ops.batched_nms(b, s, idxs, thr).cpu().tolist()
    )


# ============================================================ large inputs
@pytest.mark.parametrize("device", DEVICES)
def test_large_input_matches_tiled_reference(device, request):
    """60,000 boxes in 400 well-separated tiles (scattered tiles and clustered tiles, scores
    with ties): NMS of the whole equals the per-tile reference, merged by rank, so the
    reference stays cheap while the kernel sees one large input. (The emulated CUDA kernels
    get 24 tiles, 3,600 boxes: each emulated thread is a fiber, and the bitmask kernel's work
    is N^2 / 2 IoUs.)"""
    rng = np.random.default_rng(7)
    emulated = request.node.get_closest_marker("on_cuda_emu") is not None
    tiles, per = (24 if emulated else 400), 150
    parts, scores = [], []
    for t in range(tiles):
        ox, oy = (t % 20) * 2000.0, (t // 20) * 2000.0
        local = (
            _clustered_np(rng, per, 1000)
            if t % 2
            else np.round(_scattered_np(rng, per, 1000) * 8) / 8
        )
        parts.append(local + [ox, oy, ox, oy])
        scores.append(rng.integers(0, 64, per) / 64.0)
    boxes = np.concatenate(parts)
    sc = np.concatenate(scores)
    perm = rng.permutation(len(boxes))
    boxes, sc = boxes[perm], sc[perm]
    tile = perm // per
    b = to_tensor(boxes, torch.float32, device)
    s = to_tensor(sc, torch.float32, device)
    got = indices(frcnn_fast.nms(b, s, 0.7))
    kept = np.zeros(len(boxes), dtype=bool)
    x = boxes.astype(np.float32)
    for t in range(tiles):
        members = np.nonzero(tile == t)[0]
        kept[members[R.nms(x[members], sc[members], 0.7)]] = True
    order = rank_of(sc)
    assert got.tolist() == order[kept[order]].tolist()
    # batched with the tile as the group gives the same set (groups never interact here)
    got_b = indices(frcnn_fast.batched_nms(b, s, torch.as_tensor(tile).to(b.device), 0.7))
    assert got_b.tolist() == got.tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("thr", [0.5, 0.7])
def test_many_overlapping_groups_match_reference(device, request, thr):
    """Enough boxes for the CPU kernel to share groups out over threads (it does from 4,096),
    with every group in the same clusters, so a box resolved against another group's boxes
    would change the result: one group of 40% of the boxes, 100 small ones, and a few groups
    of a single box; scores with ties."""
    rng = np.random.default_rng(11)
    emulated = request.node.get_closest_marker("on_cuda_emu") is not None
    n = 1_500 if emulated else 9_000
    boxes = np.concatenate(
        [
            _clustered_np(rng, n // 2, 1000, k=6),
            np.round(_scattered_np(rng, n - n // 2, 1000) * 8) / 8,
        ]
    )
    scores = rng.integers(0, 256, n) / 256.0
    idxs = np.where(rng.uniform(size=n) < 0.4, 7, rng.integers(-50, 50, n))
    idxs[rng.choice(n, 5, replace=False)] = [1000, 1001, 1002, -(2**40), 2**40]
    b, s = to_tensor(boxes, torch.float32, device), to_tensor(scores, torch.float32, device)
    got = frcnn_fast.batched_nms(b, s, torch.as_tensor(idxs).to(b.device), thr)
    want = R.batched_nms(to_np(b), to_np(s), idxs, thr, compute_dtype=np.float32)
    assert_same(got, want, n=n, thr=thr)


# ============================================================ CUDA kernels == CPU kernel
# (seed, worker threads, grid cap): one and two workers, the GPU's cap and caps of 1 and 2
# blocks, which push the mask kernel's tiles and the per-segment reduction through their
# grid-stride loops (several row blocks / column blocks / segments per thread block).
NMS_SCHEDULES = ((21, 2, 65535), (22, 1, 1), (23, 2, 2), (24, 1, 65535))


def on_cuda(backend, fn, *tensors, schedules=NMS_SCHEDULES):
    """``fn(*tensors)`` on the CUDA kernels, returned on the CPU. Emulated: under each of
    ``schedules``, which must all give the same result (scheduling may not change it)."""

    def cpu(out):
        return tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu()

    if backend == "cuda":
        return cpu(fn(*(t.cuda() for t in tensors)))
    results = []
    for seed, workers, cap in schedules:
        with cuda_emu.emulated(seed=seed, workers=workers, max_grid_dim=cap):
            results.append(cpu(fn(*tensors)))
    for other in results[1:]:
        for a, b in zip(
            other if isinstance(other, tuple) else (other,),
            results[0] if isinstance(results[0], tuple) else (results[0],),
        ):
            assert torch.equal(a, b), "the emulated CUDA result depends on the schedule"
    return results[0]


def _four_ops(thr, max_output, score_threshold):
    return (
        ("nms", lambda b, s, i: frcnn_fast.nms(b, s, thr)),
        ("batched_nms", lambda b, s, i: frcnn_fast.batched_nms(b, s, i, thr)),
        (
            "nms_padded",
            lambda b, s, i: frcnn_fast.nms_padded(b, s, thr, max_output, score_threshold),
        ),
        (
            "batched_nms_padded",
            lambda b, s, i: frcnn_fast.batched_nms_padded(
                b, s, i, thr, max_output, score_threshold
            ),
        ),
    )


def _assert_cuda_equals_cpu(
    backend, b, s, i, thr, max_output, score_threshold, schedules=NMS_SCHEDULES, **context
):
    for name, fn in _four_ops(thr, max_output, score_threshold):
        want = fn(b, s, i)
        got = on_cuda(backend, fn, b, s, i, schedules=schedules)
        if isinstance(want, tuple):
            assert got[0].tolist() == want[0].tolist() and int(got[1]) == int(want[1]), (
                name,
                context,
            )
        else:
            assert got.tolist() == want.tolist(), (name, got.tolist(), want.tolist(), context)


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    thr=THRESHOLDS,
    max_output=st.integers(0, 60),
    score_thr=st.none() | st.floats(-1, 1),
)
def test_cuda_equals_cpu(backend, dtype, data, thr, max_output, score_thr):
    """The four ops, hypothesis inputs (ties, NaN/inf, duplicates), few and many groups."""
    boxes, scores = data.draw(nms_inputs(max_n=70, dtype=dtype))
    groups = data.draw(st.sampled_from([1, 3, 40]))
    idxs = np.asarray(
        data.draw(st.lists(st.integers(0, groups - 1), min_size=len(boxes), max_size=len(boxes))),
        dtype=np.int64,
    )
    b, s = to_tensor(boxes, dtype), to_tensor(scores, dtype)
    _assert_cuda_equals_cpu(
        backend,
        b,
        s,
        torch.as_tensor(idxs),
        thr,
        max_output,
        score_thr,
        schedules=NMS_SCHEDULES[:2],
    )


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(torch.float32, id="float32"),
        pytest.param(torch.float16, id="float16"),
        pytest.param(torch.float64, id="float64"),
    ],
)
@pytest.mark.parametrize("n", [64, 65, 127, 129, 64 * 33 - 1, 64 * 33 + 1])
def test_cuda_equals_cpu_block_sizes(backend, dtype, n):
    """Sizes around the 64-box mask blocks, and (64 * 33 +- 1: 33 words per row with 32
    reduction threads) rows that take more than one strided pass of the reduction; clustered
    and scattered; one group, few large groups, many small groups."""
    rng = np.random.default_rng(n)
    lim = _lim(dtype)
    kinds = (_clustered_np(rng, n, lim), np.round(_scattered_np(rng, n, lim) * 8) / 8)
    group_counts = (1, 3, max(2, n // 10))
    schedules = NMS_SCHEDULES[:2] if n > 1000 else NMS_SCHEDULES
    if cuda_emu.sanitized():
        # Under TSan the small sizes' 4 schedules x 2 box sets x 3 group counts took over half an
        # hour: a sanitizer looks for races and bad accesses, which need two workers, not every
        # grid cap. The two two-worker schedules keep the full grid and a cap of 2 blocks (the
        # grid-stride loops); the caps of 1 block run in the plain emulated suite.
        schedules = tuple(sch for sch in schedules if sch[1] == 2)
    if n > 1000 and cuda_emu.sanitized():
        # Even cut to one run each, these two took 13 and 22 minutes under ASan, the long pole
        # of make sanitize. Under the sanitizers the strided passes of the reduction they are
        # here for run in test_ties.py::test_nms_multi_warp_reduction_under_pct (65 words per
        # row, two warps, PCT schedules); the plain emulated suite runs these sizes in full.
        pytest.skip("under a sanitizer the strided reduction runs in test_ties' 65-word case")
    for boxes in kinds:
        scores = rng.integers(0, n // 3 + 1, n) / 4.0
        b, s = to_tensor(boxes, dtype), to_tensor(scores, dtype)
        for groups in group_counts:
            i = torch.as_tensor(rng.integers(0, groups, n))
            _assert_cuda_equals_cpu(
                backend,
                b,
                s,
                i,
                0.6,
                n // 2,
                0.5,
                schedules=schedules,
                n=n,
                groups=groups,
            )


@pytest.mark.cuda_emu
def test_emulated_cuda_refuses_a_mask_that_cannot_fit():
    """N = 1,000,000 in one group needs a 125 GB mask: a clear error before any allocation (the
    emulated device reports 16 GiB available). The same N split into groups is accepted by the
    size check (its rows need only the largest group's words)."""
    n = 1_000_000
    b = torch.zeros(n, 4)
    s = torch.zeros(n)
    with cuda_emu.emulated(seed=1, workers=1, max_grid_dim=65535):
        with pytest.raises(
            RuntimeError,
            match=r"nms: N = 1000000 boxes need a suppression mask of N x 15625 64-bit words",
        ):
            frcnn_fast.nms(b, s, 0.5)
        with pytest.raises(RuntimeError, match=r"batched_nms_padded: N = 1000000 boxes need"):
            frcnn_fast.batched_nms_padded(b, s, torch.zeros(n, dtype=torch.int64), 0.5, 10)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
def test_cuda_million_boxes_in_groups():
    """1,000,000 boxes in 4,000 groups (positions and mask offsets past 2^31 bits): equals the CPU."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    groups = rng.integers(0, 4000, n)
    local = _clustered_np(rng, n, 1000)
    b = torch.as_tensor(local, dtype=torch.float32)
    s = torch.as_tensor(rng.uniform(size=n), dtype=torch.float32)
    i = torch.as_tensor(groups)
    want = frcnn_fast.batched_nms(b, s, i, 0.7)
    got = frcnn_fast.batched_nms(b.cuda(), s.cuda(), i.cuda(), 0.7).cpu()
    assert got.tolist() == want.tolist()


# ============================================================ GPU-only: sync-free padded form
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id=dtype_id(torch.float32))])
def test_padded_cuda_graph_capture_and_replay(dtype):
    rng = np.random.default_rng(0)
    boxes = torch.as_tensor(_clustered_np(rng, 3000, 1000), dtype=dtype, device="cuda")
    scores = torch.as_tensor(rng.uniform(size=3000), dtype=dtype, device="cuda")
    idxs = torch.as_tensor(rng.integers(0, 4, 3000), device="cuda")
    static_b, static_s, static_i = boxes.clone(), scores.clone(), idxs.clone()
    frcnn_fast.nms_padded(static_b, static_s, 0.7, 500)  # warm-up outside the capture
    frcnn_fast.batched_nms_padded(static_b, static_s, static_i, 0.7, 500)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, count = frcnn_fast.nms_padded(static_b, static_s, 0.7, 500, 0.1)
        bout, bcount = frcnn_fast.batched_nms_padded(static_b, static_s, static_i, 0.7, 500, 0.1)
    for seed in (1, 2):
        r = np.random.default_rng(seed)
        static_b.copy_(torch.as_tensor(_clustered_np(r, 3000, 1000), dtype=dtype))
        static_s.copy_(torch.as_tensor(r.uniform(size=3000), dtype=dtype))
        graph.replay()
        want, want_count = frcnn_fast.nms_padded(static_b.cpu(), static_s.cpu(), 0.7, 500, 0.1)
        assert torch.equal(out.cpu(), want) and int(count) == int(want_count)
        want, want_count = frcnn_fast.batched_nms_padded(
            static_b.cpu(), static_s.cpu(), static_i.cpu(), 0.7, 500, 0.1
        )
        assert torch.equal(bout.cpu(), want) and int(bcount) == int(want_count)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
def test_padded_cuda_does_not_sync():
    rng = np.random.default_rng(1)
    boxes = torch.as_tensor(_clustered_np(rng, 2000, 1000), dtype=torch.float32, device="cuda")
    scores = torch.as_tensor(rng.uniform(size=2000), dtype=torch.float32, device="cuda")
    idxs = torch.as_tensor(rng.integers(0, 4, 2000), device="cuda")
    frcnn_fast.nms_padded(boxes, scores, 0.7, 300)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        frcnn_fast.nms_padded(boxes, scores, 0.7, 300, 0.05)
        frcnn_fast.batched_nms_padded(boxes, scores, idxs, 0.7, 300, 0.05)
    finally:
        torch.cuda.set_sync_debug_mode("default")
