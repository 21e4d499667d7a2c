"""One name and one unit per size option for every VM driver: `--DRIVER-cpus`, `--DRIVER-memory` and
`--DRIVER-disk-size` in MiB (docker-machine's unit), docker-machine's spellings as aliases, unit suffixes,
the old GiB value refused with a hint, and configs saved in the old units read right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.cli import run

from machine import registry, sizes
from machine.commands import createoptions
from machine.driver import option_values
from machine.errors import ConfigError
from machine.orchestrator.loading import check_saved_options
from machine.sizeunits import MiB
from machine.store import Store

VM_DRIVERS = ("qemu", "libvirt", "virtualbox", "hyperv", "hyperkit")


@pytest.mark.parametrize("driver", VM_DRIVERS)
def test_every_vm_driver_has_the_same_three_size_options(driver: str) -> None:
    by_name = {o.name: o for o in registry.get(driver).options}
    assert {"cpus", "memory", "disk-size"} <= set(by_name) and "cpu-count" not in by_name
    assert by_name["memory"].type is MiB and by_name["disk-size"].type is MiB
    disk = by_name["disk-size"]
    assert (disk.minimum, disk.maximum) == (sizes.MIN_DISK_MIB, sizes.MAX_DISK_MIB)
    assert disk.default >= sizes.MIN_DISK_MIB and "MiB" in disk.help and "GiB" not in disk.help
    assert "GB" not in disk.help


@pytest.mark.parametrize(("raw", "mib"), [("20480", 20480), ("20g", 20480), ("20G", 20480), ("20GiB", 20480),
                                          ("20480m", 20480), ("20480MB", 20480), ("1t", 1024 * 1024), (" 2g ", 2048),
                                          (3000, 3000)])
def test_sizes_take_mib_or_a_unit(raw: object, mib: int) -> None:
    assert MiB(raw) == mib


@pytest.mark.parametrize("raw", ["", "g", "20x", "-1", "1.5g", "20 g b", True])
def test_malformed_sizes_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        MiB(raw)


@pytest.mark.parametrize(("driver", "flags", "env", "expected"), [
    ("virtualbox", {"cpus": "3"}, {}, {"cpus": 3}),
    ("virtualbox", {}, {"VIRTUALBOX_CPU_COUNT": "4", "VIRTUALBOX_MEMORY_SIZE": "3g"}, {"cpus": 4, "memory": 3072}),
    ("virtualbox", {}, {"VIRTUALBOX_CPUS": "5", "VIRTUALBOX_CPU_COUNT": "4"}, {"cpus": 5}),  # ours wins
    ("hyperv", {}, {"HYPERV_CPU_COUNT": "6", "HYPERV_DISK_SIZE": "30000"}, {"cpus": 6, "disk_size": 30000}),
    ("hyperkit", {}, {"HYPERKIT_CPU_COUNT": "2"}, {"cpus": 2}),
    ("qemu", {"disk_size": "40g", "memory": "2g"}, {}, {"disk_size": 40960, "memory": 2048}),
    ("libvirt", {}, {"LIBVIRT_DISK_SIZE": "8192"}, {"disk_size": 8192}),
])
def test_values_from_flags_and_docker_machine_environment(driver: str, flags: dict, env: dict,
                                                          expected: dict) -> None:
    values = option_values(registry.get(driver), flags, environ=env)
    assert {k: values[k] for k in expected} == expected


@pytest.mark.parametrize(("alias", "key"), [("--virtualbox-cpu-count", "virtualbox__cpus"),
                                            ("--hyperv-cpu-count", "hyperv__cpus"),
                                            ("--hyperkit-cpu-count", "hyperkit__cpus")])
def test_docker_machine_flag_spellings_are_aliases(alias: str, key: str) -> None:
    driver = key.split("__")[0]
    req = createoptions.parse_request("m1", ["-d", driver, alias, "3"])
    assert option_values(registry.get(driver), req.driver_flags, environ={})["cpus"] == 3


@pytest.mark.parametrize(("argv", "words"), [
    (["-d", "qemu", "--qemu-disk-size", "20"], ["did you mean 20 GiB?", "Write 20g or 20480"]),
    (["-d", "libvirt", "--libvirt-disk-size", "4"], ["did you mean 4 GiB?", "Write 4g or 4096"]),
    (["-d", "hyperv", "--hyperv-disk-size", "20"], ["did you mean 20 GiB?"]),
    (["-d", "qemu", "--qemu-memory", "2"], ["did you mean 2 GiB?", "Write 2g or 2048"]),
    (["-d", "qemu", "--qemu-disk-size", "20q"], ["--qemu-disk-size takes a size in MiB, or with a unit"]),
])
def test_a_size_in_the_old_unit_is_refused_with_a_hint(store_root: Path, argv: list[str], words: list[str]) -> None:
    res = run("create", *argv, "x", env={"LIBVIRT_URI": "test:///default"})
    assert res.code == 2 and res.crash is None, res
    for word in words:
        assert word in res.err, res
    assert not (store_root / "machines" / "x").exists()


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["-d", "virtualbox", "--virtualbox-cpu-count", "0"], {}, "--virtualbox-cpu-count"),
    (["-d", "hyperv", "--hyperv-cpu-count", "999"], {}, "--hyperv-cpu-count"),
    (["-d", "hyperkit", "--hyperkit-cpu-count", "-1"], {}, "--hyperkit-cpu-count"),
    (["-d", "virtualbox", "--virtualbox-cpus", "0"], {}, "--virtualbox-cpus"),
    (["-d", "virtualbox"], {"VIRTUALBOX_CPU_COUNT": "0"}, "VIRTUALBOX_CPU_COUNT"),
    (["-d", "hyperv"], {"HYPERV_DISK_SIZE": "20"}, "HYPERV_DISK_SIZE"),
    (["-d", "virtualbox", "--virtualbox-disk-size", "5"], {}, "--virtualbox-disk-size"),
])
def test_an_out_of_range_value_names_what_the_user_typed(store_root: Path, argv: list[str], env: dict,
                                                         named: str) -> None:
    res = run("create", *argv, "x", env=env)
    assert res.code == 2 and res.crash is None, res
    assert f"for {named}\n" in res.err, res
    assert not (store_root / "machines" / "x").exists()


def test_create_help_shows_one_unit_per_size_option() -> None:
    res = run("create", "--help")
    assert res.code == 0, res
    for driver in VM_DRIVERS:
        assert f"--{driver}-disk-size MIB" in res.out and f"--{driver}-memory MIB" in res.out
    assert "--virtualbox-cpus, --virtualbox-cpu-count" in res.out and "VIRTUALBOX_CPU_COUNT" in res.out


def saved_config(store_root: Path, name: str, driver: str, options: dict) -> tuple[Store, Path]:
    """A machine folder holding only a config.json with these driver options (as some release saved it)."""
    store = Store(store_root)
    mdir = store.machine_dir(name)
    mdir.mkdir(parents=True)
    (mdir / "config.json").write_text(json.dumps({"schema_version": 1, "name": name, "driver": driver,
                                                  "driver_options": options}))
    return store, mdir


OLD_CONFIGS = {  # driver_options as releases before one unit saved them (no disk_size_unit)
    "q": ("qemu", {"cpus": 2, "memory": 1024, "disk_size": 20, "image": "machine-os", "accel": "tcg"},
          {"disk_size": 20480, "cpus": 2}),
    "l": ("libvirt", {"uri": "qemu:///session", "cpus": 1, "memory": 1024, "disk_size": 4}, {"disk_size": 4096}),
    "h": ("hyperv", {"memory": 2048, "cpus": 2, "disk_size": 30}, {"disk_size": 30720}),
    "v": ("virtualbox", {"cpu_count": 3, "memory": 1536, "disk_size": 5000}, {"cpus": 3, "disk_size": 5000}),
    "k": ("hyperkit", {"cpu_count": 1, "memory": 768, "disk_size": 3000}, {"cpus": 1, "disk_size": 3000}),
}


@pytest.mark.parametrize("name", sorted(OLD_CONFIGS))
def test_old_config_json_is_read_in_todays_units_and_saved_with_its_unit(store_root: Path, name: str) -> None:
    driver, options, expected = OLD_CONFIGS[name]
    store, mdir = saved_config(store_root, name, driver, options)
    cfg = store.load(name)
    assert {k: cfg.driver_options[k] for k in expected} == expected
    assert "cpu_count" not in cfg.driver_options and "disk_size_unit" not in cfg.driver_options
    check_saved_options(cfg)  # within today's bounds: the machine still starts
    store.save(cfg)
    written = json.loads((mdir / "config.json").read_text())["driver_options"]
    assert (written["disk_size_unit"], written["disk_size"]) == ("MiB", cfg.driver_options["disk_size"])
    assert store.load(name).driver_options == cfg.driver_options  # read again: not converted twice


def test_a_new_config_is_not_converted(store_root: Path) -> None:
    store, _ = saved_config(store_root, "n", "qemu", {"disk_size": 2048, "disk_size_unit": "MiB"})
    assert store.load("n").driver_options == {"disk_size": 2048}


def test_a_saved_value_too_small_names_the_flag(store_root: Path) -> None:
    store, _ = saved_config(store_root, "s", "qemu", {"memory": 2, "disk_size_unit": "MiB"})
    with pytest.raises(ConfigError) as err:
        check_saved_options(store.load("s"))
    assert "--qemu-memory" in err.value.message and "machine set s --qemu-memory" in err.value.hint
