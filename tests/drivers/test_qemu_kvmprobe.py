"""machine.drivers.qemu.kvmprobe: the KVM probe payload, the probe mechanics and the per-host verdict cache."""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import machine.drivers.qemu.kvmprobe as accel
import pytest

from machine import process


def test_multiboot_payload_header_is_valid() -> None:
    blob = accel.multiboot_payload()
    magic, flags, checksum, header_addr, load_addr, load_end, bss_end, entry = struct.unpack("<8I", blob[:32])
    assert magic == 0x1BADB002 and (magic + flags + checksum) & 0xFFFFFFFF == 0
    assert flags & 0x10000 and header_addr == load_addr == 0x100000 and entry == 0x100020
    assert accel.PAYLOAD_MARKER.encode() in blob and len(blob) == 512


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or accel.host_arch() != "x86_64",
                    reason="qemu-system-x86_64 is not installed (or not an x86 host)")
def test_probe_payload_prints_its_marker_under_tcg(tmp_path: Path) -> None:
    """The probe mechanics end to end, with TCG standing in for KVM (the payload is the same)."""
    payload = tmp_path / "probe.bin"
    payload.write_bytes(accel.multiboot_payload())
    ok, why = accel._probe_boot(shutil.which("qemu-system-x86_64"), tmp_path, ["-kernel", str(payload)],
                                (accel.PAYLOAD_MARKER,), 20.0, "payload", accel_args=["-accel", "tcg"])
    assert ok, why


def _os_kernel() -> tuple[Path, Path] | None:
    from machine.images.catalogue import machine_os_dir

    d = machine_os_dir()
    return (d / "vmlinuz", d / "initrd.img") if (d / "vmlinuz").is_file() and (d / "initrd.img").is_file() else None


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or _os_kernel() is None,
                    reason="qemu-system-x86_64 or the built machine OS kernel (isos/build.py) is missing")
def test_kernel_probe_reaches_init_under_tcg(tmp_path: Path) -> None:
    kernel, initrd = _os_kernel()
    ok, why = accel._probe_boot(shutil.which("qemu-system-x86_64"), tmp_path,
                                ["-kernel", str(kernel), "-initrd", str(initrd), "-append",
                                 "console=ttyS0 panic=-1 loglevel=7"], accel.KERNEL_MARKERS, 60.0, "kernel",
                                accel_args=["-accel", "tcg"])
    assert ok, why


def test_probe_reports_qemu_exiting(tmp_path: Path) -> None:
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho 'qemu: failed to set MSR 0x10a to 0x0' >&2\nexit 1\n")
    fake.chmod(0o755)
    ok, why = accel._probe_boot(str(fake), tmp_path, [], (accel.PAYLOAD_MARKER,), 5.0, "payload")
    assert not ok and "failed to set MSR 0x10a" in why


def test_probe_times_out_and_kills_a_hanging_qemu(tmp_path: Path) -> None:
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    ok, why = accel._probe_boot(str(fake), tmp_path, [], (accel.PAYLOAD_MARKER,), 0.5, "payload")
    assert not ok and "did not boot within" in why


class Calls(list):
    version: list[str]


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """A Linux host with an accessible /dev/kvm and qemu whose probe is counted, not run."""
    dev = tmp_path / "kvm"
    dev.write_text("")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(accel, "KVM_DEVICE", dev)
    monkeypatch.setattr(accel, "find_qemu", lambda program=None: "/usr/bin/qemu-system-x86_64")
    version = ["7.2.22"]
    monkeypatch.setattr(accel, "qemu_version", lambda binary: version[0])
    calls = Calls()
    calls.version = version

    def probe(qemu, kernel=None, initrd=None):
        calls.append(qemu)
        return False, "failed to set MSR 0x10a"

    monkeypatch.setattr(accel, "probe_kvm", probe)
    monkeypatch.setattr(accel, "_probe_kernel", lambda: (None, None))
    return calls


def test_verdict_is_cached_per_host_and_rechecked_on_request(tmp_path: Path, fake_host) -> None:
    cache = tmp_path / "cache"
    first = accel.kvm_verdict(cache)
    assert not first.usable and "MSR 0x10a" in first.reason and not first.cached
    second = accel.kvm_verdict(cache)
    assert second.cached and second.reason == first.reason
    assert len(fake_host) == 1
    accel.kvm_verdict(cache, recheck=True)
    assert len(fake_host) == 2
    fake_host.version[0] = "8.2.0"  # a qemu upgrade invalidates the verdict
    assert not accel.kvm_verdict(cache).cached
    assert len(fake_host) == 3


def test_cheap_checks_need_no_probe(tmp_path: Path, fake_host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "no-kvm")
    v = accel.kvm_verdict(tmp_path / "cache")
    assert not v.usable and "/dev/kvm does not exist" in v.reason
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "only on Linux" in accel.kvm_verdict(tmp_path / "cache").reason
    assert fake_host == []


def test_pid_alive_reaps_our_exited_children() -> None:
    pid = process.spawn([sys.executable, "-c", "pass"])
    import time

    deadline = time.monotonic() + 5
    while accel.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not accel.pid_alive(pid)
    sleeper = process.spawn([sys.executable, "-c", "import time; time.sleep(30)"])
    assert accel.pid_alive(sleeper)
    accel.kill_pid(sleeper)
    assert not accel.pid_alive(sleeper)


def test_doctor_reports_drivers_kvm_and_image(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from machine.cli import cli

    seen = []

    def verdict(cache_dir, recheck=False):
        seen.append(recheck)
        return accel.Verdict(False, "failed to set MSR 0x10a", "2026-01-01T00:00:00+00:00", cached=not recheck)

    monkeypatch.setattr(accel, "kvm_verdict", verdict)
    monkeypatch.setenv("MACHINE_OS_DIR", str(store_root / "no-os"))
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    qemu = next(row for row in report["drivers"] if row["driver"] == "qemu")
    assert set(qemu) == {"driver", "ok", "message", "hint", "shares"}
    assert qemu["shares"].split(":")[0] in ("virtiofs", "9p")  # the share mechanism qemu would use here
    assert report["kvm"]["usable"] is False and "MSR 0x10a" in report["kvm"]["reason"]
    assert report["machine_os"]["ok"] is False and "machine os build" in report["machine_os"]["hint"]
    text = CliRunner().invoke(cli, ["doctor", "--recheck"])
    assert text.exit_code == 0 and "KVM: NOT usable: failed to set MSR 0x10a" in text.output
    assert "Shared folders (mechanism each driver would use here):" in text.output
    assert seen == [False, True]
