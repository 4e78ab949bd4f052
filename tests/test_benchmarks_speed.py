"""Smoke tests of the speed benchmarks (train, inference, collection) on their ``--quick`` paths."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import authors_release  # noqa: E402
import collect_speed  # noqa: E402
import eval_speed  # noqa: E402
import inference_speed  # noqa: E402
import train_profile  # noqa: E402
import train_speed  # noqa: E402


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_speed_quick(tmp_path, capsys):
    rows = train_speed.main(["--quick", "--threads", "1", "--presets", "grid/ours,rotation/matmul", "--out", str(tmp_path)])
    assert [(r["preset"], r["impl"]) for r in rows] == [("grid/ours", "authors"), ("grid/ours", "symwm"), ("rotation/matmul", "symwm")]
    authors, ours, rotation = rows
    assert authors["params"] == ours["params"] == 1986345  # the paper-size grid model, both ways
    assert ours["speedup"] > 0 and "speedup" not in rotation  # the rotating object was never released
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("train_speed ")]
    assert len(lines) == 3 and "impl=symwm" in lines[1] and "speedup=" in lines[1] and "init=skipped" in lines[0]
    assert len(_csv(tmp_path / "train_speed_cpu.csv")) == 3
    text = (tmp_path / "train_speed_cpu.md").read_text()
    assert "| grid/ours | symwm |" in text and "n/a (not released)" in text and "emulated" in text


def test_train_speed_interleaves_rounds_and_reports_flops(tmp_path):
    argv = ["--quick", "--rounds", "2", "--threads", "1", "--size", "cpu", "--presets", "grid/none", "--out", str(tmp_path)]
    authors, ours = train_speed.main(argv)
    for row in (authors, ours):
        assert row["rounds"] == 2 and row["steps"] == 2 and row["tps_min"] <= row["transitions_per_s"] <= row["tps_max"]
        assert row["gflop_per_step"] > 0 and 0 < row["peak_share"] < 1.5
    assert ours["speedup_min"] <= ours["speedup"] <= ours["speedup_max"]
    text = (tmp_path / "train_speed_cpu.md").read_text()
    assert "GFLOP/s before and after the rows" in text and "| grid/none | symwm |" in text


def test_train_profile_splits_a_step_into_its_phases(tmp_path):
    res, matmul = train_profile.main(["--quick", "--threads", "1", "--presets", "grid/ours,rotation/matmul", "--out", str(tmp_path)])
    assert matmul["phases"]["backward: transition and loss"][0] == 0.0  # no parameters after the encoder: nothing to differentiate
    phases = res["phases"]
    assert set(train_profile.PHASES) <= set(phases) and all(v[0] >= 0 for k, v in phases.items() if k in train_profile.PHASES)
    assert abs(sum(phases[p][0] for p in train_profile.PHASES) - res["step"][0]) < 1e-9
    assert phases["escnn filter expansion (within the forwards)"][0] > 0  # ours' encoder and transition are escnn layers
    assert res["flops"] > 0 and len(res["top_ops"]) == 5
    rows = _csv(tmp_path / "train_profile_cpu.csv")
    assert {r["phase"] for r in rows} >= {"sen", "backward: SEN", "step"}
    assert "| grid/ours |" in (tmp_path / "train_profile_cpu.md").read_text()


def test_eval_speed_times_eval_mode_and_exported_models(tmp_path):
    rows = eval_speed.main(["--quick", "--threads", "1", "--variants", "none", "--work", str(tmp_path / "work"), "--out", str(tmp_path)])
    assert [(r["variant"], r["mode"]) for r in rows] == [("none", "eval mode"), ("none", "exported")]
    assert all(r["seconds"] > 0 and r["episodes"] == 40 for r in rows)
    assert "| none | exported |" in (tmp_path / "eval_speed_cpu.md").read_text()


def test_train_speed_isolated_worker_reports_peak_memory(tmp_path):
    argv = ["--quick", "--isolate", "--threads", "1", "--size", "cpu", "--presets", "rotation/matmul", "--out", str(tmp_path)]
    (row,) = train_speed.main(argv)
    assert row["peak_mem_mb"] is not None and row["steps"] == 1


def test_authors_release_matches_our_parameter_counts():
    spec = train_speed.spec_for("reacher/ours", "cpu")
    model = authors_release.build_authors_model(spec)
    ours = sum(p.numel() for p in _build(spec).parameters())
    assert abs(authors_release.num_parameters(model) - ours) / ours < 0.01
    assert not authors_release.has_authors_model(train_speed.spec_for("rotation/ours"))


def _build(spec):
    from symwm.world_models.build import build_model

    return build_model(spec, initialize=False)


def test_inference_speed_quick(tmp_path, capsys):
    rows = inference_speed.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
    assert len(rows) == 8  # 2 modes x 2 ops x 2 batches
    assert all(r["median_ms"] > 0 for r in rows)
    assert all(r["speedup"] > 0 for r in rows if r["mode"] == "export")
    assert sum(ln.startswith("inference_speed ") for ln in capsys.readouterr().out.splitlines()) == 8
    assert len(_csv(tmp_path / "inference_speed_cpu.csv")) == 8
    assert "| grid/ours | cpu | encode | 1 |" in (tmp_path / "inference_speed_cpu.md").read_text()


def test_collect_speed_quick(tmp_path, capsys):
    rows = collect_speed.main(["--quick", "--out", str(tmp_path)])
    assert {r["env"] for r in rows} == set(collect_speed.parse_args(["--quick"]).env_ids)
    for r in rows:
        assert r["twin_transitions"] == r["twins"] * r["transitions"]
        assert r["all_transitions_per_s"] >= r["transitions_per_s"] > 0
    assert next(r for r in rows if r["env"] == "symwm/Reacher-v0")["warmup_steps"] == 50
    assert sum(ln.startswith("collect_speed ") for ln in capsys.readouterr().out.splitlines()) == len(rows)
    assert len(_csv(tmp_path / "collect_speed.csv")) == len(rows)
    assert not list(tmp_path.glob("*.h5"))
