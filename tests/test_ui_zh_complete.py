"""简体中文 is complete: every tab, walked in Chromium after the switch to 简体中文 with the demo selected (so lists,
scans and hints have content), shows no English word outside the names everyone writes in Latin letters.

The page collects what a reader sees: visible text of labels, buttons, headers, markdown, radio and dropdown choices,
chart text and placeholders; code (paths, TOML, config keys) is left out. A word in full-width brackets after
Chinese, "余弦（cosine）", is the value a config file holds and is allowed.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from conftest import free_port

from models.demo import DEMO_PROMPTS

# Names written in Latin letters in Chinese text too: products, formats, units, model and tool names.
NAMES = {
    "LoRA", "LoHa", "LoKr", "LyCORIS", "DoRA", "TOML", "JSON", "CFG", "SDXL", "SD", "Z-Image", "WD", "ONNX", "CPU",
    "GPU", "CUDA", "NVIDIA", "VAE", "UNet", "DiT", "EMA", "SNR", "XYZ", "PNG", "RAM", "GB", "MB", "KB", "px", "M",
    "Danlu", "WebUI", "ComfyUI", "A1111", "diffusers", "kohya", "kohya_ss", "sd-scripts", "lora-scripts",
    "ai-toolkit", "Hugging", "Face", "ModelScope", "hub", "id", "Danbooru", "MCut", "FLUX", "Qwen-Image", "Qwen-VL",
    "Florence", "Turbo", "De-Turbo", "Base", "AdamW", "Adafactor", "Prodigy", "CAME", "Lion", "DAdaptAdam",
    "AdamWScheduleFree", "SDPA", "RTX", "Apple", "Euler", "Heun", "DDIM", "UniPC", "LMS", "Karras", "CLIP", "T5",
    "Qwen", "ETA", "safetensors", "outputs", "alpha", "Alpha", "rank", "dim", "epoch", "adaLN", "Chroma", "dev",
    "schnell", "Edit", "CLIP-L", "Black", "Forest", "Labs",  # models' and their makers' names
    # terms of the craft that Chinese trainers keep as they are
    "LoCon", "Lora", "Transformer", "TensorBoard", "DOP", "LR", "dropout", "Dropout", "token", "latent", "gamma",
    "beta", "epsilon", "v-prediction", "v-pred", "refiner", "down", "mid", "up", "transformer", "BOM",
}
PHRASES = ("Clip skip", "Min-SNR gamma", "Min-SNR", "CFG Rescale", "Rescale CFG")  # names of two words
# The user's own words shown back (the demo's sample prompts in a sample's caption, or its trigger word where a
# preset samples the trigger word alone) are not the page's labels.
USER_TEXT = (*DEMO_PROMPTS, *(f"#{n} demo" for n in (1, 2)))
TOKEN = re.compile(r"[A-Za-z0-9_.\-/\\:@+<>'’]+")
WORD = re.compile(r"[A-Za-z]+(?:[-'’][A-Za-z]+)*")
GLOSS = re.compile(r"（[^（）]*）")

COLLECT = """() => {
  const out = [];
  const shown = el => el && el.checkVisibility() && el.getBoundingClientRect().width > 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, s = n.textContent.trim();
    if (!s || !el || el.closest('code, pre, textarea, script, style, .cm-editor, #danlu-lang')) continue;
    if (shown(el) && (!el.closest('svg') || shown(el.closest('svg')))) out.push(s);
  }
  for (const el of document.querySelectorAll('input[role=combobox], input[placeholder], textarea[placeholder]')) {
    if (!shown(el)) continue;
    if (el.placeholder && el.placeholder.trim()) out.push(el.placeholder.trim());
    if (el.getAttribute('role') === 'combobox' && el.value.trim()) out.push(el.value.trim());
  }
  return out;
}"""


def english_words(text: str) -> list[str]:
    """The ASCII-only words of `text` that are not names, numbers, file names, paths, keys or glossed values."""
    text = GLOSS.sub("", text)  # full-width brackets: Chinese typography glossing a value
    for phrase in (*USER_TEXT, *PHRASES):
        text = text.replace(phrase, " ")
    words = []
    for token in TOKEN.findall(text):
        token = token.rstrip(".:,;'’-")
        if WORD.fullmatch(token) and len(token) > 1 and token not in NAMES:
            words.append(token)
    return words


def test_english_words_rule():
    assert english_words("Drop File Here") == ["Drop", "File", "Here"]
    assert english_words("把 .safetensors 文件放到 /tmp/a b_c/ckpt，用 SD1.5 与 Z-Image") == []
    assert english_words("学习率调度：余弦（cosine）") == [] and english_words("cosine") == ["cosine"]
    assert english_words("已保存的文件 · Saved files") == ["Saved", "files"]
    assert english_words("第 1 轮 · #1 demo, a red square") == [] and english_words("#1 a red") == ["red"]
    assert english_words("model.base = 'x' · --n 反向提示词 · <output_dir>/<name>/ · 12×10 · 1e-4") == []


def test_every_chinese_text_of_the_table():
    """Every 简体中文 text of every tab (messages a walk may not meet included), placeholders left out."""
    import importlib

    from ui.app import TABS
    from ui.i18n import STRINGS

    for name in ["ui.start", *TABS]:
        importlib.import_module(name)
    found = {key: english_words(re.sub(r"\{[^}]*\}", " ", zh)) for key, (zh, _) in STRINGS.items()}
    assert not {key: words for key, words in found.items() if words}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """An app of its own (English at first, as a fresh page in an English browser would open it)."""
    from ui.app import CSS, build_app

    outputs, models_dir = tmp_path_factory.mktemp("zh-outputs"), tmp_path_factory.mktemp("zh-checkpoints")
    demo = build_app(lang="en", outputs_dir=outputs, models_dir=models_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _settle(page) -> None:
    """No gradio event pending and the page's text unchanged for a moment."""
    page.wait_for_function(
        """() => {
            const key = document.body.innerText.length;
            if (document.querySelector('.pending') || window.__zh_key !== key) {
                window.__zh_key = key; window.__zh_since = performance.now(); return false;
            }
            return performance.now() - window.__zh_since > 1200;
        }""", polling=200, timeout=90_000)


def _open_accordions(page) -> None:
    for _ in range(4):  # an accordion can hold another one
        closed = page.locator("button.label-wrap:not(.open):visible")
        if not closed.count():
            return
        for _ in range(closed.count()):
            closed.nth(0).click()
        _settle(page)


def _params_in_chinese(page) -> None:
    """The Parameters tab's own words: a field label with its gloss, the hints, the view switch, the preset list."""
    page.locator("#params-network-rank").get_by_text("秩 rank（dim）").wait_for()
    page.wait_for_selector("#params-hints:has-text('alpha 决定 LoRA 的缩放')")
    page.locator("#params-view").get_by_text("专家").wait_for()
    page.locator("#params-preset input").click()
    page.locator("#params-preset").get_by_role("option", name="二次元 / 插画 SD1.5").wait_for()
    page.keyboard.press("Escape")


def test_every_tab_reads_in_chinese(browser, app_url, artifacts):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.wait_for_selector("#danlu-tabs")
    page.locator("#danlu-lang").get_by_text("简体中文").click()
    page.locator("#start-panel").get_by_text("从这里开始").wait_for()
    page.click("#start-demo-sd15")
    page.locator("#start-message").get_by_text("演示已就绪").wait_for()

    found: dict[str, set[str]] = defaultdict(set)
    tabs = page.locator("#danlu-tabs button[role=tab]")
    for i in range(tabs.count()):
        name = tabs.nth(i).inner_text()
        tabs.nth(i).click()
        _settle(page)
        expert = page.locator("#params-view input[value=expert]")
        if expert.is_visible():  # the Parameters tab's every field, not only the beginner's
            _params_in_chinese(page)
            expert.check()
            _settle(page)
        _open_accordions(page)
        for text in page.evaluate(COLLECT):
            for word in english_words(text):
                found[word].add(f"[{name}] {text[:100]}")
        page.screenshot(path=artifacts / f"zh_tab{i}.png", full_page=True)
    context.close()
    report = "\n".join(f"{w}: {sorted(where)[0]}" for w, where in sorted(found.items()))
    assert not found, f"English words in the 简体中文 page:\n{report}"
