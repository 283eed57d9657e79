"""The XYZ grid: plan (what the cells are, from a run's config.toml or LoRA files), render (every cell through the
code that renders training samples), loras (switching LoRA files by weight), compose (the labelled PNG), compare
(runs side by side) and cli (`launcher.py grid`)."""
