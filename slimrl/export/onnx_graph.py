"""Build the policy's ONNX graph directly with ``onnx.helper`` (fixed opset, no torch tracing).

Graph: ``obs`` (float32, N x D) -> VecNormalize (in float64, as SB3 does: Sub, Div, Clip) ->
Gemm/activation stack -> ``logits`` -> [Where(action_mask)] -> per action dimension:
[LogSumExp-normalise, Softmax] -> ArgMax -> ``action`` (int64, N x dims).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from slimrl.bundle.controller import HUGE_NEG
from slimrl.export.policy_net import PolicyNet

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime that supports opset 17

_ACT_OPS = {
    "tanh": "Tanh",
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "sigmoid": "Sigmoid",
}


def build_onnx(
    net: PolicyNet,
    obs_mean: np.ndarray | None = None,
    obs_std: np.ndarray | None = None,
    clip_obs: float | None = None,
) -> onnx.ModelProto:
    """The policy as an ONNX model; normalisation is included when ``obs_mean`` is given."""
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    x = "obs"
    if obs_mean is not None:
        nodes += [
            helper.make_node("Cast", [x], ["obs_f64"], to=TensorProto.DOUBLE),
            helper.make_node(
                "Sub", ["obs_f64", const("obs_mean", obs_mean.astype(np.float64))], ["obs_centered"]
            ),
            helper.make_node(
                "Div",
                ["obs_centered", const("obs_std", obs_std.astype(np.float64))],
                ["obs_scaled"],
            ),
            helper.make_node(
                "Clip",
                [
                    "obs_scaled",
                    const("clip_lo", np.array(-clip_obs, np.float64)),
                    const("clip_hi", np.array(clip_obs, np.float64)),
                ],
                ["obs_clipped"],
            ),
            helper.make_node("Cast", ["obs_clipped"], ["obs_norm"], to=TensorProto.FLOAT),
        ]
        x = "obs_norm"
    for i, (W, b, layer) in enumerate(zip(net.W, net.b, net.layers, strict=True)):
        last = i == len(net.W) - 1
        out = "logits" if last else f"h{i}"
        pre = out if layer["activation"] == "identity" else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, const(f"W{i}", W), const(f"b{i}", b)], [pre]))
        if layer["activation"] != "identity":
            attrs = {"alpha": layer["alpha"]} if "alpha" in layer else {}
            nodes.append(helper.make_node(_ACT_OPS[layer["activation"]], [pre], [out], **attrs))
        x = out

    n_out = int(net.W[-1].shape[1])
    inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", net.obs_dim])]
    scores = "logits"
    if net.maskable:
        inputs.append(helper.make_tensor_value_info("action_mask", TensorProto.BOOL, ["N", n_out]))
        nodes.append(
            helper.make_node(
                "Where",
                ["action_mask", "logits", const("huge_neg", np.array(HUGE_NEG, np.float32))],
                ["masked_logits"],
            )
        )
        scores = "masked_logits"
    sizes = net.nvec if net.kind == "multidiscrete" else [n_out]
    offsets = np.cumsum([0, *sizes])
    parts = []
    for d, (a, e) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        seg = scores
        if len(sizes) > 1:
            seg = f"scores{d}"
            nodes.append(
                helper.make_node(
                    "Slice",
                    [
                        scores,
                        const(f"start{d}", np.array([a], np.int64)),
                        const(f"end{d}", np.array([e], np.int64)),
                        const(f"axis{d}", np.array([1])),
                    ],
                    [seg],
                )
            )
        if net.head == "logits":
            # SB3's deterministic choice is argmax(softmax(l - logsumexp(l))) in float32: the
            # same steps here, so near-ties resolve as in torch (see categorical_mode).
            nodes += [
                helper.make_node("ReduceLogSumExp", [seg], [f"lse{d}"], axes=[1], keepdims=1),
                helper.make_node("Sub", [seg, f"lse{d}"], [f"norm{d}"]),
                helper.make_node("Softmax", [f"norm{d}"], [f"probs{d}"], axis=1),
            ]
            seg = f"probs{d}"
        out = "action" if len(sizes) == 1 else f"action{d}"
        nodes.append(helper.make_node("ArgMax", [seg], [out], axis=1, keepdims=1))
        parts.append(out)
    if len(sizes) > 1:
        nodes.append(helper.make_node("Concat", parts, ["action"], axis=1))

    outputs = [
        helper.make_tensor_value_info("action", TensorProto.INT64, ["N", len(sizes)]),
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_out]),
    ]
    graph = helper.make_graph(nodes, "slimrl_policy", inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="slimrl",
        doc_string=f"{net.algo} policy exported by slimrl ({net.head} head)",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model
