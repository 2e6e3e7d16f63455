"""Between routes and engines: auth, limits, routing, and the per-request usage record."""
