"""The command line end to end, with tiny budgets: envs, check, collect -> train -> eval, demo."""

import dataclasses
import json

import pytest

from symwm.cli import build_parser, main
from symwm.demo import DemoConfig, run_demo
from symwm.envs import ENV_IDS
from symwm.world_models.checkpoint import CheckpointError


def test_envs_table_lists_every_environment(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert all(f"`{env_id}`" in out for env_id in ENV_IDS)
    assert "C4 x S5" in out and "SO(3)" in out


def test_check_reports_equivariant_dynamics(capsys):
    assert main(["check", "--env", "symwm/Shapes2D-v0", "--env", "symwm/Reacher-v0", "-n", "5"]) == 0
    assert capsys.readouterr().out.count("ok") == 2


def test_help_of_every_command_is_documented(capsys):
    parser = build_parser()
    for command in ("collect", "train", "eval", "plan", "demo", "envs", "gallery", "check"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "usage: symwm" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert "Adam learning rate" in capsys.readouterr().out  # dataclass field docs become the help


@pytest.mark.slow
def test_collect_train_eval(tmp_path, capsys):
    train_h5, eval_h5, run = tmp_path / "train.h5", tmp_path / "eval.h5", tmp_path / "run"
    env = ["--env", "symwm/Shapes2D-v0"]
    assert main(["collect", *env, "--out", str(train_h5), "--episodes", "30", "--steps", "5", "--actions", "no-left", "--quiet"]) == 0
    assert main(["collect", *env, "--out", str(eval_h5), "--episodes", "12", "--steps", "3", "--twins", "quarter-turn", "--seed", "7", "--quiet"]) == 0
    assert main(["train", *env, "--variant", "ours", "--dataset", str(train_h5), "--out-dir", str(run),
                 "--epochs", "2", "--batch-size", "50", "--no-progress", "--no-tensorboard"]) == 0
    assert json.loads((run / "summary.json").read_text())["finished"]
    capsys.readouterr()
    assert main(["eval", str(run / "best.pt"), "--dataset", str(eval_h5), "--horizon", "3", "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "Hits@1 %" in out and "EE" in out and "DIE(model)" in out
    assert (tmp_path / "ev" / "eval.md").exists() and "hits@1" in (tmp_path / "ev" / "eval.csv").read_text()
    assert main(["eval", str(run / "best.pt"), "--dataset", str(eval_h5), "--horizon", "3", "--distinct-targets"]) == 0
    assert "distinct Hits@1 %" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "missing.pt"), "--dataset", str(eval_h5)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("symwm: error: checkpoint") and "does not exist" in err and "\n" not in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="does not exist"):  # --debug: the exception itself
        main(["--debug", "eval", str(tmp_path / "missing.pt"), "--dataset", str(eval_h5)])
    with pytest.raises(SystemExit):
        main(["train", "--env", "symwm/NoSuchEnv-v0", "--dataset", str(train_h5), "--out-dir", str(run)])


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), train_transitions=120, eval_episodes=12, steps=4, epochs=1, batch_size=40, horizon=3,
                     val_fraction=0.2)
    report = run_demo(cfg)
    text = report.read_text()
    assert "| ours |" in text and "| none |" in text and "Hits@1" in text
    assert "EE" in text and "DIE(model)" in text and "ranked among all 12" in text
    result = json.loads((tmp_path / "demo" / "demo_result.json").read_text())
    assert result["results"]["ours"]["episodes"] == 12 and result["wall_s"] > 0
    for name in ("training_curves.png", "latents.png", "gallery.png", "eval.md", "eval.csv", "eval_seen.csv"):
        assert (tmp_path / "demo" / name).exists(), name
    before = (tmp_path / "demo" / "ours" / "best.pt").stat().st_mtime_ns
    run_demo(cfg)  # everything complete: data reused, training skipped
    assert (tmp_path / "demo" / "ours" / "best.pt").stat().st_mtime_ns == before
    # the loss with temporal negatives reaches both models' training
    other = dataclasses.replace(cfg, out=str(tmp_path / "demo-temporal"), temporal_negatives=True)
    assert "temporal negatives in the loss" in run_demo(other).read_text()
    for v in ("ours", "none"):
        assert json.loads((tmp_path / "demo-temporal" / v / "config.json").read_text())["train"]["temporal_negatives"] is True


def test_the_demos_training_calls_carry_its_options_into_the_train_config(tmp_path):
    """Every option of DemoConfig that shapes training reaches ``symwm train`` (temporal negatives, bf16, resume, step cap)."""
    from symwm.cli import _train_config
    from symwm.demo import train_arguments

    cfg = DemoConfig(out=str(tmp_path), epochs=3, batch_size=40, lr=2e-4, seed=7, val_fraction=0.2, temporal_negatives=True, amp=True)
    run = tmp_path / "ours"
    args = build_parser().parse_args(train_arguments(cfg, tmp_path / "train.h5", run, "ours", 5, 1))
    train = _train_config(args)
    assert (train.epochs, train.batch_size, train.lr, train.seed, train.val_fraction) == (3, 40, 2e-4, 7, 0.2)
    assert train.temporal_negatives is True and train.amp is True and args.max_steps == 5 and args.num_threads == 1 and not args.resume
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    args = build_parser().parse_args(train_arguments(dataclasses.replace(cfg, temporal_negatives=False, amp=False), tmp_path / "train.h5", run, "none", None, 2))
    assert args.resume and args.max_steps is None and _train_config(args).temporal_negatives is False
    assert not _train_config(args).amp
