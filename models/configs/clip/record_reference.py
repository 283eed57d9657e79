"""Record the reference CLIP tokenization (OpenAI SimpleTokenizer as shipped in open_clip) for a prompt set.

Not imported by Danlu. Run with the open_clip_torch wheel unpacked to /tmp/oc and ftfy on PYTHONPATH:
    PYTHONPATH=/tmp/ftfy python models/configs/clip/record_reference.py models/configs/clip/reference_tokens.json
"""
import importlib.util
import json
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("octok", "/tmp/oc/open_clip/tokenizer.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
tok = m.SimpleTokenizer()
prompts = [
    "a photo of a cat",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile",
    "(masterpiece:1.2), [blue eyes], {red hair}, (((detailed))), <lora:my_style:0.8>",
    "sks dog, (photorealistic:1.4), 8k uhd, dslr, soft lighting, film grain, Fujifilm XT3",
    "一个女孩，长发，微笑，樱花，春天",
    "中国风 山水画, 水墨, 高清",
    "日本語のプロンプト、桜の木の下",
    "한국어 프롬프트 테스트",
    "café naïve résumé Ünïcödé",
    "emoji 😀🎨🔥 test",
    "UPPER Case And MiXeD",
    "multiple   spaces\tand\nnewlines",
    "score_9, score_8_up, rating:safe, source_anime",
    "a very long prompt " + ", ".join(f"tag number {i}" for i in range(60)),
    "BREAK is a keyword: castle BREAK forest",
    "don't can't won't it's",
    "1girl, 2boys, 3d render, 4k, 1920x1080",
    "a photo of a cat\u200b with zero width space",
    "“curly quotes” and ‘single’",
    "&amp; html &lt;entities&gt;",
    "ｆｕｌｌｗｉｄｔｈ　ｌｅｔｔｅｒｓ",
    "",
]
out = []
for p in prompts:
    ids = tok.encode(p)
    out.append({"prompt": p, "ids": [tok.sot_token_id] + ids + [tok.eot_token_id]})
doc = {"reference": ("OpenAI CLIP SimpleTokenizer (open_clip_torch 3.3.0 tokenizer.py, ftfy 6.3.1), "
                     "ids before truncation"),
       "prompts": out}
Path(sys.argv[1]).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
print(len(out))
