"""The TouchDesigner names ``build_vrbridge.py`` may use, pinned from Derivative's documentation.

Why a pinned list: TouchDesigner cannot run in CI, so the build script is tested against a stand-in ``td``
module (tests/standins/td.py) that refuses any operator type, parameter name or Python member not listed
here. A typo, or a name remembered from another tool, fails the test instead of failing on stage.

Every entry was read on these Derivative pages (docs.derivative.ca mirrors the same text as
derivative.ca/UserGuide):
  Operators and their parameters
    https://docs.derivative.ca/Base_COMP               (baseCOMP; opType strings: COMP_Class create())
    https://docs.derivative.ca/Text_DAT                (textDAT)
    https://docs.derivative.ca/OSC_Out_DAT             active, protocol, address, port     + sendOSC()
    https://docs.derivative.ca/OSC_In_CHOP             active, protocol, port, localaddress, oscaddressscope,
                                                       stripsegments, queued
    https://docs.derivative.ca/Select_CHOP             chop, channames
    https://docs.derivative.ca/Parameter_Execute_DAT   active, op, pars, valuechange, onpulse, custom, builtin
                                                       (callbacks onValueChange(par, prev), onPulse(par))
    https://docs.derivative.ca/CHOP_Execute_DAT        active, chop, channel, valuechange
                                                       (callback onValueChange(channel, sampleIndex, val, prev))
    https://docs.derivative.ca/Execute_DAT             active, framestart (callback onFrameStart(frame))
    https://docs.derivative.ca/Syphon_Spout_In_TOP     active, sendername
    https://docs.derivative.ca/NDI_In_TOP              active, name (Source Name)
  Python classes
    https://docs.derivative.ca/COMP_Class              create(opType, name), appendCustomPage(name)
    https://docs.derivative.ca/OP_Class                op(), par, customPages, customPars, destroy(), storage
    https://docs.derivative.ca/DAT_Class               text, module
    https://docs.derivative.ca/Page_Class              appendFloat/appendInt(name, label, size)/appendToggle/
                                                       appendMenu/appendStr/appendPulse -> ParGroup; name, pars
    https://docs.derivative.ca/Par_Class               val, expr, name, label, help, min, max, clampMin, clampMax,
                                                       normMin, normMax, default, menuNames, menuLabels,
                                                       readOnly, style, isCustom, page, eval(), pulse(), destroy()
    https://docs.derivative.ca/Custom_Parameters       custom names: one uppercase letter, then lowercase letters
                                                       and digits only (no underscores)
Note on Syphon Spout In TOP: the page's parameter table was not in the reference index this list was built
from; ``sendername`` is the name every TouchDesigner script and guide we read uses, and the one the
engine's docs/sinks.md already tells users to set. It is the one entry to re-check against the page.
"""
from __future__ import annotations

# operator type (COMP.create opType string) -> documentation page, built-in parameter names the script sets
OPERATORS: dict[str, dict] = {
    "baseCOMP": {"doc": "https://docs.derivative.ca/Base_COMP", "pars": ()},
    "textDAT": {"doc": "https://docs.derivative.ca/Text_DAT", "pars": ()},
    "oscoutDAT": {"doc": "https://docs.derivative.ca/OSC_Out_DAT",
                  "pars": ("active", "protocol", "address", "port")},
    "oscinCHOP": {"doc": "https://docs.derivative.ca/OSC_In_CHOP",
                  "pars": ("active", "protocol", "port", "localaddress", "oscaddressscope", "stripsegments",
                           "queued")},
    "selectCHOP": {"doc": "https://docs.derivative.ca/Select_CHOP", "pars": ("chop", "channames")},
    "parameterexecuteDAT": {"doc": "https://docs.derivative.ca/Parameter_Execute_DAT",
                            "pars": ("active", "op", "pars", "valuechange", "onpulse", "custom", "builtin")},
    "chopexecuteDAT": {"doc": "https://docs.derivative.ca/CHOP_Execute_DAT",
                       "pars": ("active", "chop", "channel", "valuechange")},
    "executeDAT": {"doc": "https://docs.derivative.ca/Execute_DAT", "pars": ("active", "framestart")},
    "syphonspoutinTOP": {"doc": "https://docs.derivative.ca/Syphon_Spout_In_TOP", "pars": ("active", "sendername")},
    "ndiinTOP": {"doc": "https://docs.derivative.ca/NDI_In_TOP", "pars": ("active", "name")},
}

# menu values (Derivative's menu item names) the script assigns
MENU_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("oscoutDAT", "protocol"): ("msging",),
    ("oscinCHOP", "protocol"): ("msging",),
}

# Page methods that create custom parameters (Page_Class) -> the Par.style they create
PAGE_APPEND: dict[str, str] = {
    "appendFloat": "Float", "appendInt": "Int", "appendToggle": "Toggle", "appendMenu": "Menu",
    "appendStr": "Str", "appendPulse": "Pulse",
}

# Par members the script reads or writes (Par_Class)
PAR_MEMBERS = ("val", "expr", "name", "label", "help", "min", "max", "clampMin", "clampMax", "normMin", "normMax",
               "default", "menuNames", "menuLabels", "readOnly", "style", "isCustom", "page", "owner")
PAR_METHODS = ("eval", "pulse", "destroy")

# OP / COMP / DAT / CHOP members used (OP_Class, COMP_Class, DAT_Class)
OP_MEMBERS = ("name", "path", "OPType", "par", "customPages", "customPars", "storage", "children")
OP_METHODS = ("op", "destroy", "create", "appendCustomPage")
DAT_MEMBERS = ("text", "module")
OSCOUT_METHODS = ("sendOSC",)
# Custom parameter naming rule (Custom_Parameters): ^[A-Z][a-z0-9]*$
CUSTOM_NAME_PATTERN = r"^[A-Z][a-z0-9]*$"
