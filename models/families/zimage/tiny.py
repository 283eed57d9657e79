"""A tiny Z-Image: the real classes (ZImageTransformer2DModel, Qwen3Model, the 16-channel AutoencoderKL,
FlowMatchEulerDiscreteScheduler with shift 3) at test sizes, seeded, built from nothing.

The tokenizer is a byte-level BPE (Qwen2Tokenizer) learnt here from a few words, with Qwen's special tokens and
a chat template that renders a user turn exactly as Qwen3's does (and as ComfyUI hard-codes it):
``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``.
"""

from __future__ import annotations

from pathlib import Path

from models.bpe import CORPUS, bytes_to_unicode, learn_merges
from models.families import zimage
from models.families.zimage.load import to_file_keys

DIM, HEADS, LAYERS, REFINER_LAYERS = 32, 2, 2, 1
AXES_DIMS = [4, 6, 6]          # RoPE split of the 16-wide heads, in the real model's proportions (32, 48, 48)
TEXT_HIDDEN = 32
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Qwen3's template, reduced to what a prompt encoder sends: turns as <|im_start|>role\ncontent<|im_end|>\n, then
# the assistant header; `enable_thinking=False` adds the empty think block as Qwen3's does.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")


def qwen_tokenizer(vocab_size: int = 600, corpus: str = CORPUS, bare_words: tuple[str, ...] = ()):
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template (a Qwen2Tokenizer). `corpus` is
    learnt with a leading space, `bare_words` without (words that follow a newline, as in a prompt template)."""
    from transformers import Qwen2Tokenizer

    chars = list(bytes_to_unicode().values())
    space = bytes_to_unicode()[ord(" ")]
    words = ([[space, *w] for w in corpus.split()] + [list(w) for w in corpus.split()[:8]]
             + [list(w) for w in bare_words])
    merges = learn_merges(words, vocab_size - len(chars) - len(SPECIAL_TOKENS))
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(chars + [a + b for a, b in merges]))}
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", additional_special_tokens=list(SPECIAL_TOKENS[1:]),
                         model_max_length=131072)
    tok.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny(seed: int = 0):
    """A tiny ZImagePipeline with seeded random weights (transformer width 32, 2 blocks, Qwen3 width 32)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = qwen_tokenizer()
    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(
        in_channels=16, dim=DIM, n_layers=LAYERS, n_refiner_layers=REFINER_LAYERS, n_heads=HEADS, n_kv_heads=HEADS,
        cap_feat_dim=TEXT_HIDDEN, axes_dims=AXES_DIMS, axes_lens=[1024, 512, 512])
    with torch.no_grad():  # the real init leaves pad tokens and the final layer at zero: give every weight a value
        for p in transformer.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    text_encoder = Qwen3Model(config)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, sample_size=32,
                        scaling_factor=zimage.VAE_SCALE, shift_factor=zimage.VAE_SHIFT,
                        use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=zimage.SCHEDULER_SHIFT,
                                                use_dynamic_shifting=False)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)


def save_transformer_files(pipe, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The transformer alone in original/ComfyUI names: `<stem>.safetensors` and `<stem>-comfy.safetensors`
    (the second with `model.diffusion_model.` names), as Z-Image's single-file releases are split."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in pipe.transformer.state_dict().items()}
    bare, prefixed = Path(out_dir) / f"{stem}.safetensors", Path(out_dir) / f"{stem}-comfy.safetensors"
    save_file(to_file_keys(state), str(bare))
    save_file(to_file_keys(state, prefix=zimage.FILE_PREFIX), str(prefixed))
    return bare, prefixed


ADAPTER_TARGETS = ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0",
                   "feed_forward.w1", "feed_forward.w2", "feed_forward.w3", "adaLN_modulation.0")


def save_training_adapter(path: Path, transformer, rank: int = 4, seed: int = 1, std: float = 0.05) -> Path:
    """A tiny training-adapter LoRA in ostris' format: `diffusion_model.layers.N.<module>.lora_A/B.weight`,
    no alpha keys (alpha = rank, scale 1), seeded, with non-zero lora_B so merging it changes the weights."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator("cpu").manual_seed(seed)
    state = {}
    for name, module in transformer.named_modules():
        if not name.startswith("layers.") or not name.endswith(ADAPTER_TARGETS):
            continue
        out_f, in_f = module.weight.shape
        state[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(rank, in_f, generator=gen) * std
        state[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(out_f, rank, generator=gen) * std
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"ss_base_model_version": zimage.LORA_VERSION,
                                          "ss_output_name": path.stem, "ss_network_dim": str(rank),
                                          "ss_network_alpha": str(rank)})
    return path


# ---------------------------------------------------------------------------------------------- the demo
DEMO_PRESET = "zimage_turbo_adapter"  # models/demo.py starts from it, then the generic demo settings


def demo_settings(tiny, root: Path) -> dict:
    """What the Z-Image demo sets over the generic demo (models/demo.py): the tiny Turbo with a seeded tiny
    training adapter beside it, and the preset scaled down to a CPU."""
    from diffusers import ZImageTransformer2DModel

    from core.config import default_config

    transformer = ZImageTransformer2DModel.from_pretrained(tiny.folder / "transformer")
    adapter = save_training_adapter(Path(root) / "base" / "adapter.safetensors", transformer)
    return {"model.family": zimage.FAMILY, "model.variant": "turbo", "model.training_adapter": str(adapter),
            "training.max_train_steps": default_config().training.max_train_steps,  # the preset's 3000: too many
            "saving.every_n_steps": 0,
            "network.train_text_encoder": False,  # the Qwen3 text encoder stays frozen
            "optimizer.name": "AdamW",            # bitsandbytes' 8-bit AdamW needs CUDA
            "optimizer.lr": 2e-4,                 # the highest the Z-Image checks accept without a warning
            "training.epochs": 2, "saving.every_n_epochs": 1, "sampling.steps": 8}
