"""The model card: recipe, data checksums, the accuracy of every mode and the quality checks."""

from __future__ import annotations

import os
import re
from pathlib import Path

from slimrl.io import write_text
from slimrl.model.network import SlimmableSplitModel
from slimrl.model.payload import OVERHEAD_BYTES

RAW_IMAGE_BYTES = 28 * 28
TEACHER_MIN = 0.930
FULL_MODE_GAP = 0.010
MONOTONE_SLACK = 0.003

BITS_RATIONALE = (
    "Bits {1, 2, 4, 8}: each step doubles the data part of the payload, so the four options span "
    "an 8x range of bytes with evenly spaced (log-scale) costs. 8 bits is indistinguishable from "
    "the float bottleneck; 4 bits is where quantisation starts to cost accuracy for some k; 2 and "
    "1 bit trade clear accuracy for 2x and 4x fewer bytes. Intermediate widths (3, 5, 6, 7) would "
    "add modes whose accuracy differs from a neighbour by less than the test-set noise while "
    "saving a few dozen bytes, i.e. near-duplicate actions for a controller."
)


def accuracy_table(meta: dict) -> dict[tuple[int, int], float]:
    """``meta['accuracy']`` ("k,bits" -> accuracy) as a dict keyed by (k, bits)."""
    out = {}
    for key, value in meta.get("accuracy", {}).items():
        k, b = (int(v) for v in key.split(","))
        out[(k, b)] = float(value)
    return out


def quality_checks(model: SlimmableSplitModel, meta: dict) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) for each quality bar of the issue."""
    acc = accuracy_table(meta)
    teacher = float(meta.get("teacher_accuracy", 0.0))
    full = (max(model.ks), max(model.bits_options))
    checks = [
        (f"teacher accuracy >= {TEACHER_MIN:.1%}", teacher >= TEACHER_MIN, f"{teacher:.2%}"),
        (
            f"full mode k={full[0]} bits={full[1]} within {FULL_MODE_GAP:.1%} of the teacher",
            acc.get(full, 0.0) >= teacher - FULL_MODE_GAP,
            f"{acc.get(full, 0.0):.2%} (gap {(teacher - acc.get(full, 0.0)) * 100:+.2f} points)",
        ),
    ]
    worst = 0.0
    where = ""
    for k in model.ks:
        bits = sorted(model.bits_options)
        for i, lo in enumerate(bits):
            for hi in bits[i + 1 :]:
                drop = acc.get((k, lo), 0.0) - acc.get((k, hi), 0.0)
                if drop > worst:
                    worst, where = drop, f" (k={k}: {lo} -> {hi} bits)"
    checks.append(
        (
            f"accuracy never falls as bits rise (slack {MONOTONE_SLACK * 100:.1f} points)",
            worst <= MONOTONE_SLACK,
            f"largest fall {worst * 100:.2f} points{where}",
        )
    )
    biggest = max(model.payload_size(k, b) for k, b in model.modes)
    checks.append(
        (
            f"largest payload <= half the raw image ({RAW_IMAGE_BYTES // 2} B)",
            biggest <= RAW_IMAGE_BYTES // 2,
            f"{biggest} B incl. {OVERHEAD_BYTES} B header+CRC",
        )
    )
    return checks


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def render_model_card(model: SlimmableSplitModel, meta: dict | None = None) -> str:
    """Markdown text of the model card for ``model`` (its ``meta`` by default)."""
    meta = dict(meta if meta is not None else model.meta)
    cfg = model.config
    acc = accuracy_table(meta)
    c, h, w = model.bottleneck_shape
    recipe = meta.get("recipe", {})
    lines = [
        "# Fashion-MNIST slimmable split model",
        "",
        "A split classifier after Assine et al., *Slimmable Encoders for Flexible Split DNNs in "
        "Bandwidth and Resource Constrained IoT Systems* (WoWMoM 2023): the device runs the "
        "teacher's first layers and an ensemble encoder of "
        f"K = {cfg.num_encoders} identical sub-encoders whose outputs are summed into one "
        f"{c}x{h}x{w} bottleneck, quantised to b bits per element; the edge runs one shared "
        "decoder (for every k and b) and the teacher's remaining layers. `set_mode(k, bits)` is "
        "an attribute change.",
        "",
        "## Architecture",
        "",
        "| part | side | layers | parameters |",
        "| --- | --- | --- | ---: |",
        f"| head (frozen teacher copy) | device | conv3x3 1->{cfg.head_channels} + BN + ReLU, "
        f"max-pool -> {cfg.head_channels}x14x14 | {_params(model.head):,} |",
        f"| sub-encoder (x{cfg.num_encoders}) | device | conv3x3 {cfg.head_channels}->"
        f"{cfg.encoder_hidden} + BN + ReLU, conv3x3/2 {cfg.encoder_hidden}->{c} | "
        f"{_params(model.encoders[0]):,} each |",
        f"| decoder (shared) | edge | conv3x3 {c}->{cfg.decoder_hidden}, conv3x3, "
        f"transposed conv 2x2/2, conv3x3 -> {cfg.head_channels}x14x14 (no BN) | "
        f"{_params(model.decoder):,} |",
        f"| tail (frozen teacher copy) | edge | {list(cfg.tail_layers)} conv3x3+BN+ReLU / "
        f"max-pool, dropout, linear -> {cfg.num_classes} | {_params(model.tail):,} |",
        "",
        f"Payload: {OVERHEAD_BYTES} bytes of header and CRC32 (magic `SLMP`, version, k, bits, "
        "shape, float32 scale and offset) + the packed b-bit integers (per-image min/max "
        "uniform quantisation). `payload_size(k, bits) = "
        f"{OVERHEAD_BYTES} + ceil({c * h * w} * bits / 8)`.",
        "",
        "## Modes",
        "",
        BITS_RATIONALE,
        "",
        f"Test accuracy on {meta.get('test_samples', '?')} Fashion-MNIST test images "
        f"(teacher: **{float(meta.get('teacher_accuracy', 0.0)):.4f}**):",
        "",
        "| k | " + " | ".join(f"{b} bits" for b in model.bits_options) + " |",
        "| --- | " + " | ".join("---:" for _ in model.bits_options) + " |",
    ]
    for k in model.ks:
        cells = " | ".join(f"{acc.get((k, b), float('nan')):.4f}" for b in model.bits_options)
        lines.append(f"| {k} | {cells} |")
    lines += [
        "",
        "Per mode (machine-readable):",
        "",
        "| k | bits | accuracy | payload_bytes |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for k, b in model.modes:
        lines.append(
            f"| {k} | {b} | {acc.get((k, b), float('nan')):.4f} | {model.payload_size(k, b)} |"
        )
    lines += ["", "## Quality checks", "", "| check | result | value |", "| --- | --- | --- |"]
    for name, ok, detail in quality_checks(model, meta):
        lines.append(f"| {name} | {'pass' if ok else 'FAIL'} | {detail} |")
    lines += [
        "",
        "## Recipe",
        "",
        f"- Command: `{meta.get('command') or 'slimrl pretrain'}`",
        f"- Seed: {recipe.get('seed')}; threads: {recipe.get('threads')}; torch "
        f"{meta.get('torch', '?')} on {meta.get('platform', '?')}",
        f"- Wall time: {meta.get('wall_s', '?')} s in all "
        f"(teacher {meta.get('teacher_wall_s', '?')} s)",
        f"- Training images: {meta.get('train_samples', '?')}; augmentation: "
        + (
            f"random horizontal flip, random shift up to {recipe.get('shift_pixels', 0)} px"
            if recipe.get("augment")
            else "none"
        )
        + f"; bfloat16 autocast for training passes: {'on' if recipe.get('bf16') else 'off'}",
        f"- Teacher: {recipe.get('teacher_epochs')} epochs, SGD Nesterov momentum 0.9, one-cycle "
        f"max lr {recipe.get('teacher_lr')}, weight decay {recipe.get('teacher_weight_decay')}, "
        f"batch {recipe.get('batch_size')}, cross-entropy.",
        f"- Student: {recipe.get('student_epochs')} epochs, AdamW one-cycle max lr "
        f"{recipe.get('student_lr')}, head and tail frozen. Each step: sandwich rule over k "
        "(largest, smallest, one random middle k), a random bit width per k, fake quantisation "
        "with a straight-through estimator; loss = "
        f"{recipe.get('feature_weight')} x MSE(decoder output, teacher head output) + "
        f"{recipe.get('kd_weight')} x T^2 KL(student || teacher logits), "
        f"T = {recipe.get('kd_temperature')}.",
        "",
        "Data: Fashion-MNIST (Xiao et al. 2017, MIT licence), SHA-256 of the decompressed IDX "
        "files:",
        "",
        "```",
    ]
    for name, digest in sorted(meta.get("data_sha256", {}).items()):
        lines.append(f"{digest}  {name}")
    lines += ["```", ""]
    return "\n".join(lines)


def write_model_card(
    model: SlimmableSplitModel, path: str | os.PathLike, meta: dict | None = None
) -> Path:
    """Render and write the model card atomically."""
    write_text(path, render_model_card(model, meta))
    return Path(path)


def card_accuracy(path: str | os.PathLike, k: int, bits: int) -> float:
    """The accuracy of mode (k, bits) as printed in a model card's per-mode table."""
    text = Path(path).read_text()
    m = re.search(rf"^\| {k} \| {bits} \| ([0-9.]+) \| \d+ \|$", text, flags=re.M)
    if m is None:
        raise ValueError(f"{path}: no per-mode row for k={k} bits={bits}")
    return float(m.group(1))
