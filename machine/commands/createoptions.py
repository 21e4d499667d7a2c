"""The options of `machine create` and what they become: a CreateRequest. Shared by `create`, `swarm create`
(whose node options are create options) and `set` (the settable driver options). Not a command itself.

Driver options come from each driver's declarations: `--qemu-memory` is also `QEMU_MEMORY` and the key
`qemu__memory` here."""

from __future__ import annotations

import os
from typing import Any

import click

from machine import orchestrator, registry
from machine.driver import option_values
from machine.errors import UsageError
from machine.names import validate_name

DEFAULT_DRIVER = "qemu"


def create_params() -> list[click.Parameter]:
    """NAME, the engine, TLS and Swarm options, then every driver's options."""
    return [
        click.Argument(["name"]),
        click.Option(["-d", "--driver"], default=lambda: os.environ.get("MACHINE_DRIVER", DEFAULT_DRIVER),
                     show_default=DEFAULT_DRIVER, help=f"Driver: {', '.join(registry.names())} [env MACHINE_DRIVER]"),
        click.Option(["--engine-transport"], type=click.Choice(["tls", "ssh"]), default="tls", show_default=True,
                     help="How the docker client reaches the engine: TLS on a TCP port, or ssh:// (no TCP port)."),
        click.Option(["--engine-port"], type=click.IntRange(1, 65535), default=2376, show_default=True,
                     help="Engine TLS port in the guest."),
        click.Option(["--engine-label"], multiple=True, metavar="K=V", help="Engine label (repeatable)."),
        click.Option(["--engine-insecure-registry"], multiple=True, metavar="HOST[:PORT]",
                     help="Insecure registry (repeatable)."),
        click.Option(["--engine-registry-mirror"], multiple=True, metavar="URL", help="Registry mirror (repeatable)."),
        click.Option(["--engine-storage-driver"], metavar="NAME", help="Engine storage driver."),
        click.Option(["--engine-env"], multiple=True, metavar="K=V", help="Engine environment variable (repeatable)."),
        click.Option(["--engine-opt"], multiple=True, metavar="K=V", help="Engine daemon option (repeatable)."),
        click.Option(["--engine-install-url"], metavar="URL", help="get.docker.com-style install script URL."),
        click.Option(["--engine-version"], metavar="VERSION", help="Engine version to install (distro guests)."),
        click.Option(["--engine-archive"], metavar="PATH", type=click.Path(),
                     help="Install the engine offline from this host's file: Docker's static docker-VERSION.tgz, or "
                          "a directory/.tar(.gz) of the engine's .deb/.rpm/.apk packages (distro guests)."),
        click.Option(["--tls-san"], multiple=True, metavar="NAME|IP", help="Extra SAN for the server certificate."),
        click.Option(["--ports-address"], metavar="IP",
                     help="Host address the ports containers publish appear on [default: the machine's host "
                          "address, 127.0.0.1]; a LAN address (or 0.0.0.0) shares them with the network. Ports "
                          "published on the guest's 127.0.0.1 stay on a loopback address."),
        click.Option(["--swarm-manager"], metavar="CLUSTER", help="Make this machine a manager of CLUSTER."),
        click.Option(["--swarm-join"], metavar="CLUSTER", help="Join CLUSTER as a worker."),
        click.Option(["--share"], multiple=True, metavar="HOST_PATH[:GUEST_PATH][:ro]",
                     help="Share a host folder with the machine (repeatable; by default at the same path, "
                          "writable). The home folder is shared unless --no-share."),
        click.Option(["--no-share"], is_flag=True, default=False,
                     help="Share no folder, not even the home folder."),
        click.Option(["--share-mechanism"], metavar="auto|virtiofs|9p|reverse-sftp|...",
                     help="How the shares reach the guest: one the driver declares ('machine doctor' lists them) "
                          "[default: auto, the fastest this host serves and the machine's image mounts]."),
        *driver_params(),
    ]


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
            helptext = f"{opt.help}{default_txt} [env {', '.join((opt.envvar(driver), *opt.env_aliases))}]"
            # each alias (docker-machine's spelling) is a hidden option of its own, so an error names the one typed;
            # the help shows them beside the option's own flag
            spellings = [([opt.flag(driver), f"{driver}__{opt.key}"], False, opt.aliases)]
            spellings += [([alias, f"{driver}__{opt.key}{ALIAS}{i}"], True, ()) for i, alias in enumerate(opt.aliases)]
            for decls, hidden, aliases in spellings:
                if opt.type is bool and not opt.multiple:  # a switch: --hyperv-insecure (None when absent)
                    kind: dict[str, Any] = {"is_flag": True, "flag_value": True}
                else:
                    metavar = "MIB" if hasattr(opt.type, "below_minimum_hint") else None  # a size: 20480 or 20g
                    kind = {"type": ptype, "multiple": opt.multiple, "show_default": False, "metavar": metavar}
                params.append(_DriverOption(decls, aliases=aliases, hidden=hidden, default=None, help=helptext,
                                            **kind))
    return params


ALIAS = "__alias"  # an alias flag's parameter name: <driver>__<key>__alias<N>


class _DriverOption(click.Option):
    """A driver option whose help line also lists its aliases (`--virtualbox-cpus, --virtualbox-cpu-count`)."""

    def __init__(self, decls: list[str], aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(decls, **kwargs)
        self.alias_flags = aliases

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record and self.alias_flags:
            own = self.opts[0]
            record = (record[0].replace(own, ", ".join((own, *self.alias_flags)), 1), record[1])
        return record


def typed_spellings(flags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Driver flags (`<driver>__<key>`, `<driver>__<key>__alias<N>`) with each alias's value under its option's
    key (the option's own flag wins when both are given), and {`<driver>__<key>`: the alias flag typed}."""
    merged = {k: v for k, v in flags.items() if ALIAS not in k}
    typed: dict[str, str] = {}
    for key, value in flags.items():
        if ALIAS not in key or value in (None, ()):
            continue
        own, _, index = key.partition(ALIAS)
        if merged.get(own) in (None, ()):
            driver, _, opt_key = own.partition("__")
            opt = next(o for o in registry.get(driver).options if o.key == opt_key)
            merged[own], typed[own] = value, opt.aliases[int(index)]
    return merged, typed


def settable_params() -> list[click.Parameter]:
    """The options `machine set` can change on a stopped machine (flags only: no environment variables)."""
    settable: set[str] = set()
    for driver in registry.names():
        try:
            cls = registry.get(driver)
        except Exception:  # a broken third-party driver must not break `set`
            continue
        settable.update(f"{driver}__{o.key}" for o in cls.options if o.settable)
    params = [p for p in driver_params() if (p.name or "").partition(ALIAS)[0] in settable]
    for p in params:  # set reads flags only: the environment variables create reads do not apply
        p.help = (p.help or "").split(" [env ")[0]
    return params


def _kv(values: tuple[str, ...], flag: str) -> list[str]:
    for v in values:
        if "=" not in v:
            raise UsageError(f"{flag} takes KEY=VALUE, got {v!r}", f"Example: {flag} foo=bar")
    return list(values)


def _engine_archive(path: str | None, version: str | None, install_url: str | None) -> str:
    """--engine-archive checked on this host (exists, a static archive or a bundle of one package type);
    its absolute path is saved, so `machine provision` installs from it again. One install source only."""
    given = [flag for flag, v in (("--engine-archive", path), ("--engine-version", version),
                                  ("--engine-install-url", install_url)) if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together",
                         "Choose one way to install the engine: a local archive or bundle, a version (static "
                         "archive download), or an install script.")
    if not path:
        return ""
    from machine.provision.archive import inspect_local

    return str(inspect_local(path).path)


def request_from_options(name: str, driver: str, engine_transport: str = "tls", engine_port: int = 2376,
                         engine_label: tuple = (), engine_insecure_registry: tuple = (),
                         engine_registry_mirror: tuple = (), engine_storage_driver: str | None = None,
                         engine_env: tuple = (), engine_opt: tuple = (), engine_install_url: str | None = None,
                         engine_version: str | None = None, tls_san: tuple = (), swarm_manager: str | None = None,
                         swarm_join: str | None = None, engine_archive: str | None = None,
                         share: tuple = (), no_share: bool = False, ports_address: str | None = None,
                         share_mechanism: str | None = None, **driver_flags: Any) -> orchestrator.CreateRequest:
    """The CreateRequest that `machine create` options describe (also used by `machine swarm`)."""
    validate_name(name)
    if swarm_manager and swarm_join:
        raise UsageError("--swarm-manager and --swarm-join cannot be used together",
                         "A machine either starts or joins a cluster's managers; use one of them.")
    engine_archive = _engine_archive(engine_archive, engine_version, engine_install_url)
    cls = registry.get(driver)
    prefix = f"{driver}__"
    driver_flags, typed = typed_spellings(driver_flags)
    own = {k[len(prefix):]: v for k, v in driver_flags.items() if k.startswith(prefix)}
    foreign = [k.split("__")[0] for k, v in driver_flags.items() if not k.startswith(prefix) and v not in (None, ())]
    if foreign:
        raise UsageError(f"Options for driver(s) {', '.join(sorted(set(foreign)))} given, but the driver is {driver!r}",
                         f"Use only --{driver}-... options with -d {driver}.")
    engine = {
        "transport": engine_transport, "port": engine_port,
        "labels": _kv(engine_label, "--engine-label"),
        "insecure_registries": list(engine_insecure_registry),
        "registry_mirrors": list(engine_registry_mirror),
        "storage_driver": engine_storage_driver or "",
        "env": _kv(engine_env, "--engine-env"),
        "opts": _kv(engine_opt, "--engine-opt"),
        "install_url": engine_install_url or "",
        "version": engine_version or "",
        "archive": engine_archive,
        "tls_sans": list(tls_san),
        "ports_address": _ports_address(ports_address),
    }
    swarm: dict[str, Any] = {}
    if swarm_manager:
        swarm = {"cluster": validate_name(swarm_manager), "role": "manager"}
    elif swarm_join:
        swarm = {"cluster": validate_name(swarm_join), "role": "worker"}
    from machine.shares import spec

    default = spec.default_share() if cls.features.share_mechanisms else None
    if share and not cls.features.share_mechanisms:
        raise UsageError(f"Driver {driver!r} cannot share folders", "Create the machine without --share.")
    shares, with_default = spec.plan(share, no_share, default)
    mechanism = "auto"
    if share_mechanism:
        from machine.shares import mechanisms

        if not cls.features.share_mechanisms:
            raise UsageError(f"Driver {driver!r} cannot share folders", "Create the machine without --share-mechanism.")
        mechanism = mechanisms.validate_choice(share_mechanism, cls.features.share_mechanisms, cls.name)
    if typed:  # a bad value names the alias typed (the orchestrator would name the option's own flag)
        option_values(cls, own, given_as={k[len(prefix):]: v for k, v in typed.items() if k.startswith(prefix)})
    return orchestrator.CreateRequest(name=name, driver=cls.name, driver_flags=own, engine=engine, swarm=swarm,
                                      shares=[s.to_dict() for s in shares], default_share=with_default,
                                      share_mechanism=mechanism)


def _ports_address(raw: str | None) -> str:
    """--ports-address: an IPv4 address of this host for the published ports ("" = the machine's own)."""
    if not raw:
        return ""
    import ipaddress

    try:
        addr = ipaddress.IPv4Address(raw.strip())
    except ValueError:
        raise UsageError(f"Invalid value {raw!r} for --ports-address",
                         "Give an IPv4 address of this host, e.g. 127.0.0.2, a LAN address, or 0.0.0.0 for all.") \
            from None
    if addr.is_multicast:
        raise UsageError(f"Invalid value {raw!r} for --ports-address", "A multicast address cannot be listened on.")
    return str(addr)


def parse_request(name: str, args: list[str]) -> orchestrator.CreateRequest:
    """Parse `machine create` options (without the name) into a CreateRequest for machine `name`."""
    ctx = click.Command("create", params=create_params()).make_context("create", [*args, name])
    return request_from_options(**ctx.params)
