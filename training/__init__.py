"""LoRA training: `python -m training RUN.toml` (see training/loop.py for the loop itself)."""
