"""A stand-in for TouchDesigner's ``td`` module, strict about names, for testing td_project/build_vrbridge.py.

TouchDesigner cannot run here. This module implements just the API surface the build script and the DATs it
writes use, with TouchDesigner's semantics as Derivative's documentation describes them, and it FAILS
(:class:`StandinError`) on any operator type, built-in parameter name, menu value, Page method or Par member that
is not in td_project/td_ops_pinned.py. It records every operator created and every parameter set.

What is real here: OSC. ``oscoutDAT.sendOSC`` sends real UDP datagrams (python-osc encoding) to the address and
port its parameters evaluate to, and ``oscinCHOP`` binds its port and decodes real datagrams (bundles too) into
channels named the way TouchDesigner names them (address with ``stripsegments`` leading segments removed).
Callbacks run like TouchDesigner runs them: a Parameter Execute DAT on custom parameter value changes and pulses,
a CHOP Execute DAT when a watched channel changes (:func:`cook`), an Execute DAT on frame start (:func:`run_frame`).

Use :func:`reset` between tests; ``td.op('/project1')`` exists after it.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import re
import select
import socket
import types
from pathlib import Path
from typing import Any

_PINNED_PATH = Path(__file__).resolve().parents[2] / "td_project" / "td_ops_pinned.py"
_spec = importlib.util.spec_from_file_location("td_ops_pinned", _PINNED_PATH)
PINNED = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(PINNED)
_CUSTOM_NAME = re.compile(PINNED.CUSTOM_NAME_PATTERN)


class StandinError(AssertionError):
    """A name TouchDesigner's documentation (as pinned) does not have, or a misuse TouchDesigner would refuse."""


class tdError(Exception):  # noqa: N801 - TouchDesigner's own name
    pass


class _Time:
    seconds = 0.0
    frame = 0


absTime = _Time()


class Recorder:
    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []
        self.destroyed: list[str] = []
        self.sets: list[tuple[str, str, str, Any]] = []  # (op path, par, "val"|"expr"|member, value)
        self.osc_sent: list[tuple[str, list]] = []
        self.printed: list[str] = []


record = Recorder()


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------
class Par:
    """One parameter. Built-in ones exist only if pinned; custom ones are made by Page.append*()."""

    _MEMBERS = set(PINNED.PAR_MEMBERS)

    def __init__(self, owner: "OP", name: str, style: str, page: "Page | None" = None, custom: bool = False):
        d = self.__dict__
        d.update(_owner=owner, _name=name, _style=style, _page=page, _custom=custom, _val=_initial(style),
                 _expr="", _valid=True, _attrs={"label": name, "help": "", "min": 0, "max": 1, "clampMin": False,
                                                "clampMax": False, "normMin": 0, "normMax": 1,
                                                "default": _initial(style), "menuNames": [], "menuLabels": [],
                                                "readOnly": False})

    # -- read-only members --------------------------------------------------------------------------
    owner = property(lambda self: self._owner)
    style = property(lambda self: self._style)
    isCustom = property(lambda self: self._custom)
    page = property(lambda self: self._page)
    valid = property(lambda self: self._valid)

    @property
    def name(self) -> str:
        return self._name

    # -- value --------------------------------------------------------------------------------------
    @property
    def val(self) -> Any:
        self._check_valid()
        return self._val

    @val.setter
    def val(self, value: Any) -> None:
        self._check_valid()
        if self._style == "Pulse":
            raise StandinError(f"{self._path()}: a pulse parameter has no value; use .pulse()")
        value = self._coerce(value)
        prev, self.__dict__["_val"], self.__dict__["_expr"] = self._val, value, ""
        record.sets.append((self._owner.path, self._name, "val", value))
        if self._custom and prev != value:
            _fire_parexec(self, prev)

    @property
    def expr(self) -> str:
        return self._expr

    @expr.setter
    def expr(self, text: str) -> None:
        self._check_valid()
        compile(text, self._path(), "eval")  # a syntax error here would be one in TouchDesigner too
        self.__dict__["_expr"] = text
        record.sets.append((self._owner.path, self._name, "expr", text))

    def eval(self) -> Any:
        self._check_valid()
        if self._expr:
            result = eval(self._expr, _namespace(self._owner))  # noqa: S307 - the script's own expression
            return result.eval() if isinstance(result, Par) else result
        return self._val

    def pulse(self, *_args, **_kwargs) -> None:
        self._check_valid()
        if self._style != "Pulse":
            raise StandinError(f"{self._path()}: pulse() of a {self._style} parameter is not what the script means")
        record.sets.append((self._owner.path, self._name, "pulse", None))
        _fire_parexec(self, None, pulse=True)

    def destroy(self) -> None:
        self._check_valid()
        if not self._custom:
            raise tdError(f"{self._path()}: only custom parameters can be destroyed")
        group = self._owner._group_of(self)
        for par in group:
            self._owner._custom.pop(par._name, None)
            if par._page is not None:  # by identity: Par == compares values
                par._page._pars[:] = [p for p in par._page._pars if p is not par]
            par.__dict__["_valid"] = False

    # -- other members ------------------------------------------------------------------------------
    def __getattr__(self, item: str) -> Any:
        if item in self._MEMBERS and item in self._attrs:
            return self._attrs[item]
        raise StandinError(f"Par.{item} is not a pinned Par member (td_project/td_ops_pinned.py)")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("val", "expr"):
            return object.__setattr__(self, key, value)
        if key not in self._MEMBERS or key not in self._attrs:
            raise StandinError(f"Par.{key} cannot be set (not a pinned, settable Par member)")
        if not self._custom:
            raise tdError(f"{self._path()}: {key} can only be set on custom parameters")
        if key in ("menuNames", "menuLabels"):
            value = [str(v) for v in value]
        self._attrs[key] = value
        record.sets.append((self._owner.path, self._name, key, value))

    def _coerce(self, value: Any) -> Any:
        style = self._style
        if isinstance(value, Par):
            value = value.eval()
        if style in ("Float", "Int"):
            number = float(value) if style == "Float" else int(round(float(value)))
            if self._attrs["clampMin"]:
                number = max(number, self._attrs["min"])
            if self._attrs["clampMax"]:
                number = min(number, self._attrs["max"])
            return number
        if style == "Toggle":
            return bool(value)
        if style == "Menu":
            names = self._attrs["menuNames"] if self._custom else list(PINNED.MENU_VALUES.get(
                (self._owner.OPType, self._name), ()))
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
                return names[value]
            if str(value) not in names:
                raise StandinError(f"{self._path()}: menu value {value!r} not in {names}")
            return str(value)
        return value if isinstance(value, (str, int, float, list)) else str(value)

    # "Casting to a Value" (Par_Class): a Par in an expression acts as its value
    def __eq__(self, other: Any) -> bool:
        return self.eval() == (other.eval() if isinstance(other, Par) else other)

    __hash__ = object.__hash__
    __int__ = lambda self: int(self.eval())  # noqa: E731
    __float__ = lambda self: float(self.eval())  # noqa: E731
    __str__ = lambda self: str(self.eval())  # noqa: E731
    __bool__ = lambda self: bool(self.eval())  # noqa: E731

    def _check_valid(self) -> None:
        if not self._valid:
            raise tdError(f"{self._path()}: parameter was destroyed")

    def _path(self) -> str:
        return f"{self._owner.path}:{self._name}"

    def __repr__(self) -> str:
        return f"<Par {self._path()} {self._style} {self._val!r}>"


def _initial(style: str) -> Any:
    return {"Float": 0.0, "Int": 0, "Toggle": False, "Menu": "", "Str": "", "Pulse": None}.get(style, "")


class ParGroup(tuple):
    """The parameters made by one Page.append*() call (a tuple of Par)."""


class ParCollection:
    """``op.par``: pinned built-in parameters (made on first use) and the component's custom parameters."""

    def __init__(self, owner: "OP"):
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Par:
        owner = self._owner
        if name in owner._custom:
            return owner._custom[name]
        allowed = PINNED.OPERATORS[owner.OPType]["pars"]
        if name not in allowed:
            raise StandinError(f"{owner.OPType} has no pinned parameter {name!r} (pinned: {', '.join(allowed) or '-'})")
        if name not in owner._builtin:
            style = "Menu" if (owner.OPType, name) in PINNED.MENU_VALUES else "Str"
            owner._builtin[name] = Par(owner, name, style)
        return owner._builtin[name]

    def __setattr__(self, name: str, value: Any) -> None:
        getattr(self, name).val = value  # `op.par.x = 5` is `op.par.x.val = 5`

    __getitem__ = __getattr__


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------
class Page:
    def __init__(self, owner: "OP", name: str):
        self.owner = owner
        self.name = name
        self._pars: list[Par] = []
        self._valid = True

    @property
    def pars(self) -> list[Par]:
        return list(self._pars)

    def __getattr__(self, item: str):
        style = PINNED.PAGE_APPEND.get(item)
        if style is None:
            raise StandinError(f"Page.{item} is not a pinned Page method")
        return lambda name, label=None, size=1, order=None, replace=True: self._append(style, name, label, size,
                                                                                        replace)

    def _append(self, style: str, name: str, label: str | None, size: int, replace: bool) -> ParGroup:
        if not self._valid:
            raise tdError(f"page {self.name} was destroyed")
        if not _CUSTOM_NAME.match(name):
            raise tdError(f"custom parameter name {name!r}: must be an uppercase letter then lowercase letters/digits")
        if size != 1 and style not in ("Float", "Int"):
            raise StandinError(f"size={size} is only meaningful for appendFloat/appendInt")
        names = [name] if size == 1 else [f"{name}{i}" for i in range(1, size + 1)]
        for n in names:
            if n in self.owner._custom:
                if not replace:
                    raise tdError(f"parameter {n} already exists")
                self.owner._custom[n].destroy()
        group = ParGroup(Par(self.owner, n, style, page=self, custom=True) for n in names)
        for par in group:
            par._attrs["label"] = label or name
            self.owner._custom[par.name] = par
            self._pars.append(par)
        self.owner._groups.append(group)
        record.sets.append((self.owner.path, name, "append" + style, size))
        return group

    def destroy(self) -> None:
        for par in list(self._pars):
            if par.valid:
                par.destroy()
        self.owner._pages.remove(self)
        self._valid = False


# ------------------------------------------------------------------------------------------------
# Operators
# ------------------------------------------------------------------------------------------------
class OP:
    def __init__(self, op_type: str, name: str, parent: "OP | None"):
        self.OPType = op_type
        self.name = name
        self._parent = parent
        self._children: dict[str, OP] = {}
        self._custom: dict[str, Par] = {}
        self._builtin: dict[str, Par] = {}
        self._groups: list[ParGroup] = []
        self._pages: list[Page] = []
        self.par = ParCollection(self)
        self.storage: dict = {}
        self._text = ""
        self._module_cache: tuple[str, types.ModuleType] | None = None
        self.channels: dict[str, float] = {}
        self._socket: socket.socket | None = None
        self._valid = True

    # -- hierarchy ----------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        if self._parent is None:
            return "/"
        return (self._parent.path.rstrip("/") + "/" + self.name)

    @property
    def children(self) -> list["OP"]:
        return list(self._children.values())

    def parent(self, n: int = 1) -> "OP | None":
        node = self
        for _ in range(n):
            node = node._parent if node is not None else None
        return node

    def op(self, path: Any) -> "OP | None":
        if isinstance(path, OP):
            return path
        path = str(path)
        node: OP | None = _ROOT if path.startswith("/") else self
        for part in [p for p in path.split("/") if p]:
            if node is None:
                return None
            node = node._parent if part == ".." else node._children.get(part)
        return node

    def create(self, op_type: Any, name: str | None = None) -> "OP":
        op_type = op_type if isinstance(op_type, str) else getattr(op_type, "__name__", str(op_type))
        if op_type not in PINNED.OPERATORS:
            raise StandinError(f"operator type {op_type!r} is not pinned (td_project/td_ops_pinned.py)")
        if not self.OPType.endswith("COMP"):
            raise tdError(f"{self.path} is not a COMP: cannot create inside it")
        base = name or op_type.replace("COMP", "").replace("DAT", "").replace("CHOP", "").replace("TOP", "") + "1"
        unique, i = base, 1
        while unique in self._children:  # COMP.create: "the next numbered name" when taken
            i += 1
            unique = re.sub(r"\d*$", "", base) + str(i)
        child = OP(op_type, unique, self)
        self._children[unique] = child
        record.created.append((child.path, op_type))
        return child

    def destroy(self) -> None:
        for child in list(self._children.values()):
            child.destroy()
        if self._socket is not None:
            self._socket.close()
        if self._parent is not None:
            self._parent._children.pop(self.name, None)
        record.destroyed.append(self.path)
        self._valid = False

    # -- custom parameters --------------------------------------------------------------------------
    @property
    def customPages(self) -> list[Page]:  # noqa: N802 - TouchDesigner's name
        return list(self._pages)

    @property
    def customPars(self) -> list[Par]:  # noqa: N802
        return [p for page in self._pages for p in page._pars]

    def appendCustomPage(self, name: str) -> Page:  # noqa: N802
        if not self.OPType.endswith("COMP"):
            raise tdError("custom pages are for components")
        page = Page(self, name)
        self._pages.append(page)
        return page

    def _group_of(self, par: Par) -> ParGroup:
        for group in self._groups:
            if any(p is par for p in group):
                return group
        return ParGroup((par,))

    # -- DATs ---------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        self._require_dat()
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._require_dat()
        self._text = str(value)
        record.sets.append((self.path, "text", "text", len(self._text)))

    @property
    def module(self) -> types.ModuleType:
        self._require_dat()
        if self._module_cache is None or self._module_cache[0] != self._text:
            module = types.ModuleType(self.name)
            module.__dict__.update(_namespace(self))
            exec(compile(self._text, self.path, "exec"), module.__dict__)  # noqa: S102 - the DAT's own script
            self._module_cache = (self._text, module)
        return self._module_cache[1]

    def _require_dat(self) -> None:
        if not self.OPType.endswith("DAT"):
            raise StandinError(f"{self.path} ({self.OPType}) is not a DAT: no text/module")

    # -- OSC ----------------------------------------------------------------------------------------
    def sendOSC(self, address: str, values, asBundle: bool = False, useNonStandardTypes: bool = True) -> int:  # noqa: N802
        if self.OPType != "oscoutDAT":
            raise StandinError(f"sendOSC is an OSC Out DAT method, not {self.OPType}'s")
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(address=address)
        for value in values:
            builder.add_arg(value)
        if self.par.active.eval():
            data = builder.build().dgram
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(data, (str(self.par.address.eval()), int(self.par.port.eval())))
        record.osc_sent.append((address, list(values)))
        return len(values)

    def _poll_osc(self) -> list[str]:
        """OSC In CHOP: read every waiting datagram; returns the channel names that changed."""
        if not self.par.active.eval():
            return []
        port = int(self.par.port.eval())
        if self._socket is None or self._socket.getsockname()[1] != port:
            if self._socket is not None:
                self._socket.close()
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.bind(("127.0.0.1", port))
            self._socket.setblocking(False)
        changed = []
        while select.select([self._socket], [], [], 0)[0]:
            data = self._socket.recv(65536)
            for address, args in _decode(data):
                numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
                if not numbers:
                    continue  # OSC In CHOP makes channels from numbers only
                parts = address.strip("/").split("/")[int(self.par.stripsegments.eval() or 0):]
                name = "/".join(parts)
                value = float(numbers[0])
                if self.channels.get(name) != value:
                    changed.append(name)
                self.channels[name] = value
        return changed

    def __getitem__(self, name: str) -> float:
        return self.channels[name]

    def __repr__(self) -> str:
        return f"<{self.OPType} {self.path}>"


def _decode(data: bytes):
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_message import OscMessage

    if data.startswith(b"#bundle"):
        for content in OscBundle(data):
            yield from _decode(content.dgram)
    else:
        msg = OscMessage(data)
        yield msg.address, list(msg.params)


# ------------------------------------------------------------------------------------------------
# Callbacks, the way TouchDesigner runs them
# ------------------------------------------------------------------------------------------------
def _namespace(owner: OP) -> dict:
    """Globals of a DAT script / parameter expression: me, parent(), op() relative to the owner's network."""
    network = owner._parent or owner
    return {"me": owner, "parent": owner.parent, "op": network.op, "absTime": absTime, "tdError": tdError,
            "debug": lambda *a: record.printed.append(" ".join(map(str, a)))}


def _resolve(owner: OP, value: Any) -> OP | None:
    """An OP parameter's value: an OP (from an expression) or a path relative to the owner's network."""
    if isinstance(value, OP):
        return value
    return (owner._parent or owner).op(str(value))


def _walk(node: OP):
    for child in node._children.values():
        yield child
        yield from _walk(child)


def _fire_parexec(par: Par, prev: Any, pulse: bool = False) -> None:
    for dat in list(_walk(_ROOT)):
        if dat.OPType != "parameterexecuteDAT" or not dat.par.active.eval():
            continue
        if not dat.par.custom.eval() or not (dat.par.onpulse if pulse else dat.par.valuechange).eval():
            continue
        if _resolve(dat, dat.par.op.eval()) is not par.owner:
            continue
        if not any(fnmatch.fnmatchcase(par.name, p) for p in str(dat.par.pars.eval()).split()):
            continue
        module = dat.module
        if pulse:
            module.onPulse(par)
        else:
            module.onValueChange(par, prev)


def cook() -> dict[str, list[str]]:
    """Cook the OSC In CHOPs (read their sockets) and run CHOP Execute DATs on changed channels."""
    changed_by_chop = {}
    for chop in list(_walk(_ROOT)):
        if chop.OPType == "oscinCHOP":
            changed_by_chop[chop.path] = chop._poll_osc()
    for dat in list(_walk(_ROOT)):
        if dat.OPType != "chopexecuteDAT" or not dat.par.active.eval() or not dat.par.valuechange.eval():
            continue
        chop = _resolve(dat, dat.par.chop.eval())
        if chop is None:
            continue
        for name in changed_by_chop.get(chop.path, []):
            if fnmatch.fnmatchcase(name, str(dat.par.channel.eval())):
                dat.module.onValueChange(name, 0, chop.channels[name], None)
    return changed_by_chop


def run_frame(dt: float = 1 / 60) -> None:
    """One TouchDesigner frame: time advances, CHOPs cook, Execute DATs get onFrameStart."""
    absTime.seconds += dt
    absTime.frame += 1
    cook()
    for dat in list(_walk(_ROOT)):
        if dat.OPType == "executeDAT" and dat.par.active.eval() and dat.par.framestart.eval():
            dat.module.onFrameStart(absTime.frame)


def selected_channels(select_chop: OP) -> list[str]:
    """What a Select CHOP outputs: the source CHOP's channels matching its Channel Names patterns."""
    source = _resolve(select_chop, select_chop.par.chop.eval())
    patterns = str(select_chop.par.channames.eval()).split()
    return [name for name in source.channels if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


_ROOT = OP("containerCOMP", "", None)


def op(path: Any) -> OP | None:
    """The global op(): searches from '/'."""
    return _ROOT.op(path)


def reset() -> OP:
    """A fresh project: '/' with '/project1' (a Base COMP), nothing recorded."""
    global _ROOT, record
    for node in list(_walk(_ROOT)):
        if node._socket is not None:
            node._socket.close()
    _ROOT = OP("baseCOMP", "", None)
    record = Recorder()
    absTime.seconds, absTime.frame = 0.0, 0
    _ROOT._children["project1"] = OP("baseCOMP", "project1", _ROOT)
    return _ROOT._children["project1"]


reset()
