"""The paper-table runner (benchmarks/paper_tables.py) end to end on a tiny table: runs, resumes, reports."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import paper_tables as tables  # noqa: E402
import planning_runs  # noqa: E402
import rotation_pose  # noqa: E402
import rotation_sen_output  # noqa: E402
import sen_object_response  # noqa: E402
import table1_blocks  # noqa: E402
import table3_shapes  # noqa: E402


@pytest.mark.slow
def test_quick_table_runs_resumes_and_reports(tmp_path, capsys):
    argv = ["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--jobs", "2"]
    md = table1_blocks.main("table1_blocks", "t1", table1_blocks.INTRO, table1_blocks.build, lambda s: "hits@1", argv)
    text = md.read_text()
    for variant in ("none", "full", "ours"):
        assert f"| {variant} |" in text
    assert "[99.9 ± 0.0]" in text  # the paper's figure beside ours
    rows = list(csv.DictReader(open(tmp_path / "out" / "table1_blocks_cpu.csv")))
    assert sorted((r["setting"], r["variant"]) for r in rows) == [
        ("cubes-no-left", "full"), ("cubes-no-left", "none"), ("cubes-no-left", "ours"),
        ("cubes-no-left-cells", "ours"), ("cubes-no-left-object-hinge", "ours"), ("cubes-no-left-temporal", "ours")]
    assert "one hinge per object" in text and "temporal negatives." in text
    run = json.loads((tmp_path / "work" / "runs" / "cubes-no-left-cells" / "ours" / "seed0" / "config.json").read_text())
    assert run["spec"]["overrides"] == {"sen_out_pool": 5}  # one value per cell: 50 px, 5 cells, the cpu SEN's 2x2 pooling
    run = json.loads((tmp_path / "work" / "runs" / "cubes-no-left-object-hinge" / "ours" / "seed0" / "config.json").read_text())
    assert run["train"]["hinge_on"] == "object"
    run = json.loads((tmp_path / "work" / "runs" / "cubes-no-left-temporal" / "ours" / "seed0" / "config.json").read_text())
    assert run["train"]["temporal_negatives"] is True
    assert all(0.0 <= float(r["hits@1"]) <= 100.0 and float(r["ee"]) >= 0.0 for r in rows)
    assert (tmp_path / "out" / "table1_blocks_cpu.png").stat().st_size > 0
    capsys.readouterr()
    table1_blocks.main("table1_blocks", "t1", table1_blocks.INTRO, table1_blocks.build, lambda s: "hits@1", argv)
    assert "6 of 6 runs already done" in capsys.readouterr().out
    # the SEN diagnostic reads the same runs: five cubes, init -> trained, for hidden channels and maps
    diag = sen_object_response.main(["--work", str(tmp_path / "work"), "--settings", "cubes-no-left-temporal", "--seeds", "0",
                                     "--out", str(tmp_path / "out" / "sen.md")])
    row = [line for line in diag.read_text().splitlines() if line.startswith("| cubes-no-left-temporal | 0 |")]
    assert len(row) == 1 and row[0].count("->") == 10


@pytest.mark.slow
def test_extra_evaluations_rank_held_out_actions_and_longer_horizons_and_are_carried_over(tmp_path):
    """Table 3: every run is also ranked on held-out actions only (its own rollouts) and at 10 steps; a report without runs keeps them."""
    import h5py

    argv = ["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--jobs", "2", "--variants", "cnn", "ours",
            "--only", "shapes-up-only"]
    md = table3_shapes.main("table3_shapes", "t3", table3_shapes.INTRO, table3_shapes.build, lambda s: "hits@10", argv)
    text = md.read_text()
    assert "| Hits@1 %, held-out actions, 10 steps |" in text and "| cnn |" in text and "[2.8]" in text
    held = sorted((tmp_path / "work" / "data").glob("Shapes2D-v0_no-up_*.h5"))
    assert len(held) == 1
    with h5py.File(held[0]) as f:
        assert not {0, 4, 8, 12, 16} & set(f["actions"][:].ravel().tolist())  # motion 0 ('up') of every object held out
    rows = list(csv.DictReader(open(tmp_path / "out" / "table3_shapes_cpu.csv")))
    assert [r["variant"] for r in rows] == ["cnn", "ours"]
    for r in rows:
        assert all(0.0 <= float(r[f"{e}:hits@1"]) <= 100.0 for e in ("heldout1", "steps10", "heldout10"))
        assert float(r["steps10:hits@1"]) <= float(r["steps10:hits@10"])
    run = json.loads((tmp_path / "work" / "runs" / "shapes-up-only" / "ours" / "seed0" / "eval.json").read_text())
    assert [e["name"] for e in run["extra_evals"]] == ["heldout1", "steps10", "heldout10"]
    assert run["metrics"]["steps10:hits@1"] == float(rows[1]["steps10:hits@1"])
    # rewritten from the CSV alone: the extra columns survive
    settings = table3_shapes.build("cpu", True)
    assert settings[1].overrides == {"sen_out_pool": 5}  # the cells block: 50 px, 5 cells, the cpu SEN's 2x2 pooling
    tables.write_report("table3_shapes", "t3", [], settings, [0], tmp_path / "no-work", tmp_path / "out", "cpu", lambda s: "hits@10")
    again = list(csv.DictReader(open(tmp_path / "out" / "table3_shapes_cpu.csv")))
    assert [r["heldout10:hits@1"] for r in again] == [r["heldout10:hits@1"] for r in rows]


def test_a_report_keeps_the_rows_of_runs_it_does_not_have_while_their_setting_is_unchanged(tmp_path):
    settings = table1_blocks.build("cpu", False)
    s = settings[0]
    row = {"setting": s.key, "variant": "ours", "seed": 7, "hits@1": 91.5, "mrr": 95.0, "train_seconds": 100.0, "best_epoch": 8,
           "parameters": 10, "device": "some CPU", "config": tables.setting_digest(s)}
    stale = {**row, "seed": 8, "config": "0123456789ab"}
    with open(tmp_path / "t_cpu.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        w.writeheader()
        w.writerows([row, stale])
    md = tables.write_report("t", "T", [], settings, [0], tmp_path / "no-work", tmp_path, "cpu", lambda s: "hits@1")
    rows = list(csv.DictReader(open(tmp_path / "t_cpu.csv")))
    assert [(r["setting"], r["variant"], r["seed"], r["hits@1"]) for r in rows] == [(s.key, "ours", "7", "91.5")]
    text = md.read_text()
    assert "1 of 1 runs are carried over from earlier reports" in text and "Seeds 0, 7;" in text
    assert "| ours | 91.5 ± 0.0 (1 of 2 seeds) [99.9 ± 0.0]" in text
    # a setting's digest ignores presentation and options left at their defaults, not what the runs compute
    assert tables.setting_digest(s) == tables.setting_digest(dataclasses.replace(s, title="other", variants=("ours",)))
    assert tables.setting_digest(s) != tables.setting_digest(dataclasses.replace(s, epochs=s.epochs + 1))


def test_summary_statistics_and_cells():
    s = table1_blocks.build("cpu", False)[0]
    rows = [{"setting": s.key, "variant": "ours", "hits@1": v} for v in (90.0, 94.0, 98.0)]
    assert tables.summarise(rows, s.key, "ours", "hits@1") == (94.0, 4.0, 3)
    assert tables.cell(rows, s, "ours", "hits@1") == "94.0 ± 4.0 [99.9 ± 0.0]"
    assert tables.cell(rows, s, "none", "hits@1") == "n/a [52.3 ± 14]"
    assert tables.cell(rows, s, "ours", "hits@1", n_seeds=5) == "94.0 ± 4.0 (3 of 5 seeds) [99.9 ± 0.0]"


def test_distinct_settings_get_distinct_files(tmp_path):
    a = tables.data_path(tmp_path, "symwm/Cubes3D-v0", tables.Data(1000), 1, "no-left", None, {})
    b = tables.data_path(tmp_path, "symwm/Cubes3D-v0", tables.Data(1000), 1, "no-left", None, {"symmetry": "D4"})
    c = tables.data_path(tmp_path, "symwm/Cubes3D-v0", tables.Data(1000), 1, "no-up", None, {})
    assert len({a, b, c}) == 3
    # opposite half-boxes of a continuous action space (Reacher's trained and held-out torques)
    ge = tables.data_path(tmp_path, "symwm/Reacher-v0", tables.Data(1000), 2, "1>=0", None, {})
    le = tables.data_path(tmp_path, "symwm/Reacher-v0", tables.Data(1000), 2, "1<=0", None, {})
    assert ge != le and "1-ge-0" in ge.name and "1-le-0" in le.name


def test_unknown_setting_is_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown setting"):
        table1_blocks.main("t", "t", [], table1_blocks.build, lambda s: "hits@1", ["--quick", "--only", "nope", "--work", str(tmp_path)])


def test_a_run_asked_for_more_epochs_is_not_finished(tmp_path):
    job = {"out_dir": str(tmp_path), "eval_dataset": "ev.h5", "horizon": 10, "hard_negatives": 0, "epochs": 16}
    assert not tables._finished(job)
    (tmp_path / "eval.json").write_text(json.dumps({"eval_dataset": "ev.h5", "horizon": 10, "hard_negatives": 0, "epochs": 8}))
    assert not tables._finished(job)  # trained for 8: run_job continues it to 16
    assert tables._finished({**job, "epochs": 8})


@pytest.mark.slow
def test_rotation_pose_benchmark_reports_the_pose_error_per_epoch(tmp_path):
    md = rotation_pose.main(["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--jobs", "1"])
    assert "| matmul | 0 | 1 |" in md.read_text()
    rows = list(csv.DictReader(open(md.with_suffix(".csv"))))
    assert [(r["variant"], r["epoch"]) for r in rows] == [("matmul", "1"), ("supervised probe (eval)", "1")]
    assert all(0.0 <= float(r["val_pose_error_deg"]) <= 180.0 for r in rows)
    assert "**Supervised probe**" in md.read_text()
    assert md.with_suffix(".png").exists()


@pytest.mark.slow
def test_rotation_sen_output_benchmark_trains_each_output(tmp_path):
    md = rotation_sen_output.main(["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    rows = list(csv.DictReader(open(md.with_suffix(".csv"))))
    assert [r["output"] for r in rows] == list(rotation_sen_output.OUTPUTS)
    assert all(0.0 <= float(r["fit_residual"]) and 0.0 <= float(r["pose_error_deg"]) <= 180.0 for r in rows)
    assert all(0.0 <= float(r["hard_hits@1"]) <= 100.0 for r in rows)  # after the last (here the only) epoch
    assert "| two-axes | 0 |" in md.read_text() and "Hard Hits@1 % (10 negatives)" in md.read_text()


def test_plateau_epoch_is_where_the_pose_error_stopped_falling():
    assert rotation_pose.plateau_epoch([90.0, 40.0, 10.0, 9.8, 9.9, 9.7]) == 3  # later epochs gain < 0.5 degrees
    assert rotation_pose.plateau_epoch([5.0]) == 1


def test_demo_seeds_reports_bf16_parity_against_float32_seeds():
    """The bf16 report puts each model's seeds beside the float32 ones; parity holds when the bf16 mean is in their range."""
    import demo_seeds

    def rows(values: dict[str, list[float]]) -> list[dict]:
        return [{"seed": i, "model": m, "hits@1": v} for m, vs in values.items() for i, v in enumerate(vs)]

    f32 = rows({"ours": [99.8, 99.9, 99.9], "none": [39.2, 52.3, 59.1]})
    text = "\n".join(demo_seeds.parity(rows({"ours": [99.9, 99.8], "none": [61.0, 45.0]}), f32))
    ours = next(line for line in text.splitlines() if line.startswith("| ours"))
    none = next(line for line in text.splitlines() if line.startswith("| none"))
    assert "2 of 2" in ours and ours.endswith("holds |")
    assert "1 of 2" in none and none.endswith("holds |")  # mean 53.0 inside 39.2-59.1, one seed outside
    off = "\n".join(demo_seeds.parity(rows({"ours": [97.0, 98.0], "none": [50.0]}), f32))
    assert next(line for line in off.splitlines() if line.startswith("| ours")).endswith("MISSED |")


def test_planning_with_a_tables_runs_reports_every_seed(tmp_path):
    from symwm.world_models.build import build_model
    from symwm.world_models.checkpoint import save_checkpoint
    from symwm.world_models.model import ModelSpec

    spec = ModelSpec(env_id="symwm/RotatingObject-v0", variant="matmul", size="cpu", env_kwargs={"actions": "continuous"})
    model = build_model(spec, initialize=False)
    for seed in (0, 1):  # paper_tables' layout: <runs>/<variant>/seed<k>/best.pt, eval.json beside it
        save_checkpoint(tmp_path / "runs" / "matmul" / f"seed{seed}" / "best.pt", model)
    (tmp_path / "runs" / "matmul" / "seed0" / "eval.json").write_text(json.dumps({"metrics": {"hits@1": 12.5, "pose_error_deg": 90.0}}))
    argv = ["--runs", str(tmp_path / "runs"), "--quick", "--episodes", "1", "--out", str(tmp_path / "out")]
    assert planning_runs.main(argv + ["--seeds", "0", "1"]) == 0
    text = (tmp_path / "out" / "runs.md").read_text()
    assert "| agent | seed 0 success % | seed 1 success % | mean ± std | worst |" in text
    assert "| simulator cem | - | - | 100 | - |" in text  # the true dynamics reach the goal; one row for every seed
    assert "| matmul | 12.5 | - | 90.0 | - |" in text  # the runs' own metrics per seed; seed 1 has no eval.json
    with open(tmp_path / "out" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({(r["task"], r["agent"]) for r in rows}) == sorted(
        [("shared", a) for a in ("random", "simulator cem", "simulator mppi")]
        + [(f"seed{s}", f"matmul {p}") for s in (0, 1) for p in ("cem", "mppi")])
    with pytest.raises(SystemExit, match="missing checkpoint.*seed2"):
        planning_runs.main(argv + ["--seeds", "0", "2"])


def test_planning_with_runs_on_discrete_actions_uses_beam_search(tmp_path):
    """The rotating object's small (discrete) actions: planning.py's beam search, not CEM / MPPI."""
    from symwm.world_models.build import build_model
    from symwm.world_models.checkpoint import save_checkpoint
    from symwm.world_models.model import ModelSpec

    spec = ModelSpec(env_id="symwm/RotatingObject-v0", variant="matmul", size="cpu", env_kwargs={"actions": "small"})
    save_checkpoint(tmp_path / "runs" / "matmul" / "seed0" / "best.pt", build_model(spec, initialize=False))
    argv = ["--runs", str(tmp_path / "runs"), "--quick", "--episodes", "1", "--out", str(tmp_path / "out"), "--seeds", "0"]
    assert planning_runs.main(argv) == 0
    text = (tmp_path / "out" / "runs.md").read_text()
    assert "beam search (width" in text and "CEM" not in text
    with open(tmp_path / "out" / "runs.csv", newline="") as f:
        agents = sorted({(r["task"], r["agent"]) for r in csv.DictReader(f)})
    assert agents == [("seed0", "matmul beam"), ("shared", "random"), ("shared", "simulator beam")]
