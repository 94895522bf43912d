"""Build (or update) the ``vrbridge`` Base COMP inside TouchDesigner from the engine's parameter table.

Run it once in TouchDesigner, either way:
  * Textport:  exec(open(r'C:/path/to/td_project/build_vrbridge.py').read())
  * Text DAT:  paste this file into a Text DAT, right-click it > Run Script.
Before running, edit SETTINGS below (or, from the Textport, call build(...) yourself with keywords).

Why a script and not a .toe/.tox: TouchDesigner files are binary; a script is reviewable, diffable, and is
regenerated from the engine's own parameter table, so the component can never drift from the engine.

What it makes (see td_project/README.md):
  vrbridge (Base COMP)
    custom pages   one page per parameter group of the engine (Synthesis, Encoder, Hands, ...) with a
                   parameter for every live row of bridge/params.py (type, range, default, help, menu entries),
                   plus a "Vrbridge" page: connection, frames, engine start/stop, heartbeat state.
    vrb_params     Text DAT: the table it was built from + custom-name -> OSC address map (JSON)
    vrb_logic      Text DAT module: sending, engine subprocess, watchdog (kept out of the callbacks)
    vrb_oscout     OSC Out DAT -> engine control port (sendOSC per changed parameter)
    vrb_parexec    Parameter Execute DAT: any custom parameter change/pulse -> vrb_logic
    vrb_telemetry  OSC In CHOP on the telemetry port (prefix /vrb stripped: channels fps, ms/encode, h1/...)
    vrb_stats, vrb_hand, vrb_performer, vrb_latents, vrb_health, vrb_echo   Select CHOPs: clean channel groups
    vrb_beat       CHOP Execute DAT: heartbeat channel changed -> remember when
    vrb_watchdog   Execute DAT: every frame, Enginestate = waiting | starting | running | lost | exited
    vrb_spout_in   Syphon Spout In TOP (Windows Spout / macOS Syphon), sender name from Sendername
    vrb_ndi_in     NDI In TOP, source from Ndisource

Idempotent: running it again updates the same operators and parameters (new rows appear, removed rows go,
changed ranges/defaults/help are applied, current values are kept when still in range); nothing is
duplicated. Only names pinned in td_project/td_ops_pinned.py (Derivative's documentation) are used.
"""
from __future__ import annotations

import json
import re
import urllib.request

SETTINGS = {
    "parent": "/project1",            # where the vrbridge COMP goes
    "name": "vrbridge",
    # The engine's parameter table: its OSCQuery URL (engine running), or a file written by
    # `vrbridge params --json > vrbridge_params.json`.
    "params_source": "http://127.0.0.1:7702/",
    "host": "127.0.0.1",              # the engine's machine
    "control_port": 7700,             # the engine's osc_in
    "telemetry_port": 7701,           # the engine's osc_out (this COMP listens there)
    "sender_name": "vrbridge",        # --sink spout:NAME / syphon:NAME / ndi:NAME
    "engine_command": "vrbridge run",  # optional subprocess: how to start the engine on this machine
    "show_file": "",
}

SETUP_PAGE = "Vrbridge"
CUSTOM_NAME = re.compile(r"^[A-Z][a-z0-9]*$")  # Derivative's custom parameter naming rule
FRAME_SOURCES = ("spout", "syphon", "ndi", "none")
FETCH_TIMEOUT_S = 3.0


class BuildError(RuntimeError):
    """Something the user must fix before the component can be built (printed as one line)."""


# ------------------------------------------------------------------------------------------------
# The parameter table -> rows (pure Python: runs outside TouchDesigner too, and is tested there)
# ------------------------------------------------------------------------------------------------
def load_rows(source):
    """Live parameter rows from an OSCQuery URL, a `vrbridge params --json` file, or already-parsed JSON."""
    if isinstance(source, (list, dict)):
        data = source
    elif str(source).startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(str(source), timeout=FETCH_TIMEOUT_S) as reply:
                data = json.loads(reply.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise BuildError(f"could not read the parameter table from {source} ({exc}): start the engine, or run "
                             f"`vrbridge params --json > vrbridge_params.json` and use that file") from None
    else:
        try:
            with open(str(source), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise BuildError(f"could not read the parameter table file {source} ({exc})") from None
    rows = rows_from_oscquery(data) if isinstance(data, dict) else rows_from_table(data)
    if not rows:
        raise BuildError(f"{source}: no live parameters found (is it `vrbridge params --json` or OSCQuery?)")
    return rows


def rows_from_table(table):
    """Rows of `vrbridge params --json` (the table itself); start-up rows are not OSC parameters."""
    keys = ("name", "kind", "default", "description", "min", "max", "choices", "unit", "group", "osc_address")
    return [{k: row.get(k) for k in keys} for row in table if row.get("live", True)]


def rows_from_oscquery(tree):
    """Rows from an OSCQuery tree. It carries live values, not defaults: a value becomes the default."""
    rows = []
    for node in _oscquery_methods(tree):
        address = node["FULL_PATH"]
        name = ".".join(address.strip("/").split("/")[1:])
        rng = (node.get("RANGE") or [{}])[0]
        kind = _kind_from_oscquery(node, rng)
        value = node.get("VALUE") or []
        default = {"int2": list(value[:2]), "action": ""}.get(kind, value[0] if value else None)
        rows.append({"name": name, "kind": kind, "default": default, "description": node.get("DESCRIPTION", ""),
                     "min": rng.get("MIN"), "max": rng.get("MAX"),
                     "choices": list(rng.get("VALS", [])) if kind == "enum" else [],
                     "unit": (node.get("UNIT") or [""])[0], "group": _group_of(name), "osc_address": address})
    return rows


def _oscquery_methods(node):
    if "TYPE" in node:
        yield node
    for child in (node.get("CONTENTS") or {}).values():
        yield from _oscquery_methods(child)


def _kind_from_oscquery(node, rng):
    tags = node["TYPE"]
    if node.get("ACCESS") == 2:
        return "action"
    if tags in ("T", "F"):
        return "bool"
    if tags == "ii":
        return "int2"
    if tags == "s":
        return "enum" if "VALS" in rng else "str"
    return {"f": "float", "i": "int"}.get(tags, "str")


def _group_of(name):
    """OSCQuery has no groups: the first segment of the name stands in for it."""
    return name.split(".")[0]


def custom_name(dotted):
    """A table name as a TouchDesigner custom parameter name: 'hand.const.amount' -> 'Handconstamount'."""
    letters = re.sub(r"[^A-Za-z0-9]", "", dotted).lower()
    name = letters[:1].upper() + letters[1:]
    if not CUSTOM_NAME.match(name):
        raise BuildError(f"parameter {dotted!r} cannot be named as a TouchDesigner custom parameter")
    return name


def plan(rows):
    """One spec per custom parameter to create, in table order, grouped into pages. Names are checked unique."""
    specs, seen = [], {}
    for row in rows:
        name = custom_name(row["name"])
        help_text = f"{row['description']} (OSC {row['osc_address']})"
        spec = {"name": name, "row": row["name"], "kind": row["kind"], "address": row["osc_address"],
                "page": str(row.get("group") or "engine").capitalize(), "label": row["name"], "help": help_text,
                "default": row["default"], "min": row.get("min"), "max": row.get("max"),
                "menu": list(row.get("choices") or [])}
        specs.append(spec)
        if row["kind"] == "action":  # the optional string argument an action is sent with
            specs.append({**spec, "name": name + "arg", "kind": "action_arg", "label": row["name"] + " argument",
                          "help": f"Text sent with {row['name']} when it is pulsed (may be empty).", "default": ""})
    for spec in specs:
        if spec["name"] in seen or spec["name"] in SETUP_NAMES:
            raise BuildError(f"parameters {seen.get(spec['name'], spec['name'])!r} and {spec['row']!r} both become "
                             f"{spec['name']!r} in TouchDesigner")
        seen[spec["name"]] = spec["row"]
    return specs


# The setup page: (name, style, label, default, help, extra)
SETUP = (
    ("Host", "Str", "Engine host", "host", "Address of the machine the engine runs on.", {}),
    ("Controlport", "Int", "Control port", "control_port", "The engine's OSC control port (osc_in).",
     {"min": 1, "max": 65535}),
    ("Telemetryport", "Int", "Telemetry port", "telemetry_port",
     "Port this component listens on for telemetry (the engine's osc_out).", {"min": 1, "max": 65535}),
    ("Framesource", "Menu", "Frames from", "spout", "How frames arrive: Spout (Windows), Syphon (macOS), NDI, none.",
     {"menu": FRAME_SOURCES}),
    ("Sendername", "Str", "Sender name", "sender_name",
     "Spout/Syphon sender name of the engine (its --sink spout:NAME / syphon:NAME).", {}),
    ("Ndisource", "Str", "NDI source", "", "NDI source as listed by NDI: HOST (NAME), e.g. MYPC (vrbridge).", {}),
    ("Heartbeattimeout", "Float", "Heartbeat timeout", 3.0,
     "Seconds without a telemetry heartbeat before the engine counts as lost.", {"min": 0.5, "max": 60.0}),
    ("Enginestate", "Str", "Engine state", "waiting",
     "waiting (never heard), starting, running, lost (no heartbeat), exited (subprocess ended).", {"readonly": True}),
    ("Enginecommand", "Str", "Engine command", "engine_command",
     "Command that starts the engine here (Start pulse), e.g. vrbridge run or C:/venv/Scripts/vrbridge.exe run.", {}),
    ("Showfile", "Str", "Show file", "show_file", "Show file (TOML) passed as --config when Start is pulsed.", {}),
    ("Addsink", "Toggle", "Add frame sink", True,
     "Start adds --sink FRAMES:SENDERNAME so frames come back here (off if the show file names the sink).", {}),
    ("Autorestart", "Toggle", "Restart if lost", True,
     "Restart an engine this component started when its heartbeat stops or it exits.", {}),
    ("Start", "Pulse", "Start engine", None, "Start the engine as a subprocess (stops a running one first).", {}),
    ("Stop", "Pulse", "Stop engine", None, "Stop the engine subprocess this component started.", {}),
    ("Pushall", "Pulse", "Send all values", None, "Send every parameter's current value to the engine.", {}),
)
SETUP_NAMES = {entry[0] for entry in SETUP}


# ------------------------------------------------------------------------------------------------
# Inside TouchDesigner
# ------------------------------------------------------------------------------------------------
def build(parent=None, params_source=None, name=None, **overrides):
    """Create or update the component; returns it. Keywords override SETTINGS (host, control_port, ...)."""
    import td  # TouchDesigner's module (tests/standins/td.py outside TouchDesigner)

    settings = {**SETTINGS, **overrides}
    parent_path = parent or settings["parent"]
    host_comp = td.op(parent_path)
    if host_comp is None:
        raise BuildError(f"no COMP at {parent_path}: set SETTINGS['parent'] to an existing component")
    comp_name = name or settings["name"]
    source = params_source if params_source is not None else settings["params_source"]
    # Read and check everything first: a failed build leaves nothing half made.
    rows = _stored_rows(host_comp.op(comp_name)) if source == "stored" else load_rows(source)
    specs = plan(rows)
    comp = _ensure(host_comp, "baseCOMP", comp_name)
    _build_setup_page(comp, settings)
    _build_param_pages(comp, specs)
    _build_operators(comp, specs, rows)
    print(f"vrbridge: {len(rows)} engine parameters on {len({s['page'] for s in specs})} pages in {comp.path}")
    return comp


def _ensure(parent, op_type, name):
    """The child called ``name`` of type ``op_type``: reused if present, replaced if of another type."""
    child = parent.op(name)
    if child is not None and child.OPType != op_type:
        child.destroy()
        child = None
    return child if child is not None else parent.create(op_type, name)


def _page(comp, page_name):
    for page in comp.customPages:
        if page.name == page_name:
            return page
    return comp.appendCustomPage(page_name)


def _build_setup_page(comp, settings):
    page = _page(comp, SETUP_PAGE)
    existing = {p.name: p for p in comp.customPars}
    for name, style, label, default, help_text, extra in SETUP:
        value = settings.get(default, default) if isinstance(default, str) else default
        fresh = name not in existing or existing[name].style != style
        if fresh:
            if name in existing:
                existing[name].destroy()
            par = getattr(page, "append" + style)(name, label=label)[0]
        else:
            par = existing[name]
        par.label = label
        par.help = help_text
        if "menu" in extra:  # menu entries first: a menu value must be one of them
            par.menuNames = list(extra["menu"])
            par.menuLabels = [m.capitalize() if m != "ndi" else "NDI" for m in extra["menu"]]
        _apply_range(par, extra.get("min"), extra.get("max"))
        if value is not None:
            par.default = value
            if fresh:
                par.val = value
        if extra.get("readonly"):
            par.readOnly = True
    for name in ("Host", "Controlport", "Telemetryport", "Sendername", "Enginecommand", "Showfile"):
        key = {"Host": "host", "Controlport": "control_port", "Telemetryport": "telemetry_port",
               "Sendername": "sender_name", "Enginecommand": "engine_command", "Showfile": "show_file"}[name]
        if key in settings and settings[key] != SETTINGS.get(key):
            getattr(comp.par, name).val = settings[key]  # an explicit keyword wins over a kept value


def _build_param_pages(comp, specs):
    wanted = {s["name"] for s in specs if s["kind"] != "int2"}
    wanted |= {s["name"] + i for s in specs if s["kind"] == "int2" for i in "12"}
    stale = [p.name for p in comp.customPars if p.page.name != SETUP_PAGE and p.name not in wanted]
    for name in stale:  # rows removed from the engine's table; re-fetched by name: destroy invalidates Par objects
        par = {p.name: p for p in comp.customPars}.get(name)
        if par is not None:
            par.destroy()
    for spec in specs:
        _apply_spec(comp, _page(comp, spec["page"]), spec)
    for page in list(comp.customPages):
        if page.name != SETUP_PAGE and not page.pars:
            page.destroy()


STYLES = {"float": "Float", "int": "Int", "bool": "Toggle", "enum": "Menu", "str": "Str", "int2": "Int",
          "action": "Pulse", "action_arg": "Str"}


def _apply_spec(comp, page, spec):
    style = STYLES[spec["kind"]]
    names = [spec["name"] + "1", spec["name"] + "2"] if spec["kind"] == "int2" else [spec["name"]]
    existing = {p.name: p for p in comp.customPars}
    pars = [existing.get(n) for n in names]
    fresh = any(p is None or p.style != style or p.page.name != page.name for p in pars)
    if fresh:
        for name in names:
            par = {p.name: p for p in comp.customPars}.get(name)
            if par is not None:
                par.destroy()
        size = {"size": 2} if spec["kind"] == "int2" else {}
        pars = list(getattr(page, "append" + style)(spec["name"], label=spec["label"], **size))
    defaults = spec["default"] if spec["kind"] == "int2" else [spec["default"]]
    for par, default in zip(pars, defaults):
        par.label = spec["label"]
        par.help = spec["help"]
        if spec["kind"] == "enum":
            par.menuNames = list(spec["menu"])
            par.menuLabels = list(spec["menu"])
        if style != "Pulse":
            par.default = default
            _apply_range(par, spec["min"], spec["max"])
            if fresh or not _in_range(par.val, spec):
                par.val = default


def _apply_range(par, low, high):
    if low is not None:
        par.min, par.normMin, par.clampMin = low, low, True
    if high is not None:
        par.max, par.normMax, par.clampMax = high, high, True


def _in_range(value, spec):
    if spec["kind"] == "enum":
        return value in spec["menu"]
    if spec["kind"] in ("float", "int", "int2") and isinstance(value, (int, float)):
        return ((spec["min"] is None or value >= spec["min"]) and (spec["max"] is None or value <= spec["max"]))
    return True


def _stored_rows(comp):
    dat = comp.op("vrb_params") if comp is not None else None
    if dat is None or not dat.text.strip():
        raise BuildError("params_source='stored' but this component has no stored table yet")
    return json.loads(dat.text)["rows"]


def _build_operators(comp, specs, rows):
    params = _ensure(comp, "textDAT", "vrb_params")
    params.text = json.dumps({"rows": rows, "pars": {s["name"]: {k: s[k] for k in ("row", "kind", "address")}
                                                     for s in specs}}, indent=1)
    logic = _ensure(comp, "textDAT", "vrb_logic")
    logic.text = LOGIC

    oscout = _ensure(comp, "oscoutDAT", "vrb_oscout")
    oscout.par.active = True
    oscout.par.protocol = "msging"
    oscout.par.address.expr = "parent().par.Host"
    oscout.par.port.expr = "parent().par.Controlport"

    parexec = _ensure(comp, "parameterexecuteDAT", "vrb_parexec")
    parexec.text = PAREXEC_CALLBACKS
    parexec.par.op.expr = "parent()"  # watch the vrbridge COMP's own custom parameters
    parexec.par.pars = "*"
    parexec.par.custom = True
    parexec.par.builtin = False
    parexec.par.valuechange = True
    parexec.par.onpulse = True
    parexec.par.active = True

    telemetry = _ensure(comp, "oscinCHOP", "vrb_telemetry")
    telemetry.par.protocol = "msging"
    telemetry.par.port.expr = "parent().par.Telemetryport"
    telemetry.par.stripsegments = 1  # /vrb/fps -> fps
    telemetry.par.queued = False  # telemetry is "latest wins": no queue, no added latency
    telemetry.par.active = True
    for name, patterns in CHANNEL_GROUPS.items():
        _select(comp, name, telemetry, patterns)
    _select(comp, "vrb_echo", telemetry, echo_channels(rows))

    beat = _ensure(comp, "chopexecuteDAT", "vrb_beat")
    beat.text = BEAT_CALLBACKS
    beat.par.chop = "vrb_telemetry"
    beat.par.channel = "heartbeat"
    beat.par.valuechange = True
    beat.par.active = True

    watchdog = _ensure(comp, "executeDAT", "vrb_watchdog")
    watchdog.text = WATCHDOG_CALLBACKS
    watchdog.par.framestart = True
    watchdog.par.active = True

    spout = _ensure(comp, "syphonspoutinTOP", "vrb_spout_in")
    spout.par.sendername.expr = "parent().par.Sendername"
    spout.par.active.expr = "parent().par.Framesource in ('spout', 'syphon')"
    ndi = _ensure(comp, "ndiinTOP", "vrb_ndi_in")
    ndi.par.name.expr = "parent().par.Ndisource"
    ndi.par.active.expr = "parent().par.Framesource == 'ndi'"


def both_separators(pattern):
    """OSC In CHOP joins the kept address segments with '/' (older builds: '_'): match either."""
    return [pattern] if "/" not in pattern else [pattern, pattern.replace("/", "_")]


CHANNEL_GROUPS = {
    "vrb_stats": ["frame", "fps", "dropped", "uptime", "heartbeat", "ms/*", "bpm", "beat/*"],
    "vrb_hand": ["h1/*", "hand/*"],
    "vrb_performer": ["p1/*", "f1/*", "track/*"],
    "vrb_latents": ["z/*"],
    "vrb_health": ["health/*", "osc/*"],
}


def echo_channels(rows):
    """Telemetry echoes each live value on its own address (int2 as /start and /end)."""
    names = []
    for row in rows:
        if row["kind"] in ("action",):
            continue
        base = row["osc_address"].split("/", 2)[-1]
        names += [base + "/start", base + "/end"] if row["kind"] == "int2" else [base]
    return names


def _select(comp, name, source, patterns):
    select = _ensure(comp, "selectCHOP", name)
    select.par.chop = source.name
    select.par.channames = " ".join(p for pattern in patterns for p in both_separators(pattern))
    return select


# ------------------------------------------------------------------------------------------------
# Text of the DATs the component runs (TouchDesigner executes these, not this build script)
# ------------------------------------------------------------------------------------------------
PAREXEC_CALLBACKS = '''# vrbridge: custom parameter changes -> OSC to the engine (logic in vrb_logic)
def onValueChange(par, prev):
\top('vrb_logic').module.on_value_change(par)
\treturn

def onPulse(par):
\top('vrb_logic').module.on_pulse(par)
\treturn
'''

BEAT_CALLBACKS = '''# vrbridge: the telemetry heartbeat counter changed
def onValueChange(channel, sampleIndex, val, prev):
\top('vrb_logic').module.on_heartbeat()
\treturn
'''

WATCHDOG_CALLBACKS = '''# vrbridge: every frame, update Enginestate (and restart a lost engine if asked)
def onFrameStart(frame):
\top('vrb_logic').module.watchdog()
\treturn
'''

LOGIC = r'''"""vrbridge logic (generated by td_project/build_vrbridge.py; edits are overwritten on rebuild)."""
import json
import os
import shlex
import subprocess

_state = {"proc": None, "last_beat": None, "next_restart": 0.0, "restarts": 0}


def _comp():
    return parent()


def _pars():
    return json.loads(op("vrb_params").text)["pars"]


def _value(spec, name):
    """The OSC arguments for one parameter's current value."""
    comp = _comp()
    kind = spec["kind"]
    if kind == "int2":
        return [int(getattr(comp.par, name + "1").eval()), int(getattr(comp.par, name + "2").eval())]
    value = getattr(comp.par, name).eval()
    if kind == "float":
        return [float(value)]
    if kind == "int":
        return [int(value)]
    if kind == "bool":
        return [1 if value else 0]
    return [str(value)]


def send(name):
    """Send custom parameter ``name`` (int2 halves send the pair) to the engine."""
    pars = _pars()
    base = name[:-1] if name not in pars and name[-1:] in "12" else name
    spec = pars.get(base)
    if spec is None or spec["kind"] in ("action", "action_arg"):
        return False
    op("vrb_oscout").sendOSC(spec["address"], _value(spec, base))
    return True


def trigger(name):
    spec = _pars()[name]
    arg = getattr(_comp().par, name + "arg").eval()
    op("vrb_oscout").sendOSC(spec["address"], [str(arg)] if arg else [])


def push_all():
    for name, spec in _pars().items():
        if spec["kind"] not in ("action", "action_arg"):
            send(name)


def on_value_change(par):
    send(par.name)


def on_pulse(par):
    if par.name == "Start":
        start_engine()
    elif par.name == "Stop":
        stop_engine()
    elif par.name == "Pushall":
        push_all()
    elif _pars().get(par.name, {}).get("kind") == "action":
        trigger(par.name)


def engine_args():
    comp = _comp()
    args = shlex.split(comp.par.Enginecommand.eval(), posix=os.name != "nt")
    if comp.par.Showfile.eval():
        args += ["--config", comp.par.Showfile.eval()]
    host = comp.par.Host.eval()
    args += ["--osc-in", "%s:%d" % (host, int(comp.par.Controlport.eval())),
             "--osc-out", "127.0.0.1:%d" % int(comp.par.Telemetryport.eval())]
    frames = comp.par.Framesource.eval()
    if comp.par.Addsink.eval() and frames != "none":
        args += ["--sink", "%s:%s" % (frames, comp.par.Sendername.eval())]
    return args


def start_engine():
    stop_engine()
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    _state["proc"] = subprocess.Popen(engine_args(), stdin=subprocess.DEVNULL, creationflags=flags)
    _state["last_beat"] = None
    _set_state("starting")
    return _state["proc"]


def stop_engine():
    proc, _state["proc"] = _state["proc"], None
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)  # reap it: a killed engine is gone once Stop returns
    _set_state("waiting")


def on_heartbeat():
    _state["last_beat"] = absTime.seconds


def _set_state(state):
    par = _comp().par.Enginestate
    if par.eval() != state:
        par.val = state


def engine_state():
    proc, last = _state["proc"], _state["last_beat"]
    if proc is not None and proc.poll() is not None:
        return "exited"
    if last is None:
        return "starting" if proc is not None else "waiting"
    if absTime.seconds - last > float(_comp().par.Heartbeattimeout.eval()):
        return "lost"
    return "running"


def watchdog():
    state = engine_state()
    _set_state(state)
    now = absTime.seconds
    if state in ("lost", "exited") and _state["proc"] is not None and _comp().par.Autorestart.eval():
        if now >= _state["next_restart"]:
            _state["restarts"] += 1
            _state["next_restart"] = now + max(5.0, 2 * float(_comp().par.Heartbeattimeout.eval()))
            start_engine()
    return state
'''


if __name__ != "build_vrbridge":  # run from the Textport / a Text DAT (tests import it by this name)
    build()
