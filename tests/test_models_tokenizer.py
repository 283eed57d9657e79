"""The shipped CLIP tokenizer (built from open_clip's MIT-licensed BPE vocabulary) matches the reference.

models/configs/clip/reference_tokens.json holds ids recorded with OpenAI's SimpleTokenizer (the copy
in open_clip_torch 3.3.0, with ftfy 6.3.1) for Chinese, Japanese, Korean, long prompts, weight syntax,
full-width punctuation, curly quotes and HTML entities.
"""

from __future__ import annotations

import json

import pytest

from models.loading import CONFIGS, _tokenizer, clip_tokenizer

REFERENCE = json.loads((CONFIGS / "clip" / "reference_tokens.json").read_text(encoding="utf-8"))["prompts"]


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def test_vocabulary_is_the_real_clip_table(tok):
    assert len(tok) == 49408
    assert tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>", "cat</w>"]) == [49406, 49407, 2368]


@pytest.mark.parametrize("case", REFERENCE, ids=[f"p{i}" for i in range(len(REFERENCE))])
def test_same_ids_as_reference(tok, case):
    assert tok(case["prompt"]).input_ids == case["ids"]


def test_long_prompts_truncate_like_the_reference(tok):
    long = max(REFERENCE, key=lambda c: len(c["ids"]))
    assert len(long["ids"]) > 77
    ids = tok(long["prompt"], truncation=True, max_length=77).input_ids
    assert ids == long["ids"][:76] + [49407]  # open_clip keeps 76 tokens and ends with end-of-text


def test_family_pad_tokens():
    """SD1 pads with end-of-text; SD2 and SDXL's second encoder (OpenCLIP) pad with '!' (id 0)."""
    sd15, sd2 = _tokenizer(CONFIGS / "sd15" / "tokenizer"), _tokenizer(CONFIGS / "sd2" / "tokenizer")
    assert sd15("cat", padding="max_length", max_length=77).input_ids[-1] == 49407
    assert sd2("cat", padding="max_length", max_length=77).input_ids[-1] == 0
    assert _tokenizer(CONFIGS / "sdxl" / "tokenizer_2").pad_token == "!"
