"""Block swap (training.blocks_to_swap, sd-scripts' --blocks_to_swap): N of a transformer's blocks keep their frozen
weights in CPU memory and are moved onto the training device for their forward pass and again for their backward
pass, so a base larger than the card trains at the cost of PCIe transfers.

How, with hooks only (the model's own forward, with or without gradient checkpointing, is left as it is):

- a block's forward pre-hook moves its frozen tensors in; its forward hook moves them out again and puts a hook on
  its outputs that moves them back in when their gradient arrives, i.e. before any of the block's own backward
  steps runs (autograd keeps the Parameter objects, whose ``.data`` is swapped, not copies of them);
- a block brought in for its backward pass stays in until the next block's backward (or the next forward) needs
  the room: with gradient checkpointing its forward is recomputed inside that backward, and the hooks leave it in
  place then (they can tell: autograd is running a backward pass);
- only frozen tensors move: the LoRA's trainable weights (and their gradients and optimizer state) stay on the
  device, so the optimizer never sees a parameter change device.

Moving out costs nothing: the weights are frozen, so the CPU copy made once (pinned, for asynchronous copies) is
still right and the device copy is simply dropped. On the CPU every move is a no-op, but the same path runs.
"""

from __future__ import annotations

from typing import Any

ATTRIBUTE = "_block_swap"  # where install() keeps the swap on the model, so installing twice is a no-op


def _in_backward() -> bool:
    """True while autograd runs a backward pass (a checkpointed block's forward is then a recompute)."""
    import torch

    return torch._C._current_graph_task_id() != -1


class BlockSwap:
    """Moves the frozen tensors of `blocks` between the CPU and `device` around their forward and backward passes.

    `park` is what a block's tensors hold while out: None, the CPU copy (the real thing); "nan" in tests, copies
    full of NaN, so that a weight used while out spoils the result instead of silently reading the CPU copy on a
    CPU-only machine, where moving in is a no-op.
    """

    def __init__(self, blocks: list[Any], device: Any, park: str | None = None):
        import torch

        self.device = torch.device(device)
        self.blocks = list(blocks)
        self.moves_in = 0               # transfers to the device (a test counts them: 2 per block and step)
        self.held: Any = None           # the block brought in for its backward pass
        self.resident: set[int] = set()  # ids of the blocks whose tensors are on the device now
        pin = self.device.type == "cuda"
        self.tensors: dict[int, list[tuple[Any, Any, Any]]] = {}  # block id → (tensor, CPU copy, parked form)
        for block in self.blocks:
            entries = []
            frozen = [p for p in block.parameters() if not p.requires_grad] + list(block.buffers())
            for t in frozen:
                host = t.data.to("cpu")
                host = host.pin_memory() if pin else host
                poisoned = park == "nan" and host.is_floating_point()
                entries.append((t, host, host.new_full(host.shape, float("nan")) if poisoned else host))
            self.tensors[id(block)] = entries
            self._out(block)
            block.register_forward_pre_hook(self._pre_forward)
            block.register_forward_hook(self._post_forward)

    def _in(self, block: Any) -> None:
        if id(block) in self.resident:
            return
        for t, host, _ in self.tensors[id(block)]:
            t.data = host.to(self.device, non_blocking=True)  # pinned memory: ordered on the compute stream
        self.resident.add(id(block))
        self.moves_in += 1

    def _out(self, block: Any) -> None:
        for t, _, parked in self.tensors[id(block)]:
            t.data = parked
        self.resident.discard(id(block))

    def _release(self) -> None:
        if self.held is not None:
            self._out(self.held)
            self.held = None

    def _pre_forward(self, block: Any, args: Any) -> None:
        if not _in_backward():  # a real forward: the block a backward pass left in goes out first
            self._release()
        if block is not self.held:
            self._in(block)

    def _post_forward(self, block: Any, args: Any, output: Any) -> None:
        import torch

        if _in_backward():  # recomputed (gradient checkpointing) for its own backward pass: it stays in for it
            return
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        for t in outputs:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.register_hook(lambda grad, block=block: self._backward_in(block))  # returns None: grad kept
        self._out(block)

    def _backward_in(self, block: Any) -> None:
        """Before the block's backward pass (its outputs' gradient has arrived): the previous one out, it in."""
        if self.held is not block:
            self._release()
            self._in(block)
            self.held = block


def swapped(model: Any) -> bool:
    """Whether `model` has blocks swapped: its placement is the swap's, not a plain move to one device."""
    return getattr(model, ATTRIBUTE, None) is not None


def install(model: Any, blocks: list[Any], n: int, device: Any, park: str | None = None) -> BlockSwap | None:
    """Swap the last `n` of `blocks` (in forward order) of `model`, once per model, and move the rest of the model
    (the other blocks, the embedders, every trainable LoRA weight) to `device`: called with the model still in CPU
    memory, the swapped blocks' weights never reach the device whole. n = 0: nothing (None)."""
    if n <= 0:
        return None
    existing = getattr(model, ATTRIBUTE, None)
    if existing is not None:
        return existing
    if n >= len(blocks):
        from core.errors import ConfigError

        raise ConfigError(f"training.blocks_to_swap is {n}, but this model has {len(blocks)} blocks.",
                          f"training.blocks_to_swap 为 {n}，但此模型只有 {len(blocks)} 个块。",
                          f"Swap at most {len(blocks) - 1} blocks.", f"最多交换 {len(blocks) - 1} 个块。",
                          key="training.blocks_to_swap")
    swap = BlockSwap(blocks[len(blocks) - n:], device, park)
    object.__setattr__(model, ATTRIBUTE, swap)  # not a submodule: nn.Module.__setattr__ would register nothing
    _move_rest(model, swap, swap.device)
    return swap


def _move_rest(model: Any, swap: BlockSwap, device: Any) -> None:
    kept = {id(t) for entries in swap.tensors.values() for t, _, _ in entries}
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in kept and t.device != device:
            t.data = t.data.to(device)


def move(model: Any, device: Any) -> None:
    """``model.to(device)`` that leaves swapped blocks in CPU memory (all of them out): the loop parks the trained
    model in CPU memory while samples render and brings it back, and the swapped weights must not come back whole."""
    swap = getattr(model, ATTRIBUTE, None)
    if swap is None:
        model.to(device)
        return
    swap._release()
    for block in swap.blocks:
        swap._out(block)
    _move_rest(model, swap, device)
