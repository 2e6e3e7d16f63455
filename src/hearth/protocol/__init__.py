"""Pydantic models mirroring each public API, plus conversion into engine parameters."""
