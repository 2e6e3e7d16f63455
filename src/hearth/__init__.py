"""Hearth: your own AI provider, serving real local models through the APIs clients already speak."""

__version__ = "0.1.0"
