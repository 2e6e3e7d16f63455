"""The OpenAI Responses API (``/v1/responses``): stored, chained, streamed and background responses."""
