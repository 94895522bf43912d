"""docs/parameters.md is generated from `vrbridge params --markdown`: it must match the table exactly.

Regenerate it after changing bridge/params.py:  python tests/test_docs_parameters.py --write
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
MARKER = "<!-- table -->\n"


def cli_markdown() -> str:
    """The table as the user's command prints it (a subprocess: the real CLI, not a re-implementation)."""
    return subprocess.run([sys.executable, "-m", "bridge", "params", "--markdown"], capture_output=True, text=True,
                          check=True, cwd=DOC.parents[1]).stdout


def test_parameter_reference_matches_the_cli():
    text = DOC.read_text(encoding="utf-8")
    assert MARKER in text, "docs/parameters.md lost its '<!-- table -->' marker"
    documented = text.split(MARKER, 1)[1]
    assert documented == cli_markdown(), "docs/parameters.md is stale: python tests/test_docs_parameters.py --write"


def test_every_live_parameter_is_documented_with_its_address():
    from bridge.params import PARAMS

    documented = DOC.read_text(encoding="utf-8")
    for param in PARAMS:
        assert f"| `{param.name}` |" in documented, param.name
        if param.live:
            assert f"`{param.osc_address}`" in documented, param.name


def write() -> None:
    head = DOC.read_text(encoding="utf-8").split(MARKER, 1)[0]
    DOC.write_text(head + MARKER + cli_markdown(), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__" and "--write" in sys.argv:
    write()
