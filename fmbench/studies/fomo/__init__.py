"""Foundation models as reward functions (arXiv:2312.03881) on BabyAI levels."""
