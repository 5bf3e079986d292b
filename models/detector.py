"""ArmscanDet: a single-stage, anchor-free detector (FCOS-style) on a MobileNetV3 backbone.

Backbone features at strides 8, 16 and 32 are fused top-down (an FPN-lite) into one
stride-8 map, and two light towers of depthwise-separable convolutions predict, at every
location: class logits, log box distances (left, top, right, bottom) in stride units, a
centreness logit, build logits and firearm-type logits. The graph ends there: decoding
and NMS run outside it (``armscan.inference.decode``), which keeps ONNX export exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

from armscan.models.registry import register_model

STRIDE = 8


def _dw_block(ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(ch, ch, 3, padding=1, groups=ch, bias=False),
        nn.BatchNorm2d(ch),
        nn.Conv2d(ch, ch, 1, bias=False),
        nn.BatchNorm2d(ch),
        nn.ReLU(inplace=True),
    )


class ArmscanDet(nn.Module):
    """Detector with box, class, centreness, build and type heads. Input (B, 3, S, S), S divisible by 32."""

    def __init__(self, *, backbone: str = "mobilenet_v3_small", num_classes: int = 8, num_builds: int = 3,
                 num_types: int = 5, width: int = 96, tower_depth: int = 2, width_mult: float = 1.0) -> None:
        super().__init__()
        builders = {"mobilenet_v3_small": mobilenet_v3_small, "mobilenet_v3_large": mobilenet_v3_large}
        if backbone not in builders:
            raise ValueError(f"Invalid backbone {backbone!r}. Only {', '.join(builders)} are supported.")
        # weights=None: trained from scratch, nothing is downloaded.
        features = builders[backbone](weights=None, width_mult=width_mult).features
        self.features = features
        self.taps = self._find_taps(features)  # indices of the last block at strides 8, 16, 32
        with torch.no_grad():
            chans = [f.shape[1] for f in self._backbone(torch.zeros(1, 3, 64, 64))]
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in chans)
        self.fuse = _dw_block(width)
        self.cls_tower = nn.Sequential(*[_dw_block(width) for _ in range(tower_depth)])
        self.box_tower = nn.Sequential(*[_dw_block(width) for _ in range(tower_depth)])
        self.cls_out = nn.Conv2d(width, num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(width, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(width, 1, 3, padding=1)
        self.build_out = nn.Conv2d(width, num_builds, 3, padding=1)
        self.type_out = nn.Conv2d(width, num_types, 3, padding=1)
        assert self.cls_out.bias is not None and self.box_out.bias is not None
        nn.init.constant_(self.cls_out.bias, -4.6)  # prior 0.01 (focal-loss init)
        nn.init.constant_(self.box_out.bias, 1.0)

    @staticmethod
    def _find_taps(features: nn.Sequential) -> list[int]:
        x = torch.zeros(1, 3, 64, 64)
        taps: dict[int, int] = {}
        with torch.no_grad():
            for i, layer in enumerate(features):
                x = layer(x)
                stride = 64 // x.shape[-1]
                if stride in (8, 16, 32):
                    taps[stride] = i
        return [taps[8], taps[16], taps[32]]

    def _backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
            if i == self.taps[-1]:
                break
        return outs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Returns (cls (B,C,H,W), box (B,4,H,W), ctr (B,1,H,W), build (B,NB,H,W), type (B,NT,H,W)), H = S/8."""
        c3, c4, c5 = self._backbone(x)
        p = self.lateral[2](c5)
        p = self.lateral[1](c4) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.lateral[0](c3) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.fuse(p)
        tc, tb = self.cls_tower(p), self.box_tower(p)
        return self.cls_out(tc), self.box_out(tb), self.ctr_out(tb), self.build_out(tc), self.type_out(tc)


@register_model
def armscan_det_small(**kwargs: object) -> ArmscanDet:
    """MobileNetV3-small backbone, 96-channel FPN-lite and towers: the CPU default."""
    return ArmscanDet(backbone="mobilenet_v3_small", **kwargs)  # type: ignore[arg-type]


@register_model
def armscan_det_large(**kwargs: object) -> ArmscanDet:
    """MobileNetV3-large backbone, 128-channel towers: more accurate, about 2x slower on the CPU."""
    kwargs.setdefault("width", 128)
    return ArmscanDet(backbone="mobilenet_v3_large", **kwargs)  # type: ignore[arg-type]
