"""Where every download comes from: the Hugging Face hub, a hub mirror, or ModelScope.

Base models, training adapters and taggers all go through `fetch`, so one setting decides the source:
the run TOML's `model.download_source` (the page writes it), else the DANLU_DOWNLOAD_SOURCE environment
variable (`huggingface`, `mirror`, `modelscope`, or a mirror URL), else HF_ENDPOINT (a mirror), else the hub.
`apply` puts a chosen setting into this process's environment, so later downloads and child processes
(the trainer, the grid) use it too.

Files land in each library's own cache (huggingface_hub's for the hub and its mirrors, modelscope's for
ModelScope); both resume an interrupted download from its partial file. huggingface_hub and modelscope
are imported only when a download happens.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import DanluError

SETTINGS = ("auto", "huggingface", "mirror", "modelscope")
DEFAULT_MIRROR = "https://hf-mirror.com"
ENV_SOURCE = "DANLU_DOWNLOAD_SOURCE"
ENV_MIRROR = "DANLU_HUB_MIRROR"

# Hub id → ModelScope id. Every entry was seen in public ModelScope links or download scripts; an id not listed
# (ostris/Z-Image-De-Turbo, SmilingWolf's taggers, ...) is asked for under the same name, and the error message
# then says that ModelScope may publish it under another id.
MODELSCOPE_IDS = {
    "stabilityai/stable-diffusion-xl-base-1.0": "AI-ModelScope/stable-diffusion-xl-base-1.0",
    "runwayml/stable-diffusion-v1-5": "AI-ModelScope/stable-diffusion-v1-5",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "AI-ModelScope/stable-diffusion-v1-5",
    "Tongyi-MAI/Z-Image-Turbo": "Tongyi-MAI/Z-Image-Turbo",
    "Tongyi-MAI/Z-Image": "Tongyi-MAI/Z-Image",
    "ostris/zimage_turbo_training_adapter": "ostris/zimage_turbo_training_adapter",
}

Progress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total)

# Where each source answers; a mirror answers at its own URL.
SOURCE_URLS = {"huggingface": "https://huggingface.co", "modelscope": "https://www.modelscope.cn"}
PROBE_TIMEOUT = 3.0   # s: a reachable server accepts a connection well within it; an offline machine fails fast
PROBE_TTL = 60.0      # s: the start checks and the download that follows ask the network once


@dataclass(frozen=True)
class Source:
    kind: str                   # huggingface | mirror | modelscope
    endpoint: str | None = None  # the mirror's URL

    def label(self, lang: str) -> str:
        if self.kind == "modelscope":
            return "ModelScope 魔搭" if lang == "zh" else "ModelScope"
        if self.kind == "mirror":
            return f"镜像 {self.endpoint}" if lang == "zh" else f"the mirror {self.endpoint}"
        return "Hugging Face hub"

    def repo_id(self, hub_id: str) -> str:
        """The id to ask this source for."""
        return MODELSCOPE_IDS.get(hub_id, hub_id) if self.kind == "modelscope" else hub_id


def resolve(setting: str | None = None, mirror: str | None = None, env: dict | None = None) -> Source:
    """The source for a setting ('auto', 'huggingface', 'mirror', 'modelscope' or a mirror URL)."""
    env = os.environ if env is None else env
    value = (setting or "auto").strip()
    if value == "auto":
        value = (env.get(ENV_SOURCE) or "").strip()
        if not value and env.get("HF_ENDPOINT", "").strip():
            value = env["HF_ENDPOINT"].strip()
    if value.startswith(("http://", "https://")):
        return Source("mirror", value.rstrip("/"))
    if value == "mirror":
        url = (mirror or env.get(ENV_MIRROR) or env.get("HF_ENDPOINT") or DEFAULT_MIRROR).strip()
        return Source("mirror", url.rstrip("/"))
    if value in ("modelscope", "ms"):
        return Source("modelscope")
    if value in ("", "huggingface", "hf", "hub"):
        return Source("huggingface")
    raise DanluError(f"Unknown download source {value!r}.", f"未知的下载源 {value!r}。",
                     "Use huggingface, mirror, modelscope or a mirror URL such as https://hf-mirror.com.",
                     "可用 huggingface、mirror、modelscope，或镜像地址如 https://hf-mirror.com。",
                     key="model.download_source")


def apply(setting: str | None, mirror: str | None = None) -> Source:
    """Make a setting this process's (and its children's) source; 'auto' leaves the environment alone."""
    source = resolve(setting, mirror)
    if (setting or "auto") != "auto":
        os.environ[ENV_SOURCE] = source.kind
        if source.endpoint:
            os.environ[ENV_MIRROR] = source.endpoint
    return source


def _connect(url: str, timeout: float) -> bool:
    """Whether the host of `url` accepts a TCP connection within `timeout` seconds (no request is sent)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


# The reachability probe, (url, timeout) -> bool. Tests replace it: no test may use the network.
PROBE: Callable[[str, float], bool] = _connect
_probed: dict[str, tuple[float, bool]] = {}


def source_url(source: Source) -> str:
    return source.endpoint or SOURCE_URLS.get(source.kind, SOURCE_URLS["huggingface"])


def reachable(source: Source | None = None) -> bool:
    """Whether the download source answers, asked with a short timeout and remembered for PROBE_TTL seconds.

    HF_HUB_OFFLINE=1 means the hub and its mirrors are not asked at all. Without this, huggingface_hub retries an
    unreachable server for about half a minute before it says so.
    """
    source = source or resolve()
    if source.kind != "modelscope" and os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    return _answers(source)


def _answers(source: Source) -> bool:
    """The probe's cached answer for this source (PROBE_TTL seconds)."""
    url, now = source_url(source), time.monotonic()
    seen = _probed.get(url)
    if seen is None or now - seen[0] > PROBE_TTL:
        seen = _probed[url] = (now, bool(PROBE(url, PROBE_TIMEOUT)))
    return seen[1]


def is_cached(repo_id: str, filename: str) -> bool:
    """Whether one file of `repo_id` is in the hub's or ModelScope's cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(repo_id, filename), str):
            return True
    except Exception:  # noqa: BLE001 - no hub library or a malformed id: not cached there
        pass
    folder = cached(repo_id) if _modelscope_cache_exists() else None
    return folder is not None and (folder / filename).is_file()


class Unreachable(Exception):
    """The source did not answer the probe: the download is not tried (see `reachable`)."""


def fetch(repo_id: str, *, files: Iterable[str] | None = None, patterns: Iterable[str] | None = None,
          revision: str | None = None, progress: Progress | None = None, local_files_only: bool | None = None,
          source: Source | None = None, what: tuple[str, str] = ("model", "模型"), key: str | None = None) -> Path:
    """The local folder of `repo_id` holding `files` (exact names) or the files matching `patterns`.

    With `files`, the cache is looked in first, so a second run needs no network. `local_files_only`
    (default for the hub and mirrors: HF_HUB_OFFLINE=1) only looks in the cache. `what` names the thing in
    messages (en, zh); every failure is a DanluError saying what to do.
    """
    source = source or resolve()
    offline = local_files_only if local_files_only is not None else os.environ.get("HF_HUB_OFFLINE") == "1"
    repo_id, _, rev = repo_id.partition("@")
    revision = revision or rev or None
    try:
        if source.kind == "modelscope":  # HF_HUB_OFFLINE is the hub's switch; ModelScope is asked unless told not to
            return _modelscope(source.repo_id(repo_id), files, patterns, revision, progress,
                               bool(local_files_only) or not _answers(source))
        # A snapshot leaves HF_HUB_OFFLINE to huggingface_hub itself, which then serves a cached snapshot; an
        # unreachable source is not asked (only the cache is), so an offline machine fails in seconds.
        quiet = not bool(local_files_only) and not offline and not _answers(source)
        return _hub(repo_id, files, patterns, revision, progress, offline if files is not None else
                    bool(local_files_only) or quiet, source.endpoint, quiet)
    except DanluError:
        raise
    except Exception as exc:  # noqa: BLE001 - each library has its own error classes; all mean the same here
        raise _error(exc, repo_id, source, what, key, files) from exc


def cached(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of `repo_id` from any source, without touching the network; None if absent."""
    repo_id, _, rev = repo_id.partition("@")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision or rev or None, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the hub cache
        pass
    if _modelscope_cache_exists():
        try:
            from modelscope.hub.snapshot_download import snapshot_download as ms_snapshot

            return Path(ms_snapshot(MODELSCOPE_IDS.get(repo_id, repo_id), revision=revision or rev or None,
                                    local_files_only=True))
        except Exception:  # noqa: BLE001 - not in the ModelScope cache either
            pass
    return None


# ---------------------------------------------------------------- the two back ends

def _hub(repo_id, files, patterns, revision, progress, offline: bool, endpoint: str | None,
         unreachable: bool = False) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    extra = {"endpoint": endpoint} if endpoint else {}
    bar = _tqdm_class(progress)
    if files is None:
        if offline:
            return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns or []) or None,
                                      tqdm_class=bar, **extra))
    got = []
    for name in files:
        try:  # the cache first: no network round trip (and no retries) once a file is downloaded
            got.append(Path(hf_hub_download(repo_id, name, revision=revision, local_files_only=True)))
        except LocalEntryNotFoundError:
            if offline:
                raise
            if unreachable:
                raise Unreachable(endpoint or SOURCE_URLS["huggingface"]) from None
            got.append(Path(hf_hub_download(repo_id, name, revision=revision, tqdm_class=bar, **extra)))
    return _root(got, files)


def _modelscope(repo_id, files, patterns, revision, progress, offline: bool) -> Path:
    if importlib.util.find_spec("modelscope") is None:
        raise DanluError("Downloading from ModelScope needs the modelscope package, which is not installed.",
                         "从 ModelScope（魔搭）下载需要 modelscope 包，当前未安装。",
                         "Run: pip install modelscope (inside Danlu's .venv), or choose another download source.",
                         "请运行：pip install modelscope（在丹炉的 .venv 中），或改选其他下载源。",
                         key="model.download_source")
    from modelscope.hub.snapshot_download import snapshot_download as ms_snapshot

    allow = list(files) if files is not None else (list(patterns) if patterns else None)
    callbacks = [_callback_class(progress)] if progress else None
    folder = None
    if files is not None or offline:
        try:  # the cache first, as for the hub
            folder = Path(ms_snapshot(repo_id, revision=revision, allow_patterns=allow, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached
            if offline:
                raise
    if folder is None or (files is not None and not all((folder / f).is_file() for f in files)):
        folder = Path(ms_snapshot(repo_id, revision=revision, allow_patterns=allow, progress_callbacks=callbacks))
    if files is not None:
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{repo_id} has no {', '.join(missing)}")
    return folder


def _root(paths: list[Path], files: Iterable[str]) -> Path:
    """The snapshot folder that holds every downloaded file (names may contain subfolders)."""
    first, name = paths[0], list(files)[0]
    return Path(str(first)[: -len(name)].rstrip("/\\")) if str(first).endswith(name) else first.parent


def _tqdm_class(progress: Progress | None):
    from tqdm.auto import tqdm

    class _Progress(tqdm):  # forwards the library's byte counts to the page or the console
        def __init__(self, *a, **k):
            k["disable"] = False
            super().__init__(*a, **k)

        def update(self, n=1):
            out = super().update(n)
            if progress and self.total:
                progress(self.desc or "", int(self.n), int(self.total))
            return out

    return _Progress


def _callback_class(progress: Progress):
    from modelscope.hub.callback import ProgressCallback

    class _Callback(ProgressCallback):
        def __init__(self, filename: str, file_size: int):
            super().__init__(filename, file_size)
            self.done = 0

        def update(self, size: int) -> None:
            self.done += size
            progress(self.filename, self.done, self.file_size)

    return _Callback


def _modelscope_cache_exists() -> bool:
    root = os.environ.get("MODELSCOPE_CACHE") or str(Path.home() / ".cache" / "modelscope")
    return Path(root).is_dir() and importlib.util.find_spec("modelscope") is not None


# ---------------------------------------------------------------- messages

def _error(exc: Exception, repo_id: str, source: Source, what: tuple[str, str], key: str | None,
           files: Iterable[str] | None) -> DanluError:
    en_what, zh_what = what
    name = type(exc).__name__
    not_cached = name in ("LocalEntryNotFoundError", "CacheNotFound", "OfflineModeIsEnabled", "Unreachable")
    listed = " and ".join(files) if files else "its files"
    if not_cached:
        return DanluError(f"The {en_what} {repo_id} is not downloaded yet and {source.label('en')} cannot be reached "
                          f"({name}).",
                          f"{zh_what} {repo_id} 尚未下载，且无法连接 {source.label('zh')}（{name}）。",
                          f"Connect to the internet once (or choose another download source), or download {listed} "
                          "into a folder and enter that folder.",
                          f"请联网下载一次（或改选其他下载源），或手动下载 {'、'.join(files) if files else '其文件'} "
                          "到一个文件夹并填写该文件夹。", key=key or "")
    hint_en = "Check the id and the network, choose another download source, or use a local file or folder."
    hint_zh = "请检查 id 与网络，或改选其他下载源，或使用本地文件/文件夹。"
    if source.kind == "modelscope" and repo_id not in MODELSCOPE_IDS:
        hint_en += f" ModelScope may publish {repo_id} under another id: enter that id instead."
        hint_zh += f" ModelScope 上的 id 可能与 {repo_id} 不同：请改填 ModelScope 上的 id。"
    return DanluError(f"Downloading the {en_what} {repo_id} from {source.label('en')} failed: {name}: "
                      f"{str(exc)[:300]}",
                      f"从 {source.label('zh')} 下载{zh_what} {repo_id} 失败：{name}", hint_en, hint_zh, key=key or "")
