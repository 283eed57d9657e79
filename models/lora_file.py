"""The kohya LoRA file: what WebUI, ComfyUI and diffusers all load (reference/lora-format.md).

peft's LoRA layers are turned into ``<base>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` with
kohya's module names: diffusers paths for the SD1/SD2 UNet, the Stability (SAI) block names for
the SDXL UNet, ``lora_te`` / ``lora_te1`` / ``lora_te2`` for the text encoders. ``alpha`` is the real
one (scale × rank, read from each layer), not rank as diffusers' ``convert_state_dict_to_kohya`` writes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DanluError
from core.fsutil import atomic_write_bytes
from models.lora_names import DIT_PREFIX, KOHYA_PREFIXES, base_name, tuner_layers

MODELSPEC_ARCH = {"sd15": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-512/lora",
                  "sd2v": "stable-diffusion-v2-768-v/lora", "sdxl": "stable-diffusion-xl-v1-base/lora",
                  "zimage": "z-image/lora"}
CONFIG_KEY = "danlu_config"  # the whole run TOML


def trained_variant(meta: dict[str, Any], variants: tuple[str, ...], default: str) -> str:
    """The run's model.variant as the file's embedded run TOML (CONFIG_KEY) states it, `default` when it states
    none of `variants` (a file written by another trainer, a damaged TOML)."""
    import tomllib

    try:
        variant = tomllib.loads(str(meta.get(CONFIG_KEY) or "")).get("model", {}).get("variant", "")
    except tomllib.TOMLDecodeError:
        variant = ""
    return variant if variant in variants else default


def base_model_version(family: str, prediction: str = "epsilon") -> str:
    """`ss_base_model_version` as kohya writes it (sd_v1, sd_v2, sd_v2_v, sdxl_base_v1-0): the family's own value."""
    from models.families import module

    return module(family).lora_version(prediction)


# --- peft → kohya ----------------------------------------------------------------------------------

def peft_to_kohya(components: dict[str, Any], family: str, adapter: str = "default") -> dict[str, Any]:
    """Kohya state dict (fp32 CPU tensors) from peft-injected models {'unet': …, 'text_encoder': …, …}.

    A DiT family writes its own format instead (e.g. zimage: {'transformer': …} → diffusion_model.* keys)."""
    import torch

    from models import families
    from models.lycoris import DORA_MAGNITUDE, layer_tensors

    dit = families.dit_module(family)
    if dit is not None:
        return families.part(dit, "lora").lora_state(components, adapter)
    state: dict[str, Any] = {}
    for component, model in components.items():
        if model is None:
            continue
        for name, layer in tuner_layers(model, adapter):
            base = base_name(component, model, name, family)
            if f"{base}.alpha" in state:
                raise ValueError(f"two modules map to the kohya name {base}")
            lycoris = layer_tensors(layer, adapter)
            if lycoris is not None:  # LoHa / LoKr
                state.update({f"{base}.{k}": v for k, v in lycoris.items()})
                continue
            down = layer.lora_A[adapter].weight.detach().float().cpu().contiguous()
            up = layer.lora_B[adapter].weight.detach().float().cpu().contiguous()
            rank = down.shape[0]
            alpha = float(layer.scaling[adapter]) * rank  # the real alpha: handles rslora and per-module alphas
            dora = getattr(layer, DORA_MAGNITUDE, {})
            if adapter in dora:  # input-axis DoRA: scale folded into up (alpha = rank), as it trains (training/dora)
                up = (layer.lora_B[adapter].weight.flatten(1) * layer.scaling[adapter]).detach().float().cpu()
                up, alpha = up.reshape(layer.lora_B[adapter].weight.shape).contiguous(), float(rank)
                mag = dora[adapter].detach().float().cpu()
                state[f"{base}.dora_scale"] = mag.reshape(1, -1, *([1] * (down.dim() - 2))).contiguous()
            state[f"{base}.lora_down.weight"] = down
            state[f"{base}.lora_up.weight"] = up
            state[f"{base}.alpha"] = torch.tensor(alpha, dtype=torch.float32)
            if adapter in getattr(layer, "lora_magnitude_vector", {}):  # peft's per-output-row DoRA: no loader agrees
                raise ValueError(f"{base}: peft's DoRA magnitude is not written; train DoRA with training/dora.py")
    return state


# --- saving ----------------------------------------------------------------------------------------

@dataclass
class PrecisionReport:
    precision: str
    max_rel_error: float    # max over modules of max|Δsaved − Δ| / max|Δ|, Δ = up @ down, on the rows measured
    flushed: int            # non-zero values that became zero
    values: int

    @property
    def flushed_share(self) -> float:
        return self.flushed / self.values if self.values else 0.0

    def text(self) -> str:
        return (f"saved as {self.precision}: max relative error of the weight deltas {self.max_rel_error:.2e}, "
                f"{self.flushed} of {self.values} values flushed to zero ({100 * self.flushed_share:.3f}%)")


_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "float": "float32", "fp32": "float32"}
REPORT_ROWS = 64  # rows of each weight delta the precision report computes (all of them when full=True)


def _report_rows(up, full: bool):
    """Which output rows of Δ = up @ down the report measures: all of a small layer; of a large one the rows
    with the largest up-weights (where max|Δ| lies) and evenly spaced others."""
    import torch

    n = up.shape[0]
    if full or n <= REPORT_ROWS:
        return slice(None)
    largest = up.flatten(1).abs().amax(1).topk(REPORT_ROWS // 2).indices
    spread = torch.linspace(0, n - 1, REPORT_ROWS // 2).long()
    return torch.unique(torch.cat([largest, spread]))


def cast_state(state: dict[str, Any], precision: str, *, full: bool = False
               ) -> tuple[dict[str, Any], PrecisionReport]:
    """Cast to the save precision and measure what the cast lost: every value for the flush to zero; the deltas
    up @ down on REPORT_ROWS rows per layer (full=True: on every row, as costly as merging the LoRA)."""
    import torch

    if precision not in _DTYPES:
        raise ValueError(f"unknown save precision {precision!r}; use fp16, bf16 or float")
    dtype = getattr(torch, _DTYPES[precision])
    out = {k: v.to(dtype).contiguous() for k, v in state.items()}
    flushed = sum(int(((v != 0) & (out[k] == 0)).sum()) for k, v in state.items() if v.dim())
    values = sum(v.numel() for v in state.values() if v.dim())
    worst = 0.0
    if dtype != torch.float32:
        for key, down in state.items():
            if key.endswith((".lora_down.weight", ".lora_A.weight")):
                up_key = key.replace(".lora_down.", ".lora_up.").replace(".lora_A.", ".lora_B.")
                rows = _report_rows(state[up_key], full)
                ref = state[up_key][rows].flatten(1) @ down.flatten(1)
                got = out[up_key][rows].float().flatten(1) @ out[key].float().flatten(1)
                scale = float(ref.abs().max())
                if scale > 0:
                    worst = max(worst, float((got - ref).abs().max()) / scale)
    return out, PrecisionReport(precision, worst, flushed, values)


def safetensors_hashes(data: bytes) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) of a serialised safetensors file, as sd-scripts computes them."""
    header_len = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(memoryview(data)[8 + header_len:]).hexdigest()
    legacy = hashlib.sha256(memoryview(data)[0x100000:0x100000 + 0x10000]).hexdigest()[:8]
    return model_hash, legacy


def with_metadata(data: bytes, metadata: dict[str, str]) -> tuple[bytes, memoryview]:
    """A serialised safetensors file as (new header, tensor bytes): its __metadata__ replaced, the tensor bytes
    the same buffer (offsets are relative to them, so they stay valid)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(bytes(data[8:8 + n]))
    header["__metadata__"] = metadata
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # tensor data stays 8-byte aligned, as safetensors writes it
    return len(raw).to_bytes(8, "little") + raw, memoryview(data)[8 + n:]


def save_lora(path: str | Path, state: dict[str, Any], metadata: dict[str, Any],
              precision: str = "fp16", *, full_report: bool = False) -> PrecisionReport:
    """Write a kohya LoRA file atomically: cast, stringify metadata, set ss_output_name, hashes last."""
    from safetensors.torch import save

    path = Path(path)
    # DiT files: Z-Image's diffusion_model.<name>, FLUX's and Chroma's diffusers layout transformer.<name> (and
    # FLUX.1's CLIP-L part, text_encoder.<name>)
    dit = bool(state) and all(k.startswith((DIT_PREFIX, "transformer.", "text_encoder.")) for k in state)
    bad = [k for k in state if not k.startswith(KOHYA_PREFIXES)] if not dit else \
        [k for k in state if not k.endswith((".lora_A.weight", ".lora_B.weight"))]
    if bad:  # one stray key disables diffusers' kohya conversion for the whole file; DiT files carry no alpha
        raise ValueError(f"not kohya LoRA keys: {bad[:3]}" if not dit else f"not lora_A/lora_B keys: {bad[:3]}")
    if dit:
        from models import families

        version = str(metadata.get("ss_base_model_version", ""))
        mod = next((m for m in families.DIT_MODULES.values() if m.LORA_VERSION == version), None)
        metadata = families.part(mod, "lora").lora_metadata(metadata) if mod is not None else metadata
    tensors, report = cast_state(state, precision, full=full_report)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list))
            else str(v) for k, v in metadata.items() if v is not None}
    meta["ss_output_name"] = path.stem  # per file: WebUI uses it as the card alias and <lora:…> name
    meta.pop("sshs_model_hash", None)
    meta.pop("sshs_legacy_hash", None)
    # sd-scripts hashes a serialisation that carries only the ss_* metadata; serialise that once, hash it, and
    # write its tensor bytes under a header with all the metadata: the model hash is of the bytes written.
    data = save(tensors, metadata={k: v for k, v in meta.items() if k.startswith("ss_")})
    model_hash, legacy = safetensors_hashes(data)
    meta["sshs_model_hash"] = model_hash
    meta["sshs_legacy_hash"] = legacy
    atomic_write_bytes(path, with_metadata(data, meta))
    return report


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        if Path(path).is_dir():
            raise IsADirectoryError("it is a folder")  # safe_open would say "No such device"
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for truncated or foreign files
        raise DanluError(f"Cannot read the LoRA file {path}: {e}", f"无法读取 LoRA 文件 {path}：{e}",
                         "Check that it is a complete .safetensors file.", "请确认它是完整的 .safetensors 文件。",
                         key=str(path)) from None


def lora_family(path: str | Path) -> str:
    """'sd15', 'sd2', 'sdxl' or 'zimage' for a LoRA file: the families' own rule (metadata, then key names and
    shapes), read from the file's header."""
    from safetensors import safe_open

    from models.families import lora_family as family_of

    meta = read_metadata(path)  # a file that is no safetensors is refused there, naming it
    with safe_open(str(path), framework="pt") as f:
        header = {k: ("", list(f.get_slice(k).get_shape())) for k in f.keys()}
    return family_of(header, meta) or "sd15"
