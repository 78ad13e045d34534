"""The teacher CNN and the slimmable split student (after Assine et al., WoWMoM 2023).

Student = device side ``head -> sum of the first k sub-encoders -> b-bit quantiser`` and edge side
``shared decoder -> tail``. The head is a frozen copy of the teacher's first layers and the tail
starts as a copy of its last layers; the decoder learns to rebuild the head's features from the
bottleneck for every (k, bits).
Switching mode changes two attributes, never a weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from slimrl.errors import ModelError
from slimrl.model import payload as wire
from slimrl.model.data import MEAN, STD


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the teacher and the student; stored in every checkpoint."""

    # Teacher body: ints are 3x3 conv + BN + ReLU widths, "M" a 2x2 max-pool; then dropout and a
    # linear classifier. The first ``split`` entries are the head that runs on the device.
    layers: tuple = (32, "M", 64, 64, "M", 128, 128, "M")
    split: int = 5
    dropout: float = 0.3
    num_encoders: int = 4
    encoder_hidden: int = 16
    encoder_depth: int = 3
    bottleneck_channels: int = 6
    decoder_hidden: int = 64
    bits_options: tuple[int, ...] = (1, 2, 4, 8)
    num_classes: int = 10
    image_size: int = 28

    @property
    def head_channels(self) -> int:
        return int([s for s in self.layers[: self.split] if s != "M"][-1])

    @property
    def head_side(self) -> int:
        return self.image_size >> sum(s == "M" for s in self.layers[: self.split])

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        side = self.image_size // 4
        return (self.bottleneck_channels, side, side)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["bits_options"] = list(self.bits_options)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        if "tail_layers" in d:  # the first format: a one-conv head, a two-conv sub-encoder
            d["layers"] = [d.pop("head_channels"), "M", *d.pop("tail_layers")]
            d["dropout"] = d.pop("tail_dropout")
            d.setdefault("split", 2)
            d.setdefault("encoder_depth", 2)
            d.pop("extra", None)
        d["layers"] = tuple(d["layers"])
        d["bits_options"] = tuple(d["bits_options"])
        return cls(**d)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _body(specs: Sequence, cin: int) -> tuple[list[nn.Module], int, int]:
    """Modules for layer specs; returns them, the output channels and the number of pools."""
    layers: list[nn.Module] = []
    pools = 0
    for spec in specs:
        if spec == "M":
            layers.append(nn.MaxPool2d(2))
            pools += 1
        else:
            layers += _conv_bn_relu(cin, int(spec))
            cin = int(spec)
    return layers, cin, pools


def build_head(cfg: ModelConfig) -> nn.Sequential:
    """Teacher's first layers: 1 x 28 x 28 -> head_channels x head_side x head_side."""
    layers, _, _ = _body(cfg.layers[: cfg.split], 1)
    return nn.Sequential(*layers)


def build_tail(cfg: ModelConfig) -> nn.Sequential:
    """Teacher's remaining layers: head features -> logits."""
    layers, ch, pools = _body(cfg.layers[cfg.split :], cfg.head_channels)
    side = cfg.head_side >> pools
    layers += [
        nn.Flatten(),
        nn.Dropout(cfg.dropout),
        nn.Linear(ch * side * side, cfg.num_classes),
    ]
    return nn.Sequential(*layers)


def copy_layers(dst: nn.Sequential, src: nn.Sequential) -> None:
    """Copy weights module by module (the two may number their modules differently)."""
    if len(dst) != len(src):
        raise ModelError(f"cannot copy {len(src)} layers into {len(dst)}")
    for d, s in zip(dst, src, strict=True):
        d.load_state_dict(s.state_dict())


class Teacher(nn.Module):
    """The plain classifier the student is distilled from: ``head`` then ``tail``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.head = build_head(cfg)
        self.tail = build_tail(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.head(x))

    def layer_list(self) -> list[nn.Module]:
        """All layers in order, independent of where the split is."""
        return [*self.head, *self.tail]


class SubEncoder(nn.Module):
    """One member of the ensemble encoder: ``encoder_depth`` 3x3 convs from the head features to
    C x 7 x 7 (linear output; the last conv strides down to 7 x 7 if needed)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        stride = cfg.head_side // cfg.bottleneck_shape[1]
        layers: list[nn.Module] = []
        cin = cfg.head_channels
        for _ in range(cfg.encoder_depth - 1):
            layers += _conv_bn_relu(cin, cfg.encoder_hidden)
            cin = cfg.encoder_hidden
        layers.append(nn.Conv2d(cin, cfg.bottleneck_channels, 3, stride=stride, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class Decoder(nn.Module):
    """Shared decoder: bottleneck (any k, any bits) -> head features. No batch norm, so one set of
    weights and statistics serves every mode and batch size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.decoder_hidden
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.bottleneck_channels, d, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d, d, 3, padding=1),
            nn.ReLU(inplace=True),
        ]
        if cfg.head_side == 2 * cfg.bottleneck_shape[1]:
            layers += [nn.ConvTranspose2d(d, d // 2, 2, stride=2), nn.ReLU(inplace=True)]
            d //= 2
        elif cfg.head_side == cfg.bottleneck_shape[1]:
            layers += [nn.Conv2d(d, d, 3, padding=1), nn.ReLU(inplace=True)]
        else:
            raise ModelError(f"a split at {cfg.head_side}x{cfg.head_side} is not supported")
        layers.append(nn.Conv2d(d, cfg.head_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def quantize(z: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample uniform quantisation of ``z`` (N, ...): integers (float), scale, offset (N,)."""
    flat = z.detach().flatten(1)
    lo = flat.amin(dim=1)
    hi = flat.amax(dim=1)
    levels = float((1 << bits) - 1)
    scale = (hi - lo) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round((flat - lo[:, None]) / scale[:, None]).clamp_(0.0, levels)
    return q.view_as(z), scale, lo


def dequantize(q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``q * scale + offset`` per sample; the one formula both the wire and in-memory paths use."""
    shape = (-1,) + (1,) * (q.dim() - 1)
    return q * scale.view(shape) + offset.view(shape)


def fake_quantize(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise-dequantise; with autograd on, a straight-through gradient (identity backward)."""
    zq = dequantize(*quantize(z, bits))
    if z.requires_grad:
        return z + (zq - z).detach()
    return zq  # bit-identical to what the edge rebuilds from the payload


class SlimmableSplitModel(nn.Module):
    """Slimmable split classifier: ``set_mode(k, bits)``, ``encode`` on the device, ``decode`` on
    the edge. Inputs are uint8 images (N, 28, 28); outputs float32 logits (N, 10)."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or ModelConfig()
        self.head = build_head(self.config)
        self.encoders = nn.ModuleList(
            SubEncoder(self.config) for _ in range(self.config.num_encoders)
        )
        self.decoder = Decoder(self.config)
        self.tail = build_tail(self.config)
        # The mode lives in a plain dict: set_mode is two dict stores, no nn.Module bookkeeping.
        self._mode = {"k": self.config.num_encoders, "bits": max(self.config.bits_options)}
        self._valid_modes = frozenset(self.modes)
        self.meta: dict = {}

    # ---- modes ---------------------------------------------------------------------------
    @property
    def ks(self) -> tuple[int, ...]:
        """Encoder widths, 1..K."""
        return tuple(range(1, self.config.num_encoders + 1))

    @property
    def bits_options(self) -> tuple[int, ...]:
        return tuple(self.config.bits_options)

    @property
    def modes(self) -> list[tuple[int, int]]:
        """Every (k, bits), k-major (the env's flat action order)."""
        return [(k, b) for k in self.ks for b in self.bits_options]

    @property
    def mode(self) -> tuple[int, int]:
        """The current (k, bits)."""
        return (self._mode["k"], self._mode["bits"])

    @property
    def _k(self) -> int:
        return self._mode["k"]

    @property
    def _bits(self) -> int:
        return self._mode["bits"]

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        return self.config.bottleneck_shape

    def set_mode(self, k: int, bits: int) -> None:
        """Switch width and quantisation: an attribute change, no weight is touched."""
        if (k, bits) not in self._valid_modes:
            raise ModelError(
                f"mode (k={k}, bits={bits}) not supported; k in {list(self.ks)}, "
                f"bits in {list(self.bits_options)}"
            )
        self._mode["k"] = int(k)
        self._mode["bits"] = int(bits)

    def payload_size(self, k: int | None = None, bits: int | None = None) -> int:
        """Bytes of one payload in mode (k, bits) (the current mode by default)."""
        return wire.payload_size(k or self._k, bits or self._bits, self.bottleneck_shape)

    # ---- tensors -------------------------------------------------------------------------
    @staticmethod
    def preprocess(images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 28, 28) or (28, 28) -> normalised float tensor (N, 1, 28, 28)."""
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if x.dtype != torch.uint8:
            raise ModelError(f"images must be uint8, got {x.dtype}")
        if x.dim() == 2:
            x = x[None]
        if x.dim() == 3:
            x = x[:, None]
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise ModelError(f"images must have shape (N, 28, 28), got {tuple(x.shape)}")
        return (x.float() / 255.0 - MEAN) / STD

    def embed(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Head and the sum of the first ``k`` sub-encoders: the float bottleneck (N, C, 7, 7)."""
        h = self.head(x)
        k = self._k if k is None else k
        z = self.encoders[0](h)
        for enc in self.encoders[1:k]:
            z = z + enc(h)
        return z

    def edge_forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder + tail on a (dequantised) bottleneck."""
        return self.tail(self.decoder(z))

    def forward(
        self, x: torch.Tensor, k: int | None = None, bits: int | None = None
    ) -> torch.Tensor:
        """Logits of normalised images in mode (k, bits) (the current mode by default)."""
        k = self._k if k is None else k
        bits = self._bits if bits is None else bits
        return self.edge_forward(fake_quantize(self.embed(x, k), bits))

    # ---- numpy API used by the device runtime and the edge server --------------------------
    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """In-memory logits (N, 10) in the current mode, same numbers as encode -> decode."""
        return self(self.preprocess(images)).numpy()

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> list[bytes]:
        """Device side: one payload per image in the current mode."""
        q, scale, offset = quantize(self.embed(self.preprocess(images)), self._bits)
        return wire.build_payloads(
            q.to(torch.uint8).numpy(), scale.numpy(), offset.numpy(), self._k, self._bits
        )

    @torch.no_grad()
    def decode_batch(self, payloads: Sequence[bytes]) -> np.ndarray:
        """Edge side: logits (N, 10) of N payloads (modes may differ)."""
        if len(payloads) == 0:
            return np.zeros((0, self.config.num_classes), dtype=np.float32)
        parsed = [wire.parse_payload(p) for p in payloads]
        for p in parsed:
            if p.shape != self.bottleneck_shape:
                raise ModelError(
                    f"payload bottleneck shape {p.shape} does not match the model's "
                    f"{self.bottleneck_shape}"
                )
        q = torch.from_numpy(np.stack([p.q for p in parsed])).float()
        scale = torch.tensor([p.scale for p in parsed], dtype=torch.float32)
        offset = torch.tensor([p.offset for p in parsed], dtype=torch.float32)
        return self.edge_forward(dequantize(q, scale, offset)).numpy()

    def decode(self, payload: bytes) -> np.ndarray:
        """Edge side: logits (10,) of one payload, whatever mode it was encoded in."""
        return self.decode_batch([payload])[0]

    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters()) + sum(
            b.numel() * b.element_size() for b in self.buffers()
        )

    @classmethod
    def from_teacher(
        cls, teacher: Teacher, cfg: ModelConfig, freeze_tail: bool = True
    ) -> SlimmableSplitModel:
        """A student whose head (frozen) and tail (frozen or not) are copies of the teacher's."""
        model = cls(cfg)
        copy_layers(model.head, teacher.head)
        copy_layers(model.tail, teacher.tail)
        model.head.requires_grad_(False)
        model.tail.requires_grad_(not freeze_tail)
        return model
