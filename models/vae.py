"""A separate VAE file or folder, loaded into the layout of the pipeline's own VAE (the SD families and a DiT
family's 16-channel VAE alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import DanluError
from models.files import clean_path, read_state_dict
from models.ldm import vae_from_ldm


def load_vae(vae: str, like: Any, torch_dtype: Any = None):
    """A separate VAE: a diffusers folder (with config.json) or a single file in either naming."""
    from diffusers import AutoencoderKL

    path = Path(clean_path(vae))
    if path.is_dir():
        return AutoencoderKL.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
    if not path.is_file():
        raise DanluError(f"VAE not found: {path}", f"找不到 VAE：{path}", key="model.vae")
    from accelerate import init_empty_weights

    sd = read_state_dict(path)
    with init_empty_weights():
        model = AutoencoderKL.from_config(like.config)
    if any(k.startswith("encoder.down_blocks.") for k in sd):
        state = sd  # already diffusers names
    else:
        prefix = "first_stage_model." if any(k.startswith("first_stage_model.") for k in sd) else ""
        try:
            state = vae_from_ldm(sd, model, prefix)
        except KeyError as exc:
            raise DanluError(f"{path.name} is not a VAE of this model: {exc} is missing.",
                             f"{path.name} 不是此模型可用的 VAE：缺少 {exc}。", key="model.vae") from exc
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(torch_dtype) if torch_dtype is not None else model
