"""Command line: ``symwm collect | import-minari | train | eval | plan | demo | envs | gallery | check``.

Run ``symwm <command> --help`` for the options of each command. An error prints one line,
``symwm: error: ...``, and exits with 2 for a usage error and 1 otherwise; ``symwm --debug
<command> ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from symwm.envs import ENV_IDS, checker


def describe_space(space: gym.Space) -> str:
    """Short human description of an observation or action space."""
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Box):
        if space.dtype == np.uint8:
            return f"{'x'.join(map(str, space.shape))} uint8"
        return f"Box[{float(space.low.min()):g}, {float(space.high.max()):g}]^{space.shape[0]}"
    return str(space)


def env_table() -> str:
    """The markdown table of registered environments (id, group, observation, action, task)."""
    lines = [
        "| id | group | observation | action | task |",
        "|---|---|---|---|---|",
    ]
    for env_id in ENV_IDS:
        env = gym.make(env_id)
        sym = env.unwrapped.symmetry
        group = sym.group.name
        if sym.action_group is not sym.group:
            group += f" (actions: {sym.action_group.name})"
        lines.append(
            f"| `{env_id}` | {group} | {describe_space(env.observation_space)} | "
            f"{describe_space(env.action_space)} | {env.unwrapped.task} |"
        )
        env.close()
    return "\n".join(lines)


ENV_HELP = "environment id: any id gymnasium.make accepts; 'module:Name-v0' imports module first (your own registered env)"


def env_id_arg(text: str) -> str:
    """An ``--env`` value: a registered gymnasium id (or ``module:id``), else a usage error saying what to do."""
    from symwm.envs.registration import find_env_spec

    try:
        find_env_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_collect(args: argparse.Namespace) -> int:
    from symwm.world_models.collect import collect, parse_twins

    twins = parse_twins(args.twins)
    path = collect(
        args.out, args.env, args.episodes, args.steps, seed=args.seed,
        env_kwargs=parse_assignments(args.env_kwarg, "--env-kwarg"), actions=args.actions,
        warmup_steps=args.warmup, twins=twins, n_envs=args.n_envs, progress=not args.quiet,
    )
    print(f"wrote {path}")
    return 0


def _train_config(args: argparse.Namespace, **extra: Any):
    from symwm.world_models.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(extra)
    return TrainConfig(**values)


def cmd_train(args: argparse.Namespace) -> int:
    from symwm.world_models.model import ModelSpec
    from symwm.world_models.train import train

    if args.dataset.startswith("minari:"):  # a Minari dataset, converted once into the run directory
        from symwm.world_models.minari_io import resolve_dataset

        args.dataset = resolve_dataset(args.dataset, args.out_dir)
    spec = ModelSpec(
        env_id=args.env, variant=args.variant, size=args.size,
        env_kwargs=parse_assignments(args.env_kwarg, "--env-kwarg"),
        overrides=parse_assignments(args.set, "--set"),
    )
    result = train(spec, _train_config(args))
    if result.history:
        last = result.history[-1]
        best = f"best checkpoint {result.best}" if result.best.exists() else "no best checkpoint yet"
        print(f"epoch {last['epoch']}: loss {last['loss']:.4f}; {best}")
    elif result.last.exists():
        print(f"stopped within the first epoch; resumable from {result.last}")
    return 0


def cmd_import_minari(args: argparse.Namespace) -> int:
    from symwm.world_models.collect import parse_twins
    from symwm.world_models.minari_io import from_minari

    path = from_minari(args.dataset_id, args.out, steps=args.steps, env_id=args.env,
                       env_kwargs=parse_assignments(args.env_kwarg, "--env-kwarg") if args.env_kwarg else None,
                       twins=parse_twins(args.twins), seed=args.seed)
    print(f"wrote {path}")
    return 0


def checkpoint_names(paths: Sequence[str]) -> dict[str, str]:
    """A distinct short name per checkpoint path: the fewest trailing path parts that tell them apart."""
    parts = {p: Path(p).resolve().parts for p in paths}
    for k in range(2, max(len(v) for v in parts.values()) + 1):
        names = {p: "/".join(v[-k:]) for p, v in parts.items()}
        if len(set(names.values())) == len(set(parts.values())):
            return names
    return {p: str(Path(p).resolve()) for p in paths}


def cmd_eval(args: argparse.Namespace) -> int:
    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.evaluate import evaluate, format_table, write_results

    rows = {}
    names = checkpoint_names(args.checkpoint)
    for ckpt in args.checkpoint:
        model = load_model(ckpt, device=args.device)
        name = f"{model.spec.variant} ({names[ckpt]})"
        rows[name] = evaluate(model, args.dataset, args.horizon, batch_size=args.batch_size,
                              device=args.device, seed=args.seed, hard_negatives=args.hard_negatives, progress=not args.quiet,
                              distinct_targets=args.distinct_targets)
    title = f"{Path(args.dataset).name}, {args.horizon}-step prediction"
    print(format_table(rows, title))
    if args.out:
        md, cs = write_results(rows, args.out, stem=args.stem, title=title)
        print(f"wrote {md} and {cs}")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    print(env_table())
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from symwm.gallery import save_gallery

    path = save_gallery(args.out, seed=args.seed)
    print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    for env_id in args.env or list(ENV_IDS):
        env = gym.make(env_id)
        try:
            results = checker.check_symmetric_env(env, args.n, args.seed, args.tol)
            constants = checker.check_episode_constants(env, seed=args.seed) if all(r.ok for r in results) else None
        finally:
            env.close()
        dyn = next((r for r in results if r.name == "equivariant dynamics"), None)
        bad = [r for r in results if not r.ok]
        failed |= bool(bad)
        head = f"max |step(g.s, g.a) - g.step(s, a)| = {dyn.error:.2e}" if dyn is not None and dyn.ok else "contract"
        laws = f"; {len(results) - 1} further checks (group laws on states and actions, state round trip)" if dyn is not None else ""
        print(f"{env_id:28s} {head}{laws}  {'ok' if not bad else 'FAILED'}")
        for r in bad:
            print(f"    FAILED {r.name}: {r.detail or f'largest error {r.error:.2e} > {args.tol:g}'}")
        if constants is not None and not constants.ok:
            print(f"    WARNING {constants.detail}")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from symwm.demo import DemoConfig, run_demo

    names = {f.name for f in dataclasses.fields(DemoConfig)}
    run_demo(DemoConfig(**{k: v for k, v in vars(args).items() if k in names}))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from symwm.agents.evaluate_planning import run_cli

    run_cli(args.env, parse_assignments(args.env_kwarg, "--env-kwarg"), args.checkpoint, args.method,
            parse_assignments(args.set, "--set"), args.goal_moves, args.episodes, args.seed, args.budget, args.device)
    return 0


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under the fields of a dataclass (they become the CLI help)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value).strip()
    return docs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per dataclass field, typed from its default, documented by its docstring."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.default is dataclasses.MISSING:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{docs.get(f.name, '')} (default: {f.default})"
        if isinstance(f.default, bool) or (f.default is None and str(f.type).replace(" ", "") in ("bool|None", "Optional[bool]")):
            # --flag / --no-flag; a bool | None field left out stays None (its "auto")
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        elif f.default is None:
            parser.add_argument(flag, type=_json_value, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=help_text)


def _json_value(text: str) -> Any:
    """Parse a command-line value as JSON when possible (numbers, lists, true/false), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["a=1", "b=[2,3]"]`` -> ``{"a": 1, "b": [2, 3]}`` with a clear error for malformed items."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"symwm: {what} must look like key=value, got {item!r}")
        out[key.replace("-", "_")] = _json_value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symwm", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect random-policy episodes into an HDF5 file",
                       description="Collect episodes of a registered environment under a uniformly random policy "
                       "(optionally restricted to a subset of actions) and write them, with ground-truth states and "
                       "optional transformed twins, to an HDF5 file.")
    p.add_argument("--env", required=True, type=env_id_arg, help=ENV_HELP)
    p.add_argument("--out", required=True, help="HDF5 file to write (written atomically)")
    p.add_argument("--episodes", type=int, default=1000, help="number of episodes (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="recorded steps per episode (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=0, help="unrecorded random steps before each episode (the paper's Reacher: 50)")
    p.add_argument("--actions", default=None, help="action subset, e.g. 'no-left', 'up', '1>=0' (second torque positive)")
    p.add_argument("--twins", default=None, help="transformed twins: 'quarter-turn' (the element the release's EE and DIE use), 'all' elements of a finite group, or a number of sampled elements")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="environment option (repeatable), e.g. symmetry=D4")
    p.add_argument("--seed", type=int, default=0, help="seed of episodes and policy (default: %(default)s)")
    p.add_argument("--n-envs", type=int, default=1, help="parallel environments (gymnasium AsyncVectorEnv)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("import-minari", help="convert a Minari dataset of a symmetric env into a symwm rollout file",
                       description="Cut a Minari dataset's episodes into windows of --steps transitions and write them "
                       "as a symwm HDF5 rollout file. Training and Hits@k need only observations and actions; twins "
                       "(EE, DIE) need the ground-truth states symwm envs put in info['state'] (record with "
                       "minari.DataCollector(env, record_infos=True)).")
    p.add_argument("dataset_id", help="Minari dataset id (as minari.load_dataset takes it)")
    p.add_argument("--out", required=True, help="HDF5 file to write (written atomically)")
    p.add_argument("--steps", type=int, default=1, help="transitions per episode window (default: %(default)s: every transition)")
    p.add_argument("--env", default=None, type=env_id_arg, help="environment id (default: the dataset's recorded env spec)")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="environment option (default: the recorded ones)")
    p.add_argument("--twins", default=None, help="render transformed twins as 'symwm collect --twins' (needs recorded states)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampled twin elements (default: %(default)s)")
    p.set_defaults(func=cmd_import_minari)

    from symwm.world_models.build import SIZES
    from symwm.world_models.train import TrainConfig

    p = sub.add_parser("train", help="train a world model on a collected dataset",
                       description="Train SEN + equivariant encoder + transition (or a baseline) with the paper's "
                       "contrastive loss. Runs unchanged under torchrun --nproc_per_node=N.")
    p.add_argument("--env", required=True, type=env_id_arg, help=ENV_HELP + "; the model family is chosen by what it declares")
    p.add_argument("--variant", default="ours", help="the family's variant: ours | none | full (grid also cnn; rotation: ours | matmul | none; planar, planar-objects: ours | none)")
    p.add_argument("--size", default="cpu", choices=SIZES, help="preset size (default: %(default)s)")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="environment option the data was collected with")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset hyper-parameter")
    p.add_argument("--dataset", required=True, help=field_docs(TrainConfig)["dataset"] + "; or minari:ID, a Minari dataset converted into the run directory")
    p.add_argument("--out-dir", required=True, help=field_docs(TrainConfig)["out_dir"])
    add_dataclass_arguments(p, TrainConfig, skip=("dataset", "out_dir", "extra"))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="print the paper's metrics for checkpoints (markdown and CSV)",
                       description="Hits@k and MRR at a horizon, and with a dataset collected with --twins the "
                       "equivariance error EE and the distance invariance errors DIE(S), DIE(model).")
    p.add_argument("checkpoint", nargs="+", help="checkpoint file(s), e.g. runs/x/best.pt")
    p.add_argument("--dataset", required=True, help="evaluation HDF5 file (other seeds than training)")
    p.add_argument("--horizon", type=int, default=1, help="prediction steps (paper: 10 for grid worlds, 1 otherwise)")
    p.add_argument("--hard-negatives", type=int, default=0, help="RotatingObject: close negatives per sample for Hard Hits@1")
    p.add_argument("--distinct-targets", action="store_true",
                   help="also rank with episodes that end in the same observation left out of each other's candidates "
                        "(distinct_hits@k, distinct_mrr: for environments with few states)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for <stem>.md and <stem>.csv")
    p.add_argument("--stem", default="eval", help="file name stem (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("envs", help="print the table of registered environments")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("gallery", help="write a PNG of every environment beside its transformed twin")
    p.add_argument("--out", default="docs/gallery.png", help="output PNG path (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="reset seed (default: %(default)s)")
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser("check", help="check environments against the symmetry contract (group laws, equivariant dynamics, twins)",
                       description=" ".join(checker.__doc__.split("\n\n")[0].split()))
    p.add_argument("--env", action="append", type=env_id_arg, help=ENV_HELP + " (repeatable; default: symwm's own)")
    p.add_argument("-n", type=int, default=50, help="random (state, action, g) triples per env (default: %(default)s)")
    p.add_argument("--tol", type=float, default=1e-6, help="allowed error (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("plan", help="reach goals by planning with a world model (or the simulator); print success and latency",
                       description="Goal-conditioned receding-horizon planning (symwm.agents.planning): encode the "
                       "observation and the goal image, search action sequences with the learned transition, act, re-plan.")
    p.add_argument("checkpoint", nargs="?", default=None, help="world-model checkpoint (omit to plan with the true simulator)")
    p.add_argument("--env", default=None, type=env_id_arg, help=ENV_HELP + " (default: the checkpoint's)")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="environment option (repeatable)")
    p.add_argument("--goal-moves", type=int, default=None, help="grid worlds: goal distance in moves (default: 3)")
    p.add_argument("--method", default="beam", choices=["beam", "bfs", "cem", "mppi"], help="planner (default: %(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="planner option, e.g. width=32, depth=4, horizon=10")
    p.add_argument("--episodes", type=int, default=10, help="goal episodes (default: %(default)s)")
    p.add_argument("--budget", type=int, default=None, help="steps per episode (default: 2k+4 for grid goals, else the time limit)")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the first episode (default: %(default)s)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_plan)

    import symwm.demo
    from symwm.demo import DemoConfig

    p = sub.add_parser("demo", help="the main job end to end on CPU (see README)",
                       description=" ".join(symwm.demo.__doc__.split("\n\n")[1].split()))
    add_dataclass_arguments(p, DemoConfig)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symwm`` command."""
    args = build_parser().parse_args(argv)  # usage errors: one line, exit 2 (argparse)
    if args.debug:
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("symwm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line naming the problem; --debug shows the traceback
        known = isinstance(exc, (ValueError, OSError, KeyError, TypeError, ArithmeticError))
        text = str(exc) if known and str(exc) else f"{type(exc).__name__}: {exc}"
        print(f"symwm: error: {text.splitlines()[0] if text else type(exc).__name__}"
              + ("" if known else " (run with --debug for the traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
