"""Image classification: EfficientNet-Lite0 written in plain torch, with shipped ImageNet-1k labels.

torch is imported when a model loads, not with this package, so inspecting a configured model
(``hearth doctor``) stays cheap.
"""

from hearth.engines.vision.engine import EfficientNetEngine

__all__ = ["EfficientNetEngine"]
