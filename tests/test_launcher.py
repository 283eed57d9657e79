"""The launcher's decisions, without the network: install, torch index, ports, --listen, exit codes."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

import pytest

import launcher
from ui import serve


def test_torch_index_only_for_windows_with_nvidia():
    assert launcher.torch_index("Windows", True) == launcher.TORCH_CUDA_INDEX
    assert launcher.torch_index("Windows", False) is None
    assert launcher.torch_index("Linux", True) is None   # PyPI's Linux wheels carry CUDA
    assert launcher.torch_index("Darwin", False) is None


def test_install_commands_put_cuda_torch_first(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\ntorch==2.13.0  # pinned\ngradio>=5\n")
    cmds = launcher.install_commands(tmp_path / "py", "Windows", True, req)
    assert cmds[0][-3:] == ["torch==2.13.0", "--index-url", launcher.TORCH_CUDA_INDEX]
    assert cmds[1][-2:] == ["-r", str(req)]
    assert "-q" not in cmds[1]  # pip's progress stays visible
    assert len(launcher.install_commands(tmp_path / "py", "Linux", True, req)) == 1


def test_requirements_pin_torch():
    assert launcher.torch_requirement() == "torch==2.13.0"


def test_install_is_skipped_until_requirements_change(tmp_path):
    venv, req = tmp_path / ".venv", tmp_path / "requirements.txt"
    venv.mkdir()
    req.write_text("gradio\n")
    assert launcher.needs_install(venv, req)
    (venv / launcher.STAMP_NAME).write_text(launcher.requirements_hash(req))
    assert not launcher.needs_install(venv, req)
    req.write_text("gradio\npillow\n")
    assert launcher.needs_install(venv, req)


def test_busy_port_moves_to_the_next_free_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not serve.port_free("127.0.0.1", busy)
        port = serve.find_port("127.0.0.1", busy)
        assert port > busy and serve.port_free("127.0.0.1", port)


def _ns(**kw):
    return argparse.Namespace(**{"listen": False, "auth": None, **kw})


def test_binds_loopback_by_default():
    assert serve.ui_settings(_ns()) == ("127.0.0.1", None)


def test_listen_without_auth_is_refused():
    with pytest.raises(ValueError, match="--auth"):
        serve.ui_settings(_ns(listen=True))
    assert serve.ui_settings(_ns(listen=True, auth="me:secret")) == ("0.0.0.0", ("me", "secret"))
    with pytest.raises(ValueError):
        serve.parse_auth("no-password")


def test_listen_without_auth_exits_2_with_message():
    out = subprocess.run([sys.executable, "launcher.py", "ui", "--listen", "--no-browser"], capture_output=True,
                         text=True, cwd=launcher.ROOT, timeout=120)
    assert out.returncode == 2
    assert "--auth user:password" in out.stderr


def test_double_click_detection():
    assert launcher.launched_by_double_click("Windows", 1, True)
    assert launcher.launched_by_double_click("Windows", 2, True)
    assert not launcher.launched_by_double_click("Windows", 3, True)     # started from cmd.exe
    assert not launcher.launched_by_double_click("Linux", None, True)
    assert not launcher.launched_by_double_click("Windows", 1, False)    # no one to press Enter


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "launcher.py", "--help"], capture_output=True, text=True,
                         cwd=launcher.ROOT, timeout=60)
    assert out.returncode == 0
    for name in ("ui", "train", "tag", "grid", "check", "demo", "test"):
        assert f"\n  {name} " in out.stdout


def test_dry_run_is_the_trainers_plan_and_dataset_check(tmp_path):
    """`train RUN.toml --dry-run` runs training/cli.py's dry run: config, dataset check, plan; nothing trained."""
    from core import config as cfgmod
    from training.tiny_run import flat_dataset

    cfg = cfgmod.default_config()
    cfg.model.base = str(tmp_path / "base.safetensors")
    cfg.dataset.dir = str(flat_dataset(tmp_path / "数据 data", count=4, repeats=3))
    cfg.saving.output_dir = str(tmp_path / "out")
    good = cfgmod.save(cfg, tmp_path / "运行 run.toml")
    env = {**os.environ, "DANLU_LANG": "en"}
    out = subprocess.run([sys.executable, "launcher.py", "train", str(good), "--dry-run", "--set", "training.epochs=2",
                          "--set", "training.batch_size=2"], capture_output=True, text=True, cwd=launcher.ROOT,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 images, 12 with repeats, 6 batches per epoch, 6 steps per epoch, 12 steps in all" in out.stdout
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.safetensors"))

    empty = tmp_path / "empty"
    (empty / "3_x").mkdir(parents=True)
    out = subprocess.run([sys.executable, "launcher.py", "train", str(good), "--dry-run", "--set",
                          f"dataset.dir={empty.as_posix()}"], capture_output=True, text=True, cwd=launcher.ROOT,
                         timeout=300, env=env)
    assert out.returncode == 2, out.stdout + out.stderr  # the dataset check, which only the trainer's dry run does

    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nrnak = 8\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "launcher.py", "train", str(bad), "--dry-run"], capture_output=True,
                         text=True, cwd=launcher.ROOT, timeout=300, env=env)
    assert out.returncode == 2
    assert "network.rank" in out.stdout


def test_demo_subcommand_writes_a_runnable_config(tmp_path):
    out = subprocess.run([sys.executable, "launcher.py", "demo", "--out", str(tmp_path / "演示 demo")],
                         capture_output=True, text=True, cwd=launcher.ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "演示 demo" / "run.toml"
    assert run.exists() and "launcher.py train" in out.stdout
    assert (tmp_path / "演示 demo" / "tagger" / "model.onnx").exists()
    assert (tmp_path / "演示 demo" / "base" / "tiny-sd15.safetensors").exists()
    images = list((tmp_path / "演示 demo" / "dataset" / "10_demo").glob("*.png"))
    assert len(images) == 12
    assert all(p.with_suffix(".txt").read_text(encoding="utf-8").startswith("demo") for p in images)
    from core import config as cfgmod

    cfg = cfgmod.load(run)
    assert cfg.dataset.dir.endswith("dataset") and cfg.sampling.prompts


def test_launcher_needs_only_the_standard_library_before_the_venv():
    import ast

    tree = ast.parse((launcher.ROOT / "launcher.py").read_text(encoding="utf-8"))
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top - set(sys.stdlib_module_names)
    out = subprocess.run([sys.executable, "-S", "launcher.py", "--help"], capture_output=True, text=True,
                         cwd=launcher.ROOT, timeout=60)  # -S: no site-packages at all
    assert out.returncode == 0 and "usage: python launcher.py" in out.stdout, out.stderr


def test_a_follow_up_step_runs_only_after_its_handler_succeeded(monkeypatch):
    import types

    ran = []
    fake = types.ModuleType("fake_steps")
    fake.first = lambda argv: ran.append(("first", argv)) or int(argv[0])
    fake.then = lambda argv: ran.append(("then", argv)) or 0
    monkeypatch.setitem(sys.modules, "fake_steps", fake)
    monkeypatch.setitem(launcher.HANDLERS, "demo", ("fake_steps", "first"))
    monkeypatch.setitem(launcher.FOLLOW_UPS, "demo", [("fake_steps", "then")])
    assert launcher.dispatch("demo", ["0"]) == 0 and ran == [("first", ["0"]), ("then", ["0"])]
    ran.clear()
    assert launcher.dispatch("demo", ["3"]) == 3 and ran == [("first", ["3"])]


def test_relative_paths_are_taken_from_the_shell_folder(tmp_path):
    (tmp_path / "run.toml").write_text("", encoding="utf-8")
    args = ["run.toml", "--set", "training.epochs=2", "-o", "new.toml", "--outputs=runs", "--dry-run", "nothere"]
    from core.cli_paths import from_shell_folder

    assert from_shell_folder(args, tmp_path, launcher.ROOT) == [
        str(tmp_path / "run.toml"), "--set", "training.epochs=2", "-o", str(tmp_path / "new.toml"),
        f"--outputs={tmp_path / 'runs'}", "--dry-run", "nothere"]  # a word that is no path there stays a word
    assert from_shell_folder(["outputs/demo/run.toml"], launcher.ROOT, launcher.ROOT) == ["outputs/demo/run.toml"]


def test_import_from_another_folder_reads_and_writes_there(tmp_path):
    from test_import_config import LORA_SCRIPTS_TOML

    (tmp_path / "aki.toml").write_text(LORA_SCRIPTS_TOML, encoding="utf-8")
    out = subprocess.run([sys.executable, str(launcher.ROOT / "launcher.py"), "import", "aki.toml", "-o", "mine.toml"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "DANLU_LANG": "en"})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "mine.toml").is_file() and "Read as lora-scripts" in out.stdout
