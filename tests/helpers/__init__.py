"""What tests share, one module per concern; fixtures live in the conftest files.

- ``apps``: settings and apps on fake engines, and waiting for them to be ready.
- ``keys``: the admin key of the test apps, and request headers for keys.
- ``wire``: reading SSE bodies and checking error envelopes.
- ``images``: test images (generated ones, and scikit-image's real photos).
- ``ledger``: the usage rows a test app wrote.
- ``live``: ``hearth serve`` as a real process; ``fake_server``: one on fake engines, with keys.
- ``services``: PostgreSQL and Redis (required under ``HEARTH_REQUIRE_SERVICES=1``).
- ``anthropic``: Anthropic's error shape and named SSE events.
"""
