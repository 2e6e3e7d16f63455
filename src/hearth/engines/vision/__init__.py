"""Image classification: EfficientNet-Lite0 written in plain torch, with shipped ImageNet-1k labels.

Importing this package imports torch; the engine registry only does so when a vision model is
configured.
"""

from hearth.engines.vision.engine import EfficientNetEngine

__all__ = ["EfficientNetEngine"]
