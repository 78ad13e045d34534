"""Reading and writing the RL Baselines3 Zoo's ``config.yml`` / ``args.yml``."""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import RunError
from slimrl.validate import read_yaml, short


class _ZooLoader(yaml.SafeLoader):
    """Safe YAML loader that reads the python tags rl-zoo writes (OrderedDict, tuple) as data."""


def _ordered_dict(loader: yaml.Loader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True) or ([],)
    return {k: v for k, v in pairs}


def _python_object(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if suffix.endswith("collections.OrderedDict"):
        return _ordered_dict(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


_ZooLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_object)


def read_zoo_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """An rl-zoo ``config.yml`` / ``args.yml`` as a plain dict ({} if the file is empty)."""
    path = Path(path)
    data = read_yaml(path, RunError, str(path), loader=_ZooLoader)  # bounded, safe subclass
    if data is None:
        return {}
    if isinstance(data, list):  # an OrderedDict dumped without its tag
        try:
            data = dict(data)
        except (TypeError, ValueError):
            raise RunError(f"{path}: expected a mapping, got {short(data)}") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping, got {short(data)}")
    return data


def parse_maybe_literal(value: Any) -> Any:
    """rl-zoo stores some values as Python source strings (``"dict(norm_obs=True)"``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("dict(") and text.endswith(")"):
        tree = ast.parse(text, mode="eval").body
        return {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords}
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return value


def dump_yaml(data: Mapping[str, Any], sort_keys: bool = True) -> str:
    """YAML text of plain data (paths as strings, numpy scalars as numbers), keys sorted
    unless ``sort_keys`` is False (mappings whose order means something: a scenario's)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if hasattr(v, "item") and callable(v.item):
            return v.item()
        return v

    return yaml.safe_dump(plain(dict(data)), sort_keys=sort_keys, default_flow_style=False)
