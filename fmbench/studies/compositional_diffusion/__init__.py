"""Compositional abilities emerge multiplicatively (arXiv:2310.09336): concept renders, concept-distance
splits and a concept-probe evaluator for conditional image generators."""
