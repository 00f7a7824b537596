"""Data-centric graph contrastive learning (arXiv:2208.02810, arXiv:2111.03220)."""
