"""``slimrl sweep``: a grid of scenarios x algorithms x seeds x overrides, each a normal run.

The grid is a YAML file (validated field by field, errors name the file and field)::

    scenarios: [default, edge-heavy]       # names or scenario files
    algos: [ppo, a2c]
    seeds: [0, 1, 2]
    n_timesteps: 100000                    # optional: per run (default: each algorithm's file)
    n_envs: 8                              # optional
    overrides:                             # optional: named variants (default: one, "base")
      - name: base
      - name: tight
        set: {deadline_ms: 250}            # scenario fields (as --set)
        hyperparams: {gamma: 0.9}          # hyperparameters (as --hyperparams)
    evaluate:                              # optional: how each run is scored
      traces: val
      episodes: 16
      seed: 0

Every cell trains with :func:`slimrl.train.trainer.train` into a normal Zoo run folder
``OUT/runs/<scenario>/<override>/<algo>/SlimSplit-v0_<N>``, then is evaluated on the same
episodes as every other cell of its scenario and override
(``OUT/evals/<scenario>/<override>/<algo>-seed<S>``). A finished cell records its row in
``OUT/cells/<key>.json``; running the sweep again skips the cells already done. At the end every
row goes into ``OUT/results.csv`` and each (scenario, override) gets the aggregate statistics
and figures over its algorithms and seeds (``OUT/aggregate/<scenario>__<override>``,
:func:`slimrl.evaluate.aggregate.aggregate_evaluations`).

Cells run in local processes (``jobs``) or on a Ray cluster (``ray``): :mod:`slimrl.parallel`.
On a cluster ``OUT`` must be on a file system every node shares.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from slimrl.errors import SweepError
from slimrl.io import write_text
from slimrl.parallel import run_tasks
from slimrl.validate import Custom, Fields, Nested, Number, String, read_yaml, spec

#: summary columns of each run's row in results.csv
RESULT_COLUMNS = ("reward_per_s", "score", "on_time_rate", "accuracy_mean", "energy_j_mean",
                  "e2e_p50_ms", "e2e_p95_ms", "frames", "diff_per_s", "baseline")  # fmt: skip
#: bounds of a grid (a sweep is many trainings: a typo should not start thousands)
MAX_CELLS = 10_000


def _str_list(value: Any, path: str, f: Fields) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise f.error(path, f"expected a non-empty list of strings, got {value!r:.80}")
    return tuple(f.string(v, f"{path}[{i}]") for i, v in enumerate(value))


def _int_list(value: Any, path: str, f: Fields) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise f.error(path, f"expected a non-empty list of integers, got {value!r:.80}")
    return tuple(f.number(v, f"{path}[{i}]", ge=0, integer=True) for i, v in enumerate(value))


def _mapping(value: Any, path: str, f: Fields) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise f.error(path, f"expected a mapping of field names to values, got {value!r:.80}")
    return dict(value)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _name(value: Any, path: str, f: Fields) -> str:
    s = f.string(value, path)
    if not _NAME.match(s) or len(s) > 64:
        raise f.error(path, f"expected a folder-safe name (letters, digits, _.+-), got {s!r:.80}")
    return s


@dataclass(frozen=True)
class Variant:
    """One named override set: scenario fields and hyperparameters."""

    name: str = spec(check=Custom(_name))
    set: dict[str, Any] = spec(check=Custom(_mapping), default_factory=dict)
    hyperparams: dict[str, Any] = spec(check=Custom(_mapping), default_factory=dict)


def _variants(value: Any, path: str, f: Fields) -> tuple[Variant, ...]:
    if not isinstance(value, list) or not value:
        raise f.error(path, f"expected a non-empty list of {{name, set, hyperparams}}, got "
                            f"{value!r:.80}")  # fmt: skip
    out = tuple(f.build(Variant, v, f"{path}[{i}]") for i, v in enumerate(value))
    names = [v.name for v in out]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise f.error(f"{path}[{i}].name", f"duplicate name {n!r}")
    return out


@dataclass(frozen=True)
class EvalSpec:
    """How each run is scored (every cell of a scenario and override on the same episodes)."""

    traces: str = spec("val", String())
    episodes: int = spec(16, Number(ge=1, le=100_000, integer=True))
    seed: int = spec(0, Number(ge=0, integer=True))


@dataclass(frozen=True)
class Grid:
    """A sweep file, validated."""

    scenarios: tuple[str, ...] = spec(check=Custom(_str_list))
    algos: tuple[str, ...] = spec(check=Custom(_str_list))
    seeds: tuple[int, ...] = spec(check=Custom(_int_list))
    n_timesteps: int | None = spec(None, Number(ge=1, integer=True))
    n_envs: int | None = spec(None, Number(ge=1, le=4096, integer=True))
    overrides: tuple[Variant, ...] = spec((Variant("base"),), Custom(_variants))
    evaluate: EvalSpec = spec(EvalSpec(), Nested(EvalSpec))

    @classmethod
    def validated(cls, obj: Grid, f: Fields, path: str) -> Grid:
        from slimrl.runs import canonical_algo

        algos = []
        for i, a in enumerate(obj.algos):
            try:
                algos.append(canonical_algo(a))
            except Exception as exc:  # noqa: BLE001 - the registry's message, re-homed
                raise f.error(f"algos[{i}]", str(exc)) from None
        n = len(obj.scenarios) * len(algos) * len(obj.seeds) * len(obj.overrides)
        if n > MAX_CELLS:
            raise f.error("", f"{n} cells; at most {MAX_CELLS} (split the sweep)")
        return Grid(obj.scenarios, tuple(algos), obj.seeds, obj.n_timesteps, obj.n_envs,
                    obj.overrides, obj.evaluate)  # fmt: skip

    def cells(self) -> list[Cell]:
        return [Cell(s, v, a, seed) for s in self.scenarios for v in self.overrides
                for a in self.algos for seed in self.seeds]  # fmt: skip


@dataclass(frozen=True)
class Cell:
    scenario: str
    variant: Variant
    algo: str
    seed: int

    @property
    def label(self) -> str:
        return Path(self.scenario).stem if self.scenario.endswith((".yml", ".yaml")) else \
            self.scenario  # fmt: skip

    @property
    def key(self) -> str:
        return f"{self.label}__{self.variant.name}__{self.algo}__seed{self.seed}"


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and validate a sweep file (errors name the file and the field)."""
    path = Path(path)
    data = read_yaml(path, SweepError)
    f = Fields(str(path), SweepError, base=path.parent)
    grid = f.build(Grid, data, "")
    for i, s in enumerate(grid.scenarios):  # every scenario and override loads before any work
        from slimrl.scenario import load_scenario

        sc = s if not s.endswith((".yml", ".yaml")) else str((path.parent / s).resolve())
        for v in grid.overrides:
            try:
                load_scenario(sc, v.set or None)
            except Exception as exc:  # noqa: BLE001 - shown with the sweep file's field
                raise f.error(f"scenarios[{i}] with overrides {v.name!r}",
                              str(exc).splitlines()[0]) from None  # fmt: skip
    resolved = tuple(
        s if not s.endswith((".yml", ".yaml")) else str((path.parent / s).resolve())
        for s in grid.scenarios
    )
    return Grid(resolved, grid.algos, grid.seeds, grid.n_timesteps, grid.n_envs, grid.overrides,
                grid.evaluate)  # fmt: skip


def run_sweep(
    grid_file: str | os.PathLike,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    ray: str | None = None,
    plots: bool = True,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run every cell of the sweep (skipping the ones done); returns ``results.csv``'s table."""
    grid = load_grid(grid_file)
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    cells = grid.cells()
    todo = [c for c in cells if not (out / "cells" / f"{c.key}.json").is_file()]
    echo(f"sweep {grid_file}: {len(cells)} cells ({len(cells) - len(todo)} done already), "
         f"{'Ray ' + ray if ray else f'{jobs} process(es)'}; out {out}")  # fmt: skip
    tasks = [{"cell": c, "grid": grid, "out": str(out.resolve())} for c in todo]

    def on_result(i: int, row: dict) -> None:
        c = todo[i]
        echo(f"  {c.key}: reward/s {row['reward_per_s']:.4f}, score {row['score']:.3f} "
             f"({row['wall_s']:.0f} s)")  # fmt: skip

    run_tasks(run_cell, tasks, jobs=jobs, ray=ray, on_result=on_result)
    rows = [json.loads((out / "cells" / f"{c.key}.json").read_text()) for c in cells]
    table = pd.DataFrame(rows)
    write_text(out / "results.csv", table.to_csv(index=False))
    _aggregate(grid, cells, out, plots, echo)
    echo(f"wrote {out / 'results.csv'} ({len(rows)} runs)")
    return table


def run_cell(task: dict) -> dict:
    """Train one cell, evaluate it, record its row (a worker's task)."""
    from slimrl.evaluate import run_evaluation
    from slimrl.train.config import TrainConfig
    from slimrl.train.trainer import train

    cell, grid, out = task["cell"], task["grid"], Path(task["out"])
    v = cell.variant
    sets = [f"{k}={json.dumps(val)}" for k, val in v.set.items()]
    cfg = TrainConfig(
        algo=cell.algo, env=cell.scenario, seed=cell.seed, set=sets,
        n_timesteps=grid.n_timesteps or -1, n_envs=grid.n_envs or -1,
        hyperparams=dict(v.hyperparams),
        log_folder=str(out / "runs" / cell.label / v.name), save_freq=-1, progress=False,
        verbose=0, final_eval=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    run = train(cfg, echo=lambda s: None)
    wall = time.perf_counter() - t0
    ev = grid.evaluate
    eval_dir = out / "evals" / cell.label / v.name / f"{cell.algo}-seed{cell.seed}"
    summary = run_evaluation(cell.scenario, ev.traces, [str(run)], eval_dir, episodes=ev.episodes,
                             seed=ev.seed, overrides=v.set or None, progress=False,
                             plots=False)  # fmt: skip
    mine = summary[summary["policy"] == str(run)].iloc[0]
    row = {"scenario": cell.label, "override": v.name, "algo": cell.algo, "seed": cell.seed,
           "run": str(run), "evaluation": str(eval_dir), "wall_s": round(wall, 2)}  # fmt: skip
    for k in RESULT_COLUMNS:
        if k in mine.index:
            val = mine[k]
            row[k] = val.item() if hasattr(val, "item") else val
    write_text(out / "cells" / f"{cell.key}.json", json.dumps(row, indent=1) + "\n")
    return row


def _aggregate(grid: Grid, cells: Sequence[Cell], out: Path, plots: bool, echo) -> None:
    from slimrl.evaluate.aggregate import aggregate_evaluations

    for s in grid.scenarios:
        for v in grid.overrides:
            mine = [c for c in cells if c.scenario == s and c.variant == v]
            dirs = [out / "evals" / c.label / v.name / f"{c.algo}-seed{c.seed}" for c in mine]
            label = mine[0].label
            names = {}
            for c in mine:
                row = json.loads((out / "cells" / f"{c.key}.json").read_text())
                names[row["run"]] = c.algo
            dest = out / "aggregate" / f"{label}__{v.name}"
            aggregate_evaluations(dirs, dest, groups=lambda p, n=names: n.get(p),
                                  plots=plots)  # fmt: skip
            echo(f"  aggregate of {label} / {v.name}: {dest}")
