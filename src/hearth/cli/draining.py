"""uvicorn's server, made to drain: SIGTERM fails readiness first, and stops only after a delay.

Load balancers poll ``/ready``; between the signal and the moment they notice, requests keep
arriving. So the first SIGTERM marks this replica as draining (``/ready`` answers 503 at once)
and keeps serving for ``delay_s``; only then does uvicorn stop accepting and wait for in-flight
requests and streams (its graceful timeout). SIGINT, or a second signal, skips the delay.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from hearth.gateway.health import Readiness

log = logging.getLogger("hearth.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, readiness: Readiness, delay_s: float) -> None:
        super().__init__(config)
        self._readiness = readiness
        self._delay_s = delay_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self._readiness.draining
        self._readiness.draining = True
        if first and sig == signal.SIGTERM and self._delay_s > 0:
            log.info(
                "SIGTERM: /ready now fails; serving %.1fs more while load balancers notice", self._delay_s
            )
            asyncio.get_running_loop().call_later(self._delay_s, super().handle_exit, sig, frame)
            return
        super().handle_exit(sig, frame)
