"""Small neural architectures shared by studies (loadable from safetensors + config).

Importing the package registers the built-in checkpoint architectures (``gpt``, ``gin``, ``cnn``):
each module calls :func:`fmbench.checkpoints.register_architecture` for its own class.
"""

from fmbench.nn import cnn, gin, gpt

__all__ = ["cnn", "gin", "gpt"]
