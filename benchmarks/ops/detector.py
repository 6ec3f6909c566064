"""torchvision's Faster R-CNN on our kernels: inference of ``fasterrcnn_resnet50_fpn`` (random
weights, nothing downloaded) on 2 images 3x480x640, with ``frcnn_fast.patch_torchvision()``
(reported as ``cpu`` / ``cuda``) and without it (``torchvision-cpu`` / ``torchvision-cuda``).

Three ops: ``detector`` is the whole ``model(images)`` (resizing to 800x1066, padded to
800x1088, backbone, RPN, box head, post-processing). ``detector_post_backbone`` times ``rpn`` +
``roi_heads`` + ``transform.postprocess`` on backbone features computed once, outside the timed
region: the part the patch changes (proposal filtering and NMS, box RoI pooling, per-class NMS
of the detections) plus the RPN and box heads' convolutions and linear layers, which it does
not change and which take most of the time. ``detector_post_processing`` leaves those heads out
too (their outputs computed once, unpatched) and times only what the patch routes, with
torchvision's own code around it (anchors, decoding, ``filter_proposals``, ``box_roi_pool``,
``postprocess_detections``, ``transform.postprocess``). ``detector_post_backbone_pipeline`` is
``detector_post_backbone`` with ``patch_torchvision(pipeline=True)`` (batched
``filter_proposals`` and ``postprocess_detections``), against the same unpatched model.
``detector_train_post_backbone`` (and its ``_pipeline`` twin) is the post-backbone part of a
training step: the RPN and the box head in training mode on cached features, with ground-truth
boxes, their four losses summed and back-propagated to the heads' weights and to the features
(so the box RoI pooling's backward runs too); the optimizer step is left out.

The patched and unpatched outputs (boxes, scores, labels) are compared once before timing;
the unpatched model's is the expected answer (there is no NumPy twin of a detector).

``python -m benchmarks`` times each implementation in turn (a call of several seconds is timed
once or twice). ``python -m benchmarks.detector_ab --repeats 5`` alternates with and without
the patch call by call (AB, BA, ...), so that a load that comes and goes hits both, and prints the
median ratio with its spread: the README's figure comes from there.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import timeit
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..registry import Case, OpBench, register

IMAGES, HEIGHT, WIDTH = 2, 480, 640
MODEL_SEED = 0
# A randomly initialised detector scores every class of every proposal about 1/91: with
# torchvision's default box_score_thresh (0.05) nothing would be left to post-process. At 0.0
# every proposal x class enters remove_small_boxes and the per-class NMS (1,000 proposals x 90
# classes per image), as in a trained model's worst case. The RPN's top-n stay at torchvision's
# eval defaults (1,000 per level before its NMS, 1,000 per image after).
MODEL_KWARGS = (("box_score_thresh", 0.0),)


def _inputs(case, rng):
    h, w = case.params["height"], case.params["width"]
    return {"images": rng.uniform(0.0, 1.0, (case.params["images"], 3, h, w))}


@functools.lru_cache(maxsize=None)
def _model(kwargs: Tuple[Tuple[str, object], ...], device: str):
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(MODEL_SEED)
        model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, **dict(kwargs)
        )
    return model.eval().to(device)


def _patch_on(on, pipeline: bool = False) -> None:
    """Put the patch in the wanted state (off, on, or on with ``pipeline=True``). Every thunk
    calls this first: switching costs ~0.1 s (it looks for already-built detectors among all
    live objects), so it happens once, in the checked call before timing, and never between two
    timed calls of one implementation."""
    import frcnn_fast

    holder = _patch_on.__dict__
    want = (pipeline,) if on else None
    if holder.get("state") == want:
        return
    if holder.get("patch") is not None:
        holder.pop("patch").disable()
    if on:
        holder["patch"] = frcnn_fast.patch_torchvision(pipeline=pipeline).enable()
    holder["state"] = want


def _images(ctx) -> torch.Tensor:
    # The detector's weights are float32 whatever --dtype says.
    return ctx.inputs["images"].to(torch.float32)


def _case_model(ctx):
    kwargs = MODEL_KWARGS + tuple(sorted(ctx.params.get("model", {}).items()))
    return _model(kwargs, str(ctx.device or "cpu"))


def _flat(detections) -> torch.Tensor:
    """``[K, 7]`` rows (image, label, score, x1, y1, x2, y2), image by image in the model's order."""
    rows = [
        torch.cat(
            [
                torch.full_like(d["scores"][:, None], i),
                d["labels"][:, None].to(d["scores"].dtype),
                d["scores"][:, None],
                d["boxes"],
            ],
            dim=1,
        )
        for i, d in enumerate(detections)
    ]
    return torch.cat(rows).double()


def _end_to_end(patched: bool):
    def factory(ctx):
        model, images = _case_model(ctx), list(_images(ctx).unbind(0))

        def run():
            _patch_on(patched)
            with torch.no_grad():
                return _flat(model(images))

        return run

    return factory


# The features of the last images (and model) seen: the backbone takes seconds, and the checked
# answer, the patched and the unpatched thunk all start from the same features.
_FEATURES: Dict[object, object] = {}


def _features(model, images: torch.Tensor):
    key = _FEATURES.get("images")
    if (
        _FEATURES.get("model") is not model
        or key is None
        or (key.shape, key.device) != (images.shape, images.device)
        or not torch.equal(key, images)
    ):
        _patch_on(False)
        with torch.no_grad():
            image_list, _ = model.transform(list(images.unbind(0)))
            features = model.backbone(image_list.tensors)
        _FEATURES.clear()
        _FEATURES.update(
            model=model, images=images.clone(), image_list=image_list, features=features
        )
    return _FEATURES["image_list"], _FEATURES["features"]


def _post_backbone(patched: bool, pipeline: bool = False):
    def factory(ctx):
        model, images = _case_model(ctx), _images(ctx)
        image_list, features = _features(model, images)
        original_sizes = [tuple(images.shape[-2:])] * images.shape[0]

        def run():
            _patch_on(patched, pipeline)
            with torch.no_grad():
                proposals, _ = model.rpn(image_list, features)
                detections, _ = model.roi_heads(features, proposals, image_list.image_sizes)
                return _flat(
                    model.transform.postprocess(detections, image_list.image_sizes, original_sizes)
                )

        return run

    return factory


# Ground truths of the training step: a few boxes per image, in the images' own pixels.
GT_PER_IMAGE = 6


def _targets(images: torch.Tensor):
    gen = torch.Generator().manual_seed(MODEL_SEED)
    h, w = images.shape[-2:]
    targets = []
    for _ in range(images.shape[0]):
        xy = torch.rand(GT_PER_IMAGE, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
        wh = (torch.rand(GT_PER_IMAGE, 2, generator=gen) * 0.25 + 0.05) * torch.tensor([w, h])
        labels = torch.randint(1, 91, (GT_PER_IMAGE,), generator=gen)
        targets.append(dict(boxes=torch.cat([xy, xy + wh], 1).to(images.device), labels=labels))
    return targets


# The RPN's and the box head's samplers draw from torch's global generator: seeded before every
# call, the patched and the unpatched step sample the same anchors and proposals.
TRAIN_SEED = 1


def _train_post_backbone(patched: bool, pipeline: bool = False):
    def factory(ctx):
        model, images = _case_model(ctx), _images(ctx)
        image_list, features = _features(model, images)
        _, targets = model.transform(list(images.unbind(0)), _targets(images))
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in features.items()}
        heads = (model.rpn, model.roi_heads)

        def run():
            _patch_on(patched, pipeline)
            torch.manual_seed(TRAIN_SEED)
            model.zero_grad(set_to_none=True)
            for leaf in leaves.values():
                leaf.grad = None
            for head in heads:
                head.train()
            try:
                proposals, rpn_losses = model.rpn(image_list, leaves, targets)
                _, box_losses = model.roi_heads(leaves, proposals, image_list.image_sizes, targets)
            finally:
                for head in heads:
                    head.eval()
            losses = {**rpn_losses, **box_losses}
            sum(losses.values()).backward()
            # The four losses, then the squared norm of the features' gradient (what the RoI
            # pooling's and the RPN head's backward put there).
            grad = sum(leaf.grad.double().square().sum() for leaf in leaves.values())
            return torch.stack([losses[k].detach().double() for k in LOSS_NAMES] + [grad])

        return run

    return factory


LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")


def compare_losses(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float):
    """The same four losses and gradient norm as without the patch, to ``rtol`` (the patch
    changes float rounding only; the samplers are seeded alike)."""
    names = LOSS_NAMES + ("|d features|^2",)
    bad = [
        f"{n} {a:.6g} != {e:.6g}"
        for n, a, e in zip(names, actual, expected)
        if not np.isclose(a, e, rtol=max(rtol, 1e-4), atol=1e-7)
    ]
    return "; ".join(bad) or None


# The batched sampler of pipeline=True draws its samples in another order than torchvision's
# per-image loop, so the step trains on other anchors and proposals of the same kinds: its
# losses are those of another draw, checked finite and near the unpatched ones.
PIPELINE_LOSS_RTOL = 0.5


def compare_pipeline_losses(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float):
    if not np.isfinite(actual).all():
        return f"non-finite losses {actual.tolist()}"
    return compare_losses(actual, expected, PIPELINE_LOSS_RTOL, atol)


def _head_outputs(model, image_list, features, patched: bool):
    """What the RPN head and the box head compute (convolutions and linear layers, which the
    patch does not touch), once: ``detector_post_processing`` times the rest. Computed with the
    patch as the timed calls will have it: the box head's rows follow the proposals' order,
    which differs where proposals have equal scores (torchvision does not order ties, we keep
    them in input order)."""
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    cached = _FEATURES.get(("heads", patched))
    if cached is not None:
        return cached
    _patch_on(patched)
    rpn, roi = model.rpn, model.roi_heads
    with torch.no_grad():
        feature_list = list(features.values())
        objectness, deltas = rpn.head(feature_list)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals, _ = rpn(image_list, features)
        pooled = roi.box_roi_pool(features, proposals, image_list.image_sizes)
        class_logits, box_regression = roi.box_predictor(roi.box_head(pooled))
    heads = dict(
        objectness=objectness,
        deltas=deltas,
        per_level=per_level,
        class_logits=class_logits,
        box_regression=box_regression,
    )
    _FEATURES[("heads", patched)] = heads
    return heads


def _post_processing(patched: bool):
    def factory(ctx):
        model, images = _case_model(ctx), _images(ctx)
        image_list, features = _features(model, images)
        heads = _head_outputs(model, image_list, features, patched)
        rpn, roi, sizes = model.rpn, model.roi_heads, image_list.image_sizes
        original_sizes = [tuple(images.shape[-2:])] * images.shape[0]

        def run():
            _patch_on(patched)
            with torch.no_grad():
                anchors = rpn.anchor_generator(image_list, list(features.values()))
                proposals = rpn.box_coder.decode(heads["deltas"], anchors).view(len(anchors), -1, 4)
                proposals, _ = rpn.filter_proposals(
                    proposals, heads["objectness"], sizes, heads["per_level"]
                )
                # Pooled for its cost; the box head's answer on it is the cached one.
                roi.box_roi_pool(features, proposals, sizes)
                boxes, scores, labels = roi.postprocess_detections(
                    heads["class_logits"], heads["box_regression"], proposals, sizes
                )
                detections = [
                    dict(boxes=b, scores=s, labels=l) for b, s, l in zip(boxes, scores, labels)
                ]
                return _flat(model.transform.postprocess(detections, sizes, original_sizes))

        return run

    return factory


def _trusted(part):
    """The unpatched answer, on the benchmark's own float32 images (the runner hands the
    trusted path float64 copies)."""

    def factory(ctx):
        return part(False)(ctx)

    return factory


# Boxes are pixel coordinates up to 640: atol (1e-5 in float32) scaled to them.
BOX_SCALE = 640.0


def _same_rows(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    return (
        (actual[..., 0] == expected[..., 0])
        & (actual[..., 1] == expected[..., 1])
        & np.isclose(actual[..., 2], expected[..., 2], rtol=rtol, atol=1e-6)
        & np.isclose(actual[..., 3:], expected[..., 3:], rtol=rtol, atol=atol).all(axis=-1)
    )


def compare_detections(
    actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float
) -> Optional[str]:
    """Same detections: as many, and row for row the same image and label, the score within
    ``rtol`` (and 1e-6) and the box within ``atol`` px (plus ``rtol``). Our RoI pooling and NMS
    give the same numbers up to float rounding. Detections of equal scores may come in another
    order (torchvision does not order ties; we keep them in input order): rows that differ must
    pair up with each other."""
    if actual.shape != expected.shape:
        return f"{len(actual)} detections != {len(expected)} without the patch"
    if len(actual) == 0:
        return "no detections at all: nothing was compared"
    bad = np.flatnonzero(~_same_rows(actual, expected, rtol, atol))
    left = list(bad)
    for i in bad:
        partners = [j for j in left if _same_rows(actual[i], expected[j], rtol, atol)]
        if not partners:
            return (
                f"{bad.size} of {len(actual)} detections differ; row {i} (image, label, score, "
                f"box) {actual[i].tolist()} has no counterpart, in that place {expected[i].tolist()}"
            )
        left.remove(partners[0])
    return None


CASE = Case(
    f"{IMAGES} x 3x{HEIGHT}x{WIDTH}",
    IMAGES,
    dict(images=IMAGES, height=HEIGHT, width=WIDTH),
)
_COMMON = dict(
    family="detector",
    size_unit="images",
    cases=[CASE],
    make_inputs=_inputs,
    reference=None,
    # No NumPy twin: every case is checked against the unpatched model ("trusted").
    reference_max_size=-1,
    torchvision_name="torchvision fasterrcnn_resnet50_fpn, unpatched",
    atol_scale=BOX_SCALE,
    compare=compare_detections,
)


def _detector_op(name, part, description, order, pipeline=False, compare=compare_detections):
    """One detector op: ``part(patched[, pipeline])`` with the patch (``pipeline`` as given)
    against it without, checked against the unpatched answer."""
    ours = part(True, pipeline=True) if pipeline else part(True)
    return OpBench(
        name=name,
        frcnn=ours,
        torchvision=part(False),
        trusted=_trusted(part),
        description=description,
        order=order,
        **{**_COMMON, "compare": compare},
    )


OPS = {
    op.name: op
    for op in [
        _detector_op(
            "detector",
            _end_to_end,
            "fasterrcnn_resnet50_fpn (random weights, box_score_thresh 0) inference, end to end, with / without patch_torchvision()",
            900,
        ),
        _detector_op(
            "detector_post_backbone",
            _post_backbone,
            "its rpn + roi_heads + transform.postprocess on cached backbone features, with / without patch_torchvision()",
            901,
        ),
        _detector_op(
            "detector_post_backbone_pipeline",
            _post_backbone,
            "the same with patch_torchvision(pipeline=True): batched filter_proposals and postprocess_detections",
            903,
            pipeline=True,
        ),
        _detector_op(
            "detector_train_post_backbone",
            _train_post_backbone,
            "a training step's rpn + roi_heads, losses and backward on cached backbone features (ground truths drawn), with / without patch_torchvision()",
            904,
            compare=compare_losses,
        ),
        _detector_op(
            "detector_train_post_backbone_pipeline",
            _train_post_backbone,
            "the same with patch_torchvision(pipeline=True): batched anchor and proposal targets and sampling (another draw: losses checked near)",
            905,
            pipeline=True,
            compare=compare_pipeline_losses,
        ),
        _detector_op(
            "detector_post_processing",
            _post_processing,
            "only what the patch routes: anchors, proposal decoding and filtering (NMS), box RoI pooling, detection post-processing (per-class NMS), on cached head outputs",
            902,
        ),
    ]
}


def interleaved(
    repeats: int,
    threads: int,
    parts=(
        "detector_post_processing",
        "detector_post_backbone",
        "detector_post_backbone_pipeline",
        "detector_train_post_backbone",
        "detector_train_post_backbone_pipeline",
        "detector",
    ),
):
    """Alternate patched and unpatched calls (AB, BA, AB, ...) after one checked call of each;
    returns ``{op: (patched seconds list, unpatched seconds list)}``."""
    from ..registry import Context
    from ..runner import to_numpy

    torch.set_num_threads(threads)
    rng = np.random.default_rng(MODEL_SEED)
    images = torch.from_numpy(_inputs(CASE, rng)["images"]).to(torch.float32)
    results = {}
    for name in parts:
        op = OPS[name]
        ctx = Context(case=CASE, inputs={"images": images}, device=torch.device("cpu"))
        ours, theirs = op.frcnn(ctx), op.torchvision(ctx)
        expected, actual = to_numpy(theirs()), to_numpy(ours())
        problem = op.compare(actual, expected, 1e-4, 1e-5 * BOX_SCALE)
        if problem is not None:
            raise SystemExit(f"{name}: patched and unpatched outputs differ: {problem}")
        print(f"{name}: {len(actual)} output rows, the same with and without the patch")
        times = ([], [])
        for r in range(repeats):
            for which in (0, 1) if r % 2 == 0 else (1, 0):
                _patch_on(which == 0, name.endswith("_pipeline"))  # outside the timed region
                fn = (ours, theirs)[which]
                start = timeit.default_timer()
                fn()
                times[which].append(timeit.default_timer() - start)
        results[name] = times
        _patch_on(False)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="detector benchmark, patched and unpatched calls alternated"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--ops",
        default="detector_post_processing,detector_post_backbone,detector_post_backbone_pipeline,"
        "detector_train_post_backbone,detector_train_post_backbone_pipeline,detector",
    )
    args = p.parse_args(argv)
    results = interleaved(args.repeats, args.threads, tuple(args.ops.split(",")))
    for name, (ours, theirs) in results.items():
        pairs = min(len(ours), len(theirs))
        ratios = sorted(t / o for o, t in zip(ours[:pairs], theirs[:pairs]))
        print(
            f"{name}: patched {statistics.median(ours) * 1e3:.0f} ms, unpatched "
            f"{statistics.median(theirs) * 1e3:.0f} ms (medians of {len(ours)} / {len(theirs)}); "
            f"unpatched / patched per pair: median {statistics.median(ratios):.2f}x, "
            f"range {ratios[0]:.2f}x-{ratios[-1]:.2f}x"
        )
        print(
            "  pairs (patched / unpatched ms):",
            ", ".join(f"{o * 1e3:.0f}/{t * 1e3:.0f}" for o, t in zip(ours, theirs)),
        )
    return 0


for _op in OPS.values():
    register(_op)
