"""A real VM through libvirtd (qemu:///system) with the built machine OS:
create -> Running -> ssh command -> stop (ACPI) -> Stopped -> start -> kill -> rm, and nothing is left
(no domain, no disk, no qemu process, forwarded ports free).

Drives the driver directly with a seed from machine.provision.seediso.build_seed, waiting on the serial
readiness line and the SSH banner like the orchestrator does. User-mode networking only: all
traffic goes to 127.0.0.1. Needs libvirtd (see .ci/setup) running qemu as a user that can read the
pytest temp dir (root in CI: qemu.conf user = "root").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from machine import process, waiting
from machine.driver import DriverContext, State
from tests.vm.vmhelpers import libvirt_reason, pids_of

pytestmark = [pytest.mark.vm, pytest.mark.slow]

URI = "qemu:///system"
READY = "machine-os: ssh-ready"
BOOT_TIMEOUT = 300.0


def _skip_reason() -> str | None:
    reason = libvirt_reason(URI)
    if reason:
        return reason
    from machine.images.catalogue import default_image

    try:
        default_image()
    except Exception as e:  # noqa: BLE001 - the reason is the message
        return f"the machine OS image is not built: {e}"
    if not process.which("ssh") or not process.which("ssh-keygen"):
        return "the OpenSSH client is not installed"
    return None


def _wait_state(drv, want: State, timeout: float) -> State:
    deadline = time.monotonic() + timeout
    while (state := drv.status()) != want and time.monotonic() < deadline:
        time.sleep(0.3)
    return state


def _wait_ready(drv, timeout: float = BOOT_TIMEOUT) -> None:
    console = drv.console_log()

    def failed() -> str | None:
        if waiting.serial_has(console, "machine-os: boot-failed"):
            return "boot failed"
        state = drv.status()
        return None if state == State.RUNNING else f"the VM is {state}"

    hint = lambda: waiting.log_tail(console)  # noqa: E731
    try:
        waiting.until(lambda: waiting.serial_has(console, READY), timeout=timeout, what="ssh-ready", failed=failed)
        ep = drv.ssh_endpoint()
        # OpenSSH 10's sshd-session can take ~30 s for a banner under TCG on a loaded host
        waiting.until(lambda: waiting.ssh_banner(ep.host, ep.port, banner_wait=30), timeout=120, what="SSH banner",
                      failed=failed)
    except Exception as e:
        raise AssertionError(f"{e}\nconsole tail:\n{hint()}") from e


def _ssh(drv, key: Path, command: str) -> process.Result:
    ep = drv.ssh_endpoint()
    return process.run(["ssh", "-i", key, "-p", str(ep.port), "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=60",
                        "-o", "LogLevel=ERROR", f"{ep.user}@{ep.host}", command], timeout=120)


def test_libvirt_vm_cycle(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from machine.drivers.libvirt import LibvirtDriver
    from machine.drivers.libvirt.connection import connect

    from machine.hostports import port_free
    from machine.provision.seediso import build_seed

    name = "lvvm"
    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True)
    key = tmp_path / "id_ed25519"
    process.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    seed = build_seed(machine_dir / "seed.iso", instance_id=f"{name}-{time.time_ns()}", hostname=name,
                      authorized_keys=[key.with_suffix(".pub").read_text().strip()])
    ctx = DriverContext(name=name, machine_dir=machine_dir, cache_dir=tmp_path / "cache", seed_path=seed,
                        options={"uri": URI, "accel": "auto", "network": "user", "memory": 1024, "cpus": 1,
                                 "disk_size": 4096})
    drv = LibvirtDriver(ctx)
    times: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        drv.create()
        assert drv.status() == State.STOPPED
        domain = drv.data["domain"]
        ports = (drv.data["ssh_port"], drv.data["engine_host_port"])
        disk = Path(drv.data["made"][0])
        assert disk.exists()

        t = time.monotonic()
        drv.start()
        assert drv.status() == State.RUNNING
        _wait_ready(drv)
        times["boot_to_ssh"] = time.monotonic() - t
        out = _ssh(drv, key, "hostname; cat /proc/cmdline")
        assert out.ok, out.stderr
        assert out.stdout.splitlines()[0].strip() == name
        assert f"machine.hostname={name}" in out.stdout

        t = time.monotonic()
        drv.stop()  # ACPI power button
        assert _wait_state(drv, State.STOPPED, 90) == State.STOPPED, waiting.log_tail(drv.console_log())
        times["acpi_stop"] = time.monotonic() - t
        assert drv.ssh_endpoint() is None
        assert not pids_of("qemu", domain)

        t = time.monotonic()
        drv.start()
        _wait_ready(drv)  # the console log was truncated: this readiness line is from the second boot
        times["second_boot"] = time.monotonic() - t
        drv.stop(force=True)
        assert drv.status() == State.STOPPED

        drv.remove()
        assert drv.status() == State.NOT_CREATED
        assert domain not in [d.name() for d in connect(URI).listAllDomains(0)]
        assert not disk.exists()
        assert not pids_of("qemu", domain)
        assert all(port_free(p) for p in ports)
        assert not Path(f"/var/log/libvirt/qemu/{domain}.log").exists()
        times["total"] = time.monotonic() - t0
        print("libvirt VM cycle:", ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
              f"(virt type {drv.data['virt_type']}: {drv.data['accel_reason']})")
    finally:
        drv.remove()


def _machine(*args: str, timeout: float = 600) -> process.Result:
    import sys

    return process.run([sys.executable, "-m", "machine", *args], timeout=timeout)


def test_libvirt_cli_cycle(store_root: Path) -> None:
    """The same cycle through the CLI (orchestrator + provisioning): create provisions the engine."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from machine.drivers.libvirt.connection import connect

    from machine.hostports import port_free
    from machine.store import Store

    name = "lvcli"
    times: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        out = _machine("create", "-d", "libvirt", "--libvirt-network", "user", "--libvirt-memory", "1024",
                       "--libvirt-cpus", "1", "--libvirt-disk-size", "4g", name)
        assert out.ok, out.stdout + out.stderr
        times["create"] = time.monotonic() - t0
        data = Store(store_root).load(name).driver_data
        domain, ports, disk = data["domain"], (data["ssh_port"], data["engine_host_port"]), Path(data["made"][0])
        assert _machine("status", name).stdout.strip() == "Running"
        out = _machine("ssh", name, "hostname")
        assert out.ok and out.stdout.strip() == name, out.stdout + out.stderr

        t = time.monotonic()
        out = _machine("stop", name)
        assert out.ok, out.stdout + out.stderr
        times["stop"] = time.monotonic() - t
        assert _machine("status", name).stdout.strip() == "Stopped"
        assert not pids_of("qemu", domain)

        t = time.monotonic()
        out = _machine("start", name)
        assert out.ok, out.stdout + out.stderr
        times["start"] = time.monotonic() - t
        assert "changed" not in out.stdout + out.stderr, "the forwarded ports must survive a stop/start"
        assert _machine("status", name).stdout.strip() == "Running"
        out = _machine("kill", name)
        assert out.ok, out.stdout + out.stderr
        assert _machine("status", name).stdout.strip() == "Stopped"

        out = _machine("rm", "-y", name)
        assert out.ok, out.stdout + out.stderr
        times["total"] = time.monotonic() - t0
        assert domain not in [d.name() for d in connect(URI).listAllDomains(0)]
        assert not disk.exists() and not (store_root / "machines" / name).exists()
        assert not pids_of("qemu", domain)
        assert all(port_free(p) for p in ports)
        assert not Path(f"/var/log/libvirt/qemu/{domain}.log").exists()
        print("libvirt CLI cycle:", ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    finally:
        if (store_root / "machines" / name).exists():
            _machine("rm", "-y", "-f", name)


def test_taken_ports_are_rewritten_in_the_real_daemons_xml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test hypervisor drops <qemu:commandline>; the real daemon keeps it, so moving the forwards
    at start must rewrite it there. No boot: the domain is only defined."""
    reason = _skip_reason()
    if reason and "not built" not in reason:
        pytest.skip(reason)
    import json
    import socket

    from machine.drivers.libvirt import LibvirtDriver
    from machine.drivers.libvirt.connection import connect

    os_dir = tmp_path / "os"
    os_dir.mkdir()
    for f in ("vmlinuz", "initrd.img"):
        (os_dir / f).write_bytes(b"never booted")
    (os_dir / "manifest.json").write_text(json.dumps({"cmdline": "console=ttyS0"}))
    monkeypatch.setenv("MACHINE_OS_DIR", str(os_dir))
    machine_dir = tmp_path / "m"
    machine_dir.mkdir()
    drv = LibvirtDriver(DriverContext(name="ports", machine_dir=machine_dir, cache_dir=tmp_path,
                                      options={"uri": URI, "accel": "tcg", "network": "user", "disk_size": 1024,
                                               "restrict": "on"}))
    try:
        drv.create()
        old = drv.data["ssh_port"]
        dom = connect(URI).lookupByName(drv.data["domain"])
        assert f"hostfwd=tcp:127.0.0.1:{old}-:22" in dom.XMLDesc(0)
        with socket.socket() as s:
            s.bind(("127.0.0.1", old))
            s.listen(1)
            drv._refresh_ports(dom)
        new = drv.data["ssh_port"]
        xml = connect(URI).lookupByName(drv.data["domain"]).XMLDesc(0)
        assert new != old and f"hostfwd=tcp:127.0.0.1:{new}-:22" in xml
        assert f"hostfwd=tcp:127.0.0.1:{drv.data['engine_host_port']}-:2376" in xml
        assert "restrict=on" in xml and "addr=0x10" in xml
    finally:
        drv.remove()
    assert drv.status() == State.NOT_CREATED


def test_libvirt_create_interrupted_during_boot_leaves_nothing(store_root: Path) -> None:
    """Ctrl-C while the domain boots: create fails without a traceback and removes the domain, its
    disk and the machine directory (or leaves a machine that `rm -f` removes completely)."""
    import json
    import os
    import signal
    import subprocess
    import sys

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from machine.drivers.libvirt.connection import connect

    from machine.hostports import port_free

    name = "lvint"
    mdir = store_root / "machines" / name
    proc = subprocess.Popen([sys.executable, "-m", "machine", "create", "-d", "libvirt", "--libvirt-network", "user",
                             "--libvirt-memory", "1024", "--libvirt-cpus", "1", "--libvirt-disk-size", "4g", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    data: dict = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the domain runs (the boot has begun)
            try:
                data = json.loads((mdir / "config.json").read_text())["driver_data"]
                if data.get("domain") and connect(URI).lookupByName(data["domain"]).isActive():
                    break
            except Exception:  # noqa: BLE001 - not there yet
                pass
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.2)
        else:
            pytest.fail("the domain did not start within 120 s")
        time.sleep(1.0)  # well inside "Waiting for the machine to boot"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode(errors="replace")
    assert proc.returncode != 0, "an interrupted create must not report success"
    assert "Traceback" not in text, text
    assert "Create interrupted; removing what was made" in text, text
    if mdir.exists():  # not rolled back: rm -f must remove it completely
        assert _machine("rm", "-y", "-f", name).ok
    domain, ports = data["domain"], (data.get("ssh_port"), data.get("engine_host_port"))
    assert domain not in [d.name() for d in connect(URI).listAllDomains(0)]
    assert not mdir.exists()
    assert not [Path(p) for p in data.get("made", []) if Path(p).exists()]
    assert not pids_of("qemu", domain)
    assert all(port_free(int(p)) for p in ports if p)
