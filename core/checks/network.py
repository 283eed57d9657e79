"""The rules about the network: what is trained, alpha and rank, DoRA, LyCORIS options, LoRA+, and sd-scripts'
block-wise LR weights, dims and alphas.
Registered in core.checks.base.RULES in the order core.checks imports them."""

from __future__ import annotations

from core.checks.base import ONE_LR, Env, _block_wise, _family, _is, _label, _lacks, rule
from core.config import RunConfig, blocks
from core.errors import ConfigError

# ---------------------------------------------------------------------------------------------- network

@rule("nothing_to_train", "error")
def _nothing(cfg: RunConfig, env: Env):
    if not cfg.network.train_unet and not cfg.network.train_text_encoder:
        return ("network.train_unet", "Nothing to train: both UNet and text encoder are off.",
                "没有要训练的部分：UNet 和文本编码器都关闭了。",
                "Turn on network.train_unet or network.train_text_encoder.",
                "请至少打开 network.train_unet 或 network.train_text_encoder 之一。")


@rule("alpha_above_rank", "warning")
def _alpha_above_rank(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.alpha > n.rank:
        return ("network.alpha",
                f"Alpha {n.alpha:g} above rank {n.rank} amplifies every update; training may blow up.",
                f"alpha {n.alpha:g} 大于 rank {n.rank}，会放大每次更新，训练可能发散。",
                f"Use alpha ≤ rank (about {n.rank / 2:g} is usual).", f"请让 alpha ≤ rank（常用 {n.rank / 2:g}）。")


@rule("dora_dropout", "warning")
def _dora_dropout(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.use_dora and n.dropout > 0:
        return ("network.dropout",
                f"DoRA with dropout {n.dropout:g}: DoRA recomputes the layer on the dropped-out input, which is "
                "slow and memory-hungry.",
                f"DoRA 配合 dropout {n.dropout:g}：DoRA 需对丢弃后的输入重算整层，既慢又占显存。",
                "Set network.dropout = 0.", "请把 network.dropout 设为 0。")
    if n.use_dora and (n.rank_dropout or n.module_dropout):
        key = "network.rank_dropout" if n.rank_dropout else "network.module_dropout"
        return (key, "DoRA with rank or module dropout: DoRA's norm is taken over the whole LoRA while the dropout "
                "leaves out part of it each step (sd-scripts, where these options come from, has no DoRA).",
                "DoRA 配合秩或模块 dropout：DoRA 的范数按完整的 LoRA 计算，而 dropout 每步会丢弃其中一部分"
                "（这些选项来自 sd-scripts，而它没有 DoRA）。",
                "Set network.rank_dropout and module_dropout to 0.", "请把 rank_dropout 和 module_dropout 设为 0。")


@rule("dora_in_samples", "warning")
def _dora_samples(cfg: RunConfig, env: Env):
    if cfg.network.use_dora:
        return ("network.use_dora",
                "DoRA files (dora_scale per input column, LyCORIS's form) apply in WebUI and ComfyUI exactly as in "
                "the samples, which merge the file the way they do; diffusers' load_lora_weights drops dora_scale "
                "for SD/SDXL, so there the file acts as a plain LoRA.",
                "DoRA 文件（按输入列保存 dora_scale，LyCORIS 的形式）在 WebUI 和 ComfyUI 中的效果与样图一致"
                "（样图按它们的方式合并文件）；diffusers 的 load_lora_weights 在 SD/SDXL 上会忽略 dora_scale，"
                "在那里只相当于普通 LoRA。")


@rule("lycoris_with_dora_or_dropout", "error")
def _lycoris_options(cfg: RunConfig, env: Env):
    n = cfg.network
    if n.type != "lora" and (n.use_dora or n.dropout > 0 or n.rank_dropout or n.module_dropout):
        key, what = (("network.use_dora", "DoRA") if n.use_dora else ("network.dropout", f"dropout {n.dropout:g}")
                     if n.dropout else ("network.rank_dropout", "rank/module dropout"))
        return (key, f"{what} is an option of LoRA; the {n.type} layers do not apply it.",
                f"{what} 是 LoRA 的选项，{n.type} 层不会使用它。",
                "Turn it off, or set network.type = lora.", "请关闭它，或把 network.type 设为 lora。")


@rule("loraplus_lora_only", "error")
def _loraplus(cfg: RunConfig, env: Env):
    n = cfg.network
    name = cfg.optimizer.name
    if n.loraplus_lr_ratio and (n.type != "lora" or name in ONE_LR):
        what = (f"{n.type} has no up (B) matrices" if n.type != "lora"
                else f"{name} uses one step size for all groups")
        what_zh = f"{n.type} 没有 up（B）矩阵" if n.type != "lora" else f"{name} 所有参数组只用一个步长"
        return ("network.loraplus_lr_ratio", f"LoRA+ (loraplus_lr_ratio {n.loraplus_lr_ratio:g}) cannot apply: "
                f"{what}.", f"LoRA+（loraplus_lr_ratio {n.loraplus_lr_ratio:g}）无法生效：{what_zh}。",
                "Set network.loraplus_lr_ratio = 0, or train LoRA with another optimizer.",
                "请把 network.loraplus_lr_ratio 设为 0，或用其他优化器训练 LoRA。")


@rule("lycoris_on_dit", "error")
def _lycoris_dit(cfg: RunConfig, env: Env):
    if cfg.network.type != "lora" and _lacks(cfg, env, "unet"):  # LyCORIS layouts are the SD UNets' (kohya names)
        label = _label(cfg, env)
        return ("network.type", f"{cfg.network.type} is for SD1.5/SD2/SDXL; {label} trains LoRA.",
                f"{cfg.network.type} 仅用于 SD1.5/SD2/SDXL；{label} 训练 LoRA。",
                "Set network.type = lora.", "请把 network.type 设为 lora。")




@rule("block_wise_where", "error")
def _block_wise_where(cfg: RunConfig, env: Env):
    n = cfg.network
    if not _block_wise(cfg) or (n.type == "lora" and not _lacks(cfg, env, "unet")):
        return None
    label = _label(cfg, env)
    what, what_zh = ((f"{n.type} is not LoRA", f"{n.type} 不是 LoRA") if n.type != "lora"
                     else (f"{label} has no UNet blocks", f"{label} 没有 UNet 块"))
    return ("network.block_dims", f"Block-wise LR weights and dims are options of sd-scripts' LoRA on the SD1.5/SD2/"
            f"SDXL UNet; {what}.",
            f"分层学习率与分层 dim 是 sd-scripts 中 SD1.5/SD2/SDXL UNet 的 LoRA 选项；{what_zh}。",
            "Clear the block-wise fields (down/mid/up_lr_weight, block_dims, …), or train LoRA on an SD model.",
            "请清空分层设置（down/mid/up_lr_weight、block_dims 等），或在 SD 模型上训练 LoRA。")


@rule("block_wise_values", "error")
def _block_wise_values(cfg: RunConfig, env: Env):
    family = _family(cfg, env)
    if not _block_wise(cfg) or _lacks(cfg, env, "unet"):
        return None
    found = []
    for fam in ([family] if family else ["sd15", "sdxl"]):  # unknown family: wrong only if wrong for both
        try:
            blocks.from_config(cfg.network, fam)
            return None
        except ConfigError as e:
            found.append(e)
    e = found[0]
    return (e.key, e.en, e.zh, e.hint_en, e.hint_zh)


@rule("block_lr_one_step_size", "error")
def _block_lr_one_lr(cfg: RunConfig, env: Env):
    family, name = _family(cfg, env), cfg.optimizer.name
    if name not in ONE_LR or not _block_wise(cfg) or _lacks(cfg, env, "unet"):
        return None
    try:
        weights = blocks.lr_weights(cfg.network, family == "sdxl")
    except ConfigError:
        return None  # block_wise_values says what is wrong
    if len({w for w in weights or [] if w}) > 1:
        return ("network.down_lr_weight", f"Block-wise LR weights other than 0 and one shared value cannot apply: "
                f"{name} uses one step size for all groups.",
                f"分层学习率权重除 0 外只能是同一个值：{name} 所有参数组只用一个步长。",
                "Use only 0 and 1 as weights (0 leaves a block out), or another optimizer.",
                "权重只用 0 和 1（0 表示不训练该块），或改用其他优化器。")
    return None


@rule("block_lr_weight_count", "warning")
def _block_lr_count(cfg: RunConfig, env: Env):
    family = _family(cfg, env)
    if not _is(cfg, env, "unet") or not _block_wise(cfg):
        return None
    notes = blocks.lr_weight_notes(cfg.network, family == "sdxl")
    if not notes:
        return None
    key, given, expected = notes[0]
    how, how_zh = ("the missing ones are 1", "缺少的按 1 计") if given < expected else \
        ("the ones past it are ignored", "多出的会被忽略")
    return (f"network.{key}", f"network.{key} has {given} values; this model has {expected} such blocks: {how}, "
            "as in sd-scripts.", f"network.{key} 有 {given} 个值；此模型有 {expected} 个这样的块：{how_zh}"
            "（与 sd-scripts 相同）。", f"Give {expected} values.", f"请给出 {expected} 个值。")


@rule("block_wise_unet_off", "warning")
def _block_wise_unet_off(cfg: RunConfig, env: Env):
    if _block_wise(cfg) and not cfg.network.train_unet:
        return ("network.block_dims", "Block-wise LR weights and dims apply to the UNet, which is not trained "
                "(network.train_unet is off): they do nothing.",
                "分层学习率与分层 dim 只作用于 UNet，而 UNet 未训练（network.train_unet 已关闭）：它们不起作用。",
                "Turn on network.train_unet, or clear the block-wise fields.",
                "请打开 network.train_unet，或清空分层设置。")
    return None
