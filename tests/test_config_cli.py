"""Show file + flags: derived from the parameter table, flags override the file, bad values are one clear line."""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from bridge import config
from bridge.params import PARAMS, PARAMS_BY_NAME
from conftest import vrbridge_cmd


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return parser.parse_args(argv)


def write(tmp_path, text: str):
    path = tmp_path / "show.toml"
    path.write_text(text)
    return str(path)


def test_every_startup_row_has_a_flag():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    startup = [p for p in PARAMS if not p.live and p.kind != "action"]
    assert len(startup) >= 10
    for param in startup:
        assert config.flag_of(param) in flags, param.name
    assert {"--osc-in", "--osc-out", "--sink", "--preview", "--record", "--png-dir", "--device", "--resolution",
            "--network", "--source", "--config", "--set"} <= flags


def test_defaults_when_nothing_given():
    settings = config.resolve(parse([]))
    for param in PARAMS:
        if param.kind != "action":
            assert settings[param.name] == param.default, param.name


def test_show_file_tables_and_flags_override(tmp_path):
    show = write(tmp_path, """
psi = 0.5
seed = 7
source = "images:/tmp"
osc_out = ["127.0.0.1:9001", "127.0.0.1:9002"]
[mix]
coarse = [0, 4]
amount = 0.25
""")
    settings = config.resolve(parse(["--config", show, "--source", "pattern", "--set", "psi=0.9",
                                     "--set", "mix.fine=4,8", "--osc-out", "127.0.0.1:9100"]))
    assert settings["psi"] == 0.9  # --set over the file
    assert settings["seed"] == 7
    assert settings["mix.coarse"] == (0, 4)
    assert settings["mix.amount"] == 0.25
    assert settings["mix.fine"] == (4, 8)
    assert settings["source"] == "pattern"  # the flag over the file
    assert settings["osc_out"] == ("127.0.0.1:9100",)  # a repeated flag replaces the list


def test_bool_flags_and_repeatable_lists():
    settings = config.resolve(parse(["--record-input", "--sink", "ndi:A", "--sink", "spout:B", "--set", "freeze=on"]))
    assert settings["record_input"] is True
    assert settings["sink"] == ("ndi:A", "spout:B")
    assert settings["freeze"] is True
    assert config.resolve(parse(["--no-record-input"]))["record_input"] is False


@pytest.mark.parametrize("argv, must_contain", [
    (["--set", "psi=abc"], ["psi", "'abc'", "a number in [-1, 2]"]),
    (["--set", "psi=5"], ["psi", "5", "outside [-1, 2]", "a number in [-1, 2]"]),
    (["--device", "tpu"], ["--device", "'tpu'", "auto, cpu, cuda, cuda:N or mps"]),
    (["--resolution", "big"], ["--resolution", "'big'", "WIDTHxHEIGHT"]),
    (["--preview", "localhost:99999"], ["--preview", "HOST:PORT"]),
    (["--source", "webcam:0"], ["--source", "'webcam:0'", "camera:N"]),
    (["--set", "mix.coarse=1"], ["mix.coarse", "two integers"]),
    (["--set", "noise_mode=loud"], ["noise_mode", "const, random, none"]),
    (["--set", "pis=0.5"], ["unknown setting 'pis'", "psi"]),
    (["--set", "psi"], ["NAME=VALUE"]),
    (["--record-fps", "0"], ["--record-fps", "outside [1"]),
])
def test_bad_flag_values_name_key_value_and_allowed(argv, must_contain):
    with pytest.raises(config.ConfigError) as info:
        config.resolve(parse(argv))
    message = str(info.value)
    assert "\n" not in message
    for part in must_contain:
        assert part in message, (part, message)


@pytest.mark.parametrize("text, must_contain", [
    ("psi = 'high'\n", ["show.toml: psi", "'high'", "a number"]),
    ("[mix]\ncoarse = 3\n", ["show.toml: mix.coarse", "two integers"]),
    ("[mixx]\ncoarse = [0, 4]\n", ["unknown setting 'mixx.coarse'", "mix.coarse"]),
    ("[psi]\nx = 1\n", ["psi is a table but must be a number"]),
    ("seed = -3\n", ["seed", "-3"]),
    ("psi = \n", ["not valid TOML"]),
])
def test_bad_show_file_values(tmp_path, text, must_contain):
    show = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.resolve(parse(["--config", show]))
    for part in must_contain:
        assert part in str(info.value), (part, str(info.value))


def test_missing_show_file(tmp_path):
    with pytest.raises(config.ConfigError, match="no such show file"):
        config.resolve(parse(["--config", str(tmp_path / "nope.toml")]))


def test_cli_bad_value_is_one_line_and_exit_2(tmp_path):
    show = write(tmp_path, "[mix]\namount = 'lots'\n")
    result = subprocess.run(vrbridge_cmd() + ["run", "--config", show], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "mix.amount" in lines[0] and "'lots'" in lines[0] and "[0, 1]" in lines[0]


def test_params_command_json_and_markdown():
    out = subprocess.run(vrbridge_cmd() + ["params", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == [p.name for p in PARAMS]
    assert rows[0]["osc_address"] == PARAMS[0].osc_address
    md = subprocess.run(vrbridge_cmd() + ["params", "--markdown"], capture_output=True, text=True, timeout=60)
    assert md.returncode == 0
    assert md.stdout.count("\n| `") == len(PARAMS)
    assert "`--record-fps`" in md.stdout and "`/vrb/mix/coarse`" in md.stdout


def test_new_rows_are_picked_up_automatically(monkeypatch):
    """A row someone adds to the table becomes a flag and a show-file key with no change here."""
    import bridge.params as params

    extra = params.Param("zz_test_row", "int", 3, "test row", min=0, max=9, group="startup", live=False)
    monkeypatch.setattr(config, "PARAMS", params.PARAMS + (extra,))
    monkeypatch.setattr(config, "PARAMS_BY_NAME", {**PARAMS_BY_NAME, extra.name: extra})
    settings = config.resolve(parse(["--zz-test-row", "5"]))
    assert settings["zz_test_row"] == 5
    with pytest.raises(config.ConfigError, match="--zz-test-row = 12"):
        config.resolve(parse(["--zz-test-row", "12"]))


def test_the_documented_example_show_file_is_valid(tmp_path):
    example = config.__doc__.split("::", 1)[1]
    show = write(tmp_path, "\n".join(line[4:] for line in example.splitlines()))
    settings = config.resolve(parse(["--config", show]))
    assert settings["mix.coarse"] == (0, 4) and settings["encoder.layout"] == "paper"
    assert settings["sink"] == ("ndi:vrbridge",) and settings["resolution"] == "1920x1080"


HOSTILE_SHOW_FILES = {
    "not_utf8": (b"psi = 0.5\nnetwork = \"\xff\xfe.pkl\"\n", "not UTF-8 text (byte 0xff on line 2)"),
    "deeply_nested": (b"psi = " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested too deeply"),
    "nested_within_parser_limit": (b"psi = " + b"[" * 60 + b"]" * 60 + b"\n", "expects a number"),
    "deep_tables": (b"[" + b".".join(b"t%d" % i for i in range(3000)) + b"]\nx = 1\n", "nested too deeply"),
    "huge_value": (b"psi = \"" + b"x" * 500_000 + b"\"\n", "(500,002 chars)"),
    "huge_key": (b"x" * 500_000 + b" = 1\n", "unknown setting"),
    "huge_file": (b"# " + b"x" * (2 << 20) + b"\n", "larger than 1 MiB"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SHOW_FILES))
def test_hostile_show_files_are_one_short_line_and_exit_2(tmp_path, name):
    content, must_contain = HOSTILE_SHOW_FILES[name]
    show = tmp_path / "show.toml"
    show.write_bytes(content)
    result = subprocess.run(vrbridge_cmd() + ["run", "--config", str(show)], capture_output=True, text=True,
                            timeout=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert must_contain in lines[0] and len(lines[0]) < 600, lines[0][:2000]


@pytest.mark.parametrize("argv, says", [
    (["run", "--psi", "7"], "--psi is a live parameter, not a start-up flag: give it with --set psi=7"),
    (["run", "--mix-amount=0.5"], "--set mix.amount=0.5"),
    (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_a_live_parameter_given_as_a_flag_suggests_set(argv, says):
    result = subprocess.run(vrbridge_cmd() + argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"vrbridge {argv[0]}: error: ") and says in last, result.stderr[-800:]


def test_run_help_says_how_to_set_live_parameters():
    out = subprocess.run(vrbridge_cmd() + ["run", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--set NAME=VALUE" in out and "live parameters" in out and "vrbridge params" in out


def test_render_validates_psi_like_run(tmp_path):
    result = subprocess.run(vrbridge_cmd() + ["render", "tests/data/stylegan/sg2_tiny.pkl", "--psi", "7",
                                              "--out", str(tmp_path / "r")], capture_output=True, text=True,
                            timeout=60, cwd=str(Path(__file__).resolve().parents[1]))
    assert result.returncode == 2 and "--psi = 7.0: 7.0 is outside [-1, 2]" in result.stderr
    assert not (tmp_path / "r").exists()
