"""EfficientNet-Lite0 in plain ``torch.nn``, with EfficientNet-PyTorch parameter names.

torchvision and timm do not work with the pinned CPU torch, so the (small) network is written
here. Lite differs from EfficientNet-B0 in three ways: no squeeze-and-excitation, ReLU6 instead
of swish, and a stem (32) and head (1280) that are not scaled. The weights were converted from
TensorFlow, so convolutions use TensorFlow's "SAME" padding, which is asymmetric for stride 2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional

# TensorFlow's BatchNorm defaults used when training; running stats are all that matter at eval.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's momentum is 1 - TensorFlow's decay (0.99)


class StageArgs(NamedTuple):
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0's stages; Lite0 has width and depth multipliers of 1.0, so they apply unchanged.
LITE0_STAGES: tuple[StageArgs, ...] = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow "SAME" padding, computed from the input size.

    PyTorch's symmetric padding would shift every stride-2 feature map by one pixel against
    what the TensorFlow-trained weights expect (TF pads the extra pixel bottom/right).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = functional.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return functional.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = inputs
        if self.has_expand:
            x = functional.relu6(self._bn0(self._expand_conv(x)))
        x = functional.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))  # linear bottleneck: no activation
        if self.skip:
            x = x + inputs
        return x


class EfficientNetLite(nn.Module):
    def __init__(
        self,
        stages: tuple[StageArgs, ...] = LITE0_STAGES,
        num_classes: int = 1000,
        stem_ch: int = 32,
        head_ch: int = 1280,
    ) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, stem_ch, 3, stride=2)
        self._bn0 = _bn(stem_ch)
        blocks: list[nn.Module] = []
        for stage in stages:
            for i in range(stage.repeats):
                # Only the first block of a stage changes stride and width.
                blocks.append(
                    MBConvBlock(
                        stage.in_ch if i == 0 else stage.out_ch,
                        stage.out_ch,
                        stage.kernel,
                        stage.stride if i == 0 else 1,
                        stage.expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1].out_ch, head_ch, 1)
        self._bn1 = _bn(head_ch)
        self._fc = nn.Linear(head_ch, num_classes)  # dropout is a no-op at inference, so omitted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a ``(n, 3, h, w)`` normalized batch to ``(n, num_classes)`` logits."""
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = functional.relu6(self._bn1(self._conv_head(x)))
        x = x.mean(dim=(2, 3))
        out: torch.Tensor = self._fc(x)
        return out
