"""A tiny FLUX.1: the real classes (FluxTransformer2DModel, CLIPTextModel, T5EncoderModel, the 16-channel
AutoencoderKL, FlowMatchEulerDiscreteScheduler with FLUX's config) at test sizes, seeded, built from nothing.

Tokenizers are made here: CLIP-L's is the project's byte-level BPE (models/bpe.py), T5's a SentencePiece-style
unigram model over the same words with T5's special tokens (<pad> 0, </s> 1, <unk> 2) and `</s>` appended, as
T5TokenizerFast does. Chroma's tiny model (models/families/chroma/tiny.py) is built by `build_chroma` here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from models.bpe import CORPUS, write_tokenizer
from models.families import flux
from models.families.flux.keys import to_file_keys

HEADS, HEAD_DIM, DOUBLE, SINGLE = 2, 16, 2, 2
AXES_DIMS = (4, 6, 6)          # RoPE split of the 16-wide heads, in the real model's proportions (16, 56, 56)
TEXT_HIDDEN = 32               # T5's d_model (the transformer's joint_attention_dim) and CLIP's width (pooled)
# FLUX.1-dev's scheduler (reference/flux.md: ai-toolkit's copy of the release's config): the shift follows the
# image's token count. Schnell's samples use a plain flow schedule (ComfyUI's FluxSchnell: shift 1.0).
DEV_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                     base_image_seq_len=256, max_image_seq_len=4096)
SCHNELL_SCHEDULER = dict(DEV_SCHEDULER, shift=1.0, use_dynamic_shifting=False)


def t5_tokenizer():
    """A T5TokenizerFast of a unigram model over the demo words and single characters."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    words = list(dict.fromkeys("▁" + w for w in CORPUS.split()))
    chars = sorted({c for w in CORPUS.split() for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789,.!?'-"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(w, -3.0 - i * 1e-3) for i, w in enumerate(words)] + [(c, -8.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=512)


def _text_encoders(seed: int, with_clip: bool):
    """(T5 tokenizer, T5 encoder, CLIP tokenizer or None, CLIP text model or None), seeded."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    t5_tok = t5_tokenizer()
    torch.manual_seed(seed)
    # T5 v1.1's gated-GELU feed-forward, as T5-XXL.
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=TEXT_HIDDEN, d_kv=16, d_ff=64, num_layers=2,
                                 num_heads=2, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    if not with_clip:
        return t5_tok, t5, None, None
    with tempfile.TemporaryDirectory(prefix="danlu-tok-") as tmp:  # saved with the pipeline, not beside it
        clip_tok = CLIPTokenizer.from_pretrained(write_tokenizer(Path(tmp)))
    vocab = len(clip_tok)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=TEXT_HIDDEN, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=TEXT_HIDDEN,
                                        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1))
    return t5_tok, t5, clip_tok, clip


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, sample_size=32,
                         scaling_factor=flux.VAE_SCALE, shift_factor=flux.VAE_SHIFT,
                         use_quant_conv=False, use_post_quant_conv=False)


def _fill_zeros(module) -> None:
    """The real init leaves some weights at zero: give every weight a value, so a wrong key mapping shows."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.normal_(0, 0.02)


def build_tiny(seed: int = 0, variant: str = "dev"):
    """A tiny FluxPipeline with seeded random weights: 2 double and 2 single blocks, 2 heads of 16, a guidance
    embedder for dev and none for schnell, T5 and CLIP of width 32."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    if variant not in flux.VARIANTS:
        raise ValueError(f"unknown FLUX variant {variant!r}; choose from {flux.VARIANTS}")
    t5_tok, t5, clip_tok, clip = _text_encoders(seed, with_clip=True)
    torch.manual_seed(seed + 1)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=DOUBLE, num_single_layers=SINGLE, attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS, joint_attention_dim=TEXT_HIDDEN, pooled_projection_dim=TEXT_HIDDEN,
        guidance_embeds=variant == "dev", axes_dims_rope=AXES_DIMS)
    _fill_zeros(transformer)
    scheduler = FlowMatchEulerDiscreteScheduler(**(DEV_SCHEDULER if variant == "dev" else SCHNELL_SCHEDULER))
    return FluxPipeline(scheduler=scheduler, vae=_vae(), text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5,
                        tokenizer_2=t5_tok, transformer=transformer)


def build_chroma(seed: int = 0):
    """A tiny ChromaPipeline: FLUX's tiny blocks without modulation linears, an approximator of width 32."""
    import torch
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    t5_tok, t5, _, _ = _text_encoders(seed, with_clip=False)
    torch.manual_seed(seed + 1)
    transformer = ChromaTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=DOUBLE, num_single_layers=SINGLE, attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS, joint_attention_dim=TEXT_HIDDEN, axes_dims_rope=AXES_DIMS,
        approximator_num_channels=64, approximator_hidden_dim=32, approximator_layers=1)
    _fill_zeros(transformer)
    return ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**DEV_SCHEDULER), vae=_vae(), text_encoder=t5,
                          tokenizer=t5_tok, transformer=transformer)


def save_transformer_files(pipe, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The transformer alone in BFL names, as FLUX and Chroma single files ship: `<stem>.safetensors` (bare
    names, as sd-scripts writes) and `<stem>-comfy.safetensors` (`model.diffusion_model.` names)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in pipe.transformer.state_dict().items()}
    bare, prefixed = Path(out_dir) / f"{stem}.safetensors", Path(out_dir) / f"{stem}-comfy.safetensors"
    save_file(to_file_keys(state), str(bare))
    save_file(to_file_keys(state, prefix=flux.FILE_PREFIX), str(prefixed))
    return bare, prefixed


# ---------------------------------------------------------------------------------------------- the demo
DEMO_PRESET = "flux_dev_24gb"  # models/demo.py starts from it, then the generic demo settings


def demo_settings(tiny, root: Path) -> dict:
    """What the FLUX demo sets over the generic demo (models/demo.py): the tiny dev model, the preset scaled
    down to a CPU."""
    from core.config import default_config

    return {"model.family": flux.FAMILY, "model.variant": "dev",
            "training.max_train_steps": default_config().training.max_train_steps,
            "saving.every_n_steps": 0, "network.train_text_encoder": False,
            "optimizer.name": "AdamW", "optimizer.lr": 4e-4, "training.fp8_base": False,
            "training.gradient_checkpointing": False, "training.blocks_to_swap": 0,
            "training.epochs": 2, "saving.every_n_epochs": 1, "sampling.steps": 8}
