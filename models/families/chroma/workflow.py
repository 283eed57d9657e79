"""Chroma's ComfyUI graph is FLUX's with CLIPLoader(chroma) and real CFG: models/families/flux/workflow.py."""

from __future__ import annotations

from models.families.flux.workflow import COMFY_FILES, RELEASE_FILES, comfy_prompt  # noqa: F401
