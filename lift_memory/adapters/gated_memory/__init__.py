"""LIFT's Gated Memory attention adapter: ``layer`` holds the math, ``model`` attaches it to a model."""
