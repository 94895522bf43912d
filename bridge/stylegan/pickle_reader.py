"""Read NVIDIA StyleGAN network pickles as *data*, never as code.

A network pickle from NVlabs/stylegan2-ada-pytorch or NVlabs/stylegan3 is a program: NVIDIA's loader executes
the Python source stored inside it (``meta['module_src']``) and plain ``pickle.load`` would call any global
the file names. This module instead:

- unpickles with an allow-list (:data:`ALLOWED_GLOBALS`): every other global is refused with
  :class:`UnsafePickleError` naming ``module.name`` *before* anything is called;
- turns each persistent network object into a :class:`NetworkRecord` (class name, init arguments, plain
  attributes, tensors, child records) and never looks at ``module_src`` except to hash it;
- decodes torch's legacy storage blobs (``torch.storage._load_from_bytes``) itself, with a second
  restricted unpickler, instead of handing them to ``torch.load``;
- reads TensorFlow-era pickles (a tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network``) the same way:
  each Network becomes a :class:`TFNetworkRecord` holding its kwargs and numpy variables, and its
  ``build_module_src`` is hashed, never run (conversion: :mod:`bridge.stylegan.tf_pickle`).

Anything that is not a readable network snapshot (truncated, random bytes, a pickle of something else)
raises :class:`NetworkLoadError` with a one-line reason. The format is described in
``shared/notes/stylegan_pickles.md``.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "NetworkLoadError", "UnsafePickleError", "NetworkRecord", "TFNetworkRecord", "read_snapshot",
    "ALLOWED_GLOBALS", "network_records",
]

# Files this big get a tqdm progress bar while they are read (a 1024px SG3-R snapshot is ~1 GB).
PROGRESS_MIN_BYTES = 64 << 20


class NetworkLoadError(Exception):
    """The file is not a network snapshot we can read (truncated, corrupt, wrong kind of file)."""


class UnsafePickleError(NetworkLoadError):
    """The pickle asks for a global outside the allow-list; nothing it names was called."""


# --------------------------------------------------------------------------------------------- records
class NetworkRecord:
    """One persistent network object (a ``torch.nn.Module`` in NVIDIA's code) seen as plain data.

    ``params`` and ``buffers`` hold this module's own tensors (``None`` buffers are skipped, as torch does);
    ``modules`` holds the child records in their pickled order. Names follow NVIDIA's attribute names, so
    :meth:`state_dict` yields exactly the dotted names ``torch.nn.Module.state_dict`` would.
    """

    def __init__(self, class_name: str, init_args: tuple, init_kwargs: dict, attrs: dict,
                 params: dict, buffers: dict, modules: dict, non_persistent: set,
                 version: Any = None, source_sha256: str = "", source_title: str = ""):
        self.class_name = class_name
        self.init_args = init_args
        self.init_kwargs = init_kwargs
        self.attrs = attrs
        self.params = params
        self.buffers = buffers
        self.modules = modules
        self.non_persistent = non_persistent
        self.version = version
        self.source_sha256 = source_sha256  # hash of module_src (the code itself is dropped, never run)
        self.source_title = source_title    # first docstring line of module_src, e.g. the paper title

    def __repr__(self) -> str:
        return (f"NetworkRecord({self.class_name}, {len(self.params)} params, {len(self.buffers)} buffers, "
                f"modules={list(self.modules)})")

    def __setstate__(self, state):  # a BUILD opcode aimed at a record: refuse instead of mutating it
        raise UnsafePickleError("pickle tries to set state on a network record (BUILD on a persistent object)")

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "NetworkRecord"]]:
        """Pre-order walk, like ``torch.nn.Module.named_modules`` (the root has name ``''``)."""
        yield prefix, self
        for name, child in self.modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        for path, rec in self.named_modules():
            for name, tensor in rec.params.items():
                yield (f"{path}.{name}" if path else name), tensor

    def named_buffers(self) -> Iterator[tuple[str, torch.Tensor]]:
        for path, rec in self.named_modules():
            for name, tensor in rec.buffers.items():
                yield (f"{path}.{name}" if path else name), tensor

    def submodule(self, dotted: str) -> "NetworkRecord":
        """The record at a dotted path (``'synthesis.b4'``); KeyError if there is none."""
        rec = self
        for part in filter(None, dotted.split(".")):
            rec = rec.modules[part]
        return rec

    def state_dict(self) -> "OrderedDict[str, torch.Tensor]":
        """All persistent tensors of the tree under NVIDIA's dotted names, in torch's state_dict order."""
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for path, rec in self.named_modules():
            pre = f"{path}." if path else ""
            for name, tensor in rec.params.items():
                out[pre + name] = tensor
            for name, tensor in rec.buffers.items():
                if name not in rec.non_persistent:
                    out[pre + name] = tensor
        return out

    def num_params(self) -> int:
        return sum(t.numel() for _, t in self.named_parameters())


def network_records(snapshot: dict) -> dict[str, "NetworkRecord | TFNetworkRecord"]:
    """The snapshot's entries that are network records (``G``, ``D``, ``G_ema``, ``augment_pipe``...; or a
    TensorFlow-era file's ``G``, ``D``, ``Gs``)."""
    return {k: v for k, v in snapshot.items() if isinstance(v, (NetworkRecord, TFNetworkRecord))}


# Module fields torch itself keeps in __dict__ (their key sets vary between versions: match loosely).
_TORCH_FIELDS = {"training", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
                 "_init_args", "_init_kwargs", "_is_full_backward_hook", "_compiled_call_impl"}


def _is_torch_field(key: str) -> bool:
    return key in _TORCH_FIELDS or "hook" in key


def _as_mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NetworkLoadError(f"malformed network object: {what} is {type(value).__name__}, expected a dict")
    return value


def _source_title(src: str) -> str:
    """First line of the module docstring of ``module_src``, found by regex (the text is never run)."""
    m = re.match(r'\s*(?:#[^\n]*\n\s*)*[rRuU]?("""|\'\'\')\s*([^\n]*)', src)
    return m.group(2).split(m.group(1))[0].strip() if m else ""


def _record_from_meta(meta: Any) -> NetworkRecord:
    """Build a record from the ``meta`` dict of ``_reconstruct_persistent_obj`` (NVIDIA runs its source;
    we only read the state)."""
    if not isinstance(meta, dict):
        raise NetworkLoadError(f"malformed persistent object: meta is {type(meta).__name__}, expected a dict")
    if meta.get("type") != "class":
        raise NetworkLoadError(f"unsupported persistent object type {meta.get('type')!r} (expected 'class')")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str):
        raise NetworkLoadError("malformed persistent object: class_name missing")
    state = _as_mapping(meta.get("state"), f"{class_name}.state")
    src = meta.get("module_src") or ""
    src = src if isinstance(src, str) else ""

    params = {k: v for k, v in _as_mapping(state.get("_parameters"), f"{class_name}._parameters").items()
              if v is not None}
    buffers = {k: v for k, v in _as_mapping(state.get("_buffers"), f"{class_name}._buffers").items()
               if v is not None}
    modules = _as_mapping(state.get("_modules"), f"{class_name}._modules")
    for kind, table in (("parameter", params), ("buffer", buffers)):
        for name, value in table.items():
            if not isinstance(value, torch.Tensor):
                raise NetworkLoadError(f"malformed {class_name}: {kind} {name!r} is {type(value).__name__}")
    for name, value in modules.items():
        if value is not None and not isinstance(value, NetworkRecord):
            raise NetworkLoadError(f"malformed {class_name}: submodule {name!r} is {type(value).__name__}")
    init_args = state.get("_init_args", ())
    init_kwargs = state.get("_init_kwargs", {})
    return NetworkRecord(
        class_name=class_name,
        init_args=tuple(init_args) if isinstance(init_args, (tuple, list)) else (),
        init_kwargs=dict(init_kwargs) if isinstance(init_kwargs, dict) else {},
        attrs={k: v for k, v in state.items() if not _is_torch_field(k)},
        params=dict(params), buffers=dict(buffers),
        modules={k: v for k, v in modules.items() if v is not None},
        non_persistent=set(state.get("_non_persistent_buffers_set") or ()),
        version=meta.get("version"),
        source_sha256=hashlib.sha256(src.encode("utf-8", "replace")).hexdigest() if src else "",
        source_title=_source_title(src),
    )


# ------------------------------------------------------------------------------------- tensor payload
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    """What ``torch.FloatStorage`` & co. stand for inside a storage blob: just a dtype."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


class _BlobHeaderUnpickler(pickle.Unpickler):
    """Reads the small pickles at the head of a legacy storage blob. Only ``torch.<X>Storage`` globals."""

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise UnsafePickleError(f"refused global {module}.{name} inside a tensor storage blob")

    def persistent_load(self, pid):
        if (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            return ("storage", pid[1].dtype, pid[2], pid[4])
        raise NetworkLoadError(f"unsupported persistent id in tensor storage blob: {pid!r:.80}")


def _load_from_bytes(blob: Any) -> torch.Tensor:
    """Decode one legacy ``torch.save`` file holding one storage into a flat tensor (copying the bytes).

    Layout: pickle(magic), pickle(1001), pickle(sys info), pickle(storage persistent id), pickle(keys),
    then per key an int64 element count and the raw data.
    """
    if not isinstance(blob, (bytes, bytearray)):
        raise NetworkLoadError(f"tensor storage blob is {type(blob).__name__}, expected bytes")
    f = io.BytesIO(blob)

    def next_pickle():
        return _BlobHeaderUnpickler(f).load()

    if next_pickle() != _LEGACY_MAGIC:
        raise NetworkLoadError("tensor storage blob has a wrong magic number")
    if next_pickle() != _LEGACY_PROTOCOL:
        raise NetworkLoadError("tensor storage blob has an unsupported protocol version")
    info = next_pickle()
    little = bool(info.get("little_endian", True)) if isinstance(info, dict) else True
    storage = next_pickle()
    keys = next_pickle()
    if not (isinstance(storage, tuple) and storage[:1] == ("storage",)):
        raise NetworkLoadError("tensor storage blob does not hold a storage")
    _, dtype, key, numel = storage
    if keys != [key]:
        raise NetworkLoadError(f"tensor storage blob lists keys {keys!r:.80}, expected one storage")
    (count,) = struct.unpack("<q" if little else ">q", f.read(8).rjust(8, b"\0"))
    itemsize = torch.empty((), dtype=dtype).element_size()
    data = blob[f.tell():f.tell() + count * itemsize]
    if count != numel or len(data) != count * itemsize:
        raise NetworkLoadError(f"tensor storage blob is truncated ({len(data)} bytes for {numel} elements)")
    if count == 0:
        return torch.empty(0, dtype=dtype)
    flat = torch.frombuffer(bytearray(data), dtype=dtype)
    if not little and itemsize > 1:
        flat = torch.from_numpy(flat.numpy().byteswap())
    return flat


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise NetworkLoadError(f"malformed tensor: {what} {value!r:.60}")
    return tuple(value)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> torch.Tensor:
    """A strided view of a decoded storage, bounds-checked (torch's own helper trusts the file)."""
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise NetworkLoadError("malformed tensor: its storage is not a decoded storage blob")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise NetworkLoadError(f"malformed tensor: storage offset {storage_offset!r:.40}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise NetworkLoadError("malformed tensor: size and stride differ in length")
    if 0 not in size:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel():
            raise NetworkLoadError(f"malformed tensor: view {size} reaches past its storage ({storage.numel()})")
    return storage.as_strided(size, stride, storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> torch.Tensor:
    """Snapshots hold frozen parameters: the plain tensor is all we need (the record knows it is a param)."""
    if not isinstance(data, torch.Tensor):
        raise NetworkLoadError("malformed parameter: not a tensor")
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None) -> torch.Tensor:
    if state:
        raise NetworkLoadError("unsupported parameter with Python attributes")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


# --------------------------------------------------------------------------------------- allow-list
class _FrozenType(type):
    """Metaclass for classes handed to the pickle: a BUILD opcode cannot patch their attributes."""

    def __setattr__(cls, name, value):
        raise UnsafePickleError(f"pickle tries to set attribute {name!r} on {cls.__name__}")


class EasyDict(dict, metaclass=_FrozenType):
    """Stands in for ``dnnlib.util.EasyDict`` (a dict subclass used for kwargs); plain data here."""


class TFNetworkRecord(metaclass=_FrozenType):
    """Stands in for ``dnnlib.tflib.network.Network`` (TensorFlow-era StyleGAN2 pickles), as plain data.

    Such a pickle creates the object empty and hands its state dict to ``__setstate__``; TensorFlow's class
    would then run ``build_module_src`` (Python source) to rebuild its graph. Here the state is only checked
    and kept: ``version``, ``name``, ``static_kwargs``, ``components`` (child records), ``build_func_name`` and
    ``variables`` (name -> numpy array). The source is hashed, never run. A second BUILD is refused.
    """

    version: int
    name: str
    static_kwargs: dict
    components: dict
    build_func_name: str
    variables: dict
    source_sha256: str

    def __setstate__(self, state: Any) -> None:
        if "variables" in self.__dict__:
            raise UnsafePickleError("pickle sets the state of a TensorFlow network twice")
        state = _as_mapping(state, "TensorFlow network state")
        name = state.get("name")
        version = state.get("version")
        version = int(version) if isinstance(version, np.integer) else version
        if not isinstance(version, int) or isinstance(version, bool):
            raise NetworkLoadError(f"malformed TensorFlow network {name!r}: version is {version!r:.40}")
        components = _as_mapping(state.get("components"), f"{name}.components")
        for key, child in components.items():
            if not isinstance(child, TFNetworkRecord):
                raise NetworkLoadError(f"malformed TensorFlow network {name!r}: component {key!r} is "
                                       f"{type(child).__name__}")
        variables = {}
        for item in state.get("variables") or ():
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], (np.ndarray, np.generic))):
                raise NetworkLoadError(f"malformed TensorFlow network {name!r}: a variable is not (name, array)")
            variables[item[0]] = np.asarray(item[1])
        src = state.get("build_module_src")
        src = src if isinstance(src, str) else ""
        self.__dict__.update(
            version=version, name=str(name), static_kwargs=dict(_as_mapping(state.get("static_kwargs"),
                                                                              f"{name}.static_kwargs")),
            components=dict(components), build_func_name=str(state.get("build_func_name") or ""),
            variables=variables,
            source_sha256=hashlib.sha256(src.encode("utf-8", "replace")).hexdigest() if src else "")

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every variable of this network and its components, named ``component/.../var`` as TF scopes them."""
        out = {prefix + name: value for name, value in self.variables.items()}
        for key, child in self.components.items():
            out.update(child.all_variables(f"{prefix}{key}/"))
        return out

    def __repr__(self) -> str:
        return (f"TFNetworkRecord({getattr(self, 'name', '?')}, {len(getattr(self, 'variables', {}))} variables, "
                f"components={list(getattr(self, 'components', {}))})")


def _codecs_encode(text, encoding="utf-8"):
    """``_codecs.encode``: how protocol-2 pickles spell bytes (numpy array data). Text to bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"refused _codecs.encode of {type(text).__name__} with {encoding!r:.20}")
    return text.encode(encoding)


class _Allowed:
    """A callable the pickle may REDUCE with; immune to BUILD (which could otherwise patch our functions)."""
    __slots__ = ("_fn", "_qualname")

    def __init__(self, fn, qualname: str):
        self._fn, self._qualname = fn, qualname

    def __call__(self, *args):
        return self._fn(*args)

    def __setstate__(self, state):
        raise UnsafePickleError(f"pickle tries to set state on {self._qualname}")

    def __repr__(self) -> str:
        return f"<allowed {self._qualname}>"


def _numpy_multiarray():
    try:  # numpy 2 (importing the numpy.core alias warns)
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    return multiarray


def _set(*args):
    return set(*args)


def _ordered_dict(*args):
    return OrderedDict(*args)


def _build_allow_list() -> dict[tuple[str, str], Any]:
    """The exact globals an NVIDIA snapshot asks for (notes/stylegan_pickles.md), mapped to safe stand-ins."""
    multiarray = _numpy_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _record_from_meta,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("collections", "OrderedDict"): _ordered_dict,
        ("builtins", "set"): _set,
        ("_codecs", "encode"): _codecs_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = multiarray.scalar
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
    wrapped = {key: _Allowed(fn, ".".join(key)) for key, fn in allowed.items()}
    # Classes stay classes: NEWOBJ needs a type. numpy's are C types (immutable); EasyDict is frozen.
    wrapped[("dnnlib.util", "EasyDict")] = EasyDict
    wrapped[("dnnlib.tflib.network", "Network")] = TFNetworkRecord  # TensorFlow-era: read as data
    wrapped[("numpy", "ndarray")] = np.ndarray
    wrapped[("numpy", "dtype")] = np.dtype
    return wrapped


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _build_allow_list()


class _SnapshotUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            pass
        raise UnsafePickleError(f"refused unsafe global {module}.{name} (not part of a StyleGAN "
                                "network pickle; nothing was executed)")

    def persistent_load(self, pid):
        raise NetworkLoadError(f"unsupported persistent id {pid!r:.60} (not a StyleGAN network pickle)")


# -------------------------------------------------------------------------------------------- input
class _ProgressReader:
    """File wrapper that advances a tqdm bar as the unpickler reads."""

    def __init__(self, fh: BinaryIO, total: int, desc: str):
        from tqdm import tqdm

        self._fh = fh
        self._bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._bar.update(len(data))
        return data

    def readinto(self, buf) -> int:
        n = self._fh.readinto(buf)
        self._bar.update(n or 0)
        return n

    def readline(self, limit: int = -1) -> bytes:
        data = self._fh.readline(limit)
        self._bar.update(len(data))
        return data

    def close(self) -> None:
        self._bar.close()


def _sniff(head: bytes, source: str) -> None:
    """A clear message for files that are obviously not a network pickle, before unpickling them."""
    if not head:
        raise NetworkLoadError(f"{source}: empty file")
    if head.startswith(b"PK\x03\x04"):
        raise NetworkLoadError(f"{source}: a torch.save zip archive, not an NVIDIA network pickle "
                               "(load it as a state dict with a config)")
    if head[:1] != b"\x80":
        raise NetworkLoadError(f"{source}: not a pickle file (no pickle protocol header)")


def _unpickle(fh: BinaryIO, source: str) -> Any:
    try:
        return _SnapshotUnpickler(fh).load()
    except NetworkLoadError:
        raise
    except RecursionError:
        raise NetworkLoadError(f"{source}: pickle nests too deeply") from None
    except MemoryError:
        raise NetworkLoadError(f"{source}: pickle asks for more memory than available (corrupt?)") from None
    except EOFError:
        raise NetworkLoadError(f"{source}: file is truncated (pickle ended early)") from None
    except Exception as exc:  # pickle raises many types on corrupt input; never leak its traceback
        raise NetworkLoadError(f"{source}: corrupt or truncated pickle ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None


def read_snapshot(path_or_bytes: "str | os.PathLike | bytes | bytearray | memoryview | BinaryIO",
                  progress: bool | None = None) -> dict:
    """Read an NVIDIA network snapshot; network entries come back as :class:`NetworkRecord`.

    ``progress``: show a tqdm bar while reading (None = only for files of 64 MiB or more).
    Raises :class:`UnsafePickleError` for a global outside the allow-list and :class:`NetworkLoadError`
    for anything else that is not a readable snapshot.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        _sniff(data[:8], "data")
        return _check_snapshot(_unpickle(io.BytesIO(data), "data"), "data")
    if hasattr(path_or_bytes, "read"):
        return _check_snapshot(_unpickle(path_or_bytes, "stream"), "stream")  # type: ignore[arg-type]
    path = Path(path_or_bytes)
    source = str(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise NetworkLoadError(f"{source}: cannot open ({exc.strerror or exc})") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        _sniff(fh.read(8), source)
        fh.seek(0)
        show = size >= PROGRESS_MIN_BYTES if progress is None else progress
        reader = _ProgressReader(fh, size, path.name) if show else fh
        try:
            obj = _unpickle(reader, source)  # type: ignore[arg-type]
        finally:
            if show:
                reader.close()
    return _check_snapshot(obj, source)


def _check_snapshot(obj: Any, source: str) -> dict:
    if isinstance(obj, NetworkRecord):  # a bare pickled network (not a snapshot dict): accept as G_ema
        return {"G_ema": obj}
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetworkRecord) for n in obj):
        return dict(zip(("G", "D", "Gs"), obj))  # TensorFlow-era snapshot: Gs is the moving average
    if isinstance(obj, TFNetworkRecord):
        return {"Gs": obj}
    if not isinstance(obj, dict):
        raise NetworkLoadError(f"{source}: not a network snapshot (the pickle holds a {type(obj).__name__})")
    if not network_records(obj):
        raise NetworkLoadError(f"{source}: not a network snapshot (no network objects among keys "
                               f"{sorted(map(str, obj))[:8]})")
    return obj
