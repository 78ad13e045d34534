"""Model profiles (CSV + per-sample sidecar) and device profiles (YAML)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from slimrl.errors import ProfileError
from slimrl.paths import ENVS_DIR
from slimrl.profiles import DeviceProfile, ModelProfile

MODELS = ENVS_DIR / "profiles" / "models"
DEVICES = ENVS_DIR / "profiles" / "devices"
GOOD = (
    "k,bits,accuracy,payload_bytes,compute_ms_cpu\n"
    "1,2,0.20,2000,2.0\n"
    "1,4,0.30,4000,2.0\n"
    "2,2,0.30,2000,4.0\n"
    "2,4,0.40,4000,4.0\n"
)


def test_shipped_paper_profile():
    m = ModelProfile.load(MODELS / "assine2023-effdet-d2.csv")
    assert m.ks == (1, 2, 3, 4) and m.bits == (1, 2, 3, 4)
    assert m.accuracy[3, 3] == pytest.approx(0.368)  # mAP 36.8 / 100
    assert m.payload_bytes[0, :].tolist() == [6912, 13824, 20736, 27648]
    assert m.column("compute_ms_rpi4_bench")[0, 0] == 66.0
    assert m.column("map")[1, 2] == 34.1
    assert m.samples is None and m.compute_columns == ("compute_ms_rpi4_bench",)


def test_good_profile_and_samples(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("# a comment\n" + GOOD)
    correct = np.zeros((4, 7), dtype=np.uint8)
    correct[3] = 1
    np.savez(p.with_name("m.samples.npz"), k=[2, 1, 1, 2], bits=[2, 2, 4, 4], correct=correct)
    m = ModelProfile.load(p)
    assert m.shape == (2, 2) and m.bits == (2, 4)
    assert m.samples.shape == (2, 2, 7)
    assert m.samples[1, 1].all() and not m.samples[0].any()
    assert ModelProfile.load(p, samples=False).samples is None


@pytest.mark.parametrize(
    "text,match",
    [
        ("k,bits,accuracy\n1,1,0.5\n", r"m\.csv: line 1: missing column\(s\) payload_bytes"),
        (
            GOOD.replace("0.30,4000,2", "abc,4000,2"),
            r"line 3: column accuracy: expected a number, got 'abc'",
        ),
        (
            GOOD.replace("0.30,4000,2", "1.25,4000,2"),
            r"line 3: column accuracy: expected a value in \[0, 1\]",
        ),
        (
            GOOD.replace("0.30,4000,2", "0.30,-1,2"),
            r"line 3: column payload_bytes: expected a number > 0",
        ),
        (GOOD.rsplit("\n", 2)[0] + "\n", r"not a full k x bits grid: missing mode\(s\) k=2 bits=4"),
        (GOOD + "1,2,0.3,2000,1\n", r"line 6: duplicate mode k=1 bits=2 \(first on line 2\)"),
        (GOOD.replace("1,2,", "1.5,2,", 1), r"line 2: column k: expected an integer >= 1"),
        (
            GOOD.replace(",2.0\n", ",\n", 1),
            r"line 2: column compute_ms_cpu: expected a number, got ''",
        ),
        (GOOD + "1,2\n", r"line 6: expected 5 cells, got 2"),
        ("", r"empty model profile"),
    ],
)
def test_bad_model_profile(tmp_path, text, match):
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(ProfileError, match=match):
        ModelProfile.load(p)


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"k": [1, 1, 2], "bits": [2, 4, 2]}, "missing array 'correct'"),
        (
            {"k": [1, 1, 2], "bits": [2, 4, 2], "correct": np.zeros((3, 4))},
            "no samples for mode k=2 bits=4",
        ),
        (
            {"k": [1, 1, 2, 2], "bits": [2, 4, 2, 3], "correct": np.zeros((4, 4))},
            "k=2 bits=3 is not in the CSV",
        ),
        ({"k": [1, 1, 2, 2], "bits": [2, 4, 2, 4], "correct": np.full((4, 4), 2)}, "expected 0/1"),
    ],
)
def test_bad_samples_sidecar(tmp_path, arrays, match):
    p = tmp_path / "m.csv"
    p.write_text(GOOD)
    np.savez(tmp_path / "m.samples.npz", **arrays)
    with pytest.raises(ProfileError, match=match):
        ModelProfile.load(p)


def test_shipped_devices():
    model = ModelProfile.load(MODELS / "assine2023-effdet-d2.csv")
    rpi = DeviceProfile.load(DEVICES / "rpi4.yaml")
    mean, jitter = rpi.compute_table(model)
    assert mean[:, 0].tolist() == [100.0, 173.0, 246.0, 321.0]
    assert (mean == mean[:, :1]).all() and (jitter > 0).all()
    assert rpi.compute_power_w == pytest.approx(6.4 - 2.7)
    assert rpi.radio_power_w(1.0) == pytest.approx(1.28804 + 0.43839)
    cpu = DeviceProfile.load(DEVICES / "cpu.yaml")
    assert cpu.from_model == "compute_ms_cpu"
    with pytest.raises(ProfileError, match="compute.from_model: .*no column 'compute_ms_cpu'"):
        cpu.compute_table(model)


def test_device_from_model_column_and_per_bits(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text(GOOD)
    model = ModelProfile.load(p)
    cpu = DeviceProfile.load(DEVICES / "cpu.yaml")
    mean, _ = cpu.compute_table(model)
    assert mean.tolist() == [[2.0, 2.0], [4.0, 4.0]]
    dev = DeviceProfile.from_dict(
        {
            "compute": {"mean_ms": {1: {2: 5, 4: 6}, 2: 9}, "jitter_ms": 1, "power_w": 2},
            "radio": {"base_w": 1, "alpha_w_per_mbps": 0.1},
        }
    )
    assert dev.compute_table(model)[0].tolist() == [[5.0, 6.0], [9.0, 9.0]]


@pytest.mark.parametrize(
    "patch,match",
    [
        ({"compute": {"power_w": 1}}, "compute: give exactly one of mean_ms"),
        ({"compute": {"mean_ms": 5, "from_model": "x", "power_w": 1}}, "give exactly one"),
        (
            {"compute": {"mean_ms": 5, "power_w": -1}},
            r"compute.power_w: expected a number >= 0, got -1",
        ),
        ({"compute": {"mean_ms": "fast", "power_w": 1}}, "compute.mean_ms: expected a number"),
        ({"compute": {"mean_ms": 5, "power_w": 1, "speed": 2}}, "compute.speed: unknown field"),
        ({"radio": {"base_w": 1}}, "radio.alpha_w_per_mbps: missing"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"compute": {"mean_ms": {1: 5}, "power_w": 1}}, r"compute.mean_ms: no value for k=2"),
    ],
)
def test_bad_device_profile(tmp_path, patch, match):
    d = {
        "compute": {"mean_ms": 5.0, "power_w": 1.0},
        "radio": {"base_w": 1.0, "alpha_w_per_mbps": 0.1},
    }
    d.update(patch)
    p = tmp_path / "dev.yaml"
    p.write_text(yaml.safe_dump(d))
    model_path = tmp_path / "m.csv"
    model_path.write_text(GOOD)
    with pytest.raises(ProfileError, match=match) as exc:
        DeviceProfile.load(p).compute_table(ModelProfile.load(model_path))
    assert "dev.yaml" in str(exc.value)
