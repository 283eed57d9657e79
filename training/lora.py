"""LoRA injection through peft on the layers kohya targets (reference/lora-format.md §3).

UNet: every Linear/Conv2d inside a Transformer2DModel (attention, feed-forward, proj_in/out).
Text encoders: every Linear inside CLIPAttention / CLIPMLP. LoCon (conv_dim > 0) adds ResnetBlock2D,
Downsample2D and Upsample2D: their 3×3 convs get conv_dim/conv_alpha, their Linear and 1×1 layers
rank/alpha, as sd-scripts does.

LyCORIS LoHa and LoKr (``algo``) use peft's LoHa/LoKr layers on the same targets (conv_dim/conv_alpha for the 3×3
convs), with the factorisation and initialisation peft takes from LyCORIS; models/lycoris.py writes them in the
names WebUI and ComfyUI load.
"""

from __future__ import annotations

from typing import Any

ADAPTER = "default"


def _unet_targets(unet: Any, conv_dim: int) -> tuple[list[str], list[str]]:
    """(rank/alpha targets, conv_dim/conv_alpha targets) of the UNet."""
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from torch import nn

    plain, convs = [], []
    for name, module in unet.named_modules():
        if isinstance(module, Transformer2DModel):
            plain += [f"{name}.{c}" for c, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        elif conv_dim and isinstance(module, (ResnetBlock2D, Downsample2D, Upsample2D)):
            for c, m in module.named_modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
                    convs.append(f"{name}.{c}")
                elif isinstance(m, (nn.Linear, nn.Conv2d)):
                    plain.append(f"{name}.{c}")
    return plain, convs


def _text_targets(text_encoder: Any) -> list[str]:
    from torch import nn

    targets = []
    for name, module in text_encoder.named_modules():
        if type(module).__name__ in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
            targets += [f"{name}.{c}" for c, m in module.named_modules() if isinstance(m, nn.Linear)]
    return targets


def _dit_targets(model: Any, family: str, kinds: list[str], refiners: bool) -> list[str]:
    """The block linears of a DiT family of the chosen kinds: its family module names them."""
    from models import families

    return families.part(families.dit_module(family), "lora").lora_target_modules(model, tuple(kinds), refiners)


def _config(algo: str, **kw: Any) -> Any:
    """peft's config for `algo`: LoRA (with dropout and DoRA), LoHa or LoKr (plain, not CP/Tucker-decomposed)."""
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    dropout, use_dora = kw.pop("dropout"), kw.pop("use_dora")
    if algo == "lora":
        return LoraConfig(lora_alpha=kw.pop("alpha"), lora_dropout=dropout, use_dora=use_dora,
                          init_lora_weights=True, **kw)
    if algo not in ("loha", "lokr"):
        raise ValueError(f"unknown network type {algo!r}; use lora, loha or lokr")
    # not CP-decomposed: the hada_t*/lokr_t2 form differs between loaders' versions; the plain one loads everywhere
    return (LoHaConfig if algo == "loha" else LoKrConfig)(use_effective_conv2d=False, init_weights=True, **kw)


def _lokr_full_scale(model: Any) -> None:
    """LyCORIS trains a LoKr layer whose two factors are full matrices at scale 1 (alpha is ignored there), and
    WebUI and ComfyUI apply it so; peft would use alpha / rank."""
    from peft.tuners.lokr import LoKrLayer

    for module in model.modules():
        if isinstance(module, LoKrLayer):
            for name in module.lokr_w2:
                if name in module.lokr_w1:
                    module.scaling[name] = 1.0


def inject(model: Any, *, rank: int, alpha: float, dropout: float = 0.0, use_dora: bool = False,
           conv_dim: int = 0, conv_alpha: float = 1.0, component: str = "unet", family: str = "",
           dit_targets: list[str] | None = None, dit_refiners: bool = False, algo: str = "lora",
           rank_dropout: float = 0.0, module_dropout: float = 0.0, blocks: Any = None) -> int:
    """Add the LoRA adapter to `model` in place; return the number of adapted layers.

    alpha 0 means alpha = rank (scale 1), as in sd-scripts. A DiT denoiser (`dit_targets` given) gets LoRA on
    its blocks' linears of those kinds; its family file names them. `blocks` (training/blocks.Blocks, an SD UNet
    of `family`) gives each block its own rank/alpha and conv rank/alpha; a block at rank 0 gets no LoRA.
    """
    from peft import inject_adapter_in_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    if component == "unet" and dit_targets is not None:
        plain, convs = _dit_targets(model, family, dit_targets, dit_refiners), []
    elif component == "unet":
        plain, convs = _unet_targets(model, conv_dim or (blocks is not None and blocks.conv_dims is not None))
    else:
        plain, convs = _text_targets(model), []
    targets = plain + convs
    if not targets:
        return 0
    alpha = alpha or float(rank)
    pattern_rank = {f"^{t}$": conv_dim for t in convs}
    pattern_alpha = {f"^{t}$": conv_alpha or float(conv_dim) for t in convs}
    if blocks is not None and component == "unet" and dit_targets is None:
        from training.blocks import module_ranks

        ranks = module_ranks(model, family, blocks, plain, convs)  # path → (rank, alpha); rank 0 left out
        targets = [t for t in targets if t in ranks]
        if not targets:
            return 0
        pattern_rank = {f"^{t}$": ranks[t][0] for t in targets}
        pattern_alpha = {f"^{t}$": ranks[t][1] for t in targets}
    # SD families: DoRA in the input-axis form WebUI and ComfyUI apply (training/dora.py); a DiT family keeps peft's
    input_axis_dora = use_dora and dit_targets is None
    config = _config(algo, r=rank, alpha=alpha, dropout=dropout, use_dora=use_dora and not input_axis_dora,
                     target_modules=targets, rank_pattern=pattern_rank, alpha_pattern=pattern_alpha)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if algo == "lokr":
        _lokr_full_scale(model)
    if input_axis_dora and algo == "lora":
        from training import dora

        dora.attach(model, ADAPTER)
    if algo == "lora" and (rank_dropout or module_dropout):  # after DoRA, which replaces the forward
        add_dropouts(model, rank_dropout, module_dropout)
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if any(p in name for p in ("lora_", "hada_", "lokr_")):  # lora_A/B, DoRA's magnitude, LoHa/LoKr factors
            param.requires_grad_(True)
    return sum(isinstance(m, BaseTunerLayer) for m in model.modules())


def _rank_dropout_hook(p: float):
    """sd-scripts' rank dropout: in training, zero each rank of the down projection's output with probability p for
    each sample (the same ranks at every position of it) and scale the rest by 1 / (1 - p)."""
    def hook(module: Any, args: Any, out: Any) -> Any:
        import torch

        if not module.training:
            return out
        mask = (torch.rand(out.shape[0], out.shape[-1] if out.dim() != 4 else out.shape[1], device=out.device) > p)
        if out.dim() == 3:  # text encoder: (batch, tokens, rank)
            mask = mask[:, None, :]
        elif out.dim() == 4:  # conv: (batch, rank, h, w)
            mask = mask[:, :, None, None]
        return out * mask.to(out.dtype) / (1.0 - p)

    return hook


def _module_dropout_forward(forward: Any, p: float) -> Any:
    """sd-scripts' module dropout: in training, the whole LoRA of a layer is skipped with probability p per step."""
    def wrapped(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        if self.training and torch.rand(()).item() < p:
            return self.get_base_layer()(x, *args, **kwargs)
        return forward(x, *args, **kwargs)

    return wrapped


def add_dropouts(model: Any, rank_dropout: float, module_dropout: float, adapter: str = ADAPTER) -> int:
    """Rank and module dropout (train only, as sd-scripts' networks/lora.py) on every LoRA layer of `model`."""
    import types

    from peft.tuners.lora import LoraLayer

    count = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
            continue
        if rank_dropout:
            module.lora_A[adapter].register_forward_hook(_rank_dropout_hook(rank_dropout))
        if module_dropout:
            module.forward = types.MethodType(_module_dropout_forward(module.forward, module_dropout), module)
        count += 1
    return count


def lora_parameters(model: Any) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def loraplus_ids(model: Any) -> set[int]:
    """Ids of the trained up matrices (peft's lora_B, kohya's lora_up): the ones LoRA+ gives a larger LR."""
    return {id(p) for name, p in model.named_parameters() if p.requires_grad and "lora_B" in name}
