"""Mechanistic mode connectivity (arXiv:2211.08422): cue data, loss paths, switching a model's mechanism."""
