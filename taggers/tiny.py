"""WD-tagger-shaped ONNX models built on the spot, for tests, the demo and the speed bench (no download).

`make_tiny_tagger` has the real v3 (or v2) input/output names and shapes and a formula simple enough to
recompute in numpy; `make_vit_tagger` is a random-weight ViT-B/16 with the v3 interface, realistic in cost.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from taggers.wd14 import MODEL_FILE, TAGS_FILE

RATINGS = ["general", "sensitive", "questionable", "explicit"]
TINY_GENERAL = ["simple_background", "white_background", "no_humans", "red_theme", "green_theme", "blue_theme",
                "^_^", "solo", "looking_at_viewer"]
TINY_CHARACTER = ["tiny_(danlu)"]


def write_tags_csv(path: Path, general: list[str], character: list[str]) -> Path:
    """selected_tags.csv as SmilingWolf ships it: tag_id,name,category,count; ratings (9) first."""
    rows = [(n, 9) for n in RATINGS] + [(n, 0) for n in general] + [(n, 4) for n in character]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tag_id", "name", "category", "count"])
        for i, (name, cat) in enumerate(rows):
            w.writerow([100000 + i, name, cat, 1000 - i])
    return path


def tiny_weights(n_tags: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """W (3, n) over the B, G, R channel means in 0..1, and a bias (n,): what the tiny model computes.

    The first two general tags (simple_background, white_background by default) are always on (p ≈ 0.998),
    so a test knows a tag every image gets.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 4, size=(3, n_tags)).astype(np.float32)
    b = rng.normal(0, 2, size=(n_tags,)).astype(np.float32)
    w[:, 4:6], b[4:6] = 0.0, 6.0
    return w, b


def tiny_formula(batch: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The tiny model in numpy: sigmoid(mean_hw(x) / 255 @ W + b)."""
    z = batch.astype(np.float64).mean(axis=(1, 2)) / 255.0 @ w.astype(np.float64) + b
    return 1.0 / (1.0 + np.exp(-z))


def make_tiny_tagger(folder: Path, *, size: int = 32, dynamic: bool = True, v3: bool = True,
                     general: list[str] | None = None, character: list[str] | None = None, seed: int = 0) -> Path:
    """A folder with model.onnx + selected_tags.csv. v3: `input` ['batch_size',S,S,3] → `output`;
    v2: `input_1:0` [1,S,S,3] → `predictions_sigmoid`. dynamic=False fixes the batch at 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    general = list(TINY_GENERAL if general is None else general)
    character = list(TINY_CHARACTER if character is None else character)
    write_tags_csv(folder / TAGS_FILE, general, character)
    n = len(RATINGS) + len(general) + len(character)
    w, b = tiny_weights(n, seed)
    in_name, out_name = ("input", "output") if v3 else ("input_1:0", "predictions_sigmoid")
    batch = "batch_size" if dynamic else 1
    nodes = [
        helper.make_node("ReduceMean", [in_name], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["mean", "inv255"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [out_name]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_wd_tagger",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [batch, size, size, 3])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, n])],
        [numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "inv255"), numpy_helper.from_array(w, "W"),
         numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / MODEL_FILE))
    return folder


def make_vit_tagger(folder: Path, *, size: int = 448, patch: int = 16, dim: int = 768, depth: int = 12,
                    heads: int = 12, n_general: int = 8106, n_character: int = 2751, seed: int = 0) -> Path:
    """A random-weight ViT-B/16 (≈86 M parameters at the defaults) with the WD v3 interface."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tags_csv(folder / TAGS_FILE, [f"tag_{i}" for i in range(n_general)],
                   [f"char_{i}" for i in range(n_character)])
    n = len(RATINGS) + n_general + n_character
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def param(name: str, *shape: int, std: float = 0.02, value: float | None = None) -> str:
        arr = np.full(shape, value, np.float32) if value is not None else rng.normal(0, std, shape).astype(np.float32)
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(name: str, values: list[int]) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    tokens = (size // patch) ** 2
    dh = dim // heads
    x = node("Transpose", ["input"], "nchw", perm=[0, 3, 1, 2])
    x = node("Conv", [x, param("patch_w", dim, 3, patch, patch), param("patch_b", dim, value=0.0)], "patches",
             strides=[patch, patch], kernel_shape=[patch, patch])
    x = node("Reshape", [x, const("s_flat", [0, dim, -1])], "flat")
    x = node("Transpose", [x], "tok", perm=[0, 2, 1])
    x = node("Add", [x, param("pos", 1, tokens, dim)], "x0")
    sqrt_half = param("sqrt_half", 1, value=float(1 / np.sqrt(2)))
    half, one = param("half", 1, value=0.5), param("one", 1, value=1.0)
    scale = param("scale", 1, value=float(dh ** -0.5))
    for i in range(depth):
        p = f"b{i}_"
        h = node("LayerNormalization", [x, param(p + "ln1_g", dim, value=1.0), param(p + "ln1_b", dim, value=0.0)],
                 p + "ln1", axis=-1, epsilon=1e-6)
        qkv = node("Add", [node("MatMul", [h, param(p + "qkv_w", dim, 3 * dim)], p + "qkv0"),
                           param(p + "qkv_b", 3 * dim, value=0.0)], p + "qkv")
        qkv = node("Reshape", [qkv, const(p + "s_qkv", [0, 0, 3, heads, dh])], p + "qkv5")
        qkv = node("Transpose", [qkv], p + "qkvT", perm=[2, 0, 3, 1, 4])
        q, k, v = (node("Gather", [qkv, const(p + f"i{j}", [j])], p + f"qkv_g{j}", axis=0) for j in range(3))
        q, k, v = (node("Squeeze", [t, const(p + f"sq{j}", [0])], p + f"h{j}") for j, t in enumerate((q, k, v)))
        att = node("MatMul", [q, node("Transpose", [k], p + "kT", perm=[0, 1, 3, 2])], p + "att0")
        att = node("Softmax", [node("Mul", [att, scale], p + "att1")], p + "att", axis=-1)
        o = node("Transpose", [node("MatMul", [att, v], p + "ctx")], p + "ctxT", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, const(p + "s_o", [0, 0, dim])], p + "ctx2")
        o = node("Add", [node("MatMul", [o, param(p + "proj_w", dim, dim)], p + "proj0"),
                         param(p + "proj_b", dim, value=0.0)], p + "proj")
        x = node("Add", [x, o], p + "x1")
        h = node("LayerNormalization", [x, param(p + "ln2_g", dim, value=1.0), param(p + "ln2_b", dim, value=0.0)],
                 p + "ln2", axis=-1, epsilon=1e-6)
        h = node("MatMul", [h, param(p + "fc1_w", dim, 4 * dim)], p + "fc1")
        erf = node("Erf", [node("Mul", [h, sqrt_half], p + "gs")], p + "erf")
        h = node("Mul", [node("Mul", [h, half], p + "gh"), node("Add", [erf, one], p + "g1")], p + "gelu")
        h = node("MatMul", [h, param(p + "fc2_w", 4 * dim, dim)], p + "fc2")
        x = node("Add", [x, h], p + "x2")
    x = node("LayerNormalization", [x, param("ln_g", dim, value=1.0), param("ln_b", dim, value=0.0)], "lnf",
             axis=-1, epsilon=1e-6)
    x = node("ReduceMean", [x], "pool", axes=[1], keepdims=0)
    x = node("MatMul", [x, param("head_w", dim, n)], "head")
    node("Sigmoid", [x], "output")
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", size, size, 3])
    graph = helper.make_graph(nodes, "vit_b_wd_tagger", [inp],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(folder / MODEL_FILE))
    return folder


def demo_main(argv: list[str]) -> int:
    """`launcher.py demo`'s second step, after models/demo.py wrote the model, dataset and run: a tiny tagger in
    <out>/tagger, so the demo's Tagging step works offline too."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default="outputs/demo")
    folder = make_tiny_tagger(Path(parser.parse_known_args(argv)[0].out) / "tagger")
    print(f"  tagger:     {folder}  (a tiny offline tagger for the Tagging step)")
    return 0
