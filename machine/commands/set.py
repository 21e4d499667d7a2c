"""`machine set NAME --DRIVER-OPTION VALUE ...`: change a stopped machine's settable driver options
(as `podman machine set`); the next `machine start` uses them."""

from __future__ import annotations

from typing import Any

import click

from machine import orchestrator, registry
from machine.app import App, pass_app
from machine.commands.createoptions import settable_params, typed_spellings
from machine.errors import UsageError


def _set_shares(app: App, name: str, share: tuple[str, ...], no_share: bool) -> None:
    from machine.shares import spec

    shares, _ = spec.plan(share, no_share, None)
    old, new = orchestrator.set_shares(app.store, name, [s.to_dict() for s in shares], app.debug)
    if old == new:
        click.echo(f"Nothing changed: {name!r} already shares these folders.")
        return
    before = ", ".join(str(s) for s in spec.from_config(old)) or "none"
    after = ", ".join(str(s) for s in spec.from_config(new)) or "none"
    click.echo(f"shared folders: {before} -> {after}")


def _set(app: App, name: str, share: tuple[str, ...] = (), no_share: bool = False, share_mechanism: str | None = None,
         **flags: Any) -> None:
    name = app.existing(name)
    driver = app.store.load(name).driver
    if share_mechanism:
        old, new = orchestrator.set_share_mechanism(app.store, name, share_mechanism, app.debug)
        click.echo(f"Nothing changed: {name!r} already uses share mechanism {new}." if old == new
                   else f"share mechanism: {old} -> {new}")
    if share or no_share:
        _set_shares(app, name, share, no_share)
    flags, typed = typed_spellings(flags)
    given = {k: v for k, v in flags.items() if v not in (None, ())}
    if (share or no_share or share_mechanism) and not given:
        app.progress.info(f"The changes take effect when {name!r} starts: machine start {name}")
        return
    prefix = f"{driver}__"
    foreign = sorted({k.split("__")[0] for k in given if not k.startswith(prefix)})
    if foreign:
        raise UsageError(f"Options for driver(s) {', '.join(foreign)} given, but {name!r} uses driver {driver!r}",
                         f"Use --{driver}-... options (machine set --help lists them).")
    if not given:
        raise UsageError("Nothing to change", f"Give options, e.g. machine set {name} --{driver}-memory 2048 "
                                              "(machine set --help lists them).")
    for key, flag in typed.items():  # a bad value names the alias typed (the orchestrator would name the option's own)
        opt = next(o for o in registry.get(driver).options if o.key == key[len(prefix):])
        opt.convert(driver, given[key], flag)
    changes = orchestrator.set_options(app.store, name, {k[len(prefix):]: v for k, v in given.items()}, app.debug)
    if not changes:
        click.echo(f"Nothing changed: {name!r} already has these options.")
        return
    for key, (old, new) in changes.items():
        click.echo(f"--{driver}-{key.replace('_', '-')}: {old} -> {new}")
    app.progress.info(f"The changes take effect when {name!r} starts: machine start {name}")


_SHARE_PARAMS = [
    click.Option(["--share"], multiple=True, metavar="HOST_PATH[:GUEST_PATH][:ro]",
                 help="The machine's shared folders become exactly these (repeatable; include your home folder "
                      "to keep it)."),
    click.Option(["--no-share"], is_flag=True, default=False, help="Share no folder any more."),
    click.Option(["--share-mechanism"], metavar="auto|virtiofs|9p|reverse-sftp|...",
                 help="How the shares reach the guest from the next start: auto or one the driver declares."),
]

set_ = click.Command(
    "set", params=[click.Argument(["name"]), *_SHARE_PARAMS, *settable_params()], callback=pass_app(_set),
    help="Change a stopped machine's driver options (memory, CPUs, host address...) or shared folders; they take "
         "effect at the next start. Only the options listed below can change; for others, recreate the machine.")
