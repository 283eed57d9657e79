"""Pure-Python core of Danlu: no torch, no gradio."""
