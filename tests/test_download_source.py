"""The download source (hub, mirror, ModelScope) for every download, with both libraries stubbed: no network."""

from __future__ import annotations

import sys
import types

import pytest

from core import config as cfgmod
from core import download
from core.download import Source, apply, fetch, resolve
from core.errors import DanluError


def test_setting_then_environment_then_hf_endpoint_then_hub():
    assert resolve("auto", env={}) == Source("huggingface")
    assert resolve("auto", env={"HF_ENDPOINT": "https://hf-mirror.com/"}) == Source("mirror", "https://hf-mirror.com")
    both = {"DANLU_DOWNLOAD_SOURCE": "modelscope", "HF_ENDPOINT": "https://x"}
    assert resolve("auto", env=both).kind == "modelscope"
    assert resolve("huggingface", env={"DANLU_DOWNLOAD_SOURCE": "modelscope"}).kind == "huggingface"
    assert resolve("mirror", env={}) == Source("mirror", download.DEFAULT_MIRROR)
    assert resolve("mirror", "https://my.mirror/", env={}) == Source("mirror", "https://my.mirror")
    assert resolve("https://m.example", env={}) == Source("mirror", "https://m.example")
    with pytest.raises(DanluError) as e:
        resolve("ftp", env={})
    assert e.value.key == "model.download_source" and "modelscope" in e.value.hint_zh


def test_apply_sets_the_environment_for_later_downloads_and_children(monkeypatch):
    monkeypatch.setenv(download.ENV_SOURCE, "")   # restored (to absent) after the test
    monkeypatch.setenv(download.ENV_MIRROR, "")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    apply("auto")
    assert resolve() == Source("huggingface")
    assert apply("mirror", "https://mirror.example") == Source("mirror", "https://mirror.example")
    assert resolve() == Source("mirror", "https://mirror.example")
    apply("modelscope")
    assert resolve().kind == "modelscope"


def test_modelscope_ids_follow_the_table_else_the_same_name():
    ms = Source("modelscope")
    assert ms.repo_id("Tongyi-MAI/Z-Image-Turbo") == "Tongyi-MAI/Z-Image-Turbo"
    assert ms.repo_id("stabilityai/stable-diffusion-xl-base-1.0") == "AI-ModelScope/stable-diffusion-xl-base-1.0"
    assert ms.repo_id("someone/else") == "someone/else"
    assert Source("huggingface").repo_id("stabilityai/stable-diffusion-xl-base-1.0").startswith("stabilityai/")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """huggingface_hub with a fake remote: files appear in the cache folder once 'downloaded'."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []
    snap = tmp_path / "hub" / "snap"

    def fake_file(repo_id, filename, *, revision=None, local_files_only=False, tqdm_class=None, endpoint=None, **_):
        calls.append(("file", repo_id, filename, revision, local_files_only, endpoint))
        target = snap / filename
        if local_files_only and not target.exists():
            raise LocalEntryNotFoundError("not cached")
        if not local_files_only:
            bar = tqdm_class(total=10, desc=filename)
            bar.update(10)
            bar.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
        return str(target)

    def fake_snapshot(repo_id, revision=None, local_files_only=False, allow_patterns=None, endpoint=None, **_):
        calls.append(("snapshot", repo_id, revision, local_files_only, endpoint, allow_patterns))
        if local_files_only and not snap.exists():
            raise LocalEntryNotFoundError("not cached")
        snap.mkdir(parents=True, exist_ok=True)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    return types.SimpleNamespace(calls=calls, snap=snap)


def test_hub_and_mirror_files_cache_first_with_progress(hub):
    seen = []
    folder = fetch("org/tagger@v2", files=["a.csv", "sub/b.onnx"], progress=lambda *a: seen.append(a),
                   local_files_only=False, source=Source("mirror", "https://hf-mirror.com"))
    assert folder == hub.snap and (folder / "sub" / "b.onnx").is_file()
    assert hub.calls[:2] == [("file", "org/tagger", "a.csv", "v2", True, None),
                             ("file", "org/tagger", "a.csv", "v2", False, "https://hf-mirror.com")]
    assert ("a.csv", 10, 10) in seen and ("sub/b.onnx", 10, 10) in seen
    hub.calls.clear()
    fetch("org/tagger@v2", files=["a.csv", "sub/b.onnx"], local_files_only=False, source=Source("huggingface"))
    assert all(c[4] for c in hub.calls)  # cached now: no download call


def test_hub_snapshot_with_patterns_and_offline_message(hub, tmp_path):
    fetch("org/model", patterns=["model_index.json"], local_files_only=False, source=Source("huggingface"))
    assert hub.calls[-1] == ("snapshot", "org/model", None, False, None, ["model_index.json"])
    assert download.cached("org/model") == hub.snap
    import shutil

    shutil.rmtree(hub.snap)
    with pytest.raises(DanluError) as e:
        fetch("org/model", files=["model.onnx"], local_files_only=True, source=Source("huggingface"),
              what=("tagger", "打标模型"), key="tagger.model")
    err = e.value
    assert "not downloaded yet" in err.en and "尚未下载" in err.zh and "folder" in err.hint_en
    assert err.key == "tagger.model" and "Hugging Face" in err.en
    assert download.cached("org/model") is None


@pytest.fixture
def modelscope(tmp_path, monkeypatch):
    """A stand-in modelscope package: snapshot_download writes the asked files and reports progress."""
    calls = []
    root = tmp_path / "ms"

    class ProgressCallback:
        def __init__(self, filename, file_size):
            self.filename, self.file_size = filename, file_size

    def snapshot_download(model_id, revision=None, allow_patterns=None, local_files_only=False,
                          progress_callbacks=None, **_):
        calls.append((model_id, revision, allow_patterns, local_files_only))
        folder = root / model_id
        if local_files_only:
            if not folder.is_dir():
                raise type("CacheNotFound", (Exception,), {})("no snapshot")
            return str(folder)
        if model_id.startswith("missing/"):
            raise RuntimeError("404 model not found")
        for name in allow_patterns or ["model_index.json"]:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("x")
            for cb_cls in progress_callbacks or []:
                cb = cb_cls(name, 4)
                cb.update(3)
                cb.update(1)
        return str(folder)

    pkg = types.ModuleType("modelscope")
    pkg.__path__ = []
    hub_mod = types.ModuleType("modelscope.hub")
    hub_mod.__path__ = []
    snap_mod = types.ModuleType("modelscope.hub.snapshot_download")
    snap_mod.snapshot_download = snapshot_download
    cb_mod = types.ModuleType("modelscope.hub.callback")
    cb_mod.ProgressCallback = ProgressCallback
    for name, mod in {"modelscope": pkg, "modelscope.hub": hub_mod, "modelscope.hub.snapshot_download": snap_mod,
                      "modelscope.hub.callback": cb_mod}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(download.importlib.util, "find_spec", lambda name: object())
    return types.SimpleNamespace(calls=calls, root=root)


def test_modelscope_maps_ids_downloads_files_with_progress_and_reuses_the_cache(modelscope):
    seen = []
    ms = Source("modelscope")
    folder = fetch("stabilityai/stable-diffusion-xl-base-1.0", patterns=["unet/x.safetensors"], source=ms,
                   progress=lambda *a: seen.append(a), local_files_only=False)
    assert folder == modelscope.root / "AI-ModelScope/stable-diffusion-xl-base-1.0"
    assert modelscope.calls[-1] == ("AI-ModelScope/stable-diffusion-xl-base-1.0", None, ["unet/x.safetensors"], False)
    assert seen == [("unet/x.safetensors", 3, 4), ("unet/x.safetensors", 4, 4)]
    modelscope.calls.clear()
    fetch("Tongyi-MAI/Z-Image-Turbo", files=["a.json"], source=ms, local_files_only=False)
    fetch("Tongyi-MAI/Z-Image-Turbo", files=["a.json"], source=ms, local_files_only=False)
    assert [c[3] for c in modelscope.calls] == [True, False, True]  # second time: cache only


def test_modelscope_failures_say_what_to_do(modelscope, monkeypatch):
    ms = Source("modelscope")
    with pytest.raises(DanluError) as e:
        fetch("missing/adapter", files=["a.safetensors"], source=ms, local_files_only=False,
              what=("training adapter", "训练适配器"))
    assert "ModelScope" in e.value.en and "another id" in e.value.hint_en and "训练适配器" in e.value.zh
    with pytest.raises(DanluError) as e:
        fetch("missing/adapter", files=["a.safetensors"], source=ms, local_files_only=True)
    assert "not downloaded yet" in e.value.en
    monkeypatch.setattr(download.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DanluError) as e:
        fetch("Tongyi-MAI/Z-Image-Turbo", patterns=["*"], source=ms, local_files_only=False)
    assert "pip install modelscope" in e.value.hint_en and "pip install modelscope" in e.value.hint_zh


def test_core_download_imports_neither_torch_nor_gradio():
    import subprocess

    code = ("import sys, core.download; bad = [m for m in ('torch', 'gradio', 'huggingface_hub', 'modelscope') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_training_adapter_comes_from_the_chosen_source(hub, modelscope, monkeypatch):
    from training.families import zimage as dit

    name = dit.ADAPTER_FILES["v2"]
    path = dit.adapter_path("v2", Source("modelscope"))
    assert path == modelscope.root / dit.ADAPTER_REPO / name and path.is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    path = dit.adapter_path("v2", Source("mirror", "https://hf-mirror.com"))
    assert path == hub.snap / name and hub.calls[-1][-1] == "https://hf-mirror.com"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DanluError) as e:
        dit.adapter_path("v1", Source("huggingface"))
    assert "not downloaded yet" in e.value.en and "model.training_adapter" in e.value.hint_en
    assert e.value.key == "model.training_adapter"


def test_the_trainer_takes_the_source_from_the_run_toml(tmp_path, monkeypatch):
    """`train RUN.toml` puts model.download_source into its environment before anything is downloaded."""
    from training import cli

    monkeypatch.setenv(download.ENV_SOURCE, "")
    monkeypatch.setenv(download.ENV_MIRROR, "")
    cfg = cfgmod.default_config()
    cfg.model.download_source, cfg.model.hub_mirror = "mirror", "https://mirror.example"
    cfgmod.save(cfg, tmp_path / "run.toml")
    assert cli.main([str(tmp_path / "run.toml"), "--dry-run"]) == 2  # no base, no dataset: refused after applying
    assert resolve() == Source("mirror", "https://mirror.example")


def test_a_zimage_hub_id_is_fetched_with_its_own_patterns(hub, monkeypatch):
    """The Model tab's Download and the loader fetch a DiT repo's transformer shards, not an SD UNet."""
    from models.loading import download as download_base

    monkeypatch.setenv(download.ENV_SOURCE, "mirror")
    monkeypatch.setenv(download.ENV_MIRROR, "https://hf-mirror.com")
    download_base("Tongyi-MAI/Z-Image-Turbo")
    repo, patterns, endpoint = hub.calls[-1][1], hub.calls[-1][5], hub.calls[-1][4]
    assert repo == "Tongyi-MAI/Z-Image-Turbo" and "transformer/*.safetensors" in patterns
    assert endpoint == "https://hf-mirror.com" and not any("unet" in p for p in patterns)
    download_base("someone/sdxl-finetune")
    assert "unet/diffusion_pytorch_model.safetensors" in hub.calls[-1][5]
    download_base("someone/zimage-finetune", family="zimage")
    assert "transformer/*.safetensors" in hub.calls[-1][5]
