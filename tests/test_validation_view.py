"""The Train tab shows the validation loss: a third series on the loss chart, the best epoch in the status and the
file list (from the run's events.jsonl, as the trainer writes them)."""

from __future__ import annotations

from core.runs.supervisor import Run
from ui.tab_train import render


def test_best_epoch_is_marked_and_validation_is_drawn(tmp_path):
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    events = [{"type": "start", "total_steps": 6, "epochs": 3}]
    for step in range(1, 7):
        events.append({"type": "progress", "step": step, "total": 6, "epoch": (step + 1) // 2, "loss": 1 / step})
        if step % 2 == 0:
            events.append({"type": "saved", "file": f"demo-{step // 2:06d}.safetensors", "epoch": step // 2,
                           "step": step, "size": 10})
            events.append({"type": "validation", "epoch": step // 2, "step": step, "images": 2,
                           "loss": {2: 0.30, 4: 0.21, 6: 0.25}[step]})
    run = Run(run_dir, run_dir / "config.toml", ["python"], tmp_path, False, status="finished", events=events)
    for lang, word in (("en", "Best epoch"), ("zh", "最佳轮次")):
        view = render(run, lang, "")
        assert word in view["status"] and "0.21000" in view["status"]
        marked = [row[0] for row in view["files"] if "★" in row[0]]
        assert marked == [f"demo-000002.safetensors  {'★ best' if lang == 'en' else '★ 最佳'}"]
        frame = view["loss"]
        series = set(frame["series"])
        assert len(series) == 3 and ("validation" in series or "验证" in series)
        assert list(frame[frame["series"].isin(["validation", "验证"])]["loss"]) == [0.30, 0.21, 0.25]
