"""qemu command lines for each accelerator, host OS and image kind (no qemu is run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from machine.drivers.qemu import cmdline
from machine.drivers.qemu.accel import choose
from machine.drivers.qemu.kvmprobe import Verdict


def spec(**kw) -> cmdline.VMSpec:
    base = dict(name="dev", qemu="qemu-system-x86_64", platform="linux", arch="x86_64", accel="tcg", cpus=2,
                memory_mib=1024, console_log=Path("/m/dev/console.log"), qmp="unix:/m/dev/qmp.sock", ssh_port=40022,
                engine_host_port=40376, kernel=Path("/os/vmlinuz"), initrd=Path("/os/initrd.img"),
                cmdline="console=ttyS0 machine.hostname=dev", os_iso=Path("/os/machine-os.iso"),
                data_disk=Path("/m/dev/data.qcow2"), seed=Path("/m/dev/seed.iso"))
    base.update(kw)
    return cmdline.VMSpec(**base)


def value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_tcg_kernel_boot_of_the_machine_os() -> None:
    args = cmdline.build_args(spec())
    assert args[0] == "qemu-system-x86_64"
    assert value(args, "-accel") == "tcg,tb-size=128"
    assert value(args, "-cpu") == "max"
    assert value(args, "-machine") == "q35"
    assert (value(args, "-smp"), value(args, "-m")) == ("2", "1024")
    assert value(args, "-kernel") == "/os/vmlinuz"
    assert value(args, "-initrd") == "/os/initrd.img"
    assert "machine.hostname=dev" in value(args, "-append")
    drives = values(args, "-drive")
    assert "file=/os/machine-os.iso,if=none,id=os,format=raw,readonly=on" in drives
    assert "file=/m/dev/data.qcow2,if=none,id=data,format=qcow2,discard=unmap" in drives
    assert "file=/m/dev/seed.iso,if=none,id=seed,format=raw,readonly=on" in drives
    assert "-nodefaults" in args and value(args, "-display") == "none"
    assert value(args, "-qmp") == "unix:/m/dev/qmp.sock,server=on,wait=off"
    assert value(args, "-chardev") == "file,id=console,path=/m/dev/console.log"
    assert value(args, "-serial") == "chardev:console"


def test_user_networking_forwards_bound_to_loopback_and_restricted() -> None:
    netdev = value(cmdline.build_args(spec(engine_guest_port=2377)), "-netdev")
    parts = netdev.split(",")
    assert parts[:3] == ["user", "id=n0", "restrict=on"]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in parts
    assert "hostfwd=tcp:127.0.0.1:40376-:2377" in parts


def test_cluster_nic_plugs_into_the_vde_switch_after_the_user_nic() -> None:
    args = cmdline.build_args(spec(cluster_switch="/s/swarms/c1/switch", cluster_mac="52:54:00:77:03:02"))
    assert values(args, "-netdev")[1] == "vde,id=n1,sock=/s/swarms/c1/switch"
    nets = [d for d in values(args, "-device") if d.startswith("virtio-net-pci")]
    assert nets == ["virtio-net-pci,netdev=n0", "virtio-net-pci,netdev=n1,mac=52:54:00:77:03:02"]


def test_unrestricted_network_for_cloud_images() -> None:
    assert "restrict=on" not in value(cmdline.build_args(spec(restrict_network=False)), "-netdev")


@pytest.mark.parametrize(("accel", "platform", "expected"), [
    ("kvm", "linux", ["-accel", "kvm", "-cpu", "host"]),
    ("hvf", "darwin", ["-accel", "hvf", "-cpu", "host"]),
    ("whpx", "win32", ["-accel", "whpx,kernel-irqchip=off", "-cpu", "max"]),
    ("tcg", "win32", ["-accel", "tcg,tb-size=128", "-cpu", "max"]),
])
def test_accelerator_arguments(accel: str, platform: str, expected: list[str]) -> None:
    args = cmdline.build_args(spec(accel=accel, platform=platform))
    i = args.index("-accel")
    assert args[i:i + 4] == expected


def test_unknown_accelerator_is_refused() -> None:
    with pytest.raises(ValueError):
        cmdline.accel_args("xen", "x86_64", "linux")


def test_windows_uses_tcp_qmp_and_windows_paths() -> None:
    s = spec(platform="win32", accel="whpx", qmp="tcp:127.0.0.1:40999",
             qemu=r"C:\Program Files\qemu\qemu-system-x86_64.exe",
             console_log=Path(r"C:\Users\me\.docker\machine\machines\dev\console.log"))
    args = cmdline.build_args(s)
    assert args[0].endswith("qemu-system-x86_64.exe")
    assert value(args, "-qmp") == "tcp:127.0.0.1:40999,server=on,wait=off"
    assert "unix:" not in " ".join(args)


def test_macos_arm_uses_virt_machine_and_hvf() -> None:
    s = spec(platform="darwin", arch="aarch64", accel="hvf", qemu="/opt/homebrew/bin/qemu-system-aarch64")
    args = cmdline.build_args(s)
    assert value(args, "-machine") == "virt,highmem=off"
    assert value(args, "-cpu") == "host"


def test_cloud_image_boots_its_overlay_disk_without_a_kernel() -> None:
    s = spec(kernel=None, initrd=None, cmdline="", os_iso=None, data_disk=None, root_disk=Path("/m/dev/disk.qcow2"))
    args = cmdline.build_args(s)
    assert "-kernel" not in args and "-append" not in args
    drives = values(args, "-drive")
    assert drives[0] == "file=/m/dev/disk.qcow2,if=none,id=root,format=qcow2,discard=unmap"
    assert any("id=seed" in d for d in drives)


def test_aarch64_cloud_image_gets_uefi_firmware() -> None:
    s = spec(arch="aarch64", kernel=None, initrd=None, cmdline="", os_iso=None, data_disk=None,
             root_disk=Path("/m/dev/disk.qcow2"), firmware=Path("/usr/share/AAVMF/AAVMF_CODE.fd"))
    args = cmdline.build_args(s)
    assert value(args, "-bios") == "/usr/share/AAVMF/AAVMF_CODE.fd"
    assert value(args, "-machine") == "virt"


def test_commas_in_paths_are_escaped() -> None:
    args = cmdline.build_args(spec(data_disk=Path("/m/a,b/data.qcow2"), console_log=Path("/m/a,b/console.log")))
    assert "file=/m/a,,b/data.qcow2,if=none,id=data,format=qcow2,discard=unmap" in values(args, "-drive")
    assert value(args, "-chardev") == "file,id=console,path=/m/a,,b/console.log"


def test_manifest_args_can_replace_machine_and_cpu() -> None:
    args = cmdline.build_args(spec(extra_args=("-machine", "pc", "-cpu", "qemu64")))
    assert values(args, "-machine") == ["pc"]
    assert values(args, "-cpu") == ["qemu64"]
    assert value(args, "-accel") == "tcg,tb-size=128"


def test_kernel_cmdline_adds_hostname_and_keeps_the_image_console() -> None:
    line = cmdline.kernel_cmdline("console=tty0 console=ttyS0,115200n8 quiet machine.hostname=old", "dev", "x86_64")
    assert line.split() == ["console=tty0", "console=ttyS0,115200n8", "quiet", "machine.hostname=dev"]
    assert cmdline.kernel_cmdline("quiet", "a1", "aarch64") == "quiet console=ttyAMA0 machine.hostname=a1"


# -- accelerator choice -------------------------------------------------------------------------


def verdict(usable: bool, reason: str = "probe said so"):
    return lambda cache_dir: Verdict(usable, reason, "now")


def test_auto_on_linux_uses_kvm_only_when_the_probe_works() -> None:
    assert choose("auto", "linux", None, verdict(True))[0] == "kvm"
    accel, note = choose("auto", "linux", None, verdict(False, "failed to set MSR 0x10a"))
    assert accel == "tcg"
    assert "failed to set MSR 0x10a" in note and "TCG" in note


@pytest.mark.parametrize(("platform", "expected"), [("darwin", "hvf"), ("win32", "whpx"), ("freebsd14", "tcg")])
def test_auto_on_other_hosts(platform: str, expected: str) -> None:
    def never(cache_dir):
        raise AssertionError("KVM is not probed off Linux")

    assert choose("auto", platform, None, never)[0] == expected


def test_explicit_choices_are_honoured_with_a_note() -> None:
    accel, note = choose("kvm", "linux", None, verdict(False, "hangs"))
    assert accel == "kvm" and "unusable" in note
    accel, note = choose("tcg", "linux", None, verdict(True))
    assert accel == "tcg" and "TCG" in note
    with pytest.raises(ValueError):
        choose("xen", "linux", None, verdict(True))


def test_forwards_listen_on_the_chosen_host_address() -> None:
    parts = value(cmdline.build_args(spec(host_address="127.0.0.2")), "-netdev").split(",")
    assert "hostfwd=tcp:127.0.0.2:40022-:22" in parts and "hostfwd=tcp:127.0.0.2:40376-:2376" in parts
    assert not any("127.0.0.1" in p for p in parts)


def test_resume_waits_for_the_saved_state_instead_of_booting() -> None:
    from dataclasses import replace

    plain = cmdline.build_args(spec())
    assert "-incoming" not in plain
    args = cmdline.build_args(replace(spec(), incoming=True))
    assert args[args.index("-incoming") + 1] == "defer"
    assert [a for a in args if a not in ("-incoming", "defer")] == plain  # the same devices, or qemu refuses the state
