"""Hyper-V PowerShell scripts: quoting, the command-line length limit, result parsing, error
mapping, and the fake host refusing scripts it does not know."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

import hv_model  # noqa: E402
from hv_model import FakeHyperV, ScriptRejected, parse_script  # noqa: E402
from machine.drivers.hyperv import isotransfer, scripts  # noqa: E402

from machine.errors import DriverError, HostNotUsable, NotFound  # noqa: E402

NASTY = [
    "plain",
    "it's",
    "''",
    "O\u2019Brien\u2018s \u201alan\u201b",
    "'; Remove-Item -Recurse -Force C:\\ ; '",
    "$(Stop-Computer) `n $env:USERNAME @{a=1}",
    'double "quotes" and ` backtick',
    "multi\nline\r\nvalue",
    "unicode \u00e9\u4e2d\u6587 \U0001f600",
    "",
]

# Worst-case values: longest machine name, Windows paths at MAX_PATH (260) full of quotes to double,
# a long switch name, large numbers.
LONG_NAME = "m" * 63
LONG_PATH = ("D:\\" + "\\".join(["folder name with 'quotes'"] * 10))[:190]
MAX_PATH = ("E:\\" + "\\".join(["x'y"] * 100))[:260]
VALUES = {
    "check": {},
    "vm-state": {"name": LONG_NAME},
    "start-vm": {"name": LONG_NAME},
    "stop-vm": {"name": LONG_NAME, "turn_off": True},
    "save-vm": {"name": LONG_NAME},
    "discard-saved-vm": {"name": LONG_NAME},
    "vm-ip": {"name": LONG_NAME},
    "remove-vm": {"name": LONG_NAME, "dir": LONG_PATH},
    "vm-dir": {"name": LONG_NAME, "base": LONG_PATH},
    "create-vm": {"name": LONG_NAME, "dir": LONG_PATH, "boot_iso": MAX_PATH, "seed_iso": MAX_PATH,
                  "disk_bytes": 2**40, "memory_bytes": 2**38, "cpus": 240, "switch": "S'" * 50, "vlan_id": 4094,
                  "pipe": "\\\\.\\pipe\\machine-" + LONG_NAME},
    "iso-probe": {"path": MAX_PATH, "sha256": "f" * 64},
    "iso-stream": {"path": MAX_PATH, "offset": 2**40},
    "iso-finish": {"path": MAX_PATH, "sha256": "f" * 64},
    "smb-account": {"account": "machine-" + "f" * 12, "password": "p'" * 18 + "-Aa1", "prefix": "machine-" + "f" * 13,
                    "switch": "S'" * 50},
    "smb-share": {"account": "machine-" + "f" * 12, "name": "machine-" + "f" * 12 + "-msh99$", "path": MAX_PATH,
                  "read_only": True},
    "smb-unshare": {"account": "machine-" + "f" * 12, "prefix": "machine-" + "f" * 13},
    "iso-download": {"url": "https://example.invalid/" + "p" * 1500, "path": MAX_PATH, "sha256": "f" * 64},
}


def test_every_template_is_covered() -> None:
    assert set(scripts.template_names()) == set(VALUES) | {"iso-chunk"}
    assert set(hv_model.OPS) == set(scripts.template_names())


@pytest.mark.parametrize("value", NASTY)
def test_string_values_round_trip_as_data(value: str) -> None:
    script = scripts.render("vm-state", name=value)
    op, params, _ = parse_script(script)
    assert op == "vm-state" and params == {"Name": value}


def test_literals_quote_every_powershell_quote_character() -> None:
    assert scripts.ps_literal("it's") == "'it''s'"
    assert scripts.ps_literal("a\u2019b") == "'a\u2019\u2019b'"
    assert scripts.ps_literal(7) == "7" and scripts.ps_literal(True) == "$true" and scripts.ps_literal(None) == "$null"
    assert scripts.ps_literal(["a'", 2]) == "@('a''', 2)"
    with pytest.raises(DriverError):
        scripts.ps_literal("nul\0byte")


def test_injection_attempt_stays_inside_one_string() -> None:
    evil = "x'; Remove-Item C:\\ -Recurse; $a='"
    script = scripts.render("stop-vm", name=evil, turn_off=False)
    # the only lines that start a statement before the body are the two parameter lines
    params = script.split("# machine-params-end")[0].strip().splitlines()
    assert params[1:] == ["$Name = 'x''; Remove-Item C:\\ -Recurse; $a='''", "$TurnOff = $false"]
    assert parse_script(script)[1]["Name"] == evil


@pytest.mark.parametrize("op", sorted(VALUES))
def test_every_rendered_script_fits_the_windows_command_line(op: str) -> None:
    script = scripts.render(op, **VALUES[op])
    line = scripts.command_line(script)
    assert len(line) <= scripts.MAX_COMMAND_LINE
    decoded = base64.b64decode(line.rsplit(" ", 1)[1]).decode("utf-16-le")
    assert decoded == script
    parse_script(script)  # and the fake host accepts it


@pytest.mark.parametrize("dest", ["C:\\c\\x.iso", MAX_PATH])
def test_upload_chunks_use_the_room_exactly(dest: str) -> None:
    size = isotransfer.chunk_size(dest)
    assert size > 1000
    data = base64.b64encode(b"\xff" * size).decode()
    assert len(scripts.command_line(scripts.render("iso-chunk", path=dest, offset=10**12, data=data))) \
        <= scripts.MAX_COMMAND_LINE
    too_big = base64.b64encode(b"\xff" * (size + 300)).decode()
    with pytest.raises(DriverError, match="too long"):
        scripts.command_line(scripts.render("iso-chunk", path=dest, offset=10**12, data=too_big))


def test_parse_reads_json_between_markers_despite_noise() -> None:
    out = "WARNING: something\r\n" + scripts.BEGIN + json.dumps({"State": "Running"}) + scripts.END + "\r\n"
    assert scripts.parse("vm-state", out, "#< CLIXML\r\n<Objs/>", 0) == {"State": "Running"}


def test_parse_without_markers_reports_stderr() -> None:
    err = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
           '<S S="Error">Get-VM : boom &amp; bust_x000D__x000A_</S></Objs>')
    with pytest.raises(DriverError, match="Get-VM : boom & bust"):
        scripts.parse("vm-state", "", err, 1)


@pytest.mark.parametrize(("record", "kind", "hint"), [
    ({"message": 'Hyper-V was unable to find a virtual machine with name "hv1".', "category": "InvalidArgument",
      "id": "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"}, NotFound, "machine rm -f"),
    ({"message": "You do not have the required permission to complete this task.", "category": "PermissionDenied",
      "id": "AccessDenied,Microsoft.HyperV.PowerShell.Commands.NewVM"}, HostNotUsable, "Hyper-V Administrators"),
    ({"message": "The term 'Hyper-V\\Get-VM' is not recognized as the name of a cmdlet", "category": "ObjectNotFound",
      "id": "CommandNotFoundException"}, HostNotUsable, "Enable-WindowsOptionalFeature"),
    ({"message": "sha256 mismatch: x", "category": "OperationStopped", "id": "x"}, DriverError, "--hyperv-iso-sha256"),
])
def test_error_records_map_to_errors_with_hints(record: dict, kind: type, hint: str) -> None:
    out = scripts.BEGIN + json.dumps({"error": record}) + scripts.END
    with pytest.raises(kind) as info:
        scripts.parse("start-vm", out, "", 1)
    assert hint in info.value.hint
    assert record["message"] in info.value.message


# -- the fake host rejects what it does not know --------------------------------------------------


def _line(script: str) -> str:
    return scripts.REMOTE_PREFIX + scripts.encode(script)


def test_fake_rejects_unknown_and_altered_scripts(tmp_path: Path) -> None:
    host = FakeHyperV(tmp_path)
    ok = scripts.render("vm-state", name="hv1")
    assert host.execute(_line(ok))[2] == 0
    for bad in ["Get-Process", "# machine-op: format-disk\n# machine-params-end\n",
                ok.replace("$Name = 'hv1'", "$Name = 'hv1'\n$Extra = 1"),
                ok.replace("Hyper-V\\Get-VM -Name $Name", "Get-Thing"),
                ok.replace("$Name = 'hv1'", "$Name = hv1")]:
        out, err, code = host.execute(_line(bad))
        assert code == 1 and "rejected" in err and out == ""
    out, err, code = host.execute("cmd.exe /c dir")
    assert code == 1 and "not recognized" in err
    out, err, code = host.execute(scripts.REMOTE_PREFIX + "A" * 9000)
    assert code == 1 and "too long" in err
    with pytest.raises(ScriptRejected):
        parse_script("# machine-op: vm-state\n$Name = 'unterminated\n# machine-params-end\n")
