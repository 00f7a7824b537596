"""Unsupervised federated learning (arXiv:2205.11506): partitions, federated tasks, Orchestra."""
