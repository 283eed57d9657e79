"""The LoRA toolbox: inspect, resize, merge, extract and convert a LoRA file, for every family.

The same functions serve the Tools tab (工具) and `python launcher.py lora SUBCOMMAND` (cli.py):

- inspect.py  `inspect_lora(path)` → LoraInfo (family, base, ranks and alphas per module, metadata, which loaders
              take every key); `edit_metadata(path, out, ...)` writes user-facing metadata, tensors unchanged
- resize.py   `resize_lora(path, out, rank=…, method=…)`: a fixed rank or sd-scripts' dynamic rules
- merge.py    several LoRAs into one, or LoRAs into a base checkpoint
- extract.py  `extract_lora(base, tuned, out, ...)`: a LoRA from the difference of two checkpoints
- convert.py  between the layouts a family has
- common.py   what they share: reading a file tensor by tensor (pickles refused, truncated files named), the
              module layout of a LoRA file, progress / ETA / cancel, atomic output that never overwrites an input

Every writer works module by module, so peak memory is about one layer plus the output being written.
"""
