"""FCOS-style target assignment and losses for :class:`armscan.models.detector.ArmscanDet`.

A grid location is positive for a box when it lies inside the box and within a centre
region of the box (``centre_radius`` strides, widened for large boxes); a location claimed
by several boxes goes to the smallest. Losses: sigmoid focal loss for classes (over all
locations), GIoU for boxes and BCE for centreness (positives), cross-entropy for the build
and type attributes (positives whose box has that attribute labelled; "unknown" is masked).

Images labelled only at image level (``weak`` >= 0 in their target: "this photo holds a firearm",
without a box) do not take part in the dense class loss, since every location would wrongly count
as background. They train a multiple-instance loss instead: the highest class logit over the image
should be high for a labelled class and low for the others (binary cross-entropy on the max).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from armscan.inference.decode import grid_centres as inference_grid

IGNORE = -1


def grid_centres(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """(H*W, 2) xy centres in input pixels: the very grid that inference decodes on."""
    return torch.from_numpy(inference_grid(h, w, stride)).to(device)


def assign(centres: torch.Tensor, boxes: torch.Tensor, stride: int, centre_radius: float = 1.5,
           centre_frac: float = 0.25) -> torch.Tensor:
    """Index of the box each location is assigned to, or -1. ``centres`` (L, 2), ``boxes`` (N, 4) xyxy."""
    if len(boxes) == 0:
        return torch.full((len(centres),), -1, dtype=torch.long, device=centres.device)
    x, y = centres[:, 0:1], centres[:, 1:2]  # (L, 1)
    x0, y0, x1, y1 = boxes.T  # (N,)
    inside = (x > x0) & (x < x1) & (y > y0) & (y < y1)  # (L, N)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx = torch.clamp((x1 - x0) * centre_frac, min=centre_radius * stride)
    ry = torch.clamp((y1 - y0) * centre_frac, min=centre_radius * stride)
    central = ((x - cx).abs() <= rx) & ((y - cy).abs() <= ry)
    ok = inside & central
    area = ((x1 - x0) * (y1 - y0)).expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=1)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def detection_loss(outputs: tuple[torch.Tensor, ...], targets: list[dict[str, torch.Tensor]],
                   stride: int) -> dict[str, torch.Tensor]:
    """Loss terms for a batch. Each target has ``boxes`` (N, 4) xyxy in input pixels, ``labels``,
    ``builds`` and ``types`` (N,) with -1 where the attribute is not labelled, and optionally ``weak``
    (C,): -1 for a box-labelled image, else the image-level label of each class (1 or 0)."""
    cls, box, ctr, build, typ = outputs
    b, c, h, w = cls.shape
    centres = grid_centres(h, w, stride, cls.device)  # (L, 2)
    cls_t = torch.zeros(b, h * w, c, device=cls.device)
    pos_box_pred, pos_box_t, pos_ctr_pred, pos_ctr_t = [], [], [], []
    build_pred, build_t, type_pred, type_t = [], [], [], []
    for i, t in enumerate(targets):
        idx = assign(centres, t["boxes"], stride)
        pos = idx >= 0
        if not pos.any():
            continue
        gi = idx[pos]
        cls_t[i, pos, t["labels"][gi]] = 1.0
        gt = t["boxes"][gi]  # (P, 4)
        pc = centres[pos]
        pred_d = torch.exp(box[i].reshape(4, -1).T[pos].clamp(max=6.0)) * stride  # (P, 4) l, t, r, b
        pos_box_pred.append(torch.cat([pc - pred_d[:, :2], pc + pred_d[:, 2:]], dim=1))
        pos_box_t.append(gt)
        ltrb = torch.cat([pc - gt[:, :2], gt[:, 2:] - pc], dim=1).clamp(min=1e-3)
        centreness = torch.sqrt((ltrb[:, [0, 2]].min(1).values / ltrb[:, [0, 2]].max(1).values)
                                * (ltrb[:, [1, 3]].min(1).values / ltrb[:, [1, 3]].max(1).values))
        pos_ctr_pred.append(ctr[i].reshape(-1)[pos])
        pos_ctr_t.append(centreness)
        build_pred.append(build[i].reshape(build.shape[1], -1).T[pos])
        build_t.append(t["builds"][gi])
        type_pred.append(typ[i].reshape(typ.shape[1], -1).T[pos])
        type_t.append(t["types"][gi])
    cls_flat = cls.reshape(b, c, -1).transpose(1, 2)  # (B, L, C)
    n_pos = max(1.0, float(sum(len(p) for p in pos_box_t)))
    weak = torch.stack([t["weak"] if "weak" in t else cls.new_full((c,), IGNORE) for t in targets])  # (B, C)
    is_weak = (weak >= 0).any(dim=1)  # (B,)
    focal = sigmoid_focal_loss(cls_flat, cls_t, alpha=0.25, gamma=2.0, reduction="none")  # (B, L, C)
    loss_cls = (focal * (~is_weak).float()[:, None, None]).sum() / n_pos
    # A zero that touches every head: under DDP each parameter must get a gradient at every step.
    zero = sum((o.sum() for o in outputs), cls.new_zeros(())) * 0.0
    loss_weak = zero
    if is_weak.any():
        peak = cls_flat[is_weak].max(dim=1).values  # (W, C) the highest logit of each class in each image
        wt = weak[is_weak]
        loss_weak = F.binary_cross_entropy_with_logits(peak[wt >= 0], wt[wt >= 0])
    if not pos_box_t:
        return {"cls": loss_cls, "box": zero, "ctr": zero, "build": zero, "type": zero, "weak": loss_weak}
    ctr_t = torch.cat(pos_ctr_t)
    weight = ctr_t / ctr_t.sum().clamp(min=1e-6)
    giou = generalized_box_iou_loss(torch.cat(pos_box_pred), torch.cat(pos_box_t), reduction="none")
    loss_box = (giou * weight).sum() * 2.0
    loss_ctr = F.binary_cross_entropy_with_logits(torch.cat(pos_ctr_pred), ctr_t)
    bt, tt = torch.cat(build_t), torch.cat(type_t)
    loss_build = F.cross_entropy(torch.cat(build_pred), bt, ignore_index=IGNORE) if (bt >= 0).any() else zero
    loss_type = F.cross_entropy(torch.cat(type_pred), tt, ignore_index=IGNORE) if (tt >= 0).any() else zero
    return {"cls": loss_cls, "box": loss_box, "ctr": loss_ctr, "build": 0.5 * loss_build, "type": 0.5 * loss_type,
            "weak": loss_weak}
