"""`machine ports NAME`: what the machine's agent forwards to this host, and what it could not forward and why.
Reads the agent's status file (no driver, SSH or docker library)."""

from __future__ import annotations

import json

import click

from machine.app import App, pass_app
from machine.errors import InvalidState, Unsupported


def _guest(row: dict) -> str:
    return f"{row['guest_ip']}:{row['guest_port']}" if row.get("guest_ip") else str(row["guest_port"])


def _host(row: dict) -> str:
    return f"{row['host_ip']}:{row['host_port']}"


def table(status: dict) -> list[str]:
    rows = [("PROTO", "HOST", "GUEST", "VIA", "CONTAINERS")]
    rows += [(r["proto"], _host(r), _guest(r), r["path"], ",".join(r.get("containers") or []) or "-")
             for r in status.get("forwards", [])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for r in status.get("failed", []):
        who = ",".join(r.get("containers") or []) or "-"
        lines.append(f"NOT FORWARDED {r['proto']} {_host(r)} ({who}): {r['error']}")
    if status.get("engine") not in (None, "connected"):
        lines.append(f"ENGINE: {status['engine']}")
    return lines


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the agent's status as JSON.")
@pass_app
def ports(app: App, name: str | None, as_json: bool) -> None:
    """List the container ports forwarded to this host (and the ones that could not be, with the reason)."""
    from machine.agent import control

    resolved = app.existing(name)
    cfg = app.store.load(resolved)
    if not cfg.managed_engine or cfg.engine.get("transport", "tls") != "tls":
        raise Unsupported(f"Machine {resolved!r} has no agent forwarding published ports",
                          "Only machines whose engine machine provisions and reaches through TLS have one "
                          "(not --engine-transport ssh, not an existing engine given by URL).")
    mdir = app.store.machine_dir(resolved)
    status = control.read_status(mdir)
    if not control.running(mdir):
        raise InvalidState(f"The agent of {resolved!r}, which forwards its published ports, is not running",
                           f"Start it (and the machine, if it is stopped): machine start {resolved}. "
                           f"Its log: {mdir / control.LOG_FILE}")
    if status is None:
        raise InvalidState(f"The agent of {resolved!r} has not reported yet", "Try again in a moment.")
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    for line in table(status):
        click.echo(line)
