"""Qwen-Image's rule, where model.variant applies: the edit variants (Edit, Edit-2509, Edit-2511) are recognised, but
their training, which feeds each target's control image to the transformer and to the text encoder's vision input,
is not built yet; training one as text-to-image would make a LoRA that edit pipelines use wrongly, so it is refused.
Registered in core.checks.base.RULES in the order core.checks imports them."""

from __future__ import annotations

from core.checks.base import Env, _applies, rule
from core.config import RunConfig
from core.config.fields import QWEN_IMAGE_VARIANTS

EDIT_VARIANTS = tuple(v for v in QWEN_IMAGE_VARIANTS if v.startswith("edit"))


@rule("qwen_image_edit_not_trainable", "error")
def _qwen_edit(cfg: RunConfig, env: Env):
    m = cfg.model
    if _applies(cfg, env, "model.variant") and m.variant in EDIT_VARIANTS:
        return ("model.variant",
                f"Training Qwen-Image-Edit ({m.variant}) needs before/after image pairs, which Danlu cannot train "
                "yet.",
                f"训练 Qwen-Image-Edit（{m.variant}）需要编辑前后的图片对，丹炉暂时还不能训练。",
                "Train on Qwen-Image (model.variant = image) with a text-to-image dataset.",
                "请改用 Qwen-Image（model.variant 设为 image）和文生图数据集训练。")
