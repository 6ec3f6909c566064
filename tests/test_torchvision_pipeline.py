"""patch_torchvision(pipeline=True): torchvision's fasterrcnn_resnet50_fpn (random weights) gives
the same detections with the batched filter_proposals / postprocess_detections, the same RPN
targets with the batched matcher, a finite training step whose deterministic losses agree, and
disable puts back every method object."""

import torch
from test_torchvision_patch import assert_same_detections, build, images, targets
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from frcnn_fast import _torchvision_pipeline, count_kernels, patch_torchvision
from frcnn_fast.torchvision_patch import is_patched, is_pipeline_patched

NAMES = [
    (RegionProposalNetwork, "filter_proposals"),
    (RegionProposalNetwork, "assign_targets_to_anchors"),
    (RoIHeads, "postprocess_detections"),
    (RoIHeads, "select_training_samples"),
]


def methods():
    return {(cls, name): cls.__dict__[name] for cls, name in NAMES}


def test_enable_routes_and_disable_restores_every_method():
    before = methods()
    with patch_torchvision():  # the plain patch leaves them alone
        assert methods() == before and not is_pipeline_patched()
    with patch_torchvision(pipeline=True):
        assert is_pipeline_patched() and is_patched()
        for key, fn in methods().items():
            assert fn is not before[key]
            assert fn is getattr(_torchvision_pipeline, key[1])
        with patch_torchvision():  # nested plain user: the pipeline stays
            pass
        assert is_pipeline_patched()
    after = methods()
    for key in before:
        assert after[key] is before[key], key
    assert not is_pipeline_patched() and not is_patched()


def test_inference_same_detections():
    model = build("fasterrcnn_resnet50_fpn").eval()
    imgs = images()
    with torch.no_grad(), patch_torchvision():
        expected = model(imgs)
    with torch.no_grad(), patch_torchvision(pipeline=True), count_kernels() as ours:
        got = model(imgs)
    assert ours.counts["torchvision"] == 0, ours.ops
    assert_same_detections(got, expected)
    with torch.no_grad():
        assert_same_detections(model(imgs), expected)  # torchvision's own, after the block


def test_filter_proposals_same_boxes_and_order():
    model = build("fasterrcnn_resnet50_fpn").eval()
    # fewer than NMS leaves: the post-NMS cut is exercised
    model.rpn._pre_nms_top_n["testing"] = 300
    model.rpn._post_nms_top_n["testing"] = 60
    imgs = images()
    with torch.no_grad():
        image_list, _ = model.transform(imgs)
        features = model.backbone(image_list.tensors)
        expected, _ = model.rpn(image_list, features)
        with patch_torchvision(pipeline=True):
            got, _ = model.rpn(image_list, features)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.shape[0] == 60
        torch.testing.assert_close(g, e, rtol=0, atol=1e-4)


def test_postprocess_detections_groups_by_image_and_class():
    # Two images with the same proposals and logits, and every class's box the same: a box of
    # one image must not suppress the other's, nor one class another's.
    roi = build("fasterrcnn_resnet50_fpn").roi_heads
    g = torch.Generator().manual_seed(4)
    xy = torch.rand(80, 2, generator=g) * 200
    props = torch.cat([xy, xy + 5 + torch.rand(80, 2, generator=g) * 80], dim=1)
    logits = torch.randn(80, 91, generator=g).repeat(2, 1)
    regression = torch.zeros(160, 91 * 4)
    sizes = [(300, 300), (300, 300)]
    expected = roi.postprocess_detections(logits, regression, [props, props], sizes)
    with patch_torchvision(pipeline=True):
        got = roi.postprocess_detections(logits, regression, [props, props], sizes)
    for e, o in zip(expected, got):
        for a, b in zip(o, e):
            assert a.shape == b.shape and a.shape[0] == roi.detections_per_img
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_rpn_targets_equal_torchvision():
    model = build("fasterrcnn_resnet50_fpn").train()
    imgs = images()
    tgts = targets(imgs)
    tgts[1] = dict(boxes=torch.zeros((0, 4)), labels=torch.zeros((0,), dtype=torch.int64))
    with torch.no_grad():
        image_list, tgts_t = model.transform(imgs, tgts)
        features = list(model.backbone(image_list.tensors).values())
        anchors = model.rpn.anchor_generator(image_list, features)
    labels_tv, matched_tv = model.rpn.assign_targets_to_anchors(anchors, tgts_t)
    with patch_torchvision(pipeline=True):
        labels, matched = model.rpn.assign_targets_to_anchors(anchors, tgts_t)
    for a, b in zip(labels, labels_tv):
        assert a.dtype == b.dtype and torch.equal(a, b)
    for a, b in zip(matched, matched_tv):
        assert a.shape == b.shape and torch.equal(a, b)
    assert (labels[0] == 1).any() and (labels[0] == -1).any() and not (labels[1] != 0).any()


def test_training_samples_counts_and_invariants():
    model = build("fasterrcnn_resnet50_fpn").train()
    roi = model.roi_heads
    # more foreground candidates than the quota (64 * 0.25 = 16): the quota decides the counts
    roi.fg_bg_sampler.batch_size_per_image = 64
    g = torch.Generator().manual_seed(3)
    gts = targets(images())
    proposals = []
    for t in gts:
        xy = torch.rand(300, 2, generator=g) * 200
        random_boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=g) * 60], dim=1)
        jittered = t["boxes"].repeat(20, 1) + torch.randn(60, 4, generator=g) * 3
        proposals.append(torch.cat([jittered, random_boxes]))
    torch.manual_seed(0)
    tv = roi.select_training_samples(proposals, gts)
    with patch_torchvision(pipeline=True):
        ours = roi.select_training_samples(proposals, gts)
    for i in range(len(gts)):
        (b_tv, _, l_tv, _), (b, m, lab, r) = ([x[i] for x in tv], [x[i] for x in ours])
        assert b.shape == b_tv.shape and lab.shape == l_tv.shape  # same counts
        assert int((lab > 0).sum()) == int((l_tv > 0).sum()) == 16
        assert b.shape[0] == 64
        # every kept box is a proposal or a ground truth; foreground rows regress to their match
        pool = torch.cat([proposals[i], gts[i]["boxes"]])
        assert (b[:, None] == pool[None]).all(-1).any(1).all()
        fg = lab > 0
        torch.testing.assert_close(lab[fg], gts[i]["labels"][m[fg]], rtol=0, atol=0)
        expected = roi.box_coder.encode_single(gts[i]["boxes"][m[fg]], b[fg])
        torch.testing.assert_close(r[fg], expected, rtol=1e-4, atol=1e-5)
        assert (m >= 0).all()


def test_training_step_finite_and_deterministic_losses_close():
    imgs = images()
    tgts = targets(imgs)

    def step(pipeline):
        model = build("fasterrcnn_resnet50_fpn").train()
        torch.manual_seed(5)
        with patch_torchvision(pipeline=pipeline):
            losses = model(imgs, tgts)
            sum(losses.values()).backward()
        return {k: v.detach() for k, v in losses.items()}

    base, ours = step(False), step(True)
    assert base.keys() == ours.keys()
    for k, v in ours.items():
        assert torch.isfinite(v), k
    # The RPN's classification and regression losses depend on its sampler's draw (ours is
    # torchvision's own sampler, same seed, same labels: equal); the box head's on another draw.
    torch.testing.assert_close(
        ours["loss_objectness"], base["loss_objectness"], rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(
        ours["loss_rpn_box_reg"], base["loss_rpn_box_reg"], rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(ours["loss_classifier"], base["loss_classifier"], rtol=0.2, atol=0)
