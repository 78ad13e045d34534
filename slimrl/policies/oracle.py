"""``oracle``: clairvoyant and greedy, frame by frame (a reference, not a ceiling).

For each frame it asks the env what every mode would truly yield (``lookahead()``: the true
compute time with this frame's jitter, the true transfer over the trace, the true edge queue and
service time) and picks the allowed mode with the best expected reward per second of the time
the frame occupies (the objective is reward per second of trace), where the accuracy term is the
profile's table accuracy: it knows the channel and the edge, not which test sample a mode would
get right. Greedy, it ignores that a choice also moves when the next frame starts, so it is no
upper bound: ``optimal`` is. Ties go to the smaller flat index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from slimrl.policies.base import BatchPolicy, ModeTable, PolicyContext, register_policy


class Oracle(BatchPolicy):
    """Reads ``infos["lookahead"]`` (dict of (N, K, B) arrays), or calls ``env.lookahead()``."""

    name = "oracle"
    needs_lookahead = True

    def __init__(self, table: ModeTable, env: Any = None) -> None:
        self.env = env
        self._allowed = table.allowed
        super().__init__(table)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        n = len(observations)
        la = infos.get("lookahead")
        if la is None:
            if self.env is None:
                raise RuntimeError("oracle: no infos['lookahead'] and no env to ask")
            env = getattr(self.env, "unwrapped", self.env)
            la = env.lookahead()
        reward = np.asarray(la["reward"], dtype=np.float64).reshape(n, -1)
        busy = np.asarray(la["busy_ms"], dtype=np.float64).reshape(n, -1)
        return np.where(self._allowed, reward / busy, -np.inf).argmax(axis=1)


@register_policy("oracle", help="clairvoyant greedy: each frame's best mode, knowing its outcome")
def _oracle(arg: str, ctx: PolicyContext) -> Oracle:
    return Oracle(ctx.table, env=ctx.env)
