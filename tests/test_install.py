"""The README's "Install into your own environment" lines, in a fresh venv (no .venv, no symwm installed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # --no-compile: byte-compiling torch's sources is a large share of the install's time and not what this tests
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(pip + ["torch==2.13.0"], check=True, env=env)  # the CPU build, as the README says for CPU-only machines
    subprocess.run(pip + [str(ROOT)], check=True, env=env)
    python = str(venv / "bin" / "python")
    missing = subprocess.run([python, "-c", "import symwm.world_models"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.returncode != 0 and "pip install --no-deps escnn==1.0.11" in missing.stderr
    subprocess.run(pip + ["--no-deps", "escnn==1.0.11"], check=True, env=env)
    check = subprocess.run([str(venv / "bin" / "symwm"), "check", "-n", "3"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(" ok") == 5
    build = "from symwm.world_models.build import build_model; from symwm.world_models.model import ModelSpec; " \
            "print(build_model(ModelSpec('symwm/Cubes3D-v0')).latent_shape)"
    out = subprocess.run([python, "-c", build], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "(5, 8)"
