"""HTTP layer: one router module per API family; routes parse, call and render."""
