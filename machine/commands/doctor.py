"""`machine doctor`: can this host run machines? Every driver's availability (with how to fix
it), whether KVM really works (a cached probe boot; --recheck probes again) and whether the
machine OS image is built. Always exits 0: it reports, it does not fail."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from machine.app import App, pass_app


def _drivers() -> list[dict[str, Any]]:
    from machine import registry

    rows = []
    for name in registry.names():
        try:
            cls = registry.get(name)
            verdict = cls.check_available({})
            rows.append({"driver": name, "ok": verdict.ok, "message": verdict.message, "hint": verdict.hint,
                         "shares": _shares(cls.features.share_mechanisms)})
        except Exception as e:  # a broken driver is reported, not raised
            rows.append({"driver": name, "ok": False, "message": f"cannot load or check: {e}",
                         "hint": "Reinstall the package that provides it."})
    return rows


def _shares(declared: tuple[str, ...]) -> str:
    from machine.shares import mechanisms

    return mechanisms.explain(declared)


def _kvm(app: App, recheck: bool) -> dict[str, Any]:
    from machine.drivers.qemu.kvmprobe import kvm_verdict

    v = kvm_verdict(app.store.cache_dir, recheck=recheck)
    hint = "" if v.usable else ("The qemu driver uses TCG (software emulation) instead: it works, slower."
                                if sys.platform.startswith("linux") else "")
    return {"usable": v.usable, "reason": v.reason, "checked_at": v.checked_at, "cached": v.cached, "hint": hint}


def _image() -> dict[str, Any]:
    from machine.errors import MachineError
    from machine.images.catalogue import default_image, machine_os_dir

    try:
        img = default_image()
        return {"ok": True, "path": str(img.path), "message": f"machine OS image found in {img.path}", "hint": ""}
    except MachineError as e:
        return {"ok": False, "path": str(machine_os_dir()), "message": e.message, "hint": e.hint}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--recheck", is_flag=True, help="Probe KVM again instead of using the cached verdict.")
@pass_app
def doctor(app: App, as_json: bool, recheck: bool) -> None:
    """Check which drivers can run on this host, whether KVM works, and whether the machine OS is built."""
    report = {"drivers": _drivers(), "kvm": _kvm(app, recheck), "machine_os": _image()}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo("Drivers:")
    for row in report["drivers"]:
        mark = "ok " if row["ok"] else "NO "
        click.echo(f"  {mark} {row['driver']:<12} {row['message']}")
        if row["hint"] and not row["ok"]:
            click.echo(f"       {'':<12} fix: {row['hint']}")
    click.echo("Shared folders (mechanism each driver would use here):")
    for row in report["drivers"]:
        if "shares" in row:
            click.echo(f"  {row['driver']:<12} {row['shares']}")
    kvm = report["kvm"]
    cached = " (cached; --recheck to probe again)" if kvm["cached"] else ""
    click.echo(f"KVM: {'usable' if kvm['usable'] else 'NOT usable'}: {kvm['reason']}"
               f" [checked {kvm['checked_at']}{cached}]")
    if kvm["hint"]:
        click.echo(f"     {kvm['hint']}")
    img = report["machine_os"]
    click.echo(f"Machine OS: {'ok' if img['ok'] else 'missing'}: {img['message']}")
    if img["hint"] and not img["ok"]:
        click.echo(f"     fix: {img['hint']}")
