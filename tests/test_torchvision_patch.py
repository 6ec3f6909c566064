"""frcnn_fast.patch_torchvision(): torchvision's own detectors (random weights, nothing
downloaded) give the same detections, losses and gradients on our kernels, every binding site
is restored exactly, and a patched model still compiles with torch.jit.script."""

import sys
from collections import OrderedDict

import pytest
import torch
import torchvision
from torchvision.models import detection as tvd

import frcnn_fast
from frcnn_fast import count_kernels, patch_torchvision
from frcnn_fast.torchvision_patch import _SITES

MODELS = {
    "fasterrcnn_resnet50_fpn": tvd.fasterrcnn_resnet50_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn": tvd.fasterrcnn_mobilenet_v3_large_fpn,
    "maskrcnn_resnet50_fpn": tvd.maskrcnn_resnet50_fpn,
}


def build(name, seed=0):
    torch.manual_seed(seed)
    # box_score_thresh 0: random heads score every class ~1/91, below the default 0.05, and a
    # comparison of empty detections would prove nothing.
    model = MODELS[name](
        weights=None,
        weights_backbone=None,
        min_size=320,
        max_size=320,
        box_score_thresh=0.0,
        box_detections_per_img=50,
    )
    if "mobilenet" in name:
        # The randomly initialised MobileNetV3 FPN outputs ~1e-7: every objectness score is the
        # same float, and NMS order among equal scores is a deliberate difference (ours is
        # stable, torchvision's is not), which would make the comparison about ties. Scaled
        # features give distinct scores.
        model.backbone.register_forward_hook(
            lambda mod, args, out: OrderedDict((k, v * 1e6) for k, v in out.items())
        )
    return model


def images(seed=1, sizes=((3, 240, 320), (3, 300, 260))):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(s, generator=g) for s in sizes]


def targets(imgs, masks=False, seed=2):
    g = torch.Generator().manual_seed(seed)
    out = []
    for img in imgs:
        h, w = img.shape[-2:]
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = 20 + torch.rand(3, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        t = {
            "boxes": torch.cat([xy, xy + wh], dim=1),
            "labels": torch.randint(1, 91, (3,), generator=g),
        }
        if masks:
            m = torch.zeros(3, h, w, dtype=torch.uint8)
            for i, b in enumerate(t["boxes"].round().long()):
                m[i, b[1] : b[3], b[0] : b[2]] = 1
            t["masks"] = m
        out.append(t)
    return out


def sites():
    """Every attribute the patch touches, by (owner, name) -> object."""
    import torchvision.ops.poolers as poolers

    found = {}
    for mod_name, attrs in _SITES:
        mod = sys.modules[mod_name]
        for attr in attrs:
            found[(mod_name, attr)] = getattr(mod, attr)
    for cls in (
        sys.modules["torchvision.ops.roi_align"].RoIAlign,
        sys.modules["torchvision.ops.roi_pool"].RoIPool,
        poolers.MultiScaleRoIAlign,
    ):
        found[(cls.__qualname__, "forward")] = cls.__dict__["forward"]
    return found


def assert_same_detections(a, b, masks=False):
    assert len(a) == len(b)
    for da, db in zip(a, b):
        assert da["boxes"].shape[0] > 0  # something to compare
        torch.testing.assert_close(da["labels"], db["labels"], rtol=0, atol=0)
        torch.testing.assert_close(da["boxes"], db["boxes"], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(da["scores"], db["scores"], rtol=1e-4, atol=1e-6)
        if masks:
            torch.testing.assert_close(da["masks"], db["masks"], rtol=1e-4, atol=1e-4)


def test_every_site_rebound_then_restored_exactly():
    model = build("fasterrcnn_mobilenet_v3_large_fpn")
    before = sites()
    sim_before = (model.rpn.box_similarity, model.roi_heads.box_similarity)
    with patch_torchvision():
        during = sites()
        for key, value in during.items():
            assert value is not before[key], f"{key} was not rebound"
            assert value.__module__.startswith("frcnn_fast"), key
        assert model.rpn.box_similarity is frcnn_fast.box_iou
        assert model.roi_heads.box_similarity is frcnn_fast.box_iou
        built_inside = build("fasterrcnn_mobilenet_v3_large_fpn")
        assert built_inside.rpn.box_similarity is frcnn_fast.box_iou
    after = sites()
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] is before[key], f"{key} not restored"
    assert (model.rpn.box_similarity, model.roi_heads.box_similarity) == sim_before
    assert model.rpn.box_similarity is torchvision.ops.boxes.box_iou
    assert built_inside.rpn.box_similarity is torchvision.ops.boxes.box_iou
    assert built_inside.roi_heads.box_similarity is torchvision.ops.boxes.box_iou
    assert not frcnn_fast.is_patched()


def test_enable_disable_and_nesting():
    before = sites()
    outer = patch_torchvision().enable()
    assert frcnn_fast.is_patched()
    with patch_torchvision():
        assert torchvision.ops.nms is frcnn_fast.nms
    assert frcnn_fast.is_patched()  # the outer user still holds it
    assert torchvision.ops.boxes.batched_nms is frcnn_fast.batched_nms
    outer.enable()  # idempotent
    outer.disable()
    outer.disable()
    assert not frcnn_fast.is_patched()
    assert all(v is before[k] for k, v in sites().items())


def test_exception_inside_block_restores():
    before = sites()
    with pytest.raises(RuntimeError, match="boom"):
        with patch_torchvision():
            raise RuntimeError("boom")
    assert all(v is before[k] for k, v in sites().items())


@pytest.mark.parametrize("name", list(MODELS))
def test_inference_same_detections_and_our_kernels_run(name):
    model = build(name).eval()
    imgs = images()
    with torch.no_grad(), count_kernels() as theirs:
        expected = model(imgs)
    assert theirs.counts["torchvision"] > 0 and theirs.counts["frcnn_fast"] == 0
    with torch.no_grad(), patch_torchvision(), count_kernels() as ours:
        got = model(imgs)
    assert ours.counts["torchvision"] == 0, ours.ops
    for op in ("frcnn_fast::batched_nms", "frcnn_fast::multilevel_roi_align"):
        assert ours.ops[op] > 0, ours.ops
    assert_same_detections(got, expected, masks=name.startswith("mask"))
    # after the block, torchvision's kernels again
    with torch.no_grad(), count_kernels() as again:
        model(imgs)
    assert again.counts["frcnn_fast"] == 0 and again.counts["torchvision"] > 0


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_fpn", "maskrcnn_resnet50_fpn"])
def test_training_step_same_losses_and_gradients(name):
    imgs = images()
    tgts = targets(imgs, masks=name.startswith("mask"))

    def step(patched):
        model = build(name).train()
        torch.manual_seed(5)  # the fg/bg samplers draw random permutations
        if patched:
            with patch_torchvision(), count_kernels() as counter:
                losses = model(imgs, tgts)
                sum(losses.values()).backward()
            assert counter.counts["torchvision"] == 0, counter.ops
            assert counter.counts["frcnn_fast"] > 0
        else:
            losses = model(imgs, tgts)
            sum(losses.values()).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        return {k: v.detach() for k, v in losses.items()}, grads

    losses_tv, grads_tv = step(False)
    losses_ff, grads_ff = step(True)
    assert losses_tv.keys() == losses_ff.keys()
    for k in losses_tv:
        torch.testing.assert_close(losses_ff[k], losses_tv[k], rtol=1e-4, atol=1e-6)
    assert grads_tv.keys() == grads_ff.keys()
    # Relative to each whole gradient: float32 rounding differences of the pooling (its
    # backward sums in another order) grow through ~50 convolutions on the way to the first
    # layers (maskrcnn_resnet50_fpn: ~5e-3 at conv1, ~2e-3 at the heads).
    errs = {
        k: float((grads_ff[k] - grads_tv[k]).norm() / grads_tv[k].norm().clamp(min=1e-12))
        for k in grads_tv
    }
    worst = max(errs, key=errs.get)
    assert errs[worst] < 2e-2, f"{worst}: relative gradient difference {errs[worst]:.2e}"
    heads = [k for k in errs if k.startswith(("roi_heads", "rpn"))]
    assert max(errs[k] for k in heads) < 5e-3, {k: errs[k] for k in heads}


def test_patched_model_scripts_and_runs_our_kernels_scripted():
    model = build("fasterrcnn_resnet50_fpn").eval()
    imgs = images()
    scripted_tv = torch.jit.script(model)
    with torch.no_grad():
        _, expected = scripted_tv(imgs)
    with patch_torchvision():
        scripted_ff = torch.jit.script(model)
    # the scripted model keeps our kernels after the patch is off: they are compiled in
    with torch.no_grad(), count_kernels() as counter:
        _, got = scripted_ff(imgs)
    assert counter.counts["torchvision"] == 0, counter.ops
    assert counter.ops["frcnn_fast::batched_nms"] > 0
    assert counter.ops["frcnn_fast::multilevel_roi_align"] > 0
    assert_same_detections(got, expected)
    # and a model scripted after the patch is off runs torchvision's again (no stale cache)
    with torch.no_grad(), count_kernels() as counter:
        torch.jit.script(model)(imgs)
    assert counter.counts["frcnn_fast"] == 0 and counter.counts["torchvision"] > 0, counter.ops
