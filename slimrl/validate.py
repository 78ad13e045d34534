"""Field-path validation shared by scenarios, profiles and hyperparameters, and bounded YAML.

A :class:`Fields` checker raises the caller's error class with messages that name the source and
the dotted field path, e.g. ``envs/x.yaml: reward.miss_penalty: expected a number >= 0, got
'abc'``. Offending values are quoted through :func:`short`, so an error message never grows with
the input. :func:`read_yaml` reads a YAML file of bounded size and bounded expanded node count
(an alias "billion laughs" document is refused before anything walks it). :func:`read_npz` reads a
numpy ``.npz`` archive of bounded size without pickle: each member's declared size and the total
are checked before anything is decompressed (a zip bomb is refused unread).

Declarative checks (:class:`Number`, :class:`String`, ...) describe a dataclass field in its
``metadata["check"]``; :meth:`Fields.build` validates a mapping into that dataclass, taking every
default from the dataclass itself, so a schema is declared once.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import reprlib
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slimrl.errors import SlimrlError

#: largest YAML file read (bytes)
MAX_YAML_BYTES = 1 << 20
#: most nodes a YAML document may expand to (aliases counted at every use)
MAX_YAML_NODES = 100_000
#: deepest YAML nesting
MAX_YAML_DEPTH = 100
#: largest ``.npz`` file read (bytes on disk)
MAX_NPZ_FILE_BYTES = 64 << 20
#: most arrays in one ``.npz``
MAX_NPZ_MEMBERS = 256
#: largest array of an ``.npz`` once decompressed (bytes, as declared in the zip directory)
MAX_NPZ_MEMBER_BYTES = 64 << 20
#: largest sum of an ``.npz``'s arrays once decompressed (bytes)
MAX_NPZ_TOTAL_BYTES = 256 << 20
#: array kinds :func:`read_npz` accepts: bool, signed and unsigned integers, floats
NPZ_KINDS = "biuf"

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 3


def short(value: Any) -> str:
    """``repr(value)``, bounded in length and depth (for error messages)."""
    return _repr.repr(value)


def read_bytes(
    path: str | os.PathLike, max_bytes: int, error: type[SlimrlError], where: str | None = None
) -> bytes:
    """The content of the regular file ``path``, refused with ``error`` beyond ``max_bytes``.

    The file is opened without blocking and checked to be a regular file (a FIFO or device is
    refused, never waited on); reading stops one byte past the limit.
    """
    path = Path(path)
    where = where or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{where}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{where}: larger than {max_bytes} bytes; refusing to read it")
    return data


def read_yaml(
    path: str | os.PathLike,
    error: type[SlimrlError],
    where: str | None = None,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
) -> Any:
    """Parse a YAML file safely, refusing huge files and alias bombs with ``error``."""
    path = Path(path)
    where = where or str(path)
    data = read_bytes(path, MAX_YAML_BYTES, error, where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: cannot read ({exc})") from None
    return parse_yaml(text, error, where, loader)


def parse_yaml(
    text: str,
    error: type[SlimrlError],
    where: str = "YAML",
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
) -> Any:
    """Parse YAML text safely (bounded expansion); ``error`` names ``where`` on failure.

    ``loader`` is :class:`yaml.SafeLoader` or a subclass of it (never a loader that builds
    arbitrary Python objects); the document is composed once, its nodes counted with aliases
    expanded, then constructed.
    """
    if not (isinstance(loader, type) and issubclass(loader, yaml.SafeLoader)):
        raise TypeError(f"parse_yaml: {loader!r} is not a SafeLoader subclass")
    if len(text) > MAX_YAML_BYTES:
        raise error(f"{where}: larger than {MAX_YAML_BYTES} characters; not a configuration")
    ld = None
    try:
        ld = loader(text)  # the reader refuses control characters here already
        node = ld.get_single_node()
        if node is None:
            return None
        _count_nodes(node, where, error)
        return ld.construct_document(node)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML ({exc})".replace("\n", " ")) from None
    except RecursionError:
        raise error(f"{where}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        # a tagged scalar the constructors reject (e.g. ``!!int x``, a bad ``!!timestamp``)
        raise error(f"{where}: not valid YAML ({type(exc).__name__}: {short(str(exc))})") from None
    finally:
        if ld is not None:
            ld.dispose()


def _count_nodes(root: yaml.Node, where: str, error: type[SlimrlError]) -> None:
    """Count nodes with aliases expanded (memoised per node), refusing more than the limit."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise error(f"{where}: YAML nested more than {MAX_YAML_DEPTH} levels deep")
        key = id(node)
        if key in sizes:
            return sizes[key]
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if n > MAX_YAML_NODES:
            raise error(f"{where}: YAML expands to more than {MAX_YAML_NODES} nodes (aliases?)")
        sizes[key] = n
        return n

    size(root, 0)


# -- bounded npz --------------------------------------------------------------------------------
def read_npz(
    source: str | os.PathLike | bytes,
    error: type[SlimrlError],
    where: str | None = None,
    *,
    max_file_bytes: int = MAX_NPZ_FILE_BYTES,
    max_members: int = MAX_NPZ_MEMBERS,
    max_member_bytes: int = MAX_NPZ_MEMBER_BYTES,
    max_total_bytes: int = MAX_NPZ_TOTAL_BYTES,
    kinds: str = NPZ_KINDS,
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (a path, or its bytes already read), within bounded memory.

    Refused with ``error`` (naming ``where`` and the member): a file over ``max_file_bytes``,
    more than ``max_members`` arrays, a member whose declared decompressed size is over
    ``max_member_bytes`` or that brings the total over ``max_total_bytes`` (checked on the zip
    directory, before anything is decompressed), a dtype outside ``kinds`` (never pickle), a
    header that disagrees with the member's size, a corrupt or truncated member.
    """
    if isinstance(source, bytes | bytearray):
        data, where = bytes(source), where or "npz"
        if len(data) > max_file_bytes:
            raise error(f"{where}: larger than {max_file_bytes} bytes; refusing to read it")
    else:
        where = where or str(source)
        data = read_bytes(source, max_file_bytes, error, where)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise error(f"{where}: not an .npz archive ({short(str(exc))})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise error(f"{where}: {len(infos)} arrays; at most {max_members} are read")
        total = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or len(name) > 200 or not name.isprintable():
                raise error(f"{where}: member {short(name)} is not a .npy array")
            if info.flag_bits & 0x1 or info.compress_type not in (
                zipfile.ZIP_STORED,
                zipfile.ZIP_DEFLATED,
            ):
                raise error(f"{where}: {short(name)}: encrypted or unsupported compression")
            if info.file_size > max_member_bytes:
                raise error(
                    f"{where}: {short(name)} declares {info.file_size} bytes decompressed; "
                    f"at most {max_member_bytes} per array"
                )
            total += info.file_size
            if total > max_total_bytes:
                raise error(
                    f"{where}: the arrays declare more than {max_total_bytes} bytes decompressed "
                    "in total; refusing to read them"
                )
        out: dict[str, np.ndarray] = {}
        for info in infos:
            key = info.filename[: -len(".npy")]
            if key in out:
                raise error(f"{where}: array {short(key)} appears twice")
            out[key] = _read_member(zf, info, error, where, kinds)
    return out


def _read_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, error: type[SlimrlError], where: str, kinds: str
) -> np.ndarray:
    fmt = np.lib.format
    name = short(info.filename)
    try:
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None:
                raise error(f"{where}: {name}: dtype {dtype.str} not allowed (expected numbers)")
            count = 1
            for n in shape:
                count *= int(n)
            nbytes = count * dtype.itemsize
            if f.tell() + nbytes != info.file_size:
                raise error(
                    f"{where}: {name}: header says {nbytes} bytes of data, the member holds "
                    f"{info.file_size - f.tell()}"
                )
            buf = f.read(nbytes)
            if len(buf) != nbytes or f.read(1):  # reading to the end checks the CRC
                raise error(f"{where}: {name}: truncated")
    except SlimrlError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, SyntaxError) as exc:
        raise error(f"{where}: {name}: corrupt ({short(str(exc))})") from None
    arr = np.frombuffer(buf, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


# -- declarative checks -----------------------------------------------------------------------
class Check:
    """A field check: ``check(value, path, fields) -> converted value`` (raises on bad input)."""

    def __call__(self, value: Any, path: str, f: Fields) -> Any:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Number(Check):
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    integer: bool = False

    def __call__(self, value: Any, path: str, f: Fields) -> Any:
        return f.number(value, path, gt=self.gt, ge=self.ge, le=self.le, integer=self.integer)


@dataclasses.dataclass(frozen=True)
class String(Check):
    choices: tuple[str, ...] | None = None

    def __call__(self, value: Any, path: str, f: Fields) -> str:
        return f.string(value, path, self.choices)


@dataclasses.dataclass(frozen=True)
class Text(Check):
    """Any string, empty allowed (descriptions)."""

    def __call__(self, value: Any, path: str, f: Fields) -> str:
        if not isinstance(value, str):
            raise f.error(path, f"expected a string, got {short(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Boolean(Check):
    def __call__(self, value: Any, path: str, f: Fields) -> bool:
        return f.boolean(value, path)


@dataclasses.dataclass(frozen=True)
class File(Check):
    """A path resolved by ``f.resolve`` (next to the source file, then the slimrl root)."""

    kind: str = "file"

    def __call__(self, value: Any, path: str, f: Fields) -> Path:
        return f.file(value, path, self.kind)


@dataclasses.dataclass(frozen=True)
class Nested(Check):
    """A mapping validated into the dataclass ``cls`` by :meth:`Fields.build`."""

    cls: type

    def __call__(self, value: Any, path: str, f: Fields) -> Any:
        return f.build(self.cls, value, path)


@dataclasses.dataclass(frozen=True)
class Custom(Check):
    """A function ``fn(value, path, fields)`` for fields no generic check describes."""

    fn: Callable[[Any, str, Fields], Any]

    def __call__(self, value: Any, path: str, f: Fields) -> Any:
        return self.fn(value, path, f)


def spec(default: Any = dataclasses.MISSING, check: Check | None = None, **kw: Any) -> Any:
    """A dataclass field with its check (``default`` MISSING: the field is required)."""
    return dataclasses.field(default=default, metadata={"check": check}, **kw)


class Fields:
    """Field-path-aware validation helpers raising ``error_cls`` (a :class:`SlimrlError`).

    ``where`` names the source (a file); ``touched`` holds field paths that came from overrides
    (their errors say so); ``base`` is the folder relative paths are resolved against;
    ``context`` carries whatever cross-field checks need (e.g. a loaded model profile).
    """

    def __init__(
        self,
        where: str,
        error_cls: type[SlimrlError],
        touched: Iterable[str] = (),
        base: Path | None = None,
        resolve: Callable[[str, Path], Path] | None = None,
    ) -> None:
        self.where = where
        self.error_cls = error_cls
        self.touched = set(touched)
        self.base = base or Path.cwd()
        self._resolve = resolve
        self.context: dict[str, Any] = {}

    def error(self, path: str, msg: str) -> SlimrlError:
        tag = " (override)" if path in self.touched else ""
        label = path or "top level"
        return self.error_cls(f"{self.where}: {label}{tag}: {msg}")

    # -- structure ------------------------------------------------------------------------------
    def mapping(
        self, value: Any, path: str, known: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        known = list(known)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(
                path, f"expected a mapping with fields {', '.join(known)}, got {short(value)}"
            )
        for key in value:
            if key not in known:
                sub = f"{path}.{key}" if path else str(key)
                raise self.error(sub, f"unknown field (known: {', '.join(known)})")
        for key in required:
            if value.get(key) is None:
                raise self.error(f"{path}.{key}" if path else key, "missing (required)")
        return dict(value)

    def build(self, cls: type, value: Any, path: str) -> Any:
        """Validate the mapping ``value`` into the dataclass ``cls``.

        Fields whose metadata has a ``check`` are read from the mapping (absent: the field's
        default; no default: "missing (required)"); fields without one are not part of the
        mapping. A ``cls.validated(obj, fields, path)`` classmethod, if any, then runs the
        cross-field checks and may return a replaced object.
        """
        fields = [fd for fd in dataclasses.fields(cls) if fd.metadata.get("check") is not None]
        required = [fd.name for fd in fields if _no_default(fd)]
        data = self.mapping(value, path, [fd.name for fd in fields], required)
        kwargs = {}
        for fd in fields:
            sub = f"{path}.{fd.name}" if path else fd.name
            check = fd.metadata["check"]
            if fd.name not in data:
                if isinstance(check, Nested) and not _no_default(fd) and _default(fd) is not None:
                    kwargs[fd.name] = check(None, sub, self)  # its own defaults and rules
                continue  # the dataclass default applies
            raw = data[fd.name]
            if raw is None and not _no_default(fd) and _default(fd) is None:
                kwargs[fd.name] = None  # an explicit null for an optional field
                continue
            kwargs[fd.name] = check(raw, sub, self)
        obj = cls(**kwargs)
        hook = getattr(cls, "validated", None)
        return hook(obj, self, path) if hook is not None else obj

    # -- scalars ------------------------------------------------------------------------------
    def number(
        self,
        value: Any,
        path: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
        integer: bool = False,
    ) -> Any:
        kind = "an integer" if integer else "a number"
        bounds = []
        if gt is not None:
            bounds.append(f"> {gt:g}")
        if ge is not None:
            bounds.append(f">= {ge:g}")
        if le is not None:
            bounds.append(f"<= {le:g}")
        expect = f"expected {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            ok = False
        if ok and integer and not (isinstance(value, int) or float(value).is_integer()):
            ok = False
        if (
            not ok
            or (gt is not None and not value > gt)
            or (ge is not None and not value >= ge)
            or (le is not None and not value <= le)
        ):
            raise self.error(path, f"{expect}, got {short(value)}")
        return int(value) if integer else float(value)

    def string(self, value: Any, path: str, choices: Iterable[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, f"expected a non-empty string, got {short(value)}")
        if choices is not None and value not in choices:
            raise self.error(path, f"expected one of {', '.join(choices)}, got {short(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {short(value)}")
        return value

    def file(self, value: Any, path: str, kind: str = "file") -> Path:
        """A file (``kind="file"``) or a file or folder (``kind="path"``) that must exist."""
        s = self.string(value, path)
        p = self._resolve(s, self.base) if self._resolve else (self.base / s).resolve()
        ok = (p.is_dir() or p.is_file()) if kind == "path" else p.is_file()
        if not ok:
            raise self.error(path, f"{kind} not found: {p}")
        return p


def _no_default(fd: dataclasses.Field) -> bool:
    return fd.default is dataclasses.MISSING and fd.default_factory is dataclasses.MISSING


def _default(fd: dataclasses.Field) -> Any:
    if fd.default is not dataclasses.MISSING:
        return fd.default
    return fd.default_factory()  # type: ignore[misc]
