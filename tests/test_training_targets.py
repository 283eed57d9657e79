"""LoRA targets on the full-size architectures (built without weights): the module counts kohya trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent.parent / "models" / "configs"


def _empty(cls, config_path: Path, **kw):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls(**kw) if kw else cls.from_config(json.loads(config_path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("family,unet_count,te_counts", [("sd15", 192, [72]), ("sd2", 192, [138]),
                                                         ("sdxl", 722, [72, 192])])
def test_kohya_target_counts(family, unet_count, te_counts):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from training.lora import _text_targets, _unet_targets

    unet = _empty(UNet2DConditionModel, CONFIGS / family / "unet" / "config.json")
    plain, convs = _unet_targets(unet, conv_dim=0)
    assert (len(plain), convs) == (unet_count, [])
    names = ["text_encoder", "text_encoder_2"][:len(te_counts)]
    for name, count in zip(names, te_counts):
        config = CLIPTextConfig.from_dict(json.loads((CONFIGS / family / name / "config.json").read_text()))
        with __import__("accelerate").init_empty_weights():
            te = CLIPTextModel(config)
        assert len(_text_targets(te)) == count


def test_locon_splits_3x3_convs_from_linear_and_1x1():
    from diffusers import UNet2DConditionModel

    from training.lora import _unet_targets

    unet = _empty(UNet2DConditionModel, CONFIGS / "sd15" / "unet" / "config.json")
    plain, convs = _unet_targets(unet, conv_dim=8)
    assert "down_blocks.0.resnets.0.conv1" in convs and "down_blocks.0.downsamplers.0.conv" in convs
    assert "down_blocks.0.resnets.0.time_emb_proj" in plain and "down_blocks.1.resnets.0.conv_shortcut" in plain
    assert not set(plain) & set(convs)
