"""A small Faster R-CNN built from frcnn_fast's blocks, trained on synthetic rectangles.

Images are noise with 1-4 filled rectangles of 3 classes (red, green, blue) of many sizes. The
backbone is torchvision's ResNet-18 up to layer2 (stride 8) with random weights: nothing is
downloaded. The run prints the four losses with a progress bar, evaluates mAP@0.5 on held-out
images with pycocotools and writes a PNG of predicted (solid) and true (dashed) boxes.

    python examples/faster_rcnn_synthetic.py                      # one process, CPU
    torchrun --nproc_per_node=2 examples/faster_rcnn_synthetic.py # DistributedDataParallel

Under torchrun every process trains on its own shard of each step's images (gloo on CPU, nccl
on GPU) and DistributedDataParallel averages the gradients. Two processes with --batch 2 train
the same model as one process with --batch 4, to float rounding: every process draws the same
global batch and keeps its shard; each image samples its anchors and RoIs with a generator of
its own, seeded by (seed, step, index in the global batch), so no draw depends on how the batch
is split; the backbone normalises with GroupNorm, which sees one image at a time (BatchNorm's
statistics would be those of each process's shard); and each loss is divided by its count over
the whole global batch, not the process's own (the average of per-process means is not the
mean when the processes sampled different numbers of anchors or RoIs). --out-json writes the
per-step losses and a checksum of the final weights (tests/test_example_ddp.py compares them).

The inference path (``Detector``: anchors, ``generate_proposals_padded``, RoIAlign, box head,
``batched_nms_padded``) has fixed shapes and no host sync, so it runs under
``torch.compile(fullgraph=True)`` and ``torch.export`` (tests/test_example_compile.py).
"""

import argparse
import contextlib
import io
import json
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm import tqdm

import frcnn_fast
from frcnn_fast.detection import (
    anchor_targets,
    box_head_loss,
    generate_proposals,
    generate_proposals_padded,
    proposal_targets,
    rpn_loss,
)

NUM_CLASSES = 3  # + background
COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.4, 1.0]])


def synthetic_image(rng, size):
    """One image ``[3, size, size]`` with its boxes (xyxy) and labels (1..NUM_CLASSES)."""
    img = rng.uniform(0.0, 0.35, (3, size, size)).astype(np.float32)
    boxes, labels = [], []
    for _ in range(rng.integers(1, 5)):
        w, h = rng.integers(12, size // 2, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        c = int(rng.integers(0, NUM_CLASSES))
        img[:, y : y + h, x : x + w] = COLOURS[c][:, None, None] * rng.uniform(0.7, 1.0)
        boxes.append([x, y, x + w, y + h])
        labels.append(c + 1)
    return torch.from_numpy(img), torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)


def batch(rng, n, size):
    items = [synthetic_image(rng, size) for _ in range(n)]
    return torch.stack([i[0] for i in items]), [i[1] for i in items], [i[2] for i in items]


def group_norm(channels):
    return nn.GroupNorm(32, channels)


class FasterRCNN(nn.Module):
    def __init__(self, image_size, stride=8):
        super().__init__()
        r = torchvision.models.resnet18(weights=None, norm_layer=group_norm)
        self.backbone = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2)
        self.stride, channels = stride, 128
        self.anchor_sizes, self.ratios = (16, 32, 64), (0.5, 1.0, 2.0)
        a = len(self.anchor_sizes) * len(self.ratios)
        self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(channels, a, 1)
        self.rpn_box = nn.Conv2d(channels, 4 * a, 1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 7 * 7, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
        )
        self.cls = nn.Linear(256, NUM_CLASSES + 1)
        self.box = nn.Linear(256, 4 * (NUM_CLASSES + 1))
        self.image_size = image_size

    def rpn(self, images):
        feats = self.backbone(images)
        t = F.relu(self.rpn_conv(feats))
        b, _, h, w = feats.shape
        objectness = self.rpn_cls(t).permute(0, 2, 3, 1).reshape(b, -1)
        deltas = self.rpn_box(t).permute(0, 2, 3, 1).reshape(b, -1, 4)
        anchors = frcnn_fast.generate_anchors(
            (h, w), self.stride, self.anchor_sizes, self.ratios, 0.5, device=images.device
        )
        return feats, objectness, deltas, anchors

    def box_head(self, feats, rois):
        pooled = frcnn_fast.roi_align(feats, rois, (7, 7), 1.0 / self.stride, 2, aligned=True)
        x = self.head(pooled)
        return self.cls(x), self.box(x)

    def forward(self, images, gt_boxes, gt_labels, generators, global_count=None):
        """The four training losses. ``generators``: one per image (see the module's
        docstring). ``global_count(n)`` sums a count over all processes (None: one process);
        each loss is then normalised by the global count, scaled by the number of processes
        so that DistributedDataParallel's gradient average gives the global batch's mean."""
        sizes = [tuple(images.shape[-2:])] * images.shape[0]
        feats, objectness, deltas, anchors = self.rpn(images)
        labels, targets = [], []
        for gt, size, gen in zip(gt_boxes, sizes, generators):
            lab, _, tgt = anchor_targets(anchors, [gt], [size], generator=gen)
            labels.append(lab)
            targets.append(tgt)
        labels, targets = torch.cat(labels), torch.cat(targets)
        loss_obj, loss_rpn_box = rpn_loss(objectness, deltas, labels, targets)
        proposals, _ = generate_proposals(
            objectness, deltas, anchors, sizes, pre_nms_top_n=600, post_nms_top_n=128,
            min_size=1.0,
        )  # fmt: skip
        rois, roi_labels, roi_targets = [], [], []
        for p, gt, lab, gen in zip(proposals, gt_boxes, gt_labels, generators):
            r, rl, rt, _ = proposal_targets(
                [p], [gt], [lab], batch_size_per_image=64, generator=gen
            )
            rois += r
            roi_labels += rl
            roi_targets += rt
        class_logits, box_regression = self.box_head(feats, rois)
        loss_cls, loss_box = box_head_loss(class_logits, box_regression, roi_labels, roi_targets)
        if global_count is not None:
            # rpn_loss and box_head_loss (normalization="torchvision") divide both of their
            # losses by the sampled anchors and RoIs of this process
            n_rpn = (labels >= 0).sum().clamp(min=1)
            n_roi = (torch.cat(roi_labels) >= 0).sum().clamp(min=1)
            world = dist.get_world_size()
            rpn_scale = n_rpn * world / global_count(n_rpn).clamp(min=1)
            roi_scale = n_roi * world / global_count(n_roi).clamp(min=1)
            loss_obj, loss_rpn_box = loss_obj * rpn_scale, loss_rpn_box * rpn_scale
            loss_cls, loss_box = loss_cls * roi_scale, loss_box * roi_scale
        return {"rpn_obj": loss_obj, "rpn_box": loss_rpn_box, "cls": loss_cls, "box": loss_box}


class Detector(nn.Module):
    """Inference with fixed shapes: ``images[B, 3, H, W]`` -> ``boxes[B, D, 4]``,
    ``scores[B, D]``, ``labels[B, D]`` (int64, 0 in unused slots) and ``counts[B]``; row b holds
    its ``counts[b]`` detections in decreasing score, then zeros. No host sync, no
    data-dependent shape: ``torch.compile(fullgraph=True)`` and ``torch.export`` take it whole.
    """

    def __init__(self, model, score_thresh=0.05, nms_thresh=0.5, max_dets=50, pre=300, post=64):
        super().__init__()
        self.model = model
        self.score_thresh, self.nms_thresh, self.max_dets = score_thresh, nms_thresh, max_dets
        self.pre, self.post = pre, post

    def forward(self, images):
        m, b, post, c = self.model, images.shape[0], self.post, NUM_CLASSES
        size = (images.shape[-2], images.shape[-1])
        feats, objectness, deltas, anchors = m.rpn(images)
        proposals, _, counts = generate_proposals_padded(
            objectness, deltas, anchors, [size] * b, pre_nms_top_n=self.pre, post_nms_top_n=post,
            min_size=1.0,
        )  # fmt: skip
        image = torch.arange(b, device=images.device).repeat_interleave(post)
        rois = torch.cat([image[:, None].to(proposals.dtype), proposals.reshape(-1, 4)], dim=1)
        class_logits, box_regression = m.box_head(feats, rois)
        # the padding slots (zero boxes) are pooled too; a score of 0 keeps them out of NMS
        real = torch.arange(post, device=images.device)[None, :] < counts[:, None]
        probs = class_logits.softmax(-1)[:, 1:] * real.reshape(-1, 1)
        boxes = frcnn_fast.decode_boxes(box_regression, rois[:, 1:], (10.0, 10.0, 5.0, 5.0))
        boxes = frcnn_fast.clip_boxes(boxes.reshape(b, post, c + 1, 4)[:, :, 1:], size)
        boxes, probs = boxes.reshape(b, post * c, 4), probs.reshape(b, post * c)
        classes = torch.arange(1, c + 1, device=images.device).repeat(post)
        out_boxes, out_scores, out_labels, out_counts = [], [], [], []
        for i in range(b):  # B is part of the shape: the loop unrolls under compile
            keep, count = frcnn_fast.batched_nms_padded(
                boxes[i], probs[i], classes, self.nms_thresh, self.max_dets, self.score_thresh
            )
            used = keep >= 0
            k = keep.clamp(min=0)
            out_boxes.append(boxes[i][k] * used[:, None])
            out_scores.append(probs[i][k] * used)
            out_labels.append(classes[k] * used)
            out_counts.append(count)
        return (
            torch.stack(out_boxes),
            torch.stack(out_scores),
            torch.stack(out_labels),
            torch.stack(out_counts),
        )


@torch.no_grad()
def detect(model, images):
    """Per image ``(boxes, scores, labels)`` of ``Detector`` cut to the counts."""
    boxes, scores, labels, counts = Detector(model)(images)
    return [(boxes[i, :n], scores[i, :n], labels[i, :n]) for i, n in enumerate(counts.tolist())]


def coco_map50(model, images, gt_boxes, gt_labels):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = detect(model, images)
    gt = {"images": [], "annotations": [], "categories": [{"id": c} for c in range(1, 4)]}
    results = []
    for i, (boxes, labels, (db, ds, dc)) in enumerate(zip(gt_boxes, gt_labels, dets)):
        gt["images"].append({"id": i, "width": images.shape[-1], "height": images.shape[-2]})
        for b, c in zip(boxes.tolist(), labels.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": c,
                 "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
        for b, s, c in zip(db.tolist(), ds.tolist(), dc.tolist()):
            results.append(
                {"image_id": i, "category_id": c, "score": s,
                 "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not results:
            return 0.0, dets
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1]), dets


def save_png(path, images, gt_boxes, dets, n=4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3))
    for ax, img, gt, (b, s, c) in zip(axes, images, gt_boxes, dets):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        for x1, y1, x2, y2 in gt.tolist():
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ls="--", ec="w"))
        for (x1, y1, x2, y2), score, cls in zip(b.tolist(), s.tolist(), c.tolist()):
            if score > 0.5:
                ax.add_patch(
                    plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=COLOURS[cls - 1], lw=2)
                )
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def image_generator(device, seed, step, index):
    """The generator of image ``index`` of the global batch at ``step``: the same in whichever
    process holds that image."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) * 10_007 + index)


def weights_checksum(model):
    """Sum and sum of squares of all weights, in float64."""
    params = [p.detach().double() for p in model.parameters()]
    return [float(sum(p.sum() for p in params)), float(sum(p.square().sum() for p in params))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4, help="images per step and process")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--eval-images", type=int, default=64, help="0: no evaluation")
    p.add_argument("--png", default="faster_rcnn_synthetic.png", help="empty: no PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-json", default="", help="write per-step losses and a weights checksum")
    args = p.parse_args()

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rank, world = 0, 1
    global_count = None
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)

        def global_count(n):
            n = n.detach().clone()
            dist.all_reduce(n)
            return n

    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = FasterRCNN(args.size).to(device)
    train_model = model
    if distributed:
        train_model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / args.steps))
    )
    rng = np.random.default_rng(args.seed)  # every process draws the global batch
    shard = slice(rank * args.batch, (rank + 1) * args.batch)

    t0 = time.time()
    bar = tqdm(range(args.steps), disable=rank != 0, desc="train")
    history = []
    for step in bar:
        images, boxes, labels = batch(rng, args.batch * world, args.size)
        images = images[shard].to(device)
        boxes = [b.to(device) for b in boxes[shard]]
        labels = [lab.to(device) for lab in labels[shard]]
        gens = [image_generator(device, args.seed, step, i) for i in range(shard.start, shard.stop)]
        losses = train_model(images, boxes, labels, gens, global_count)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        # the global batch's losses (what one process would print)
        vals = torch.stack([v.detach() for v in losses.values()])
        if distributed:
            dist.all_reduce(vals)
            vals /= world
        vals = dict(zip(losses, vals.tolist()))
        history.append(vals)
        bar.set_postfix({k: f"{v:.3f}" for k, v in vals.items()})
    train_s = time.time() - t0

    if rank == 0:
        print("losses first step:", {k: round(v, 3) for k, v in history[0].items()})
        print("losses last step: ", {k: round(v, 3) for k, v in history[-1].items()})
        print(f"train time {train_s:.0f} s ({world} process(es))")
        if args.out_json:
            with open(args.out_json, "w") as f:
                json.dump({"world": world, "losses": history,
                           "weights": weights_checksum(model)}, f)  # fmt: skip
        if args.eval_images:
            model.eval()
            eval_rng = np.random.default_rng(12345)  # held out: a seed no step trains on
            images, boxes, labels = batch(eval_rng, args.eval_images, args.size)
            m50, dets = coco_map50(model.cpu(), images, boxes, labels)
            print(f"mAP@0.5 = {m50:.3f} on {args.eval_images} held-out images")
            if args.png:
                save_png(args.png, images, boxes, dets)
                print(f"wrote {args.png}")
    if distributed:
        dist.barrier()  # every process done with rank 0's evaluation before the group ends
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
