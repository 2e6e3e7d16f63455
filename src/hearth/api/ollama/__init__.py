"""The Ollama family: chat, generate, embed, embeddings and the model listings, as NDJSON or JSON."""
