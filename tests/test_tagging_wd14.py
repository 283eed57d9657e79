"""The WD tagger: preprocessing against a plain re-implementation, tiny ONNX models with the real I/O, tag
selection (thresholds, MCut, kaomoji, exclusions, ordering) and caption policies with backups."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from core.dataset.captions import BACKUP_DIR, read_caption
from core.errors import DanluError
from taggers.pipeline import find_images, tag_folder
from taggers.tiny import make_tiny_tagger, tiny_formula, tiny_weights, write_tags_csv
from taggers.wd14 import (
    KAOMOJI,
    Labels,
    Prediction,
    Tagger,
    TagOptions,
    caption_tags,
    kaomoji_candidates,
    load_labels,
    mcut_threshold,
    merge_caption,
    preprocess,
    resolve_model,
    select,
)


def plain_preprocess(img: Image.Image, size: int) -> np.ndarray:
    """The reference steps written out by hand with numpy: blend alpha on white, pad, resize, flip to BGR."""
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
    a = rgba[:, :, 3:4] / 255.0
    rgb = np.round(rgba[:, :, :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    h, w = rgb.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), 255, np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = rgb
    out = Image.fromarray(square)
    if side != size:
        out = out.resize((size, size), Image.BICUBIC)
    arr = np.asarray(out, dtype=np.float32)
    return arr[:, :, [2, 1, 0]]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    wide = Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8))
    rgba = rng.integers(0, 255, (40, 24, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0        # fully transparent rows must become white, not black
    rgba[10:20, :, 3] = 128
    tall = Image.fromarray(rgba, "RGBA")
    small = Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))
    pal = wide.convert("P")
    pal_clear = pal.copy()
    pal_clear.info["transparency"] = pal.getpixel((0, 0))   # a GIF-style transparent palette entry
    return {"wide": wide, "tall_alpha": tall, "small": small, "palette": pal, "palette_clear": pal_clear,
            "grey": wide.convert("L"), "cmyk": wide.convert("CMYK"),
            "square": Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))}


@pytest.mark.parametrize("name", ["wide", "tall_alpha", "small", "palette", "palette_clear", "grey", "cmyk",
                                  "square"])
@pytest.mark.parametrize("size", [32, 50])
def test_preprocess_matches_plain_implementation(images, name, size):
    ours = preprocess(images[name], size)
    ref = plain_preprocess(images[name], size)
    assert ours.shape == (size, size, 3) and ours.dtype == np.float32
    # PIL's alpha_composite rounds its own way: at most one grey level apart, and only where alpha is partial.
    assert np.abs(ours - ref).max() <= 1.0


def test_preprocess_layout_white_padding_bgr():
    img = Image.new("RGB", (20, 10), (255, 0, 0))  # red, wide: padded above and below
    out = preprocess(img, 20)
    assert out[0, 10].tolist() == [255, 255, 255]        # white pad on top
    assert out[10, 10].tolist() == [0, 0, 255]           # red in BGR order
    assert out.max() > 1.0                               # 0–255, not normalised
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert preprocess(clear, 8).min() == 255.0           # transparent → white


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("taggers")
    return {"v3": make_tiny_tagger(root / "v3", size=32, dynamic=True, v3=True),
            "v2": make_tiny_tagger(root / "v2", size=40, dynamic=False, v3=False)}


def test_session_reads_size_batch_and_names(models):
    v3, v2 = Tagger(models["v3"], device="cpu"), Tagger(models["v2"], device="cpu")
    assert (v3.size, v3.dynamic_batch, v3.input_name, v3.output_name) == (32, True, "input", "output")
    assert (v2.size, v2.dynamic_batch, v2.input_name, v2.output_name) == (40, False, "input_1:0",
                                                                          "predictions_sigmoid")
    assert v3.providers == ["CPUExecutionProvider"] and v3.fallback is None


@pytest.mark.parametrize("kind", ["v3", "v2"])
def test_predict_matches_formula_and_batching(models, kind):
    tagger = Tagger(models[kind], device="cpu")
    batch = np.random.default_rng(0).uniform(0, 255, (5, tagger.size, tagger.size, 3)).astype(np.float32)
    calls = []
    real_run = tagger.session.run
    tagger.session = type("S", (), {"run": lambda self, o, f: calls.append(len(next(iter(f.values())))) or
                                    real_run(o, f), "get_inputs": lambda self: real_run.__self__.get_inputs()})()
    probs = tagger.predict(batch)
    w, b = tiny_weights(len(tagger.labels.names))
    assert np.allclose(probs, tiny_formula(batch, w, b), atol=1e-5)
    assert calls == ([5] if kind == "v3" else [1] * 5)   # fixed-batch exports run one image at a time


def test_labels_by_category_and_kaomoji(tmp_path):
    # characters listed before general tags: indexing must follow the category column, not row position
    import csv

    with open(tmp_path / "selected_tags.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["tag_id", "name", "category", "count"])
        for i, (n, c) in enumerate([("general", 9), ("sensitive", 9), ("questionable", 9), ("explicit", 9),
                                    ("hatsune_miku", 4), ("long_hair", 0), ("^_^", 0), ("t_t", 0), ("no_humans", 0),
                                    ("(o)_(o)", 0)]):
            w.writerow([i, n, c, 1])
    labels = load_labels(tmp_path / "selected_tags.csv")
    assert [labels.names[i] for i in labels.character] == ["hatsune miku"]
    assert [labels.names[i] for i in labels.general] == ["long hair", "^_^", "t_t", "no humans", "(o)_(o)"]
    assert len(labels.rating) == 4
    assert "t_t" in kaomoji_candidates(labels.raw) and "no_humans" not in kaomoji_candidates(labels.raw)
    assert len(KAOMOJI) == 19


def _labels(general, character):
    names = ["general", "sensitive", "questionable", "explicit"] + general + character
    n_g = len(general)
    return Labels(names=names, raw=names, rating=np.arange(4), general=np.arange(4, 4 + n_g),
                  character=np.arange(4 + n_g, len(names)))


def test_thresholds_are_strict_and_separate():
    labels = _labels(["a", "b", "c"], ["chara x", "chara y"])
    probs = np.array([0.1, 0.8, 0.05, 0.05, 0.35, 0.9, 0.36, 0.86, 0.85])
    pred = select(probs, labels, TagOptions())
    assert pred.general == [("b", pytest.approx(0.9)), ("c", pytest.approx(0.36))]   # 0.35 is not > 0.35
    assert [n for n, _ in pred.character] == ["chara x"]                           # 0.85 is not > 0.85
    assert max(pred.rating, key=pred.rating.get) == "sensitive"


def test_mcut():
    assert mcut_threshold(np.array([0.9, 0.85, 0.3, 0.2])) == pytest.approx(0.575)
    labels = _labels(["a", "b", "c", "d"], ["x", "y"])
    probs = np.array([0, 0, 0, 0, 0.9, 0.85, 0.3, 0.2, 0.12, 0.02])
    pred = select(probs, labels, TagOptions(general_threshold=0.1, general_mcut=True, character_mcut=True))
    assert [n for n, _ in pred.general] == ["a", "b"]
    # character MCut would put the cut at 0.07; it is clamped to at least 0.15, so 0.12 is out
    assert pred.character == []


def test_exclusions_on_normalised_names_and_by_category():
    labels = _labels(["long hair", "no humans", "smile"], ["miku"])
    probs = np.array([0, 0, 0, 0, 0.9, 0.8, 0.7, 0.99])
    opts = TagOptions(exclude=["no_humans", "Long Hair", "absent_tag"])   # absent tags are fine (no KeyError)
    pred = select(probs, labels, opts)
    assert [n for n, _ in pred.general] == ["smile"] and [n for n, _ in pred.character] == ["miku"]
    assert select(probs, labels, TagOptions(exclude_categories=["character"])).character == []


def test_caption_layout_trigger_first_deduplicated():
    pred = Prediction(rating={"general": 0.9, "sensitive": 0.1}, character=[("miku", 0.95)],
                      general=[("smile", 0.9), ("sks", 0.8), ("long hair", 0.5)])
    assert caption_tags(pred, TagOptions(trigger="sks, my style")) == ["sks", "my style", "miku", "smile",
                                                                       "long hair"]
    assert caption_tags(pred, TagOptions(rating=True))[-1] == "general"


def test_policies():
    new = ["sks", "smile", "red hair"]
    assert merge_caption("old tag", new, "skip", "sks") is None
    assert merge_caption("", new, "skip", "sks") == "sks, smile, red hair"
    assert merge_caption("old tag, smile", new, "overwrite", "sks") == "sks, smile, red hair"
    assert merge_caption("old tag, smile", new, "append", "sks") == "sks, old tag, smile, red hair"
    assert merge_caption("old tag, smile", new, "prepend", "sks") == "sks, smile, red hair, old tag"
    with pytest.raises(DanluError):
        merge_caption("", new, "merge")


def _dataset(root, n=7):
    sub = root / "10_sks"
    sub.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (40 + 4 * i, 30), (30 * i, 200 - 20 * i, 90)).save(sub / f"{i:02d}.png")
    (sub / "broken.png").write_bytes(b"not a png")
    return sub


def test_tag_folder_end_to_end_with_policies_and_backups(tmp_path, models):
    sub = _dataset(tmp_path / "ds")
    (sub / "00.txt").write_bytes("sks, 旧标签".encode("gbk"))      # an existing GBK caption
    tagger = Tagger(models["v3"], device="cpu")
    seen = []
    report = tag_folder(tmp_path / "ds", tagger, TagOptions(trigger="sks", general_threshold=0.2), "skip",
                        batch_size=3, progress=seen.append)
    assert report.skipped == 1 and len(report.written) == 7 - 1 and len(report.failed) == 1
    assert report.backups == 0 and seen[-1].done == seen[-1].total == 8 and seen[-1].images_per_s > 0
    assert (sub / "00.txt").read_bytes() == "sks, 旧标签".encode("gbk")   # skip leaves it alone
    first = read_caption(sub / "01.txt").text
    assert first.startswith("sks, ") and "_" not in first.replace("^_^", "")
    # the caption is what the model predicts for the preprocessed image
    arr = preprocess(Image.open(sub / "01.png"), tagger.size)[None]
    expected = caption_tags(select(tiny_formula(arr, *tiny_weights(len(tagger.labels.names)))[0], tagger.labels,
                                   TagOptions(trigger="sks", general_threshold=0.2)),
                            TagOptions(trigger="sks"))
    assert first == ", ".join(expected)

    report = tag_folder(tmp_path / "ds", tagger, TagOptions(trigger="sks", general_threshold=0.2), "append")
    assert report.backups == 1 and report.unchanged == 6    # only 00.txt changed; its GBK original is kept
    backup = tmp_path / "ds" / BACKUP_DIR / report.backup_stamp / "10_sks" / "00.txt"
    assert backup.read_bytes() == "sks, 旧标签".encode("gbk")
    merged = read_caption(sub / "00.txt")
    assert merged.problem is None and merged.text.startswith("sks, 旧标签, ")


def test_cancel_keeps_finished_batches(tmp_path, models):
    _dataset(tmp_path / "ds")
    tagger = Tagger(models["v2"], device="cpu")
    cancel = threading.Event()

    def on_progress(p):
        if p.done >= 3:
            cancel.set()

    report = tag_folder(tmp_path / "ds", tagger, TagOptions(), "overwrite", progress=on_progress, cancel=cancel)
    assert report.cancelled and 3 <= len(report.written) < 7
    assert all(p.is_file() for p in report.written)
    assert len(list((tmp_path / "ds" / "10_sks").glob("*.txt"))) == len(report.written)


def test_find_images_skips_backups(tmp_path):
    sub = _dataset(tmp_path / "ds", n=2)
    (tmp_path / "ds" / BACKUP_DIR / "s" / "10_sks").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "ds" / BACKUP_DIR / "s" / "10_sks" / "x.png")
    assert [p.name for p in find_images(tmp_path / "ds")] == ["00.png", "01.png", "broken.png"]
    assert find_images(sub) == find_images(tmp_path / "ds")


def test_resolve_model_local_and_offline_errors(tmp_path, models):
    assert resolve_model(str(models["v3"])) == models["v3"]
    assert resolve_model(str(models["v3"] / "model.onnx")) == models["v3"]
    (tmp_path / "half").mkdir()
    write_tags_csv(tmp_path / "half" / "selected_tags.csv", ["a"], [])
    with pytest.raises(DanluError, match="model.onnx"):
        resolve_model(str(tmp_path / "half"))
    with pytest.raises(DanluError, match="does not exist"):
        resolve_model(str(tmp_path / "nowhere"))
    # HF_HUB_OFFLINE=1 in tests: an uncached hub model says what to do instead of a traceback
    with pytest.raises(DanluError) as e:
        resolve_model("wd-eva02-large-tagger-v3", local_files_only=True)
    assert "local" in e.value.hint_en or "folder" in e.value.hint_en


def test_hub_download_uses_cache_first_then_downloads_with_progress(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls, seen = [], []

    def fake_download(repo_id, filename, *, revision=None, local_files_only=False, tqdm_class=None, **_):
        calls.append((repo_id, filename, revision, local_files_only))
        target = tmp_path / "snap" / filename
        if local_files_only and not target.exists():
            raise LocalEntryNotFoundError("not cached")
        if not local_files_only:
            bar = tqdm_class(total=200, desc=filename)
            bar.update(120)
            bar.update(80)
            bar.close()
            target.parent.mkdir(exist_ok=True)
            target.write_text("x")
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    folder = resolve_model("SmilingWolf/wd-vit-tagger-v3@v1.0", lambda *a: seen.append(a), local_files_only=False)
    assert folder == tmp_path / "snap"
    assert calls[:2] == [("SmilingWolf/wd-vit-tagger-v3", "selected_tags.csv", "v1.0", True),
                         ("SmilingWolf/wd-vit-tagger-v3", "selected_tags.csv", "v1.0", False)]
    assert ("model.onnx", 200, 200) in seen and ("selected_tags.csv", 120, 200) in seen
    calls.clear()
    resolve_model("wd-vit-tagger-v3", local_files_only=False)        # now cached: no download call
    assert all(c[3] for c in calls) and calls[0][0] == "SmilingWolf/wd-vit-tagger-v3"


def test_cuda_fallback_is_detected_from_the_session(models, monkeypatch):
    """With a GPU expected, the session's real providers decide; a CPU session says why CUDA is missing."""
    import onnxruntime as ort

    import taggers.wd14 as wd14

    monkeypatch.setattr(wd14, "_gpu_present", lambda: True)
    tagger = Tagger(models["v3"])
    if tagger.on_gpu:   # a machine with working CUDA libraries
        assert tagger.fallback is None and tagger.providers[0] == "CUDAExecutionProvider"
    else:
        assert tagger.providers == ["CPUExecutionProvider"] and tagger.fallback
        en, zh = tagger.fallback
        assert "CUDA" in en and "CUDA" in zh
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    cpu_build = Tagger(models["v3"])
    assert not cpu_build.on_gpu and "onnxruntime-gpu" in cpu_build.fallback[0]
    assert Tagger(models["v3"], device="cpu").fallback is None      # asking for the CPU is not a fallback
