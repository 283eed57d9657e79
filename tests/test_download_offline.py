"""An unreachable download source is found out in seconds by a short, cached probe (never the network in a test):
the download fails with its usual message, the start checks say so before training, and the page shows what is
happening instead of 0/0."""

from __future__ import annotations

import socket
import time

import pytest

from core import checks, download
from core import config as cfgmod
from core.errors import DanluError


def _probe(answer: bool, calls: list):
    def probe(url: str, timeout: float) -> bool:
        calls.append((url, timeout))
        return answer
    return probe


def test_the_probe_is_asked_once_a_minute_and_never_when_offline(monkeypatch):
    calls: list = []
    monkeypatch.setattr(download, "PROBE", _probe(False, calls))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not download.reachable(download.Source("huggingface")) and calls == []  # offline: not even asked
    monkeypatch.delenv("HF_HUB_OFFLINE")
    mirror = download.Source("mirror", "https://mirror.example")
    assert not download.reachable(mirror) and not download.reachable(mirror)
    assert calls == [("https://mirror.example", download.PROBE_TIMEOUT)]  # cached
    assert download.PROBE_TIMEOUT <= 5
    download._probed["https://mirror.example"] = (time.monotonic() - download.PROBE_TTL - 1, False)
    download.reachable(mirror)
    assert len(calls) == 2  # asked again once the answer is old
    assert not download.reachable(download.Source("modelscope"))
    assert calls[-1][0] == download.SOURCE_URLS["modelscope"]


def test_the_real_probe_says_no_at_once_for_a_closed_port():
    with socket.socket() as s:  # a local port nobody listens on: refused, no network involved
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    assert download._connect(f"http://127.0.0.1:{port}", 2.0) is False
    assert time.monotonic() - start < 2.0
    assert download._connect("not a url", 1.0) is False


def test_an_unreachable_hub_fails_with_the_usual_message_and_says_where_it_connects(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "PROBE", _probe(False, []))
    start = time.monotonic()
    with pytest.raises(DanluError) as e:
        download.fetch("danlu-test/never-downloaded", files=["adapter.safetensors"],
                       source=download.Source("huggingface"), what=("training adapter", "训练适配器"))
    assert time.monotonic() - start < 5
    assert "is not downloaded yet and Hugging Face hub cannot be reached" in e.value.en
    assert "尚未下载" in e.value.zh
    with pytest.raises(DanluError) as e:  # a whole snapshot too: only the cache is looked in
        download.fetch("danlu-test/never-downloaded", patterns=["*.json"], source=download.Source("huggingface"))
    assert "not downloaded yet" in e.value.en


def _turbo(adapter: str) -> cfgmod.RunConfig:
    cfg = cfgmod.default_config()
    cfg.model.base, cfg.model.family, cfg.model.variant = "/nowhere/z-image-turbo", "zimage", "turbo"
    cfg.model.training_adapter = adapter
    return cfg


def test_the_start_checks_say_when_the_adapter_needs_an_unreachable_hub(monkeypatch, tmp_path):
    from models import preflight

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "PROBE", _probe(False, []))
    monkeypatch.setattr(download, "is_cached", lambda repo, name: False)
    found = [i for i in preflight.issues(_turbo("v2")) if i.key == "model.training_adapter"]
    assert found and found[0].level == "error" and "cannot be reached" in found[0].en
    assert "Local file" in found[0].hint_en and "本地文件" in found[0].hint_zh
    local = tmp_path / "adapter.safetensors"
    local.write_bytes(b"x")
    assert preflight.adapter_unreachable(_turbo(str(local)), checks.Env()) is None  # a local file needs no hub
    deturbo = _turbo("none")
    deturbo.model.variant = "deturbo"
    assert preflight.adapter_unreachable(deturbo, checks.Env()) is None
    monkeypatch.setattr(download, "is_cached", lambda repo, name: True)
    assert preflight.adapter_unreachable(_turbo("v2"), checks.Env()) is None  # downloaded once: no network needed
    monkeypatch.setattr(download, "is_cached", lambda repo, name: False)
    monkeypatch.setattr(download, "_probed", {})
    monkeypatch.setattr(download, "PROBE", _probe(True, []))
    assert preflight.adapter_unreachable(_turbo("v1"), checks.Env()) is None  # the hub answers


def test_the_tagging_bar_says_what_happens_before_anything_is_counted():
    from ui.tagging.state import progress_html

    waiting = progress_html(0, 0, "Loading the tagger…")
    assert "0/0" not in waiting and "(0%)" not in waiting and "Loading the tagger…" in waiting
    assert "3/10 (30%) · tagging" in progress_html(3, 10, "tagging")
