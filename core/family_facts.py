"""One row of facts a family: what core, the form, the checks and the estimates may know about a model family.

Shared code asks what a family *is* (its traits and figures), never what it is *named*; everything else about a
family lives in its own seams: ``models/families/<module>`` (recognising, loading, the LoRA file, samples, the
ComfyUI workflow, its tiny model) and ``training/families/<trainer>.py`` (the stages of a training step). A new
family is one row here plus those two seams (docs/ARCHITECTURE.md, "Adding a family").

Traits, as `core.config.fields.F(families=...)` and the rules name them:
- ``unet``: an SD UNet (block-wise dims and LR, LyCORIS conv layers, noise offset, Min-SNR, v-prediction);
- ``dit``: a transformer denoiser (LoRA targets by kind: attention, feed_forward, adaLN; int8 base);
- ``flow``: trained by flow matching (timestep type and bias, DOP, differential guidance);
- ``pooled_text``: the denoiser also takes a pooled text vector (SDXL's second encoder);
- ``text_encoder_trainable``: a LoRA on its text encoder(s) is written in a layout every UI loads;
- ``partial_text_cache``: with its trained text encoder, the frozen one's outputs may still be cached (FLUX.1: T5
  cached, CLIP-L encoded each step, as sd-scripts' partial cache);
- ``v_prediction``: the family has v-prediction releases (SD2-768-v, v-pred SDXL fine-tunes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SD_SAMPLERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "heun", "lms")


@dataclass(frozen=True)
class DitFigures:
    """What the memory estimate (core/runs/estimate.py) needs of a DiT family's real model."""

    params_m: dict[str, float]      # millions of weights: transformer, text_encoder, vae
    per_rank: dict[str, int]        # LoRA parameters per unit of rank in one main block, by network.dit_targets kind
    blocks: int                     # main blocks
    refiners: int                   # refiner blocks with every kind (network.dit_refiners) …
    refiners_no_adaln: int          # … and without adaLN (context refiners)
    activation_gb: tuple[float, float]  # one native-resolution sample in 16-bit: without / with checkpointing
    basis_en: str                   # where the figures come from
    basis_zh: str


@dataclass(frozen=True)
class Family:
    name: str                    # model.family in the TOML
    label: str                   # what the page shows
    traits: frozenset[str]
    native: int                  # the resolution it was trained at (px, square)
    size_multiple: int           # image and sample sizes are multiples of this (VAE stride × patch size)
    samplers: tuple[str, ...]    # sampler ids its sample renderer supports
    min_cfg: float               # the lowest sampling.cfg with a meaning, as ComfyUI counts it
    cfg_semantics: str           # "classic": CFG as WebUI/diffusers; "comfy_minus_one": diffusers guidance = cfg - 1
    module: str                  # models.families.<module>
    trainer: str                 # training.families.<trainer>
    prediction: str = "epsilon"  # the default prediction type: epsilon | v_prediction | flow
    selectable: bool = True      # offered as model.family (False: only detected, e.g. the SDXL refiner)
    ui_questions: bool = False   # the Model tab asks about its bases (ui/families/<module>.py)
    max_lr: float | None = None  # a learning rate above this is known to collapse its LoRAs (warning)
    dit: DitFigures | None = None  # a DiT family's figures for the memory estimate

    def has(self, trait: str) -> bool:
        return trait in self.traits


_SD = frozenset({"unet", "text_encoder_trainable"})

ROWS: dict[str, Family] = {}


def register(row: Family) -> Family:
    """Add (or replace) a family's row; the registry line of a new family."""
    ROWS[row.name] = row
    return row


register(Family("sd15", "SD 1.x", _SD, 512, 8, SD_SAMPLERS, 0.0, "classic", "sd15", "sd"))
register(Family("sd2", "SD 2.x", _SD | {"v_prediction"}, 512, 8, SD_SAMPLERS, 0.0, "classic", "sd2", "sd"))
register(Family("sdxl", "SDXL", _SD | {"pooled_text", "v_prediction"}, 1024, 8, SD_SAMPLERS, 0.0, "classic",
                "sdxl", "sd"))
register(replace(ROWS["sdxl"], name="sdxl_refiner", label="SDXL refiner", traits=_SD | {"pooled_text"},
                 selectable=False))  # detected only; loads, trains and samples as SDXL
# Z-Image (reference/zimage.md; diffusers' default config, Turbo's): transformer 6.15 B, Qwen3 text encoder
# ≈ 4.02 B, the 16-channel VAE 84 M. LoRA parameters per unit of rank in one block, by kind (width 3840,
# feed-forward 10240, adaLN 256 → 4·3840): 30 main blocks, and with network.dit_refiners 2 noise refiners plus
# 2 context refiners (no adaLN). Rank 16 on all kinds of the main blocks: 42.5 M, ai-toolkit's default.
# Activations of one 1024² sample in 16-bit, derived from the architecture (not measured): ≈ 4,400 tokens ×
# (13 tensors of width 3840 + 4 of 10240) × 2 bytes ≈ 0.8 GB per block × 34 blocks; with checkpointing the
# 34 block inputs plus one block's recompute.
ZIMAGE_FIGURES = DitFigures(
    {"transformer": 6150.0, "text_encoder": 4022.0, "vae": 83.8},
    {"attention": 4 * (3840 + 3840), "feed_forward": 3 * (3840 + 10240), "adaLN": 256 + 4 * 3840},
    30, 2, 2, (27.0, 2.0),
    "activations derived from the architecture at 1024 px (not measured)", "按架构推算的 1024 px 激活显存（未实测）")
register(Family("zimage", "Z-Image", frozenset({"dit", "flow"}), 1024, 16, ("euler",), 1.0, "comfy_minus_one",
                "zimage", "zimage", prediction="flow", max_lr=2e-4,
                ui_questions=True, dit=ZIMAGE_FIGURES))
# FLUX.1 (reference/flux.md; diffusers' FluxTransformer2DModel defaults, counted with empty weights): transformer
# 11.90 B (dev; schnell 11.89 B), T5-XXL encoder 4.76 B + CLIP-L 123 M, the 16-channel VAE 84 M. 19 double and
# 38 single blocks of width 3072 (MLP 12288): LoRA parameters per unit of rank, summed over the 57 blocks and given
# per block (the estimate multiplies by `blocks`). Double: q/k/v/out of both streams (8 × 6144), the two MLPs
# (4 × 15360), the two AdaLN linears (2 × (3072 + 18432)); single: q/k/v (3 × 6144), proj_mlp (15360) + proj_out
# (18432), the modulation linear (3072 + 9216). Activations of one 1024² sample (4096 image + 512 text tokens) in
# 16-bit, derived from the architecture (not measured): ≈ 0.57 GB per block × 57; with checkpointing the 57 block
# inputs (28 MB each) plus one block's recompute.
FLUX_FIGURES = DitFigures(
    {"transformer": 11901.0, "text_encoder": 4762.0 + 123.1, "vae": 83.8},
    {"attention": (19 * 8 * 6144 + 38 * 3 * 6144) // 57, "feed_forward": (19 * 4 * 15360 + 38 * 33792) // 57,
     "adaLN": (19 * 2 * 21504 + 38 * 12288) // 57},
    57, 0, 0, (32.0, 2.2),
    "activations derived from the architecture at 1024 px (not measured)", "按架构推算的 1024 px 激活显存（未实测）")
# Chroma: FLUX's blocks without their modulation linears (a 278 M `distilled_guidance_layer`, never a LoRA target,
# makes them), no CLIP: transformer 8.90 B, T5-XXL 4.76 B.
CHROMA_FIGURES = replace(FLUX_FIGURES, params_m={"transformer": 8900.0, "text_encoder": 4762.0, "vae": 83.8},
                         per_rank={**FLUX_FIGURES.per_rank, "adaLN": 0})
# Peer trainers' FLUX and Chroma examples train at 1e-4 (sd-scripts' docs, ai-toolkit's 24 GB configs): warn at 5×.
# FLUX.1's CLIP-L takes a LoRA (sd-scripts' lora_te1_ keys, diffusers' text_encoder. keys: ComfyUI, Forge and
# diffusers load both); T5 never does. Chroma has no CLIP, so no trait.
register(Family("flux", "FLUX.1", frozenset({"dit", "flow", "pooled_text", "text_encoder_trainable",
                                             "partial_text_cache"}), 1024, 16, ("euler",), 1.0, "classic",
                "flux", "flux", prediction="flow", max_lr=5e-4, ui_questions=True, dit=FLUX_FIGURES))
register(Family("chroma", "Chroma", frozenset({"dit", "flow"}), 1024, 16, ("euler",), 1.0, "classic",
                "chroma", "flux", prediction="flow", max_lr=5e-4, dit=CHROMA_FIGURES))

# Qwen-Image (reference/qwen-image.md; diffusers' QwenImageTransformer2DModel defaults, counted with empty weights):
# transformer 20.43 B, Qwen2.5-VL-7B 8.29 B (its published count, vision tower and LM head included), the causal
# 3-D VAE 127 M. 60 dual-stream blocks of width 3072 (MLP 12288), LoRA parameters per unit of rank in one block:
# q/k/v/out of both streams (8 × 6144), the two MLPs (4 × 15360), img_mod / txt_mod (2 × (3072 + 18432)).
# Activations of one 1024² sample (4096 image + ~100 text tokens) in 16-bit, derived from the architecture as
# FLUX's double blocks (not measured): ≈ 0.52 GB per block × 60; with checkpointing the 60 block inputs (26 MB
# each) plus one block's recompute.
QWEN_IMAGE_FIGURES = DitFigures(
    {"transformer": 20430.4, "text_encoder": 8292.0, "vae": 126.9},
    {"attention": 8 * 6144, "feed_forward": 4 * 15360, "adaLN": 2 * 21504},
    60, 0, 0, (31.0, 2.1),
    "activations derived from the architecture at 1024 px (not measured)", "按架构推算的 1024 px 激活显存（未实测）")
# True CFG as diffusers' true_cfg_scale and ComfyUI's cfg (classic), with a negative prompt; peers train at 1e-4.
register(Family("qwen_image", "Qwen-Image", frozenset({"dit", "flow"}), 1024, 16, ("euler",), 1.0, "classic",
                "qwen_image", "qwen_image", prediction="flow", max_lr=5e-4, dit=QWEN_IMAGE_FIGURES))

ALIASES = {"sd2v": "sd2"}  # SD2 v-prediction: the sd2 family with prediction v_prediction


def canonical(name: str | None) -> str:
    """A family name as the rows know it ("sd2v" is sd2 with v-prediction); "" for none."""
    name = name or ""
    return ALIASES.get(name, name)


def get(name: str | None) -> Family | None:
    """The row of a family, None for "auto", "" or an unknown name."""
    return ROWS.get(canonical(name))


def names(selectable_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, r in ROWS.items() if r.selectable or not selectable_only)


def traits(name: str | None) -> frozenset[str]:
    """What a config field's `families` may name to apply to this family: its own name and its traits."""
    row = get(name)
    return frozenset() if row is None else frozenset((row.name, *row.traits))


def has(name: str | None, trait: str) -> bool:
    row = get(name)
    return row is not None and trait in row.traits


def diffusers_guidance(row: Family, cfg: float) -> float:
    """diffusers' guidance_scale for a CFG as the user gives it (ComfyUI's / WebUI's count): the same number for
    classic CFG; cfg - 1 where the pipeline guides with (cond - uncond) · g added to cond (Z-Image)."""
    return float(cfg) - 1.0 if row.cfg_semantics == "comfy_minus_one" else float(cfg)


def native_resolution(name: str | None, prediction: str = "") -> int:
    """The family's training resolution; SD2's v-prediction release (768-v) is the one family member at 768."""
    row = get(name)
    if row is None:
        return 512
    if row.has("v_prediction") and row.native == 512 and (prediction == "v_prediction" or name in ALIASES):
        return 768
    return row.native
