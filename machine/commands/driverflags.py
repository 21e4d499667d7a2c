"""Click options made from each driver's declared options (`--DRIVER-OPTION`, env var, config key): the
ones `machine create` offers, and the settable subset `machine set` offers. Not a command itself."""

from __future__ import annotations

from typing import Any

import click

from machine import registry


def driver_params() -> list[click.Option]:
    """One option per declared driver option of every driver (create): --qemu-memory is qemu__memory."""
    params: list[click.Option] = []
    for driver in registry.names():
        try:
            cls = registry.get(driver)
        except Exception:  # a broken third-party driver must not break `create`
            continue
        for opt in cls.options:
            ptype: Any = click.Choice(opt.choices) if opt.choices else (
                {int: click.INT, float: click.FLOAT, bool: click.BOOL}.get(opt.type, click.STRING))
            default_txt = "" if opt.default in (None, "", [], ()) or opt.secret else f" [default: {opt.default}]"
            decls = [opt.flag(driver), *opt.aliases, f"{driver}__{opt.key}"]
            helptext = f"{opt.help}{default_txt} [env {opt.envvar(driver)}]"
            if opt.type is bool and not opt.multiple:  # a switch: --hyperv-insecure (None when absent)
                params.append(click.Option(decls, is_flag=True, flag_value=True, default=None, help=helptext))
            else:
                params.append(click.Option(decls, type=ptype, multiple=opt.multiple, default=None, help=helptext,
                                           show_default=False))
    return params


def settable_params() -> list[click.Parameter]:
    """The options `machine set` can change on a stopped machine (flags only: no environment variables)."""
    settable: set[str] = set()
    for driver in registry.names():
        try:
            cls = registry.get(driver)
        except Exception:  # a broken third-party driver must not break `set`
            continue
        settable.update(f"{driver}__{o.key}" for o in cls.options if o.settable)
    params = [p for p in driver_params() if p.name in settable]
    for p in params:  # set reads flags only: the environment variables create reads do not apply
        p.help = (p.help or "").split(" [env ")[0]
    return params
