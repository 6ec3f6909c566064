"""A small Faster R-CNN built from frcnn_fast's blocks, trained on synthetic rectangles.

Images are noise with 1-4 filled rectangles of 3 classes (red, green, blue) of many sizes. The
backbone is torchvision's ResNet-18 up to layer2 (stride 8) with random weights: nothing is
downloaded. The run prints the four losses with a progress bar, evaluates mAP@0.5 on held-out
images with pycocotools and writes a PNG of predicted (solid) and true (dashed) boxes.

    python examples/faster_rcnn_synthetic.py                      # one process, CPU
    torchrun --nproc_per_node=2 examples/faster_rcnn_synthetic.py # DistributedDataParallel

Under torchrun every process trains on its own shard of each step's images (gloo on CPU, nccl
on GPU); gradients are averaged, so two processes with --batch 2 each see the same number of
images per step as one process with --batch 4.
"""

import argparse
import contextlib
import io
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


class FasterRCNN(nn.Module):
    def __init__(self, image_size, stride=8):
        super().__init__()
        r = torchvision.models.resnet18(weights=None)
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

    def forward(self, images, gt_boxes, gt_labels, generator):
        """The four training losses."""
        sizes = [tuple(images.shape[-2:])] * images.shape[0]
        feats, objectness, deltas, anchors = self.rpn(images)
        labels, _, targets = anchor_targets(anchors, gt_boxes, sizes, generator=generator)
        loss_obj, loss_rpn_box = rpn_loss(objectness, deltas, labels, targets)
        proposals, _ = generate_proposals(
            objectness, deltas, anchors, sizes, pre_nms_top_n=600, post_nms_top_n=128,
            min_size=1.0,
        )  # fmt: skip
        rois, roi_labels, roi_targets, _ = proposal_targets(
            proposals, gt_boxes, gt_labels, batch_size_per_image=64, generator=generator
        )
        class_logits, box_regression = self.box_head(feats, rois)
        loss_cls, loss_box = box_head_loss(class_logits, box_regression, roi_labels, roi_targets)
        return {"rpn_obj": loss_obj, "rpn_box": loss_rpn_box, "cls": loss_cls, "box": loss_box}

    @torch.no_grad()
    def detect(self, images, score_thresh=0.05, nms_thresh=0.5, max_dets=50):
        sizes = [tuple(images.shape[-2:])] * images.shape[0]
        feats, objectness, deltas, anchors = self.rpn(images)
        proposals, _ = generate_proposals(
            objectness, deltas, anchors, sizes, pre_nms_top_n=300, post_nms_top_n=64, min_size=1.0
        )
        class_logits, box_regression = self.box_head(feats, proposals)
        probs = class_logits.softmax(-1)
        rois = torch.cat(proposals)
        boxes = frcnn_fast.decode_boxes(box_regression, rois, (10.0, 10.0, 5.0, 5.0))
        out, start = [], 0
        for p, size in zip(proposals, sizes):
            n = p.shape[0]
            b = frcnn_fast.clip_boxes(boxes[start : start + n].reshape(n, -1, 4), size)[:, 1:]
            s = probs[start : start + n, 1:]
            cls = torch.arange(1, NUM_CLASSES + 1).expand(n, -1)
            b, s, cls = b.reshape(-1, 4), s.reshape(-1), cls.reshape(-1)
            keep = s > score_thresh
            b, s, cls = b[keep], s[keep], cls[keep]
            keep = frcnn_fast.batched_nms(b, s, cls, nms_thresh)[:max_dets]
            out.append((b[keep], s[keep], cls[keep]))
            start += n
        return out


def coco_map50(model, images, gt_boxes, gt_labels):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = model.detect(images)
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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4, help="images per step and process")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--eval-images", type=int, default=64)
    p.add_argument("--png", default="faster_rcnn_synthetic.png")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = FasterRCNN(args.size).to(device)
    train_model = model
    if distributed:
        train_model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / args.steps))
    )
    rng = np.random.default_rng(args.seed + 1000 * rank)  # each process its own images
    gen = torch.Generator(device=device).manual_seed(args.seed + rank)

    t0 = time.time()
    bar = tqdm(range(args.steps), disable=rank != 0, desc="train")
    first = None
    for _step in bar:
        images, boxes, labels = batch(rng, args.batch, args.size)
        images = images.to(device)
        boxes = [b.to(device) for b in boxes]
        labels = [lab.to(device) for lab in labels]
        losses = train_model(images, boxes, labels, gen)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        vals = {k: v.item() for k, v in losses.items()}
        first = first or vals
        bar.set_postfix({k: f"{v:.3f}" for k, v in vals.items()})
    train_s = time.time() - t0

    if rank == 0:
        model.eval()
        eval_rng = np.random.default_rng(12345)  # held out: a seed no process trains on
        images, boxes, labels = batch(eval_rng, args.eval_images, args.size)
        m50, dets = coco_map50(model.cpu(), images, boxes, labels)
        print("losses first step:", {k: round(v, 3) for k, v in first.items()})
        print("losses last step: ", {k: round(v, 3) for k, v in vals.items()})
        print(f"train time {train_s:.0f} s ({world} process(es)); mAP@0.5 = {m50:.3f}")
        save_png(args.png, images, boxes, dets)
        print(f"wrote {args.png}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
