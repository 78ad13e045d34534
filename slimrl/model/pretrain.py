"""Pretraining: the teacher CNN, then the slimmable student by head distillation.

Student step (after Assine et al. 2023 and the slimmable-network "sandwich rule"): with the head a
frozen copy of the teacher's and the tail initialised from it (fine-tuned slowly, batch-norm
statistics frozen), each batch trains the largest k, the smallest k and one random middle k, each
with a random bit width (quantisation-aware, straight-through estimator). The loss is the decoder's
feature error against the teacher's head output plus the KL divergence from the teacher's logits.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimrl.errors import ModelError
from slimrl.io import atomic_path
from slimrl.model.card import write_model_card
from slimrl.model.checkpoint import WEIGHTS_NAME, save_model
from slimrl.model.data import MEAN, STD, FashionMNIST, load_fashion_mnist
from slimrl.model.network import (
    ModelConfig,
    SlimmableSplitModel,
    Teacher,
    fake_quantize,
)

CARD_NAME = "MODEL_CARD.md"


@dataclass
class Recipe:
    """Everything that decides the trained weights (recorded in the model card)."""

    seed: int = 0
    teacher_epochs: int = 12
    student_epochs: int = 8
    batch_size: int = 128
    teacher_lr: float = 0.1
    teacher_weight_decay: float = 5e-4
    student_lr: float = 2e-3
    student_weight_decay: float = 1e-5
    kd_temperature: float = 4.0
    feature_weight: float = 1.0
    kd_weight: float = 1.0
    # Fine-tune the tail's weights (its batch-norm statistics stay frozen) at this fraction of the
    # student learning rate; 0 keeps the tail a frozen copy of the teacher's.
    tail_lr_scale: float = 0.5
    augment: bool = True  # random horizontal flip
    shift_pixels: int = 0  # plus random translation by up to this many pixels (0: none)
    # bfloat16 autocast for the training passes (about 2x faster on CPUs with AVX512-BF16);
    # the quantiser, the losses, evaluation and the shipped float32 weights stay float32.
    bf16: bool = True
    train_subset: int | None = None
    test_subset: int | None = None
    threads: int = 2
    config: dict = field(default_factory=lambda: ModelConfig().to_dict())

    @classmethod
    def quick(cls, seed: int = 0) -> Recipe:
        """A tiny run for tests: a data subset and one epoch each."""
        return cls(
            seed=seed,
            teacher_epochs=1,
            student_epochs=1,
            train_subset=2048,
            test_subset=1000,
            threads=1,
        )


@dataclass
class PretrainResult:
    model: SlimmableSplitModel
    teacher_accuracy: float
    accuracy: dict[tuple[int, int], float]
    wall_s: float
    weights: Path
    card: Path


def _seed_all(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _normalise(images: np.ndarray) -> torch.Tensor:
    return SlimmableSplitModel.preprocess(images)


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 0) -> torch.Tensor:
    """Per sample: a random horizontal flip, and a random translation by up to ``pad`` pixels."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if pad == 0:
        return x
    background = (0.0 - MEAN) / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=background)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


@torch.no_grad()
def accuracy_of(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
) -> float:
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((fn(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(y)


REFERENCE_BITS = (3, 0)  # not modes: 3 bits, and 0 = the unquantised float bottleneck


@torch.no_grad()
def mode_accuracy(
    model: SlimmableSplitModel,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    extra_bits: tuple[int, ...] = (),
) -> dict[tuple[int, int], float]:
    """Test accuracy of every mode through the in-memory path (same numbers as the payloads).

    ``extra_bits`` adds (k, b) entries for other bit widths; b = 0 means no quantisation."""
    model.eval()
    bits = [*model.bits_options, *extra_bits]
    hits = {(k, b): 0 for k in model.ks for b in bits}
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        for k in model.ks:
            z = model.embed(xb, k)
            for b in bits:
                logits = model.edge_forward(fake_quantize(z, b) if b else z)
                hits[(k, b)] += int((logits.argmax(1) == yb).sum())
    return {m: h / len(y) for m, h in hits.items()}


def train_teacher(
    cfg: ModelConfig,
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    log: Callable[[str, float, int], None],
    progress: bool = True,
    evaluate: Callable[[nn.Module], float] | None = None,
) -> Teacher:
    """Supervised training of the teacher (SGD + Nesterov, one-cycle schedule)."""
    from tqdm.auto import tqdm

    teacher = Teacher(cfg).to(memory_format=torch.channels_last)
    steps_per_epoch = len(y) // recipe.batch_size
    opt = torch.optim.SGD(
        teacher.parameters(),
        lr=recipe.teacher_lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=recipe.teacher_weight_decay,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=recipe.teacher_lr,
        total_steps=max(1, recipe.teacher_epochs * steps_per_epoch),
        pct_start=0.25,
    )
    step = 0
    for epoch in range(recipe.teacher_epochs):
        teacher.train()
        bar = tqdm(
            _batches(len(y), recipe.batch_size, gen),
            desc=f"teacher {epoch + 1}/{recipe.teacher_epochs}",
            disable=not progress,
            leave=False,
        )
        for idx in bar:
            xb = x[idx]
            if recipe.augment:
                xb = augment(xb, gen, recipe.shift_pixels)
            with _autocast(recipe):
                logits = teacher(xb.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                log("teacher/loss", loss.item(), step)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if evaluate is not None:
            acc = evaluate(teacher.eval())
            log("eval/teacher_accuracy", acc, epoch + 1)
            if progress:
                tqdm.write(f"teacher epoch {epoch + 1}: test accuracy {acc:.4f}")
    return teacher.to(memory_format=torch.contiguous_format).eval()


def _autocast(recipe: Recipe):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16)


def _sandwich_widths(ks: tuple[int, ...]) -> list[int]:
    widths = [ks[-1], ks[0]]
    middle = ks[1:-1]
    if middle:
        widths.append(random.choice(middle))
    return widths


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, dim=1),
        F.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)


def train_student(
    teacher: Teacher,
    cfg: ModelConfig,
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    log: Callable[[str, float, int], None],
    progress: bool = True,
    evaluate: Callable[[SlimmableSplitModel], dict[str, float]] | None = None,
) -> SlimmableSplitModel:
    """Head distillation with the sandwich rule over k and random bits per width."""
    from tqdm.auto import tqdm

    finetune = recipe.tail_lr_scale > 0
    model = SlimmableSplitModel.from_teacher(teacher, cfg, freeze_tail=not finetune)
    model = model.to(memory_format=torch.channels_last)
    teacher = teacher.to(memory_format=torch.channels_last).eval()
    teacher.requires_grad_(False)
    groups = [{"params": [*model.encoders.parameters(), *model.decoder.parameters()]}]
    max_lr = [recipe.student_lr]
    if finetune:
        groups.append({"params": list(model.tail.parameters())})
        max_lr.append(recipe.student_lr * recipe.tail_lr_scale)
    steps_per_epoch = len(y) // recipe.batch_size
    opt = torch.optim.AdamW(groups, lr=recipe.student_lr, weight_decay=recipe.student_weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=max(1, recipe.student_epochs * steps_per_epoch),
        pct_start=0.15,
    )
    step = 0
    for epoch in range(recipe.student_epochs):
        model.train()
        model.head.eval()  # teacher layers keep their batch-norm statistics (shared by all modes)
        model.tail.eval()
        bar = tqdm(
            _batches(len(y), recipe.batch_size, gen),
            desc=f"student {epoch + 1}/{recipe.student_epochs}",
            disable=not progress,
            leave=False,
        )
        for idx in bar:
            xb = x[idx]
            if recipe.augment:
                xb = augment(xb, gen, recipe.shift_pixels)
            xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), _autocast(recipe):
                h = model.head(xb)
                t_logits = teacher.tail(h).float()
            with _autocast(recipe):
                parts = [enc(h) for enc in model.encoders]
            h = h.float()
            loss = torch.zeros(())
            for k in _sandwich_widths(model.ks):
                bits = random.choice(model.bits_options)
                z = parts[0].float()
                for p in parts[1:k]:
                    z = z + p.float()
                zq = fake_quantize(z, bits)  # float32: bf16 cannot hold 8-bit levels exactly
                with _autocast(recipe):
                    feat = model.decoder(zq)
                    logits = model.tail(feat)
                feat_loss = F.mse_loss(feat.float(), h)
                kd = _kd_loss(logits.float(), t_logits, recipe.kd_temperature)
                loss = loss + recipe.feature_weight * feat_loss + recipe.kd_weight * kd
                if step % 20 == 0:
                    log(f"student/feature_mse_k{k}", feat_loss.item(), step)
                    log(f"student/kd_k{k}", kd.item(), step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                log("student/loss", loss.item(), step)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if evaluate is not None:
            scores = evaluate(model.eval())
            for name, acc in scores.items():
                log(f"eval/{name}", acc, epoch + 1)
            if progress:
                shown = ", ".join(f"{n} {a:.4f}" for n, a in scores.items())
                tqdm.write(f"student epoch {epoch + 1}: test accuracy {shown}")
    return model.to(memory_format=torch.contiguous_format).eval()


def _subset(
    data: FashionMNIST, n: int | None, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _normalise(data.images), torch.from_numpy(data.labels.astype(np.int64))
    if n is not None and n < len(y):
        idx = torch.randperm(len(y), generator=gen)[:n]
        x, y = x[idx], y[idx]
    return x, y


TEACHER_NAME = "teacher.pt"


def save_teacher(teacher: Teacher, cfg: ModelConfig, path: Path, accuracy: float) -> None:
    """Save the teacher's layers in order (so a student may split them anywhere)."""
    layers = nn.Sequential(*teacher.layer_list())
    blob = {
        "format": "slimrl.teacher",
        "config": cfg.to_dict(),
        "state_dict": layers.state_dict(),
        "accuracy": accuracy,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_teacher(path: str | os.PathLike, cfg: ModelConfig) -> tuple[Teacher, float]:
    """A teacher saved by an earlier run (to train only the student again)."""
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        if blob.get("format") != "slimrl.teacher":
            raise ValueError("not a slimrl teacher checkpoint")
        saved = ModelConfig.from_dict(blob["config"])
        if (saved.layers, saved.dropout) != (cfg.layers, cfg.dropout):
            raise ValueError("its architecture differs from this recipe's")
        teacher = Teacher(cfg)
        nn.Sequential(*teacher.layer_list()).load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise ModelError(f"{path}: cannot use as teacher ({exc})") from exc
    return teacher.eval(), float(blob.get("accuracy", float("nan")))


def pretrain(
    data_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    recipe: Recipe | None = None,
    progress: bool = True,
    command: str | None = None,
    teacher_path: str | os.PathLike | None = None,
) -> PretrainResult:
    """Train teacher and student, evaluate every mode, write weights + model card to ``out_dir``.

    ``teacher_path`` reuses a teacher saved by an earlier run (``<out>/teacher.pt``)."""
    from torch.utils.tensorboard import SummaryWriter

    recipe = recipe or Recipe()
    t0 = time.perf_counter()
    torch.set_num_threads(recipe.threads)
    gen = _seed_all(recipe.seed)
    cfg = ModelConfig.from_dict(recipe.config)
    train = load_fashion_mnist("train", data_dir)
    test = load_fashion_mnist("test", data_dir)
    x, y = _subset(train, recipe.train_subset, gen)
    xt, yt = _subset(test, recipe.test_subset, torch.Generator().manual_seed(recipe.seed))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out / "tb"))

    def log(tag: str, value: float, step: int) -> None:
        writer.add_scalar(tag, value, step)

    def eval_student(model: SlimmableSplitModel) -> dict[str, float]:
        out = {}
        for k, b in (model.modes[0], model.modes[-1]):
            out[f"k{k}_b{b}"] = accuracy_of(lambda xb, k=k, b=b: model(xb, k, b), xt, yt)
        return out

    if teacher_path is None:
        teacher = train_teacher(
            cfg, recipe, x, y, gen, log, progress, evaluate=lambda m: accuracy_of(m, xt, yt)
        )
        teacher_acc = accuracy_of(teacher, xt, yt)
        save_teacher(teacher, cfg, out / TEACHER_NAME, teacher_acc)
    else:
        teacher, _ = load_teacher(teacher_path, cfg)
        teacher_acc = accuracy_of(teacher, xt, yt)
    writer.add_scalar("eval/teacher_accuracy", teacher_acc, recipe.teacher_epochs)
    t_teacher = time.perf_counter() - t0
    # The student's random stream does not depend on whether the teacher was trained or loaded.
    gen = _seed_all(recipe.seed + 1)
    model = train_student(teacher, cfg, recipe, x, y, gen, log, progress, evaluate=eval_student)
    every = mode_accuracy(model, xt, yt, extra_bits=REFERENCE_BITS)
    acc = {m: every[m] for m in model.modes}
    reference = {m: a for m, a in every.items() if m not in acc}
    for (k, b), a in acc.items():
        writer.add_scalar(f"eval/accuracy_k{k}_b{b}", a, 0)
    writer.close()
    wall = time.perf_counter() - t0
    meta = {
        "dataset": "Fashion-MNIST",
        "data_sha256": {**train.sha256, **test.sha256},
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "config"},
        "teacher_accuracy": teacher_acc,
        "teacher_reused": str(teacher_path) if teacher_path else None,
        "accuracy": {f"{k},{b}": a for (k, b), a in acc.items()},
        "reference_accuracy": {f"{k},{b}": a for (k, b), a in reference.items()},
        "test_samples": len(yt),
        "train_samples": len(y),
        "wall_s": round(wall, 1),
        "teacher_wall_s": round(t_teacher, 1),
        "command": command or "",
        "torch": str(torch.__version__),
        "platform": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    model.meta = meta
    weights = save_model(model, out / WEIGHTS_NAME, meta)
    card = write_model_card(model, out / CARD_NAME)
    return PretrainResult(model, teacher_acc, acc, wall, weights, card)
