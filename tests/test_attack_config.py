"""Hostile configuration files: scenarios, hyperparameter files and a run's config.yml/args.yml
give a valid result or a one-line SlimrlError, within bounded memory (alias bombs, huge files,
FIFOs, Python tags, unsafe policy_kwargs names, sizes beyond the limits)."""

from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimrl.cli import main
from slimrl.errors import HyperparamsError, SlimrlError
from slimrl.paths import AGENTS_DIR, ENVS_DIR
from slimrl.runs.zoo_yaml import read_zoo_yaml
from slimrl.scenario import Scenario, load_scenario
from slimrl.train.hyperparams import Hyperparams, load_hyperparams, parse_python_kwargs

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_PEAK_BYTES = 64 * 2**20
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)  # 10**9 nodes once expanded, 200 bytes on disk


def scenario_dict(folder: Path) -> dict:
    (folder / "tr").mkdir(exist_ok=True)
    (folder / "tr" / "a.csv").write_text("time_s,mbps\n0,5\n10,\n")
    return {
        "traces": {"path": "tr"},
        "model": {"profile": str(ENVS_DIR / "profiles/models/assine2023-effdet-d2.csv")},
        "device": {"profile": str(ENVS_DIR / "profiles/devices/rpi4.yaml")},
        "edge": {
            "service": {"median_ms": 56, "p90_ms": 75},
            "load": {"states": {"low": {"rate_per_s": 2, "dwell_s": 60}}, "duration_s": 60},
        },
        "deadline_ms": 300,
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from slimrl.runs import algo_class

    for algo in ("ppo", "a2c", "dqn", "maskable_ppo"):  # imports are not what is measured
        algo_class(algo)
    load_hyperparams("ppo")
    return tmp_path_factory.mktemp("attack")


def _bounded(fn, *args):
    """``fn(*args)`` -> its result or the SlimrlError it raised; peak Python memory bounded."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args)
        except SlimrlError as exc:
            msg = str(exc)
            assert "\n" not in msg and len(msg) < 2000, msg[:300]
            out = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"peak {peak / 2**20:.0f} MiB"
    return out


def _finishes(fn, *args, timeout: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict = {}

    def target():
        try:
            box["out"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["out"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked (never returned)"
    return box["out"]


# -- targeted ------------------------------------------------------------------------------------
def test_alias_bombs_are_refused_everywhere(folder):
    path = folder / "bomb.yml"
    path.write_text(BOMB)
    for fn in (load_scenario, read_zoo_yaml, lambda p: load_hyperparams("ppo", p)):
        out = _bounded(fn, path)
        assert isinstance(out, SlimrlError) and "aliases" in str(out), out


def test_huge_files_are_refused_unread(folder):
    path = folder / "huge.yml"
    path.write_text("# padding\n" * 200_000)  # 2 MB of comments
    for fn in (load_scenario, read_zoo_yaml, lambda p: load_hyperparams("ppo", p)):
        out = _bounded(fn, path)
        assert isinstance(out, SlimrlError) and "larger than" in str(out), out


def test_a_fifo_is_refused_without_blocking(folder):
    fifo = folder / "pipe.yml"
    if not fifo.exists():
        os.mkfifo(fifo)
    for fn in (load_scenario, read_zoo_yaml, lambda p: load_hyperparams("ppo", p)):
        out = _finishes(fn, fifo)
        assert isinstance(out, SlimrlError), out  # "not a regular file" or "no such file"


def test_python_tags_build_nothing(folder, tmp_path):
    marker = tmp_path / "pwned"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    (folder / "tag.yml").write_text(f"SlimSplit-v0:\n  policy: {tag}\n  n_timesteps: 10\n")
    assert isinstance(_bounded(load_hyperparams, "ppo", folder / "tag.yml"), SlimrlError)
    assert isinstance(_bounded(load_scenario, folder / "tag.yml"), SlimrlError)
    # a run's config.yml: the Zoo's python tags are read as plain data, never called
    data = read_zoo_yaml(folder / "tag.yml")
    assert data["SlimSplit-v0"]["policy"] == [f"touch {marker}"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "dict(activation_fn=torch.Tensor)",
        "dict(activation_fn=subprocess.Popen)",
        "dict(activation_fn=torch.os.system)",
        "dict(activation_fn=th.load)",
        "dict(activation_fn=nn.Module.__subclasses__)",
        "dict(optimizer_class=torch.optim.Adam.__init__)",
        "dict(net_arch=__import__('os').system('true'))",
        "dict(net_arch=[64] * 10)",
        "dict(**{'net_arch': [64]})",
        "dict(activation_fn=lambda x: x)",
        "dict(net_arch=" + "[" * 5000 + "]" * 5000 + ")",
        "dict(net_arch=[x for x in range(9)])",
    ],
)
def test_unsafe_policy_kwargs_are_refused(text):
    with pytest.raises(HyperparamsError):
        parse_python_kwargs(text, "agents/ppo.yml: SlimSplit-v0: policy_kwargs")


def test_unsafe_policy_kwargs_fail_before_anything_is_built(tmp_path, monkeypatch, capsys):
    import slimrl.train.trainer as trainer

    def built(*a, **k):
        raise AssertionError("something was built")

    monkeypatch.setattr(trainer, "build_model", built)
    monkeypatch.setattr(trainer, "make_vec_env", built)
    for text in ("dict(activation_fn=torch.Tensor)", "dict(activation_fn=subprocess.run)"):
        argv = ["train", "-f", str(tmp_path), "-params", f"policy_kwargs:{text}"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "policy_kwargs" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("traces.resolution_ms", 0.5, r"traces\.resolution_ms: expected a number >= 1"),
        ("edge.load.resolution_ms", 0.01, r"edge\.load\.resolution_ms: expected a number >= 1"),
        ("edge.load.states.low.rate_per_s", 1e9, r"edge\.load\.states\.low\.rate_per_s"),
        ("edge.load.states.low.dwell_s", 0.001, r"edge\.load\.states\.low\.dwell_s"),
        ("edge.load.duration_s", 1e7, r"edge\.load\.duration_s: expected a number > 0 and <="),
        ("edge.load.job", {"median_ms": 1e300, "p90_ms": 1e301}, r"edge\.load\.job\.median_ms"),
        ("edge.service.p90_ms", 1e300, r"edge\.service\.p90_ms"),
        ("observation.history", 10**6, r"observation\.history: expected an integer >= 1"),
        ("episode_s", 1e9, r"episode_s: expected a number > 0 and <= 86400"),
    ],
)
def test_sizes_beyond_the_limits_name_the_field(folder, path, value, match):
    data = scenario_dict(folder)
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    f = folder / "sized.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(SlimrlError, match=match):
        load_scenario(f)


def test_too_many_load_states_are_refused(folder):
    data = scenario_dict(folder)
    data["edge"]["load"]["states"] = {f"s{i}": {"rate_per_s": 1, "dwell_s": 60} for i in range(65)}
    f = folder / "states.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(SlimrlError, match=r"edge\.load\.states: 65 states; at most 64"):
        load_scenario(f)


# -- property-based ------------------------------------------------------------------------------
TOKENS = ["&a ", "*a", "<<: *a\n", "!!python/object/apply:os.system ['true'] ", "{", "}", "[",
          "]", ": ", "- ", "\n", "\n  ", "  ", "1e309", ".nan", "-.inf", "-1", "0", "1e300",
          "99999999999999999999", "!!binary aGVsbG8= ", "!!int x", "!!timestamp x", "~", "'",
          '"', "\t", "#", ",", "?", "%YAML 1.1\n", "---\n", "...\n", "\x00", "é"]  # fmt: skip


def _mutate(text: str, edits: list[tuple[float, int, str]]) -> str:
    for where, cut, token in edits:
        i = int(where * len(text))
        text = text[:i] + token + text[i + cut :]
    return text


edits = st.lists(
    st.tuples(
        st.floats(0, 1), st.integers(0, 12), st.one_of(st.sampled_from(TOKENS), st.text(max_size=8))
    ),
    max_size=6,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["lin_3e-4", "lin_-1", "lin_x", "dict(net_arch=[8])", "nn.ReLU", "1e-5"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _flat_paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(f"{prefix}{k}")
        if isinstance(v, dict):
            out += _flat_paths(v, f"{prefix}{k}.")
    return out


@pytest.fixture(scope="module")
def scenario_text(folder) -> str:
    return yaml.safe_dump(scenario_dict(folder))


@pytest.fixture(scope="module")
def scenario_paths(folder, scenario_text) -> list[str]:
    f = folder / "valid.yaml"
    f.write_text(scenario_text)
    return _flat_paths(load_scenario(f).to_dict())


@SETTINGS
@given(edits=edits)
def test_scenario_loader_on_mutated_text(folder, scenario_text, edits):
    f = folder / "mutated.yaml"
    f.write_text(_mutate(scenario_text, edits), errors="surrogatepass")
    out = _bounded(load_scenario, f)
    assert isinstance(out, Scenario | SlimrlError)


@SETTINGS
@given(data=st.data(), value=values)
def test_scenario_loader_on_random_field_values(folder, scenario_paths, data, value):
    path = data.draw(st.sampled_from(scenario_paths))
    d = scenario_dict(folder)
    node = d
    *parents, leaf = path.split(".")
    for key in parents:
        nxt = node.get(key)
        node[key] = nxt = nxt if isinstance(nxt, dict) else {}
        node = nxt
    node[leaf] = value
    f = folder / "valued.yaml"
    f.write_text(yaml.safe_dump(d))
    out = _bounded(load_scenario, f)
    assert isinstance(out, Scenario | SlimrlError)


HP_KEYS = ["n_timesteps", "policy", "n_envs", "normalize", "n_steps", "batch_size", "n_epochs",
           "gamma", "gae_lambda", "learning_rate", "clip_range", "clip_range_vf", "ent_coef",
           "vf_coef", "max_grad_norm", "target_kl", "policy_kwargs", "env_kwargs", "frame_stack",
           "seed", "stats_window_size", "use_sde", "unknown_key"]  # fmt: skip


@SETTINGS
@given(
    algo=st.sampled_from(["ppo", "a2c", "dqn", "maskable_ppo"]),
    hp=st.dictionaries(st.sampled_from(HP_KEYS), values, max_size=8),
)
def test_hyperparameter_loader_on_random_files(folder, algo, hp):
    f = folder / "hp.yml"
    body = {"n_timesteps": 1000, "policy": "MlpPolicy", **hp}
    f.write_text(yaml.safe_dump({"SlimSplit-v0": body}))
    out = _bounded(load_hyperparams, algo, f)
    assert isinstance(out, Hyperparams | SlimrlError)
    if isinstance(out, Hyperparams):
        from slimrl.train.hyperparams import BOUNDS

        for key, value in out.model_kwargs.items():
            if key in BOUNDS and isinstance(value, int | float) and not isinstance(value, bool):
                assert BOUNDS[key].ok(value), (key, value)


@SETTINGS
@given(edits=edits)
def test_hyperparameter_loader_on_mutated_text(folder, edits):
    text = (AGENTS_DIR / "ppo.yml").read_text()
    f = folder / "hp-mutated.yml"
    f.write_text(_mutate(text, edits), errors="surrogatepass")
    out = _bounded(load_hyperparams, "ppo", f)
    assert isinstance(out, Hyperparams | SlimrlError)


@SETTINGS
@given(edits=edits)
def test_run_config_reader_on_mutated_text(folder, edits):
    text = (
        "!!python/object/apply:collections.OrderedDict\n"
        "- - [normalize, true]\n  - [policy, MlpPolicy]\n"
    )
    f = folder / "config.yml"
    f.write_text(_mutate(text, edits), errors="surrogatepass")
    out = _bounded(read_zoo_yaml, f)
    assert isinstance(out, dict | SlimrlError)
