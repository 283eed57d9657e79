"""Random-weight Florence-2 and Qwen3-VL captioners built on the spot from their transformers configs.

They go through the same loading code as the real ones (config.json, safetensors, tokenizer.json, the image
processor's JSON), with a byte-level BPE tokenizer trained here in milliseconds on a few sentences, so no
test needs the network. Their captions are random text; what they prove is the plumbing: loading, batching,
padding, cancel and the caption layout.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = ["a photo of a red cat sitting on a white background", "the image shows a girl with long black hair",
          "Describe in detail what is shown in the image.", "What does the image describe?",
          "Describe this image in one sentence.", "user assistant system"]
FLORENCE_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]
INIT = 1.0  # large random weights: captions that differ from image to image, so batching mistakes show
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
# Qwen's chat layout for one user turn of images and text.
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _bpe(specials: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 3, trainer)
    return tok


def make_tiny_florence2(folder: Path, *, image_size: int = 32, seed: int = 0) -> Path:
    """A Florence-2 folder (DaViT stage of 16 channels, BART of 16 dims, one layer each): about 40 k weights."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        PreTrainedTokenizerFast,
    )

    folder = Path(folder)
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(FLORENCE_SPECIAL), bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<unk>",
                                  extra_special_tokens={"image_token": "<image>"})
    text = dict(model_type="bart", vocab_size=len(tok), max_position_embeddings=256, d_model=16,
                encoder_layers=1, decoder_layers=1, encoder_ffn_dim=16, decoder_ffn_dim=16,
                encoder_attention_heads=1, decoder_attention_heads=1, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=tok.bos_token_id, init_std=INIT)
    vision = dict(depths=[1], patch_size=[7], patch_stride=[4], patch_padding=[3], patch_prenorm=[False],
                  embed_dim=[16], num_heads=[1], num_groups=[1], window_size=12, projection_dim=16,
                  initializer_range=INIT)
    config = Florence2Config(text_config=text, vision_config=vision, image_token_id=tok.image_token_id,
                             initializer_range=INIT)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    side = {"height": image_size, "width": image_size}
    # One image token per 4×4 patch of the single stage, plus the pooled one the projector adds.
    images = CLIPImageProcessorPil(size=side, crop_size=side, do_center_crop=False,
                                   image_seq_length=(image_size // 4) ** 2 + 1)
    model.save_pretrained(folder)
    Florence2Processor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def make_tiny_qwen3_vl(folder: Path, *, seed: int = 0) -> Path:
    """A Qwen3-VL folder (one vision block, one decoder layer of 16 dims): about 30 k weights."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLImageProcessorPil,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    folder = Path(folder)
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(QWEN_SPECIAL), eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", chat_template=QWEN_TEMPLATE)
    ids = {s: tok.convert_tokens_to_ids(s) for s in QWEN_SPECIAL}
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2],
                                 "mrope_interleaved": True},
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], initializer_range=INIT)
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=8, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=16, num_position_embeddings=16,
                  deepstack_visual_indexes=[0], initializer_range=INIT)
    config = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True, initializer_range=INIT)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32,
                             max_pixels=64 * 64).save_pretrained(folder)
    return folder
