"""Gradio UI: one module per step, composed by ui.app."""
