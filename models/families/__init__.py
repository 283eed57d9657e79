"""The model families: one module each, with the same small set of names.

Every module defines FAMILY, TRAITS (what the `families` of a config field, core.config.F, may name besides
FAMILY for the field to apply to it: "unet" for the SD UNets, "dit" and "flow" for a flow-matching DiT), LABEL,
NATIVE_RESOLUTION, PREDICTION (the default when nothing says otherwise: epsilon, v_prediction or flow),
MODELSPEC (the `modelspec.architecture` of a base checkpoint),
LORA_VERSION (`ss_base_model_version` of a LoRA trained on it; `lora_version(prediction)` gives it),
CONTEXT_DIM (the text-feature width of the real model), `matches(keys)` (the single-file keys that identify
it) and `pipeline_class()`.

The SD-UNet families (sd15, sd2, sdxl) share the loaders, LoRA names and samplers of models/ldm.py,
loading.py, lora_file.py and generate.py. A DiT family (zimage; FLUX and Qwen-Image would follow) says
everything itself, in a package with the same module names every time; the shared code finds it through
`dit_module(family)` / `of_pipeline(pipe)` and one of its modules through `part(dit, name)`, and knows nothing else:

- `__init__`: the names above, and PIPELINE (the diffusers pipeline class name), DENOISER (the pipeline attribute
  LoRA trains), HUB_IDS and MODEL_PATTERNS (what to download for a hub id), LORA_VERSION / LORA_MODELSPEC;
  recognising: `matches(keys)`, `is_folder(folder)`, `other_part(tensors)` (its text encoder or VAE picked as
  base), `lora_matches(keys, meta)`, `not_a_base(kind)` (the bilingual message for a LoRA or adapter); optionally
  SAMPLE_PRESETS (variant → the preset whose steps, CFG and sampler a base of it is rendered with where no run
  says otherwise: models.grid.plan.base_sampling)
- `load` (and optionally `missing_download(cfg)`: a file the run needs is not downloaded yet):
  `classify_file(info, tensors, meta)` and `classify_folder(info, folder)` (fill a model_info.ModelInfo,
  which means looking for the parts beside the model), `load_parts(path, components=None, torch_dtype=None)` →
  the pipeline, `find_parts(path)` (where the text encoder, tokenizer and VAE come from), `from_file_keys` /
  `to_file_keys` (single-file ↔ diffusers names), `encode_prompts(pipe, prompts)`
- `lora`: `lora_target_modules(denoiser, targets, refiners)` (flow-matching maths: training/flow.py),
  `lora_state(components, adapter)` (the file's tensors) and `lora_metadata(meta)` (family fields)
- `sample`: `sample_recipe(recipe, args)` (models.recipe's hook: what the PNG states), `render(pipe, ...)` and
  `render_batch(pipe, ...)` with models.generate's signatures; the guidance/steps/prompt semantics are written
  in its docstring and tested
- `workflow`: the ComfyUI graph a sample PNG carries; `tiny`: `build_tiny(seed)` and
  `save_transformer_files(pipe, out_dir, stem)` for models/tiny.py
"""

from __future__ import annotations

import datetime
import importlib
from types import ModuleType

from core import family_facts

# The registry is the facts table (core/family_facts.py): one row a family names its module here.
ROWS = family_facts.ROWS
MODULES: dict[str, ModuleType] = {name: importlib.import_module(f"models.families.{row.module}")
                                  for name, row in ROWS.items() if row.selectable}
DIT_MODULES: dict[str, ModuleType] = {name: mod for name, mod in MODULES.items() if ROWS[name].has("dit")}
FAMILIES = tuple(ROWS)
LABELS = {name: row.label for name, row in ROWS.items()}
NATIVE = {name: row.native for name, row in ROWS.items()}


def module(family: str) -> ModuleType:
    """The module of a family; the SDXL refiner and SD2-v share their base's module."""
    row = family_facts.get(family)
    if row is None:
        raise KeyError(f"unknown model family {family!r}")
    return importlib.import_module(f"models.families.{row.module}")


def traits(family: str) -> frozenset[str]:
    """The names a config field's `families` may use to apply to this family: its own name and its traits."""
    return family_facts.traits(family)


def dit_module(family: str | None) -> ModuleType | None:
    """The module of a DiT family (which says everything itself), None for the SD-UNet families."""
    return DIT_MODULES.get(family or "")


def part(dit: ModuleType, name: str) -> ModuleType:
    """One module of a DiT family's package ("load", "lora", "sample", "workflow" or "tiny"), imported when first
    asked for: the heavy parts stay out of the registry, and a family package never imports its own registry."""
    return importlib.import_module(f"{dit.__name__}.{name}")


def of_pipeline_name(pipeline: str) -> str | None:
    """The DiT family whose diffusers pipeline class has this name (a folder's model_index.json _class_name)."""
    return next((f for f, m in DIT_MODULES.items() if m.PIPELINE == pipeline), None)


def of_pipeline(pipe) -> ModuleType | None:
    """The DiT family module of a loaded pipeline, None for an SD pipeline."""
    name = type(pipe).__name__
    return next((m for m in DIT_MODULES.values() if m.PIPELINE == name), None)


def native_resolution(family: str, prediction: str) -> int:
    """512 for SD1 and SD2-base, 768 for SD2 v-prediction (the 768-v release), 1024 for SDXL (the facts row's)."""
    return family_facts.native_resolution(family, prediction)


def modelspec_architecture(family: str, prediction: str) -> str:
    if family in ("sd2", "sd2v"):
        return "stable-diffusion-v2-768-v" if prediction == "v_prediction" else "stable-diffusion-v2-512"
    if family == "sdxl_refiner":
        return "stable-diffusion-xl-v1-refiner"
    return module(family).MODELSPEC


def modelspec_for(family: str, prediction: str, resolution: int, title: str = "") -> dict[str, str]:
    """The `modelspec.*` header of a base checkpoint (sai_model_spec 1.0.1)."""
    pred = "v_prediction" if prediction in ("v", "v_prediction") or family == "sd2v" else "epsilon"
    fam = "sd2" if family == "sd2v" else family
    return {"modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": modelspec_architecture(fam, pred),
            "modelspec.title": title, "modelspec.resolution": f"{resolution}x{resolution}",
            "modelspec.prediction_type": "v" if pred == "v_prediction" else "epsilon",
            "modelspec.date": datetime.date.today().isoformat()}


def lora_family(keys: list[str] | dict, metadata: dict[str, str] | None = None) -> str | None:
    """The base family a LoRA/LyCORIS file was made for: from ss_base_model_version / ss_v2, else keys and shapes."""
    meta = metadata or {}
    version = meta.get("ss_base_model_version", "")
    for name, mod in DIT_MODULES.items():  # the file's own word first: DiT families share block names
        if version and version.startswith(mod.LORA_VERSION):
            return name
    for name, mod in DIT_MODULES.items():
        if mod.lora_matches(list(keys), meta):
            return name
    version = meta.get("ss_base_model_version", "")
    arch = meta.get("modelspec.architecture", "")
    if version.startswith("sdxl") or arch.startswith("stable-diffusion-xl"):
        return "sdxl"
    if version.startswith(("sd_v2", "sd_2")) or meta.get("ss_v2") == "True" or arch.startswith("stable-diffusion-v2"):
        return "sd2"
    if version.startswith(("sd_v1", "sd_1")) or arch.startswith("stable-diffusion-v1"):
        return "sd15"
    names = list(keys)
    if any(k.startswith(("lora_te1_", "lora_te2_", "lora_unet_input_blocks", "lora_unet_output_blocks",
                         "lora_unet_middle_block", "text_encoder_2.")) for k in names):
        return "sdxl"
    shapes = keys if isinstance(keys, dict) else {}
    for k, (_, shape) in shapes.items():  # cross-attention input width tells SD1 (768) from SD2 (1024)
        if "attn2" in k and ("to_k" in k) and ("lora_down" in k or "lora_A" in k) and len(shape) >= 2:
            return {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(shape[1])
    if any("text_model_encoder_layers_22" in k or "text_model.encoder.layers.22" in k for k in names):
        return "sd2"
    return "sd15" if meta else None
