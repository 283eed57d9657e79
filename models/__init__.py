"""Model families, detection, loading, the LoRA file format, generation and the tiny-model factory."""
