"""What shapes the loss landscape of self-supervised learning (arXiv:2210.00638): linear SSL in closed form."""
