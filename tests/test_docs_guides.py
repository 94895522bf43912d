"""The integration guides (TouchDesigner, Resolume, lighting desks) say what the shipped code does.

Checked: every relative link and image resolves; every mapping a guide's table promises is a route of the
shipped map (address -> parameter, and the output range where the guide gives one); the TouchDesigner guide
names every operator the build script creates and every setup parameter it adds.
"""
from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GUIDES = ["docs/touchdesigner.md", "docs/resolume.md", "docs/lighting_desk.md", "td_project/README.md",
          "docs/parameters.md", "docs/encoder.md", "docs/routes.md", "docs/scene_audio.md"]


def routes(name: str) -> dict[str, dict]:
    data = tomllib.loads((REPO / "osc_maps" / f"{name}.toml").read_text(encoding="utf-8"))
    return {r["address"]: r for r in data["route"]}


@pytest.mark.parametrize("guide", GUIDES)
def test_links_and_images_resolve(guide):
    path = REPO / guide
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        assert (path.parent / target).exists(), f"{guide}: broken link {target}"


def test_resolume_guide_matches_the_shipped_map():
    r = routes("resolume")
    promised = {"/composition/dashboard/link1": ("psi", [0.0, 1.5]), "/composition/dashboard/link2": ("mix.amount", None),
                "/composition/dashboard/link3": ("hand.const.amount", [0.0, 1.0]),
                "/composition/dashboard/link4": ("encoder.smoothing", [0.0, 0.99]),
                "/composition/dashboard/link5": ("preset.fade", [0.0, 10.0]),
                "/composition/dashboard/link6": ("lfo.high", [0.0, 1.5]),
                "/composition/tempocontroller/tempo": ("bpm", None), "/composition/tempocontroller/tempotap": ("tap", None),
                "/composition/tempocontroller/resync": ("beat.resync", None),
                "/composition/layers/1/bypassed": ("freeze", None)}
    for address, (param, out) in promised.items():
        assert r[address]["param"] == param, address
        if out is not None:
            assert r[address]["out"] == out, address
    for column in range(1, 5):
        route = r[f"/composition/columns/{column}/connect"]
        assert (route["param"], route["value"]) == ("preset.recall", str(column))


def test_lighting_desk_guide_matches_the_shipped_map():
    r = routes("grandma3")
    assert (r["/gma3/Page1/Fader201"]["param"], r["/gma3/Page1/Fader201"]["in"], r["/gma3/Page1/Fader201"]["out"],
            r["/gma3/Page1/Fader201"]["slew"]) == ("psi", [0.0, 100.0], [0.0, 1.5], 0.1)
    assert r["/gma3/Page1/Fader204"]["out"] == [0.0, 30.0]
    keys = {n: r[f"/gma3/Page1/Key{n}"] for n in range(201, 209)}
    assert [keys[n]["param"] for n in (201, 202, 207, 208)] == ["freeze", "blackout", "tap", "beat.resync"]
    assert [keys[n].get("value") for n in range(203, 207)] == ["1", "2", "3", "4"]


def test_touchdesigner_guide_names_what_the_build_script_makes():
    spec = importlib.util.spec_from_file_location("build_vrbridge", REPO / "td_project" / "build_vrbridge.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    guide = (REPO / "docs" / "touchdesigner.md").read_text(encoding="utf-8")
    source = (REPO / "td_project" / "build_vrbridge.py").read_text(encoding="utf-8")
    for name in sorted(set(re.findall(r'_ensure\(comp, "\w+", "(vrb_\w+)"\)', source)) | set(builder.CHANNEL_GROUPS)):
        if name not in ("vrb_params", "vrb_logic"):
            assert f"`{name}`" in guide, name
    for _name, _style, label, *_ in builder.SETUP:
        assert label.split()[0] in guide, label


def test_no_text_advises_installing_from_pypi():
    """The package is installed from a clone; `pip install visual-reactive-bridge[ndi]` cannot work. Every
    doc and every start-up error says `pip install -e ".[EXTRA]"` instead."""
    from bridge.registry import install_hint

    offenders = [str(path.relative_to(REPO)) for pattern in ("*.md", "bridge/**/*.py", "docs/*.md")
                 for path in REPO.glob(pattern)
                 if path.name != "registry.py" and "pip install visual-reactive-bridge" in path.read_text("utf-8")]
    assert offenders == []
    assert install_hint("ndi") == '`pip install -e ".[ndi]"` in the clone'
