"""The OpenAI family: chat completions, completions, embeddings and models."""
