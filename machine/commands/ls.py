"""`machine ls`: list machines (NAME ACTIVE DRIVER STATE URL SWARM DOCKER ERRORS).

`ls -q` without a state filter reads the store only: no driver, SSH or TLS library is imported.
"""

from __future__ import annotations

import json

import click

from machine.app import App, pass_app
from machine.ls import listing

MAX_TIMEOUT = 3600.0  # an hour; inf or 1e300 would overflow the wait


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Print only machine names.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Filter: name=REGEX, driver=NAME, state=STATE, label=K=V, swarm=CLUSTER (repeatable; the same "
                   "key ORs, different keys AND).")
@click.option("-t", "--timeout", type=click.FloatRange(0, MAX_TIMEOUT, min_open=True), default=listing.DEFAULT_TIMEOUT,
              show_default=True, help="Seconds to wait for each machine's state (all are asked in parallel).")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="Go-template row format, e.g. '{{.Name}}: {{.State}}' or 'table {{.Name}}\\t{{.URL}}'; "
                   "'json' prints a JSON array.")
@pass_app
def ls(app: App, quiet: bool, filters: tuple[str, ...], timeout: float, fmt: str | None) -> None:
    """List machines and their state."""
    if timeout != timeout:  # NaN passes FloatRange's comparisons
        raise click.BadParameter("nan is not a number of seconds.", param_hint="'-t' / '--timeout'")
    parsed = listing.parse_filters(filters)
    if quiet and not parsed.needs_state:
        for name in listing.quiet_names(app.store, parsed):
            click.echo(name)
        return
    template = None
    if not quiet and fmt != "json":
        from machine.ls import gotemplate

        template = gotemplate.parse(fmt or listing.DEFAULT_FORMAT)
        _check_fields(template.fields())
    stale: list[str] = []
    rows = listing.list_machines(app.store, parsed, timeout=timeout, debug=app.debug, stale_certs=stale)
    if stale and _renew_certs(app, stale):
        rows = listing.list_machines(app.store, parsed, timeout=timeout, debug=app.debug)
    if quiet:
        for row in rows:
            click.echo(row.Name)
    elif template is None:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        from machine.ls import gotemplate

        click.echo(gotemplate.render_rows(template, rows, listing.HEADERS), nl=False)


def _renew_certs(app: App, names: list[str]) -> bool:
    """Machines whose address moved out of their server certificate get a new one now (the rare slow
    path of ls); True when any did."""
    from machine import orchestrator

    renewed = False
    for name in sorted(names):
        renewed = orchestrator.renew_certificate(app.store, name, app.progress, app.debug) or renewed
    return renewed


def _check_fields(fields: list[str]) -> None:
    """Fail on an unknown field before waiting for any machine."""
    from machine.errors import UsageError

    known = list(listing.HostListItem.__dataclass_fields__)
    for name in fields:
        if name not in known:
            raise UsageError(f"Unknown field {name!r} in --format", f"Fields: {', '.join(known)}.")
