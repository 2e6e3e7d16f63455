"""The spoken sentences the speech benchmarks and tests share: a fixed set, so word error rates
and speeds compare like with like from run to run (spoken by Debian's espeak-ng)."""

from __future__ import annotations

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please send the report to the finance team before Friday.",
    "The weather today is cold and windy with a chance of rain.",
    "My favourite colour is blue and my sister likes green.",
    "We are going to the market to buy some apples and bread.",
    "Turn left at the next corner and walk for two hundred metres.",
    "The train to London leaves from platform number four.",
    "She opened the window because the room was too warm.",
)
