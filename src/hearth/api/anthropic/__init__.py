"""The Anthropic family: Messages (``/v1/messages``) and token counting."""
