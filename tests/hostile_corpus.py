"""A corpus of hostile files, generated at test time: what a user's disk can hand Danlu where it expects a config,
a caption, an image, a model or a tag list. `make_corpus(folder)` writes it and returns {name: path};
`fingerprint(folder)` is what the files are, so a test can prove that reading them changed nothing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from pathlib import Path

SPARSE_BYTES = 1 << 30
DEPTH = 50_000  # deeper than any parser's recursion limit


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _entries() -> dict[str, bytes]:
    noise = random.Random(26).randbytes(4096)
    run_toml = '[model]\nbase = "model.safetensors"\n\n[network]\nrank = 16\nalpha = 8\n\n[training]\nepochs = 4\n'
    st = _safetensors({"lora_unet_down.lora_up.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}},
                      bytes(64))
    return {
        "empty.toml": b"",
        "noise.bin": noise,
        "noise.toml": noise,
        "noise.json": b"{" + noise,
        "truncated.toml": run_toml.encode()[:50],
        "truncated.json": b'{"pretrained_model_name_or_path": "x", "network_dim": 3',
        "truncated.safetensors": st[: len(st) // 2],
        "gbk.toml": '[model]\nbase = "底模.safetensors"\n[saving]\nname = "丹炉"\n'.encode("gbk"),
        "gbk.txt": "1girl, 红色头发, 丹炉".encode("gbk"),
        "utf16.toml": run_toml.encode("utf-16"),
        "utf16.txt": "1girl, solo".encode("utf-16"),
        "deep.toml": b"a = " + b"[" * DEPTH + b"]" * DEPTH + b"\n",
        "deep.json": b"[" * DEPTH + b"]" * DEPTH,
        "huge_numbers.toml": b"[network]\nrank = 99999999999999999999999999999\nalpha = 1e999\n[training]\nepochs = "
                             b"1e308\n",
        "huge_numbers.json": b'{"network_dim": 1e999, "max_train_epochs": 99999999999999999999999999999}',
        "nan.toml": b"[optimizer]\nlr = nan\n[network]\nalpha = inf\n",
        "nan.json": b'{"unet_lr": NaN, "network_alpha": Infinity}',
        "negative.toml": b"[training]\nbatch_size = -4\nepochs = -1\n[dataset]\nresolution = -512\n",
        "negative.safetensors": struct.pack("<q", -1) + b"{}",
        "huge_header.safetensors": struct.pack("<Q", 1 << 40) + b"{",
        "json_syntax.json": b'{\n  "pretrained_model_name_or_path": "model.safetensors",\n  "network_dim": ,\n}\n',
        "no_known_key.toml": b'[whatever]\ncolour = "blue"\nfavourite_number = 7\n',
        "png_header_only.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x00\xff\xff\xff\xff\x08\x02",
        "tags.csv": b"tag_id,name,category\n1,solo,notanumber\n",
    }


def make_corpus(folder: Path) -> dict[str, Path]:
    """Write every hostile input under folder; the special ones (a folder, a sparse file, a symlink loop, a missing
    path) are made as what they are."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in _entries().items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    (folder / "folder.toml").mkdir()
    (folder / "folder.toml" / "inside.txt").write_text("a folder where a file is expected\n", encoding="utf-8")
    out["folder.toml"] = folder / "folder.toml"
    sparse = folder / "sparse_1gb.safetensors"
    with open(sparse, "wb") as f:
        f.truncate(SPARSE_BYTES)
    out[sparse.name] = sparse
    loop_a, loop_b = folder / "loop_a.toml", folder / "loop_b.toml"
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    out[loop_a.name] = loop_a
    out["missing.toml"] = folder / "missing.toml"
    return out


def fingerprint(folder: Path) -> dict[str, tuple]:
    """Every entry under folder (links not followed) with its kind, size and content hash; the sparse gigabyte by
    its size and mtime only (hashing it would read a gigabyte of zeros twice per run)."""
    out: dict[str, tuple] = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir",)
        elif st.st_size >= SPARSE_BYTES:
            out[rel] = ("big", st.st_size, st.st_mtime_ns)
        else:
            out[rel] = ("file", st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return out
