"""`machine create`: parse the options (createoptions.py), create the machine through the orchestrator,
join its Swarm cluster when asked."""

from __future__ import annotations

from typing import Any

import click

from machine import orchestrator
from machine.app import App, pass_app
from machine.commands.createoptions import create_params, request_from_options


def _create(app: App, **options: Any) -> None:
    req = request_from_options(**options)
    if req.swarm:
        from machine.swarm.clusters import plan_member

        req.swarm = plan_member(app.store, req.swarm["cluster"], req.name, req.swarm["role"], req.driver)
    try:
        cfg = orchestrator.create(app.store, req, app.progress, debug=app.debug)
    except BaseException:
        if req.swarm:
            from machine.swarm.clusters import forget_member

            forget_member(app.store, req.swarm["cluster"], req.name)
        raise
    if req.swarm:
        from machine.swarm.clusters import join_on_create

        join_on_create(app.store, cfg, app.progress)
    app.progress.info(f"Machine {req.name!r} is ready. To point your docker client at it, run: machine use {req.name}")


create = click.Command(
    "create", params=create_params(), callback=pass_app(_create),
    help="Create a machine: a VM running the Docker engine, with TLS, reachable from this host.\n\n"
         "Driver options are --DRIVER-OPTION flags; each also reads the environment variable shown.",
)
