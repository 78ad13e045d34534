"""Read the deterministic decision network out of a Stable-Baselines3 model.

Only what can be reproduced exactly is accepted: PPO, A2C and MaskablePPO with an MLP actor
(``MlpPolicy``: flatten features, Linear/activation stack, categorical or multi-categorical head),
and DQN (``MlpPolicy``: Q-network, argmax). Anything else raises :class:`BundleError` saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slimrl.errors import BundleError

SUPPORTED_ALGOS = ("PPO", "A2C", "MaskablePPO", "DQN")


@dataclass
class PolicyNet:
    """An MLP as plain arrays: ``W[i]`` is ``(in, out)`` (pre-transposed), float32."""

    algo: str
    kind: str  # "discrete" | "multidiscrete"
    nvec: list[int]
    maskable: bool
    head: str  # "logits" | "q_values"
    obs_dim: int
    layers: list[dict[str, Any]] = field(default_factory=list)
    W: list[np.ndarray] = field(default_factory=list)
    b: list[np.ndarray] = field(default_factory=list)

    def add_linear(self, linear, activation: dict[str, Any] | None) -> None:
        W = linear.weight.detach().cpu().numpy().astype(np.float32)
        if linear.bias is not None:
            b = linear.bias.detach().cpu().numpy().astype(np.float32)
        else:
            b = np.zeros(W.shape[0], np.float32)
        self.W.append(np.ascontiguousarray(W.T))
        self.b.append(b)
        layer = {"in": int(W.shape[1]), "out": int(W.shape[0])}
        layer.update(activation or {"activation": "identity"})
        self.layers.append(layer)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            out[f"W{i}"] = W
            out[f"b{i}"] = b
        return out


def _activation(module) -> dict[str, Any] | None:
    """Manifest entry for an activation module; None if ``module`` is not a known activation."""
    from torch import nn

    if isinstance(module, nn.Tanh):
        return {"activation": "tanh"}
    if isinstance(module, nn.ReLU):
        return {"activation": "relu"}
    if isinstance(module, nn.LeakyReLU):
        return {"activation": "leaky_relu", "alpha": float(module.negative_slope)}
    if isinstance(module, nn.ELU):
        return {"activation": "elu", "alpha": float(module.alpha)}
    if isinstance(module, nn.Sigmoid):
        return {"activation": "sigmoid"}
    return None


def _add_mlp(net: PolicyNet, seq, where: str) -> None:
    """Append a Linear/activation stack (an ``nn.Sequential``) to ``net``."""
    from torch import nn

    modules = list(seq) if isinstance(seq, nn.Sequential) else [seq]
    i = 0
    while i < len(modules):
        m = modules[i]
        if isinstance(m, nn.Identity):
            i += 1
            continue
        if not isinstance(m, nn.Linear):
            raise BundleError(
                f"{where}: layer {i} is {type(m).__name__}; only Linear layers followed by "
                "Tanh/ReLU/LeakyReLU/ELU/Sigmoid can be exported"
            )
        act = None
        if i + 1 < len(modules) and not isinstance(modules[i + 1], nn.Linear):
            act = _activation(modules[i + 1])
            if act is None:
                raise BundleError(
                    f"{where}: unknown activation {type(modules[i + 1]).__name__} after layer "
                    f"{i}; supported: Tanh, ReLU, LeakyReLU, ELU, Sigmoid"
                )
            i += 1
        net.add_linear(m, act)
        i += 1


def _check_features(policy, attr: str) -> None:
    from stable_baselines3.common.torch_layers import FlattenExtractor

    fe = getattr(policy, attr, None)
    if fe is not None and type(fe) is not FlattenExtractor:
        raise BundleError(
            f"{attr} is {type(fe).__name__}; only MlpPolicy (FlattenExtractor) can be exported"
        )


def _check_obs_space(space) -> int:
    from gymnasium import spaces

    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise BundleError(
            f"observation space {space} is not supported; expected a 1-D Box (SlimSplit-v0)"
        )
    return int(space.shape[0])


def extract_policy(model) -> PolicyNet:
    """The exportable network of an SB3 model, or :class:`BundleError` saying why it is not."""
    from gymnasium import spaces

    algo = type(model).__name__
    if algo not in SUPPORTED_ALGOS:
        raise BundleError(
            f"algorithm {algo} cannot be exported; supported: {', '.join(SUPPORTED_ALGOS)}"
        )
    policy = model.policy
    obs_dim = _check_obs_space(model.observation_space)
    aspace = model.action_space
    if isinstance(aspace, spaces.Discrete):
        kind, nvec = "discrete", [int(aspace.n)]
    elif isinstance(aspace, spaces.MultiDiscrete) and aspace.nvec.ndim == 1:
        kind, nvec = "multidiscrete", [int(n) for n in aspace.nvec]
    else:
        raise BundleError(f"action space {aspace} is not supported (Discrete or MultiDiscrete)")

    if algo == "DQN":
        from stable_baselines3.dqn.policies import DQNPolicy

        if not isinstance(policy, DQNPolicy) or kind != "discrete":
            raise BundleError("DQN export needs MlpPolicy with a Discrete action space")
        qnet = policy.q_net
        _check_features(qnet, "features_extractor")
        net = PolicyNet(algo, kind, nvec, False, "q_values", obs_dim)
        _add_mlp(net, qnet.q_net, "DQN q_net")
        _check_output(net, nvec)
        return net

    from stable_baselines3.common.distributions import (
        CategoricalDistribution,
        MultiCategoricalDistribution,
    )
    from stable_baselines3.common.policies import ActorCriticPolicy

    cls = type(policy).__name__
    if algo == "MaskablePPO":
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

        base = MaskableActorCriticPolicy
    else:
        base = ActorCriticPolicy
    if not isinstance(policy, base) or "Recurrent" in cls or "Lstm" in cls:
        raise BundleError(f"policy class {cls} cannot be exported for {algo} (need MlpPolicy)")
    for attr in ("features_extractor", "pi_features_extractor"):
        _check_features(policy, attr)
    categorical = (CategoricalDistribution, MultiCategoricalDistribution)
    if algo == "MaskablePPO":
        from sb3_contrib.common.maskable.distributions import (
            MaskableCategoricalDistribution,
            MaskableMultiCategoricalDistribution,
        )

        categorical = (MaskableCategoricalDistribution, MaskableMultiCategoricalDistribution)
    dist = policy.action_dist
    if not isinstance(dist, categorical):
        raise BundleError(f"action distribution {type(dist).__name__} is not supported")
    extractor = policy.mlp_extractor
    if type(extractor).__name__ != "MlpExtractor":
        raise BundleError(f"mlp_extractor {type(extractor).__name__} is not supported")
    net = PolicyNet(algo, kind, nvec, algo == "MaskablePPO", "logits", obs_dim)
    _add_mlp(net, extractor.policy_net, "policy_net")
    _add_mlp(net, policy.action_net, "action_net")
    _check_output(net, nvec)
    return net


def _check_output(net: PolicyNet, nvec: list[int]) -> None:
    need = int(sum(nvec)) if net.kind == "multidiscrete" else int(nvec[0])
    if not net.W or net.W[0].shape[0] != net.obs_dim or net.W[-1].shape[1] != need:
        raise BundleError(
            f"network maps {net.W[0].shape[0] if net.W else '?'} inputs to "
            f"{net.W[-1].shape[1] if net.W else '?'} outputs; expected {net.obs_dim} -> {need}"
        )
    if net.layers[-1]["activation"] != "identity":
        raise BundleError("the output layer has an activation; cannot be exported exactly")
