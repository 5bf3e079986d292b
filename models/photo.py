"""ArmscanPhoto: a seizure-photo classifier with measurement masks, on a MobileNetV3 backbone.

One pass gives three things:
- ``family`` logits over the photo classes (firearm families, ``part_only``, ``no_firearm``), from the
  pooled last feature map;
- ``build`` logits (metal, polymer, printed), from the same pooled features;
- ``masks``: logits of four stride-4 maps (weapon, barrel, card, ruler) from a top-down FPN-lite over
  the strides 4, 8, 16 and 32. The length of the weapon is measured on them, outside the graph
  (``armscan.inference.measure``), against the card or ruler they find.
The graph ends at the logits; softmax, temperature and the confidence bands run in inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

from armscan.models.registry import register_model

MASK_STRIDE = 4
MASKS = ("weapon", "barrel", "card", "ruler")


def _conv_bn(cin: int, cout: int, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ArmscanPhoto(nn.Module):
    """Family, build and mask heads. Input (B, 3, S, S) with S divisible by 32."""

    def __init__(self, *, backbone: str = "mobilenet_v3_small", num_classes: int = 12, num_builds: int = 3,
                 num_masks: int = len(MASKS), width: int = 48, hidden: int = 256, width_mult: float = 1.0,
                 dropout: float = 0.2, mask_pool: bool = False) -> None:
        super().__init__()
        builders = {"mobilenet_v3_small": mobilenet_v3_small, "mobilenet_v3_large": mobilenet_v3_large}
        if backbone not in builders:
            raise ValueError(f"Invalid backbone {backbone!r}. Only {', '.join(builders)} are supported.")
        self.features = builders[backbone](weights=None, width_mult=width_mult).features  # from scratch
        self.taps = self._find_taps(self.features)  # last block at strides 4, 8, 16, 32
        with torch.no_grad():
            chans = [f.shape[1] for f in self._backbone(torch.zeros(1, 3, 64, 64))]
        # mask_pool: the deepest features are also averaged under the predicted weapon mask, and so are the
        # stride-4 pyramid features, so a small weapon in a large photo is not drowned by the table.
        self.mask_pool = mask_pool
        pooled = chans[-1] * 2 + width if mask_pool else chans[-1]
        self.pool_head = nn.Sequential(nn.Linear(pooled, hidden), nn.Hardswish(inplace=True), nn.Dropout(dropout))
        self.family_out = nn.Linear(hidden, num_classes)
        self.build_out = nn.Linear(hidden, num_builds)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in chans)
        self.smooth = nn.ModuleList(_conv_bn(width, width, 3, groups=width) for _ in chans[:-1])
        self.mask_tower = nn.Sequential(_conv_bn(width, width), nn.Conv2d(width, num_masks, 1))

    @staticmethod
    def _find_taps(features: nn.Sequential) -> list[int]:
        x = torch.zeros(1, 3, 64, 64)
        taps: dict[int, int] = {}
        with torch.no_grad():
            for i, layer in enumerate(features):
                x = layer(x)
                stride = 64 // x.shape[-1]
                if stride in (4, 8, 16, 32):
                    taps[stride] = i
        return [taps[4], taps[8], taps[16], taps[32]]

    def _backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (family (B, K), build (B, NB), masks (B, M, S/4, S/4)) logits."""
        feats = self._backbone(x)
        p = self.lateral[-1](feats[-1])
        for level in range(len(feats) - 2, -1, -1):  # top-down: stride 16, 8, 4
            p = self.lateral[level](feats[level]) + F.interpolate(p, scale_factor=2.0, mode="nearest")
            p = self.smooth[level](p)
        masks = self.mask_tower(p)
        pooled = feats[-1].mean(dim=(2, 3))  # (B, C)
        if self.mask_pool:
            w4 = torch.sigmoid(masks[:, :1]).detach()  # (B, 1, S/4, S/4): the weapon, as a weight
            w32 = F.adaptive_avg_pool2d(w4, (int(feats[-1].shape[-2]), int(feats[-1].shape[-1])))
            deep = (feats[-1] * w32).sum(dim=(2, 3)) / (w32.sum(dim=(2, 3)) + 1e-3)
            fine = (p * w4).sum(dim=(2, 3)) / (w4.sum(dim=(2, 3)) + 1e-3)
            pooled = torch.cat([pooled, deep, fine], dim=1)
        hidden = self.pool_head(pooled)  # (B, hidden)
        return self.family_out(hidden), self.build_out(hidden), masks


@register_model
def armscan_photo_small(**kwargs: object) -> ArmscanPhoto:
    """MobileNetV3-small backbone, 48-channel mask pyramid: the CPU default for seizure photos."""
    return ArmscanPhoto(backbone="mobilenet_v3_small", **kwargs)  # type: ignore[arg-type]


@register_model
def armscan_photo_large(**kwargs: object) -> ArmscanPhoto:
    """MobileNetV3-large backbone: more accurate, about 2x slower on the CPU."""
    return ArmscanPhoto(backbone="mobilenet_v3_large", **kwargs)  # type: ignore[arg-type]
