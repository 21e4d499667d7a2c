"""Driver options: unique flags, env vars and keys (also against the core `create` flags), typed
defaults, and a description."""

from __future__ import annotations

import re

from harness import Harness

from machine import registry
from machine.driver import Driver

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def core_create_flags() -> set[str]:
    from machine.commands import create

    flags: set[str] = set()
    for param in create.create.params:
        if param.name and "__" in param.name:  # a driver option, added from the registry
            continue
        flags.update(o for o in param.opts + param.secondary_opts if o.startswith("-"))
    return flags


def other_drivers(me: type[Driver]) -> list[type[Driver]]:
    out = []
    for name in registry.names():
        if name == me.name:
            continue
        try:
            out.append(registry.get(name))
        except Exception:  # another engineer's broken driver is their test's business
            continue
    return out


def test_driver_declares_name_and_description(driver_harness: Harness) -> None:
    cls = driver_harness.driver_cls
    assert NAME.match(cls.name), cls.name
    assert cls.description.strip()


def test_option_names_and_help(driver_harness: Harness) -> None:
    cls = driver_harness.driver_cls
    keys = [o.key for o in cls.options]
    assert len(keys) == len(set(keys)), f"duplicate option keys: {keys}"
    for opt in cls.options:
        assert NAME.match(opt.name), f"option name {opt.name!r}: lowercase words joined by '-'"
        assert opt.help.strip(), f"{opt.name} has no help"


def test_flags_unique_and_no_core_clash(driver_harness: Harness) -> None:
    cls = driver_harness.driver_cls
    mine = [f for o in cls.options for f in (o.flag(cls.name), *o.aliases)]
    assert len(mine) == len(set(mine)), f"duplicate flags: {mine}"
    core = core_create_flags()
    assert {"--driver", "--engine-port", "--swarm-join"} <= core  # the check itself sees the core flags
    assert not set(mine) & core, f"flags clash with core create flags: {set(mine) & core}"
    for f in mine:
        assert not re.match(r"^--(engine|swarm|tls)-", f), f"{f} looks like a core flag"
    for other in other_drivers(cls):
        theirs = {f for o in other.options for f in (o.flag(other.name), *o.aliases)}
        assert not set(mine) & theirs, f"flags clash with driver {other.name}: {set(mine) & theirs}"


def test_envvars_unique(driver_harness: Harness) -> None:
    cls = driver_harness.driver_cls
    mine = [o.envvar(cls.name) for o in cls.options]
    assert len(mine) == len(set(mine))
    for env in mine:
        assert not env.startswith(("MACHINE_", "DOCKER_")), f"{env} would clash with core environment variables"
    for other in other_drivers(cls):
        theirs = {o.envvar(other.name) for o in other.options}
        assert not set(mine) & theirs, f"env vars clash with driver {other.name}"


def test_defaults_are_typed(driver_harness: Harness) -> None:
    cls = driver_harness.driver_cls
    for opt in cls.options:
        value = opt.convert(cls.name, opt.default)
        if opt.multiple:
            assert isinstance(value, list)
            assert all(isinstance(v, opt.type) for v in value)
            continue
        if opt.default is None:
            assert value is None
            continue
        assert isinstance(value, opt.type), f"{opt.name}: default {opt.default!r} is not a {opt.type.__name__}"
        assert value == opt.default, f"{opt.name}: default changes when converted"
        # the same value given as an environment variable (a string) converts back to it
        assert opt.convert(cls.name, str(value).lower() if opt.type is bool else str(value)) == value
        if opt.choices:
            assert value in opt.choices, f"{opt.name}: default {value!r} not among its choices"
