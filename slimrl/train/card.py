"""Model cards (``README.md`` with the Hugging Face model-card YAML header) for runs and bundles.

:func:`write_model_cards` writes ``README.md`` into a run or reference folder (``library_name:
stable-baselines3``: the SB3 model ``SlimSplit-v0.zip``) and into each exported bundle below it
(``bundle/README.md``, ``library_name: onnx``: the bundle holds no SB3 model). Everything on a card
comes from the folder's own files: ``SlimSplit-v0/{args,config}.yml``, ``command.txt``,
``scenario.yml`` (else the named scenario as shipped), ``train_time.yml``,
``eval_val/summary.csv`` and ``bundle/manifest.json``. ``slimrl train --save-reference`` calls it.

    python -m slimrl.train.card agents/reference/ppo-default   # (re)write the cards of a folder
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from slimrl.bundle.format import read_manifest
from slimrl.errors import BundleError, RunError, SlimrlError
from slimrl.io import note_entries, write_text
from slimrl.runs.layout import (
    ARGS_FILE,
    CARD_FILE,
    COMMAND_FILE,
    CONFIG_FILE,
    ENV_ID,
    MODEL_FILE,
    PARAMS_DIR,
    SCENARIO_FILE,
    TRAIN_TIME_FILE,
)
from slimrl.validate import read_yaml

SUMMARY_FILE = Path("eval_val") / "summary.csv"
BUNDLE_MANIFEST = "manifest.json"
#: summary columns reported as model-index metrics: (column, metric type, label)
METRICS = (
    ("reward_per_s", "reward_per_s", "reward per second of trace"),
    ("score", "normalised_score", "normalised score (0: best static mode, 1: offline optimum)"),
    ("diff_per_s", "reward_per_s_vs_baseline", "reward per second minus the baseline's (paired)"),
    ("reward_per_s_iqm", "reward_per_s_iqm", "interquartile mean of per-episode reward per s"),
    ("on_time_rate", "on_time_rate", "share of frames answered by the deadline"),
    ("miss_rate", "miss_rate", "share of arrivals not answered on time"),
    ("accuracy_mean", "accuracy", "accuracy per frame"),
    ("e2e_p95_ms", "e2e_p95_ms", "end-to-end latency, 95th percentile (ms)"),
    ("energy_j_mean", "energy_j", "device energy per frame (J)"),
    ("reward_mean", "mean_reward_per_frame", "reward per frame"),
)
TAGS = (
    ENV_ID,
    "reinforcement-learning",
    "deep-reinforcement-learning",
    "stable-baselines3",
    "split-inference",
    "edge-computing",
    "slimrl",
)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_yaml(path, RunError)
    return data if isinstance(data, dict) else {}


def _read_summary(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise RunError(f"{path}: cannot read the evaluation summary ({exc})") from None
    if "policy" not in df.columns:
        raise RunError(f"{path}: no 'policy' column; expected an eval summary.csv")
    return df.to_dict("records")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v: Any, spec: str = ".4f") -> str:
    f = _num(v)
    return "-" if f is None else format(f, spec)


def _own_row(rows: Sequence[Mapping[str, Any]], folder: Path, name: str) -> Mapping[str, Any]:
    """The summary row of the folder's own policy (named by its path when it was evaluated)."""
    keys = {str(folder), folder.name, f"agents/reference/{name}", name}
    for r in rows:
        p = str(r.get("policy", ""))
        if p in keys or p.rstrip("/").endswith(f"/{folder.name}"):
            return r
    return {}


def _scenario(folder: Path, args: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario as trained: ``scenario.yml``, else the named scenario with the overrides."""
    saved = _read_yaml(folder / SCENARIO_FILE)
    if saved:
        return saved
    name = args.get("scenario") or (args.get("env_kwargs") or {}).get("scenario")
    if not name:
        return {}
    try:
        from slimrl.scenario import load_scenario

        overrides = (args.get("env_kwargs") or {}).get("overrides") or None
        return load_scenario(str(name), overrides).to_dict()
    except SlimrlError:
        return {"name": str(name)}


class CardData:
    """What a card says, read from a run or reference folder."""

    def __init__(self, folder: str | os.PathLike, name: str | None = None) -> None:
        self.saved_scenario = (Path(folder) / SCENARIO_FILE).is_file()
        self.folder = Path(folder)
        if not (self.folder / MODEL_FILE).is_file():
            raise RunError(f"{self.folder}: no {MODEL_FILE}; not a run or reference folder")
        self.name = name or self.folder.name
        self.args = _read_yaml(self.folder / PARAMS_DIR / ARGS_FILE)
        self.config = _read_yaml(self.folder / PARAMS_DIR / CONFIG_FILE)
        self.train_time = _read_yaml(self.folder / TRAIN_TIME_FILE)
        cmd = self.folder / COMMAND_FILE
        self.commands = cmd.read_text().strip().splitlines() if cmd.is_file() else []
        self.rows = _read_summary(self.folder / SUMMARY_FILE)
        self.own = _own_row(self.rows, self.folder, self.name)
        self.scenario = _scenario(self.folder, self.args)
        self.algo = str(self.args.get("algo") or "ppo")
        self.scenario_name = str(self.scenario.get("name") or self.args.get("scenario") or "?")

    @property
    def algo_title(self) -> str:
        return {"maskable_ppo": "MaskablePPO"}.get(self.algo, self.algo.upper())

    @property
    def per_second(self) -> bool:
        """True when the summary reports the per-second objective (``reward_per_s``)."""
        return _num(self.own.get("reward_per_s")) is not None

    def metrics(self) -> list[dict[str, Any]]:
        out = []
        # an older summary's score was against the oracle, not the optimum: leave it out
        old = (
            "reward_mean",
            "on_time_rate",
            "miss_rate",
            "accuracy_mean",
            "e2e_p95_ms",
            "energy_j_mean",
        )
        for col, kind, label in METRICS:
            if col not in old if not self.per_second else col == "reward_mean":
                continue
            value = _num(self.own.get(col))
            if value is None:
                continue
            name = label
            lo, hi = {
                "reward_per_s": ("reward_ci_low", "reward_ci_high"),
                "score": ("score_ci_low", "score_ci_high"),
                "diff_per_s": ("diff_ci_low", "diff_ci_high"),
            }.get(col, (None, None))
            if lo and _num(self.own.get(lo)) is not None and _num(self.own.get(hi)) is not None:
                name += f", 95% CI [{float(self.own[lo]):.4g}, {float(self.own[hi]):.4g}]"
            if col == "diff_per_s" and self.own.get("baseline"):
                name += f", baseline {self.own['baseline']}"
            out.append({"type": kind, "value": round(value, 6), "name": name, "verified": False})
        return out

    def header(self, library: str, extra_tags: Sequence[str] = ()) -> dict[str, Any]:
        """The Hugging Face model-card metadata."""
        tags = [*TAGS, self.algo, f"scenario-{self.scenario_name}", *extra_tags]
        meta: dict[str, Any] = {
            "library_name": library,
            "license": "mit",
            "tags": list(dict.fromkeys(tags)),
        }
        metrics = self.metrics()
        if metrics:
            meta["model-index"] = [
                {
                    "name": f"{self.algo_title}-{ENV_ID}-{self.scenario_name}",
                    "results": [
                        {
                            "task": {
                                "type": "reinforcement-learning",
                                "name": "reinforcement-learning",
                            },
                            "dataset": {
                                "name": f"{ENV_ID} {self.scenario_name} (validation split)",
                                "type": ENV_ID,
                            },
                            "metrics": metrics,
                        }
                    ],
                }
            ]
        return meta


def _front_matter(meta: Mapping[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(dict(meta), sort_keys=False, width=100) + "---\n"


def _scenario_lines(d: CardData) -> list[str]:
    sc = d.scenario
    out = [f"- scenario: `{d.scenario_name}`"]
    if sc.get("description"):
        out.append(f"- {' '.join(str(sc['description']).split())}")
    traces = sc.get("traces") or {}
    if traces:
        out.append(
            f"- traces: `{traces.get('path')}` (pattern `{traces.get('pattern', '*')}`, "
            f"capacity x{traces.get('scale', 1)}, train/val/test fractions "
            f"{traces.get('fractions')})"
        )
    for key, label in (
        ("deadline_ms", "deadline (ms)"),
        ("episode_s", "episode length (s of trace)"),
    ):
        if key in sc:
            out.append(f"- {label}: {sc[key]}")
    if sc.get("reward"):
        r = sc["reward"]
        out.append(
            f"- reward weights: accuracy {r.get('accuracy')}, miss penalty "
            f"{r.get('miss_penalty')}, energy {r.get('energy')}"
        )
    if not d.saved_scenario and len(sc) > 1:
        out.append(
            "- (no `scenario.yml` in this folder: the fields above are the shipped scenario's "
            "today, which may differ from the one trained on)"
        )
    overrides = (d.args.get("env_kwargs") or {}).get("overrides")
    if overrides:
        out.append(f"- overrides (`--set`): `{json.dumps(overrides, sort_keys=True)}`")
    if d.args.get("scenario_digest"):
        out.append(f"- scenario digest: `{d.args['scenario_digest']}`")
    return out


def _results_table(d: CardData) -> list[str]:
    if not d.rows:
        return ["No validation summary (`eval_val/summary.csv`) in this folder."]
    if d.per_second:
        head = [
            "| policy | reward/s | 95% CI | score | vs baseline /s [95% CI] | on time "
            "| miss rate |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines = list(head)
        for r in d.rows:
            diff = "-"
            if r.get("baseline") == r.get("policy"):
                diff = "(baseline)"
            elif _num(r.get("diff_per_s")) is not None:
                diff = (
                    f"{float(r['diff_per_s']):+.4f} [{_fmt(r.get('diff_ci_low'), '+.4f')}, "
                    f"{_fmt(r.get('diff_ci_high'), '+.4f')}]"
                )
            ref = " (ref)" if str(r.get("reference")) == "True" else ""
            lines.append(
                f"| {r['policy']}{ref} | {_fmt(r.get('reward_per_s'))} | "
                f"[{_fmt(r.get('reward_ci_low'))}, {_fmt(r.get('reward_ci_high'))}] | "
                f"{_fmt(r.get('score'), '.3f')} | {diff} | "
                f"{_fmt(100 * (_num(r.get('on_time_rate')) or math.nan), '.1f')} % | "
                f"{_fmt(r.get('miss_rate'), '.3f')} |"
            )
        return lines
    lines = [
        "This summary predates the per-second objective (no `reward_per_s` column): it reports",
        "reward per frame. Retrain the reference to refresh it.",
        "",
        "| policy | reward/frame | score (vs oracle) | accuracy | on time | e2e p95 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in d.rows:
        lines.append(
            f"| {r['policy']} | {_fmt(r.get('reward_mean'))} | {_fmt(r.get('score'), '.3f')} | "
            f"{_fmt(r.get('accuracy_mean'))} | "
            f"{_fmt(100 * (_num(r.get('on_time_rate')) or math.nan), '.1f')} % | "
            f"{_fmt(r.get('e2e_p95_ms'), '.0f')} |"
        )
    return lines


def _training_lines(d: CardData) -> list[str]:
    out = []
    if d.commands:
        out += ["Trained with (`command.txt`):", "", "```bash", *d.commands, "```", ""]
    steps = d.args.get("n_timesteps")
    wall = d.train_time.get("wall_s")
    facts = []
    if steps is not None:
        facts.append(f"{int(steps):,} steps")
    if d.args.get("n_envs"):
        facts.append(f"{d.args['n_envs']} envs")
    if d.args.get("seed") is not None:
        facts.append(f"seed {d.args['seed']}")
    if wall is not None:
        facts.append(f"{float(wall):.0f} s of training wall time")
    if d.args.get("slimrl_version"):
        facts.append(f"slimrl {d.args['slimrl_version']}")
    if facts:
        out += [", ".join(facts) + ".", ""]
    if d.config:
        out += [
            "Hyperparameters (`SlimSplit-v0/config.yml`, RL Baselines3 Zoo format):",
            "",
            "```yaml",
            yaml.safe_dump(d.config, sort_keys=True).rstrip(),
            "```",
        ]
    return out


def _shown(folder: Path, name: str) -> str:
    """How usage examples name the folder: ``agents/reference/NAME`` for a reference."""
    if folder.parent.name == "reference":
        return f"agents/reference/{name}"
    return folder.as_posix()


def model_card(folder: str | os.PathLike, name: str | None = None, shown: str | None = None) -> str:
    """The ``README.md`` text of a run or reference folder (an SB3 model); ``shown`` is how the
    usage examples name the folder (default: ``agents/reference/NAME`` for a reference)."""
    d = CardData(folder, name)
    ref = shown or _shown(Path(folder), d.name)
    lines = [
        _front_matter(d.header("stable-baselines3")),
        f"# {d.algo_title} on {ENV_ID} (`{d.scenario_name}`): `{d.name}`",
        "",
        f"A {d.algo_title} agent ([Stable-Baselines3](https://github.com/DLR-RM/stable-baselines3))"
        f" trained by slimrl on `{ENV_ID}`: per inference it picks the encoder width k and the "
        "quantisation bits of a split DNN whose features cross a trace-driven uplink to a shared "
        "edge server; reward is accuracy when on time, minus deadline misses and energy.",
        "",
        "## Scenario",
        "",
        *_scenario_lines(d),
        "",
        "## Evaluation (validation split, same episodes for every policy)",
        "",
        *_results_table(d),
        "",
        "## Training",
        "",
        *_training_lines(d),
        "",
        "## Usage",
        "",
        "```bash",
        f"slimrl evaluate --env {d.scenario_name} --traces test --policies {ref} paper-ewma "
        "--out eval/",
        f"slimrl export {ref} --out bundle/      # ONNX + numpy bundle for the device runtime",
        "```",
        "",
        "```python",
        "from slimrl.runs import Run",
        "",
        f'run = Run.open("{ref}")',
        "model = run.load_agent()  # the SB3 model",
        "vecnorm = run.load_vecnormalize()  # its observation statistics (or None)",
        "```",
        "",
    ]
    bundles = sorted(p.parent for p in Path(folder).glob(f"*/{BUNDLE_MANIFEST}"))
    if bundles:
        lines += [
            "Exported bundle(s): "
            + ", ".join(f"`{b.relative_to(Path(folder)).as_posix()}/`" for b in bundles)
            + " (each with its own card).",
            "",
        ]
    lines += [
        "Files: `SlimSplit-v0.zip` (model), `SlimSplit-v0/vecnormalize.pkl` (observation "
        "normalisation), `SlimSplit-v0/{config,args}.yml`, `command.txt`, `train_time.yml`, "
        "`eval_val/summary.csv`. Licence: MIT (slimrl).",
        "",
    ]
    return "\n".join(lines)


def bundle_card(
    bundle_dir: str | os.PathLike, source: CardData | None = None, display: str | None = None
) -> str:
    """The ``README.md`` text of an exported policy bundle (``manifest.json``); ``display`` is
    the bundle's path as usage examples name it (default: as given)."""
    bundle_dir = Path(bundle_dir)
    shown = display or bundle_dir.as_posix()
    try:
        manifest = read_manifest(bundle_dir, verify=False)
    except BundleError as exc:
        raise RunError(f"cannot read the bundle manifest: {exc}") from None
    src = manifest.get("source") or {}
    parity = manifest.get("parity") or {}
    scenario = (manifest.get("scenario") or {}).get("name") or "?"
    if source is not None:
        meta = source.header("onnx", extra_tags=("onnx",))
        title = f"{source.algo_title} on {ENV_ID} (`{source.scenario_name}`)"
    else:
        meta = {"library_name": "onnx", "license": "mit", "tags": [*TAGS, "onnx"]}
        title = f"{manifest.get('algo', '?')} on {ENV_ID} (`{scenario}`)"
    obs = manifest.get("observation") or {}
    lines = [
        _front_matter(meta),
        f"# Policy bundle: {title}",
        "",
        "The exported form of the trained policy for the device runtime: `policy.onnx` "
        "(observation normalisation inside the graph) and `policy.npz` (the same network for "
        "numpy), described by `manifest.json` (sha256 of every file, observation layout, action "
        "table, parity figures). It needs numpy only, no torch or Stable-Baselines3.",
        "",
        f"- exported from: `{src.get('run_dir', '?')}` (`{src.get('model', '?')}`, sha256 "
        f"`{str(src.get('model_sha256', '?'))[:16]}...`)",
        f"- scenario: `{scenario}`; deadline {float(obs.get('deadline_s', math.nan)) * 1e3:g} ms",
        f"- observation: {len(obs.get('names') or [])} values "
        f"({', '.join(obs.get('names') or [])})",
        f"- actions: {len(manifest.get('action', {}).get('table') or [])} (k, bits) modes",
    ]
    if parity:
        lines.append(
            f"- parity on {parity.get('n', '?')} observations: numpy vs SB3 "
            f"{parity.get('numpy_vs_sb3')}, ONNX vs SB3 {parity.get('onnx_vs_sb3')}, "
            f"{parity.get('mismatches', '?')} mismatches"
        )
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from slimrl.bundle.controller import Controller",
        "",
        f'ctrl = Controller.load("{shown}")  # verifies every checksum',
        "k, bits = ctrl.decide(obs)",
        "```",
        "",
        "```bash",
        "slimrl edge serve --port 9000 &",
        f"slimrl device run --bundle {shown} --edge 127.0.0.1:9000 \\",
        "    --trace traces/mahimahi-cellular/Verizon-LTE-short.up --frames 300 --out device.jsonl",
        "```",
        "",
    ]
    if source is not None and source.rows:
        lines += [
            "## Evaluation of the source model (validation split)",
            "",
            *_results_table(source),
            "",
        ]
    lines += ["Licence: MIT (slimrl).", ""]
    return "\n".join(lines)


def write_model_cards(
    folder: str | os.PathLike, name: str | None = None, shown: str | None = None
) -> list[Path]:
    """Write ``README.md`` into a run/reference folder and into each bundle folder below it
    (``<folder>/*/manifest.json``); returns the cards written, the folder's first."""
    folder = Path(folder)
    data = CardData(folder, name)
    shown = shown or _shown(folder, data.name)
    written = [folder / CARD_FILE]
    write_text(written[0], model_card(folder, name, shown))
    for manifest in sorted(folder.glob(f"*/{BUNDLE_MANIFEST}")):
        bundle = manifest.parent
        write_text(bundle / CARD_FILE, bundle_card(bundle, data, f"{shown}/{bundle.name}"))
        written.append(bundle / CARD_FILE)
    for card in written:  # a marked output (reference, bundle) keeps counting as slimrl's own
        note_entries(card.parent, [CARD_FILE])
    return written


def save_reference_with_card(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """:func:`slimrl.runs.reference.save_reference` with the model card inside the same atomic
    output: the copy and its ``README.md`` are staged next to ``out_dir``, then swapped in as one
    slimrl output (so a later ``--save-reference`` of the same name may replace it)."""
    from slimrl.io import atomic_dir
    from slimrl.runs.reference import save_reference

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shown = _shown(out_dir, out_dir.name)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as stage:
        staged = save_reference(run_dir, Path(stage) / out_dir.name)
        write_model_cards(staged, out_dir.name, shown)
        with atomic_dir(out_dir) as tmp:
            for item in staged.iterdir():
                shutil.move(str(item), str(tmp / item.name))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write model cards (README.md) for runs")
    parser.add_argument("folders", nargs="+", help="run or reference folders")
    args = parser.parse_args(argv)
    try:
        for f in args.folders:
            for card in write_model_cards(f):
                print(card)
    except SlimrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
