"""Small neural architectures shared by studies (loadable from safetensors + config)."""
