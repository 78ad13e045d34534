"""Measure a model profile: per mode the test accuracy through real payloads, the payload bytes,
and the device-side and edge-side latency (batch 1, one thread) on this CPU."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from slimrl.errors import ModelError
from slimrl.io import atomic_path
from slimrl.model.network import SlimmableSplitModel

COLUMNS = ["k", "bits", "accuracy", "payload_bytes", "compute_ms_cpu", "edge_ms_cpu"]


@dataclass
class ModelProfileResult:
    """``table`` has one row per mode (COLUMNS); ``correct`` (M, S) uint8 per-sample hits."""

    table: pd.DataFrame
    correct: np.ndarray


def mode_correctness(
    model: SlimmableSplitModel,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 1000,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per mode: encode every image to bytes, decode the bytes, compare with the label.

    Returns ``correct`` (M, N) uint8 and ``payload_bytes`` (M,) (every payload of a mode has the
    same size; a mismatch with the formula raises :class:`ModelError`)."""
    from tqdm.auto import tqdm

    modes = model.modes
    correct = np.zeros((len(modes), len(labels)), dtype=np.uint8)
    sizes = np.zeros(len(modes), dtype=np.int64)
    bar = tqdm(total=len(modes) * len(labels), desc="accuracy", unit="img", disable=not progress)
    for m, (k, b) in enumerate(modes):
        model.set_mode(k, b)
        seen = set()
        for i in range(0, len(labels), batch_size):
            payloads = model.encode(images[i : i + batch_size])
            seen.update(len(p) for p in payloads)
            pred = model.decode_batch(payloads).argmax(axis=1)
            correct[m, i : i + batch_size] = pred == labels[i : i + batch_size]
            bar.update(len(payloads))
        if seen != {model.payload_size(k, b)}:
            raise ModelError(
                f"mode k={k} bits={b}: payload sizes {sorted(seen)} differ from the formula "
                f"{model.payload_size(k, b)}"
            )
        sizes[m] = model.payload_size(k, b)
    bar.close()
    return correct, sizes


def mode_latency(
    model: SlimmableSplitModel,
    images: np.ndarray,
    repeats: int = 200,
    warmup: int = 20,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Median ms per mode of ``encode`` (device: head + k sub-encoders + quantise + pack) and of
    ``decode`` (edge: parse + decoder + tail), batch 1, one torch thread.

    Modes are interleaved round by round so that background load spreads evenly over them."""
    from tqdm.auto import tqdm

    modes = model.modes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    enc = np.zeros((len(modes), repeats))
    dec = np.zeros((len(modes), repeats))
    try:
        for r in tqdm(range(-warmup, repeats), desc="latency", unit="round", disable=not progress):
            img = images[(r % len(images))][None]
            for m, (k, b) in enumerate(modes):
                model.set_mode(k, b)
                t0 = time.perf_counter()
                payload = model.encode(img)[0]
                t1 = time.perf_counter()
                model.decode(payload)
                t2 = time.perf_counter()
                if r >= 0:
                    enc[m, r], dec[m, r] = t1 - t0, t2 - t1
    finally:
        torch.set_num_threads(threads)
    return np.median(enc, axis=1) * 1e3, np.median(dec, axis=1) * 1e3


def measure_profile(
    model: SlimmableSplitModel,
    images: np.ndarray,
    labels: np.ndarray,
    repeats: int = 200,
    progress: bool = True,
) -> ModelProfileResult:
    """The full model profile of ``model`` on a labelled test set."""
    if repeats < 1:
        raise ModelError(f"repeats must be >= 1, got {repeats}")
    mode = model.mode
    model.eval()
    try:
        correct, sizes = mode_correctness(model, images, labels, progress=progress)
        enc_ms, dec_ms = mode_latency(model, images, repeats=repeats, progress=progress)
    finally:
        model.set_mode(*mode)
    ks, bits = zip(*model.modes, strict=True)
    table = pd.DataFrame(
        {
            "k": ks,
            "bits": bits,
            "accuracy": correct.mean(axis=1).round(6),
            "payload_bytes": sizes,
            "compute_ms_cpu": enc_ms.round(4),
            "edge_ms_cpu": dec_ms.round(4),
        },
        columns=COLUMNS,
    )
    return ModelProfileResult(table, correct)


def samples_path(csv_path: str | os.PathLike) -> Path:
    """The sidecar ``<stem>.samples.npz`` next to a profile CSV."""
    p = Path(csv_path)
    return p.with_name(f"{p.stem}.samples.npz")


def write_profile(result: ModelProfileResult, csv_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the CSV and its ``.samples.npz`` sidecar atomically."""
    csv_path = Path(csv_path)
    npz = samples_path(csv_path)
    with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            k=result.table["k"].to_numpy(np.int64),
            bits=result.table["bits"].to_numpy(np.int64),
            correct=result.correct.astype(np.uint8),
        )
    with atomic_path(csv_path) as tmp:
        result.table.to_csv(tmp, index=False)
    return csv_path, npz
