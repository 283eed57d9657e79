"""Every tagger and captioner Danlu offers, as data: one row per model, read by wd14.py, captioners.py and the UI.

Taggers (ONNX, the WD interface). Every row below takes the same input and gives the same output, so one code
path runs them all: `model.onnx` with one NHWC input (batch, side, side, 3) in BGR float32 0–255 (alpha on
white, white centred square, PIL BICUBIC to the side the ONNX input declares) and one output of sigmoid
probabilities in the row order of `selected_tags.csv` (tag_id,name,category,count; 9 rating, 0 general,
4 character). The side (448 for most, 480 for IdolSankaku EVA02-Large) and whether batches are allowed are
read from the ONNX file, not from this table.

`threshold` is the P=R point from each model card ("Validation results"); `threshold_source` says where it
was read. SmilingWolf's Space uses 0.35 general / 0.85 character for every model; a model's own P=R point
is a better start for the v3 models (≈0.26) and the EVA02-Large ones (≈0.5), whose scores are calibrated
differently (reference/tagging.md §1).

Sources of the list: lora-scripts (Akegarasu, mikazuki/tagger/interrogator.py) offers the SmilingWolf v3 and
v2 models (v2 pinned to git tag v2.0), both large v3 models and cl_tagger; BooruDatasetTagManager
(AiApiServer/models.py) offers the SmilingWolf models only. Left out on purpose: cl_tagger (cella110n) takes
NCHW input in [-1, 1] and returns logits with a JSON tag map (lora-scripts interrogators/cl.py), so it needs
code of its own; Camie v2 and PixAI v0.9, listed by forks, publish their own formats, not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaggerSpec:
    name: str                      # the short id users type and the list shows
    repo: str                      # hub repo
    threshold: float               # general-tag default: the card's P=R threshold
    threshold_source: str          # where that number comes from
    revision: str | None = None    # a pinned git revision, when the head of the repo is not the one to use
    character_threshold: float = 0.85   # the Space's character default, for every model
    batch: str = "dynamic"         # 'dynamic' or 'fixed 1' as published (the ONNX file decides at run time)
    size_mb: int = 0               # model.onnx, roughly
    note: str = ""

    @property
    def hub_id(self) -> str:
        return f"{self.repo}@{self.revision}" if self.revision else self.repo


_V2 = "model card 'P=R: threshold'"
_V3 = "model card 'v2.0: P=R: threshold'"
_BDTM = "not on the model card; BooruDatasetTagManager's default (models.py WD_TAGGER_THRESHOLDS)"

TAGGER_ROWS = [
    # SmilingWolf WD v3 (Danbooru up to 2024-02-28, 10,861 tags, dynamic batch, onnxruntime >= 1.17)
    TaggerSpec("wd-vit-tagger-v3", "SmilingWolf/wd-vit-tagger-v3", 0.2614, _V3, size_mb=378,
               note="fastest v3"),
    TaggerSpec("wd-swinv2-tagger-v3", "SmilingWolf/wd-swinv2-tagger-v3", 0.2653, _V3, size_mb=467,
               note="about twice as slow as ConvNeXt"),
    TaggerSpec("wd-convnext-tagger-v3", "SmilingWolf/wd-convnext-tagger-v3", 0.25, _BDTM, size_mb=395),
    TaggerSpec("wd-vit-large-tagger-v3", "SmilingWolf/wd-vit-large-tagger-v3", 0.26, _BDTM, size_mb=1260,
               note="large"),
    TaggerSpec("wd-eva02-large-tagger-v3", "SmilingWolf/wd-eva02-large-tagger-v3", 0.5296,
               "model card 'v1.0: P=R: threshold'", size_mb=1260, note="large; the most accurate WD tagger"),
    # SmilingWolf WD 1.4 v2 (9,083 tags). MOAT, ViT and ConvNeXtV2 have a batch dimension fixed at 1.
    TaggerSpec("wd-v1-4-moat-tagger-v2", "SmilingWolf/wd-v1-4-moat-tagger-v2", 0.3771, _V2, batch="fixed 1",
               size_mb=326),
    TaggerSpec("wd-v1-4-swinv2-tagger-v2", "SmilingWolf/wd-v1-4-swinv2-tagger-v2", 0.3771, _V2, size_mb=455,
               note="the v2.1 re-export at the head of the repo takes batches"),
    TaggerSpec("wd-v1-4-convnextv2-tagger-v2", "SmilingWolf/wd-v1-4-convnextv2-tagger-v2", 0.3710, _V2,
               batch="fixed 1", size_mb=395),
    TaggerSpec("wd-v1-4-convnext-tagger-v2", "SmilingWolf/wd-v1-4-convnext-tagger-v2", 0.3685, _V2,
               batch="fixed 1", size_mb=395, note="sd-scripts' default"),
    TaggerSpec("wd-v1-4-vit-tagger-v2", "SmilingWolf/wd-v1-4-vit-tagger-v2", 0.3537, _V2, batch="fixed 1",
               size_mb=378),
    # Community models trained by SmilingWolf for DeepGHS on photos of real people; the card says the ONNX
    # model "is compatible with code developed for the v3 series of WD tagger models".
    TaggerSpec("idolsankaku-swinv2-tagger-v1", "deepghs/idolsankaku-swinv2-tagger-v1", 0.3094,
               "model card 'v1.0: P=R: threshold'", size_mb=350, note="real-world photos, 573 tags"),
    TaggerSpec("idolsankaku-eva02-large-tagger-v1", "deepghs/idolsankaku-eva02-large-tagger-v1", 0.4985,
               "model card 'v1.0: P=R: threshold'", size_mb=1210, note="real-world photos, 573 tags, 480 px"),
]
TAGGERS = {row.name: row for row in TAGGER_ROWS}
DEFAULT_TAGGER = "wd-vit-tagger-v3"
DEFAULT_ORG = "SmilingWolf"   # a bare name that is not in the table is looked up under this org


def tagger_spec(model: str) -> TaggerSpec | None:
    """The table row for a short name or its hub repo (with or without '@revision'); None for anything else."""
    model = (model or "").strip()
    if model in TAGGERS:
        return TAGGERS[model]
    repo = model.partition("@")[0]
    return next((row for row in TAGGER_ROWS if row.repo == repo), None)


def tagger_hub_id(model: str) -> str:
    """'wd-vit-tagger-v3' → 'SmilingWolf/wd-vit-tagger-v3'; 'org/name[@rev]' unchanged."""
    model = model.strip()
    if "/" in model:
        return model
    row = TAGGERS.get(model)
    return row.hub_id if row else f"{DEFAULT_ORG}/{model}"


def default_thresholds(model: str) -> tuple[float, float]:
    """(general, character) for a model: its row's values, else the Space's 0.35 / 0.85."""
    row = tagger_spec(model)
    return (row.threshold, row.character_threshold) if row else (0.35, 0.85)


# ---------------------------------------------------------------- natural-language captioners

@dataclass(frozen=True)
class CaptionerSpec:
    """A captioner loaded through transformers' own classes (no remote code): Florence-2 and Qwen-VL."""

    name: str
    repo: str
    kind: str                      # 'florence2' or 'qwen3_vl': the config's model_type
    size_mb: int = 0
    note: str = ""


# The florence-community repos hold the weights in the format transformers' Florence2ForConditionalGeneration
# reads natively; microsoft/Florence-2-* need trust_remote_code and are refused.
CAPTIONER_ROWS = [
    CaptionerSpec("florence-2-base", "florence-community/Florence-2-base", "florence2", 470,
                  "0.23 B parameters; fast on CPU"),
    CaptionerSpec("florence-2-large", "florence-community/Florence-2-large", "florence2", 1560,
                  "0.77 B parameters"),
    CaptionerSpec("qwen3-vl-2b", "Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl", 4260,
                  "2 B parameters; sentences that follow an instruction; a GPU is recommended"),
]
CAPTIONERS = {row.name: row for row in CAPTIONER_ROWS}
DEFAULT_CAPTIONER = "florence-2-base"
CAPTIONER_KINDS = ("florence2", "qwen3_vl")
