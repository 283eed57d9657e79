"""A tiny Qwen-Image: the real classes (QwenImageTransformer2DModel, Qwen2_5_VLForConditionalGeneration with its
vision tower, AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler with Qwen-Image's config) at test sizes,
seeded, built from nothing.

The tokenizer is Z-Image's offline byte-level BPE (models/families/zimage/tiny.py) learnt with the words of
Qwen-Image's prompt template too, so that the template's system turn and user header are 34 tokens as with the real
Qwen2.5 tokenizer (the pipeline drops exactly 34: `prompt_template_encode_start_idx`), plus Qwen2.5-VL's vision
tokens for the edit templates.
"""

from __future__ import annotations

from pathlib import Path

from models.bpe import CORPUS
from models.families import qwen_image

HEADS, HEAD_DIM, LAYERS = 2, 16, 2
AXES_DIMS = (4, 6, 6)          # RoPE split of the 16-wide heads, in the real model's proportions (16, 56, 56)
TEXT_HIDDEN = 32               # Qwen2.5-VL's hidden size: the transformer's joint_attention_dim
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# Qwen-Image's scheduler (reference/qwen-image.md: ai-toolkit's and musubi's copies of the release's config): the
# shift follows the image's token count, exponential, stretched so the last sigma is 0.02.
SCHEDULER = dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                 base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
                 invert_sigmas=False, stochastic_sampling=False)
# The words of the text-to-image template's system turn (pipeline_qwenimage.py prompt_template_encode), and those
# after a newline, learnt whole as the real vocabulary has them.
TEMPLATE_WORDS = ("the image by detailing the color shape size texture quantity text spatial relationships of the "
                  "objects and background")
TEMPLATE_BARE = ("Describe", "system", "user", "assistant")


def tokenizer():
    """A Qwen2Tokenizer with Qwen's special and vision tokens, whose template prefix is 34 tokens."""
    from models.families.zimage.tiny import qwen_tokenizer

    tok = qwen_tokenizer(vocab_size=2000, corpus=CORPUS + " " + TEMPLATE_WORDS, bare_words=TEMPLATE_BARE)
    tok.add_tokens(list(VISION_TOKENS), special_tokens=True)
    return tok


def _text_encoder(tok, seed: int):
    """Qwen2.5-VL of width 32 with a vision tower of width 16 (one block), seeded."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
                         pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), bos_token_id=None,
                         eos_token_id=tok.convert_tokens_to_ids("<|im_end|>")),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=TEXT_HIDDEN,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False)
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _vae():
    """AutoencoderKLQwenImage with 8× spatial compression (three downsamples) at base width 8, the real per-channel
    latent mean and std."""
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                                  temperal_downsample=[False, True, True])


def _fill_zeros(module) -> None:
    """The real init leaves some weights at zero: give every weight a value, so a wrong key mapping shows."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.normal_(0, 0.02)


def build_tiny(seed: int = 0):
    """A tiny QwenImagePipeline with seeded random weights: 2 blocks, 2 heads of 16, Qwen2.5-VL of width 32."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImagePipeline, QwenImageTransformer2DModel

    tok = tokenizer()
    text_encoder = _text_encoder(tok, seed)
    torch.manual_seed(seed + 1)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=LAYERS, attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS, joint_attention_dim=TEXT_HIDDEN, axes_dims_rope=AXES_DIMS)
    _fill_zeros(transformer)
    return QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=_vae(),
                             text_encoder=text_encoder, tokenizer=tok, transformer=transformer)


def save_transformer_files(pipe, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The transformer alone as Qwen-Image single files ship (diffusers' names): `<stem>.safetensors` (bare
    names) and `<stem>-comfy.safetensors` (`model.diffusion_model.` names)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in pipe.transformer.state_dict().items()}
    bare, prefixed = Path(out_dir) / f"{stem}.safetensors", Path(out_dir) / f"{stem}-comfy.safetensors"
    save_file(state, str(bare))
    save_file({qwen_image.FILE_PREFIX + k: v for k, v in state.items()}, str(prefixed))
    return bare, prefixed


# ---------------------------------------------------------------------------------------------- the demo
DEMO_PRESET = "qwen_image_24gb"  # models/demo.py starts from it, then the generic demo settings


def demo_settings(tiny, root: Path) -> dict:
    """What the Qwen-Image demo sets over the generic demo (models/demo.py): the tiny model, the 24 GB preset scaled
    down to a CPU as FLUX's demo scales its own (no fp8, block swap or checkpointing; AdamW; 8 sample steps)."""
    from models.families.flux.tiny import demo_settings as flux_demo

    return {**flux_demo(tiny, root), "model.family": qwen_image.FAMILY, "model.variant": "image"}
