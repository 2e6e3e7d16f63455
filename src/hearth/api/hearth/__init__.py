"""The Hearth family: Hearth's own routes (classification, tokens, usage, operators' admin,
health and the web UI), answered in the OpenAI error envelope with Hearth's own words."""
