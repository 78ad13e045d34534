"""The slimmable split model: modes, payload path == in-memory path, checkpoints, shipped files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from slimrl.errors import ModelError
from slimrl.model import payload_size
from slimrl.model.checkpoint import DEFAULT_WEIGHTS, load_model, load_pretrained, save_model
from slimrl.model.network import SlimmableSplitModel
from slimrl.paths import ENVS_DIR

SHIPPED_PROFILE = ENVS_DIR / "profiles" / "models" / "fmnist-slimmable.csv"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SlimmableSplitModel().eval()
    m.requires_grad_(False)
    return m


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8)


def test_modes(model):
    assert model.ks == (1, 2, 3, 4)
    assert model.bits_options == (1, 2, 4, 8)
    assert model.modes[0] == (1, 1) and model.modes[-1] == (4, 8) and len(model.modes) == 16
    with pytest.raises(ModelError, match="not supported"):
        model.set_mode(5, 8)
    with pytest.raises(ModelError, match="not supported"):
        model.set_mode(1, 3)


def test_round_trip_matches_in_memory(model, images):
    for k, bits in model.modes:
        model.set_mode(k, bits)
        payloads = model.encode(images)
        assert len(payloads) == len(images)
        decoded = np.stack([model.decode(p) for p in payloads])
        batch = model.decode_batch(payloads)
        in_memory = model.predict(images)
        np.testing.assert_allclose(decoded, in_memory, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch, in_memory)
        assert decoded.shape == (len(images), 10) and decoded.dtype == np.float32


def test_payload_sizes_match_formula(model, images):
    for k, bits in model.modes:
        model.set_mode(k, bits)
        sizes = {len(p) for p in model.encode(images)}
        assert sizes == {payload_size(k, bits)} == {model.payload_size(k, bits)}
    assert max(model.payload_size(k, b) for k, b in model.modes) <= 784 // 2


def test_payload_header_carries_mode(model, images):
    from slimrl.model import parse_payload

    model.set_mode(3, 2)
    p = parse_payload(model.encode(images[:1])[0])
    assert (p.k, p.bits, p.shape) == (3, 2, (6, 7, 7))


def test_corrupt_and_truncated_payloads_raise(model, images):
    model.set_mode(2, 4)
    good = model.encode(images[:1])[0]
    flipped = bytearray(good)
    flipped[30] ^= 0xFF
    for bad, match in [
        (good[:-1], "truncated"),
        (good[:5], "truncated"),
        (b"", "truncated"),
        (bytes(flipped), "corrupt"),
        (b"JUNK" + good[4:], "magic"),
    ]:
        with pytest.raises(ModelError, match=match):
            model.decode(bad)


def test_set_mode_touches_no_parameter(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in model.state_dict().items()}
    for k, bits in model.modes:
        model.set_mode(k, bits)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, value in after.items():
        assert torch.equal(before[name], value), name
        assert value.data_ptr() == ptrs[name], name


def test_single_image_and_bad_input(model, images):
    model.set_mode(1, 1)
    assert len(model.encode(images[0])) == 1
    with pytest.raises(ModelError, match="uint8"):
        model.encode(images.astype(np.float32))
    with pytest.raises(ModelError, match="shape"):
        model.encode(np.zeros((2, 32, 32), np.uint8))


def test_checkpoint_round_trip(model, images, tmp_path):
    path = save_model(model, tmp_path / "m.pt", {"note": "x"})
    loaded = load_model(path)
    assert loaded.meta == {"note": "x"}
    model.set_mode(4, 8)
    loaded.set_mode(4, 8)
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    # a payload from one instance decodes on another (device and edge are separate processes)
    np.testing.assert_array_equal(
        loaded.decode(model.encode(images[:1])[0]), model.predict(images[:1])[0]
    )


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ModelError, match="no such model checkpoint"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pt"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelError, match="not a slimrl slimmable split model"):
        load_model(other)


def test_teacher_file_splits_anywhere(tmp_path):
    from dataclasses import replace

    from slimrl.model.network import ModelConfig, Teacher
    from slimrl.model.pretrain import load_teacher, save_teacher

    torch.manual_seed(1)
    cfg = ModelConfig(split=2)
    teacher = Teacher(cfg).eval()
    save_teacher(teacher, cfg, tmp_path / "teacher.pt", 0.5)
    other, acc = load_teacher(tmp_path / "teacher.pt", replace(cfg, split=5))
    x = torch.randn(3, 1, 28, 28)
    assert acc == 0.5
    assert other.head(x).shape == (3, 64, 7, 7)
    torch.testing.assert_close(other(x), teacher(x))
    with pytest.raises(ModelError, match="architecture differs"):
        load_teacher(tmp_path / "teacher.pt", replace(cfg, layers=(8, "M", 8, "M")))


def test_first_checkpoint_format_still_loads(tmp_path):
    from slimrl.model.network import ModelConfig

    old = {
        "head_channels": 32,
        "tail_layers": [64, "M", 128, "M"],
        "tail_dropout": 0.3,
        "num_encoders": 4,
        "encoder_hidden": 8,
        "bottleneck_channels": 6,
        "decoder_hidden": 16,
        "bits_options": [1, 2, 4, 8],
        "num_classes": 10,
        "image_size": 28,
        "extra": {},
    }
    cfg = ModelConfig.from_dict(old)
    assert (cfg.split, cfg.encoder_depth, cfg.head_channels, cfg.head_side) == (2, 2, 32, 14)
    assert cfg.layers == (32, "M", 64, "M", 128, "M")
    model = SlimmableSplitModel(cfg)
    assert [type(m).__name__ for m in model.encoders[0].net] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Conv2d",
    ]


# ---- shipped weights and profile -----------------------------------------------------------------


def test_shipped_weights_load_and_card_matches_profile():
    from slimrl.model.card import card_accuracy

    model = load_pretrained()
    assert model.modes[-1] == (4, 8)
    card = DEFAULT_WEIGHTS.parent / "MODEL_CARD.md"
    full = card_accuracy(card, 4, 8)
    assert full == pytest.approx(model.meta["accuracy"]["4,8"], abs=1e-4)
    assert model.meta["teacher_accuracy"] >= 0.93
    assert full >= model.meta["teacher_accuracy"] - 0.01
    profile = pd.read_csv(SHIPPED_PROFILE)
    row = profile[(profile.k == 4) & (profile.bits == 8)].iloc[0]
    assert row.accuracy == pytest.approx(full, abs=1e-4)


def test_shipped_profile_is_consistent():
    profile = pd.read_csv(SHIPPED_PROFILE)
    assert list(profile.columns[:4]) == ["k", "bits", "accuracy", "payload_bytes"]
    assert {"compute_ms_cpu", "edge_ms_cpu"} <= set(profile.columns)
    assert len(profile) == 16
    for row in profile.itertuples():
        assert row.payload_bytes == payload_size(row.k, row.bits)
        assert 0.0 <= row.accuracy <= 1.0
    side = np.load(SHIPPED_PROFILE.with_name("fmnist-slimmable.samples.npz"))
    assert side["correct"].shape == (16, 10_000) and side["correct"].dtype == np.uint8
    np.testing.assert_array_equal(side["k"], profile.k)
    np.testing.assert_array_equal(side["bits"], profile.bits)
    np.testing.assert_allclose(side["correct"].mean(axis=1), profile.accuracy, atol=1e-6)
