"""Unit tests of the libvirt driver: domain XML, state and error mapping, disks, networks.

Driver-level tests run against libvirt's in-process `test:///default` hypervisor (no daemon).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install libvirt-python)")

from machine.drivers.libvirt import LibvirtDriver, bootplan, networks  # noqa: E402
from machine.drivers.libvirt import connection as lv  # noqa: E402
from machine.drivers.libvirt.domainxml import (  # noqa: E402
    Disk,
    DomainSpec,
    interface_macs,
    networks_of,
    render_domain,
    render_network,
    rewrite_user_ports,
    user_net_args,
)

from machine.driver import DriverContext, State  # noqa: E402
from machine.errors import DriverError, HostNotUsable, NotFound  # noqa: E402

QEMU_NS = "{http://libvirt.org/schemas/domain/qemu/1.0}"
TEST_URI = "test:///default"


def spec(**kw) -> DomainSpec:
    base = dict(name="machine-a-1234", machine="a", machine_dir="/tmp/m/a", virt_type="qemu", memory_mib=768,
                cpus=2, console_log="/tmp/m/a/console.log",
                disks=(Disk("/tmp/m/a/data.qcow2", "vda"), Disk("/tmp/m/a/seed.iso", "vdb", format="raw",
                                                                  readonly=True)),
                kernel="/os/vmlinuz", initrd="/os/initrd.img", cmdline="console=ttyS0 machine.hostname=a",
                qemu_args=user_net_args(40022, 42376, 2376, "52:54:00:aa:bb:cc"))
    base.update(kw)
    return DomainSpec(**base)


# -- domain XML -------------------------------------------------------------------------------


def test_tcg_domain_xml_parses_with_tb_cache_and_user_net_args() -> None:
    root = ET.fromstring(render_domain(spec()))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "machine-a-1234"
    assert root.find("memory").text == "768" and root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "2"
    tb = root.find("./features/tcg/tb-cache")
    assert tb is not None and tb.text == "128" and tb.get("unit") == "MiB"
    assert root.find("cpu") is None  # libvirt's default model under TCG
    assert root.findtext("./os/kernel") == "/os/vmlinuz"
    assert root.findtext("./os/initrd") == "/os/initrd.img"
    assert root.findtext("./os/cmdline") == "console=ttyS0 machine.hostname=a"
    assert root.find("./os/type").get("machine") == "pc"  # the NIC's bus=pci.0 needs i440fx
    args = [a.get("value") for a in root.findall(f"./{QEMU_NS}commandline/{QEMU_NS}arg")]
    assert args == ["-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22,"
                    "hostfwd=tcp:127.0.0.1:42376-:2376",
                    "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc,bus=pci.0,addr=0x10"]
    assert root.find("./devices/interface") is None
    serial = root.find("./devices/serial")
    assert serial.get("type") == "file" and serial.find("source").get("path") == "/tmp/m/a/console.log"
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert disks[0].find("driver").get("type") == "qcow2" and disks[0].find("readonly") is None
    assert disks[1].find("driver").get("type") == "raw" and disks[1].find("readonly") is not None
    assert root.find("./devices/graphics") is None  # <graphics type='none'> is invalid: none at all


def test_kvm_domain_xml_has_no_tcg_section_and_passes_the_host_cpu() -> None:
    root = ET.fromstring(render_domain(spec(virt_type="kvm")))
    assert root.get("type") == "kvm"
    assert root.find("./features/tcg") is None
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_network_mode_xml_has_an_interface_and_no_commandline() -> None:
    root = ET.fromstring(render_domain(spec(network="default", mac="52:54:00:01:02:03", qemu_args=())))
    iface = root.find("./devices/interface")
    assert iface.get("type") == "network" and iface.find("source").get("network") == "default"
    assert iface.find("model").get("type") == "virtio"
    assert root.find(f"{QEMU_NS}commandline") is None
    xml = render_domain(spec(network="default", mac="52:54:00:01:02:03", qemu_args=()))
    assert interface_macs(xml) == ["52:54:00:01:02:03"]
    assert networks_of(xml) == ["default"]


def test_boot_from_cdrom_without_kernel() -> None:
    root = ET.fromstring(render_domain(spec(kernel=None, initrd=None, cmdline=None, boot_dev="cdrom")))
    assert root.find("./os/kernel") is None
    assert root.find("./os/boot").get("dev") == "cdrom"


def test_values_are_escaped() -> None:
    evil = "/tmp/it's <a> & \"b\"/m"
    root = ET.fromstring(render_domain(spec(machine="x'<&>\"", machine_dir=evil, console_log=evil + "/c.log",
                                            cmdline="a='1' b=<2> & c",
                                            disks=(Disk(evil + "/d.qcow2", "vda"),))))
    assert root.findtext("title") == "machine x'<&>\""
    assert root.find("./devices/serial/source").get("path") == evil + "/c.log"
    assert root.find("./devices/disk/source").get("file") == evil + "/d.qcow2"
    assert root.findtext("./os/cmdline") == "a='1' b=<2> & c"


def test_invalid_virt_type_is_refused() -> None:
    with pytest.raises(ValueError):
        render_domain(spec(virt_type="xen"))


def test_rendered_domain_is_accepted_by_libvirt() -> None:
    conn = lv.connect(TEST_URI)
    dom = conn.defineXML(render_domain(spec(name="machine-unit-accept")))
    try:
        xml = dom.XMLDesc(0)
        assert "<tb-cache unit='KiB'>131072</tb-cache>" in xml
    finally:
        dom.undefine()


def test_rewrite_user_ports_moves_both_forwards() -> None:
    xml = render_domain(spec())
    out = rewrite_user_ports(xml, 50022, 52376)
    assert "hostfwd=tcp:127.0.0.1:50022-:22" in out and "hostfwd=tcp:127.0.0.1:52376-:2376" in out
    assert "40022" not in out and "42376" not in out


def test_network_xml() -> None:
    root = ET.fromstring(render_network("machine-private", "virbr-machine", 123))
    assert root.find("forward").get("mode") == "nat"
    assert root.find("ip").get("address") == "192.168.123.1"
    assert root.find("./ip/dhcp/range").get("start") == "192.168.123.2"


# -- state and error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "want"), [
    ("VIR_DOMAIN_NOSTATE", State.UNKNOWN), ("VIR_DOMAIN_RUNNING", State.RUNNING),
    ("VIR_DOMAIN_BLOCKED", State.RUNNING), ("VIR_DOMAIN_PAUSED", State.PAUSED),
    ("VIR_DOMAIN_SHUTDOWN", State.STOPPING), ("VIR_DOMAIN_SHUTOFF", State.STOPPED),
    ("VIR_DOMAIN_CRASHED", State.ERROR), ("VIR_DOMAIN_PMSUSPENDED", State.PAUSED),
])
def test_state_mapping_uses_libvirts_numbers(name: str, want: State) -> None:
    assert lv.map_state(getattr(libvirt, name)) == want


def test_shutoff_with_managed_save_is_saved() -> None:
    assert lv.map_state(libvirt.VIR_DOMAIN_SHUTOFF, managed_save=True) == State.SAVED
    assert lv.map_state(libvirt.VIR_DOMAIN_RUNNING, managed_save=True) == State.RUNNING
    assert lv.map_state(99) == State.UNKNOWN


def lv_error(code: int, message: str) -> Exception:
    e = libvirt.libvirtError(message)
    e.err = (code, libvirt.VIR_FROM_RPC, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return e


def test_daemon_not_running_error_says_how_to_start_it() -> None:
    err = lv.connection_error(lv_error(libvirt.VIR_ERR_SYSTEM_ERROR, "Failed to connect socket to "
                                       "'/var/run/libvirt/libvirt-sock': No such file or directory"),
                              "qemu:///system")
    assert isinstance(err, HostNotUsable)
    assert "libvirtd -d" in err.hint and "systemctl start libvirtd" in err.hint


def test_permission_error_says_group_or_session() -> None:
    err = lv.connection_error(lv_error(libvirt.VIR_ERR_SYSTEM_ERROR, "Failed to connect socket to "
                                       "'/var/run/libvirt/libvirt-sock': Permission denied"), "qemu:///system")
    assert isinstance(err, HostNotUsable)
    assert "libvirt group" in err.hint and "qemu:///session" in err.hint
    err = lv.connection_error(lv_error(libvirt.VIR_ERR_AUTH_FAILED, "authentication failed"), "qemu:///system")
    assert "qemu:///session" in err.hint


def test_unknown_uri_driver_error() -> None:
    err = lv.connection_error(lv_error(libvirt.VIR_ERR_NO_CONNECT, "no connection driver available for x:///"),
                              "x:///")
    assert isinstance(err, HostNotUsable) and "libvirt-daemon-driver-qemu" in err.hint


def test_no_such_network_error_points_at_net_list() -> None:
    err = lv.operation_error(lv_error(libvirt.VIR_ERR_NO_NETWORK, "Network not found"), "Using network x",
                             "qemu:///system")
    assert isinstance(err, NotFound) and "virsh -c qemu:///system net-list --all" in err.hint


def test_other_operation_errors_are_driver_errors_with_a_hint() -> None:
    err = lv.operation_error(lv_error(libvirt.VIR_ERR_INTERNAL_ERROR, "qemu died"), "Starting", "qemu:///system")
    assert isinstance(err, DriverError) and "qemu died" in err.message and err.hint


def test_real_failed_connection_is_mapped(tmp_path: Path) -> None:
    with pytest.raises(HostNotUsable) as e:
        lv.connect(f"qemu+unix:///system?socket={tmp_path}/no-such-socket")
    assert "libvirtd -d" in e.value.hint


# -- availability ------------------------------------------------------------------------------


def test_check_available_without_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)
    verdict = LibvirtDriver.check_available({"uri": TEST_URI})
    assert not verdict.ok and "pip install libvirt-python" in verdict.hint and "libvirt-dev" in verdict.hint


def test_check_available_unreachable_daemon(tmp_path: Path) -> None:
    verdict = LibvirtDriver.check_available({"uri": f"qemu+unix:///system?socket={tmp_path}/none"})
    assert not verdict.ok and "libvirtd" in verdict.hint


def test_check_available_with_the_test_hypervisor() -> None:
    assert LibvirtDriver.check_available({"uri": TEST_URI}).ok


# -- disks and boot plan ----------------------------------------------------------------------


def fake_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iso: bool = True) -> Path:
    d = tmp_path / "os"
    d.mkdir()
    (d / "vmlinuz").write_bytes(b"k")
    (d / "initrd.img").write_bytes(b"i")
    if iso:
        (d / "machine-os.iso").write_bytes(b"\0" * 4096)
    (d / "manifest.json").write_text(json.dumps({"cmdline": "console=ttyS0 machine.root=LABEL=MACHINE_OS"}))
    monkeypatch.setenv("MACHINE_OS_DIR", str(d))
    return d


def test_kernel_cmdline_appends_hostname() -> None:
    assert bootplan.kernel_cmdline({"cmdline": "console=ttyS0 quiet"}, "web1") == "console=ttyS0 quiet " \
                                                                                  "machine.hostname=web1"
    assert bootplan.kernel_cmdline({}, "a").endswith("machine.hostname=a")


def test_machine_os_plan_makes_a_sparse_data_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os_dir = fake_os(tmp_path, monkeypatch)
    seed = tmp_path / "seed.iso"
    seed.write_bytes(b"\0" * 2048)
    plan = bootplan.plan(None, name="m1", storage=tmp_path / "m1", seed_path=seed, disk_size_mb=10240,
                         cache_dir=tmp_path)
    assert plan.kernel == str(os_dir / "vmlinuz") and plan.initrd == str(os_dir / "initrd.img")
    assert plan.cmdline == "console=ttyS0 machine.root=LABEL=MACHINE_OS machine.hostname=m1"
    assert [(d.target, Path(d.path).name, d.readonly) for d in plan.disks] == [
        ("vda", "data.qcow2", False), ("vdb", "machine-os.iso", True), ("vdc", "seed.iso", True)]
    data = tmp_path / "m1" / "data.qcow2"
    assert plan.made == [str(data)]
    assert bootplan.virtual_size(data) == 10240 << 20
    assert data.stat().st_size < 1 << 20  # sparse: nothing written yet


def test_disk_image_gets_an_overlay_on_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    bootplan.make_data_disk(base, 64)
    plan = bootplan.plan(str(base), name="m2", storage=tmp_path / "m2", seed_path=None, disk_size_mb=128,
                         cache_dir=tmp_path)
    overlay = tmp_path / "m2" / "disk.qcow2"
    assert plan.kernel is None and [d.path for d in plan.disks] == [str(overlay)]
    from machine import process

    info = json.loads(process.run(["qemu-img", "info", "--output=json", overlay], check=True).stdout)
    assert info["backing-filename"] == str(base.resolve()) and info["virtual-size"] == 128 << 20


# -- driver against test:///default -----------------------------------------------------------


def make_driver(tmp_path: Path, name: str = "u1", **options) -> LibvirtDriver:
    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True)
    seed = machine_dir / "seed.iso"
    seed.write_bytes(b"\0" * 2048)
    opts = {"uri": TEST_URI, "accel": "tcg", "network": "user", "disk_size": 1024, **options}
    return LibvirtDriver(DriverContext(name=name, machine_dir=machine_dir, options=opts, cache_dir=tmp_path / "cache",
                                       seed_path=seed))


def test_user_mode_forwards_and_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path)
    try:
        drv.create()
        ssh, eng = drv.data["ssh_port"], drv.data["engine_host_port"]
        assert ssh != eng
        assert drv.ip() == "127.0.0.1"
        assert drv.engine_address(2376) == ("127.0.0.1", eng)
        assert drv.engine_address(9999) is None  # not forwarded
        assert drv.url() == f"tcp://127.0.0.1:{eng}"
        assert drv.ssh_endpoint() is None  # stopped
        drv.start()
        ep = drv.ssh_endpoint()
        assert (ep.host, ep.port, ep.user) == ("127.0.0.1", ssh, "root")
        assert drv.console_log() == drv.ctx.machine_dir / "console.log"
    finally:
        drv.remove()
    assert drv.status() == State.NOT_CREATED
    assert not (drv.ctx.machine_dir / "data.qcow2").exists()


def test_taken_ports_are_replaced_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path, "u2")
    try:
        drv.create()
        old = drv.data["ssh_port"]
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", old))
            s.listen(1)
            drv.start()
        assert drv.data["ssh_port"] != old
        assert drv.status() == State.RUNNING
    finally:
        drv.remove()


def test_kvm_only_when_the_probe_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import machine.drivers.qemu.kvmprobe as accel

    drv = make_driver(tmp_path, "u3", uri="qemu:///system", accel="auto")
    monkeypatch.setattr(accel, "kvm_verdict", lambda cache_dir, recheck=False: accel.Verdict(False, "hangs"))
    assert drv.virt_type() == ("qemu", "hangs")
    monkeypatch.setattr(accel, "kvm_verdict", lambda cache_dir, recheck=False: accel.Verdict(True, "works"))
    assert drv.virt_type() == ("kvm", "works")
    drv.ctx.options["accel"] = "tcg"
    assert drv.virt_type()[0] == "qemu"


def test_libvirt_network_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path, "n1", network="default")
    try:
        drv.create()
        xml = lv.connect(TEST_URI).lookupByName(drv.domain_name).XMLDesc(0)
        assert networks_of(xml) == ["default"]
        assert "ssh_port" not in drv.data
        drv.start()
        # the test hypervisor reports a made-up lease in the network's subnet (nothing is contacted)
        import ipaddress

        ip = drv.ip()
        assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("192.168.122.0/24")
        ep = drv.ssh_endpoint()
        assert (ep.host, ep.port) == (ip, 22)
        assert drv.engine_address(2376) == (ip, 2376)
        drv.stop(force=True)
        assert drv.ip() is None  # no address while stopped
    finally:
        drv.remove()
    assert "default" in [n.name() for n in lv.connect(TEST_URI).listAllNetworks()]  # never removed


def test_missing_network_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path, "n2", network="no-such-net")
    with pytest.raises(NotFound) as e:
        drv.create()
    assert "net-list --all" in e.value.hint
    assert not (drv.ctx.machine_dir / "data.qcow2").exists()  # checked before any disk is made
    drv.remove()


def test_failed_create_in_private_mode_leaves_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACHINE_OS_DIR", str(tmp_path / "no-such-build"))
    drv = make_driver(tmp_path, "p3", network="private")
    with pytest.raises(Exception, match="not built"):
        drv.create()
    drv.remove()  # what the orchestrator does after a failed create
    assert networks.PRIVATE_NETWORK not in [n.name() for n in lv.connect(TEST_URI).listAllNetworks()]


def test_private_network_lives_as_long_as_its_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    conn = lv.connect(TEST_URI)
    a, b = make_driver(tmp_path, "p1", network="private"), make_driver(tmp_path, "p2", network="private")
    try:
        a.create()
        b.create()
        assert networks.PRIVATE_NETWORK in [n.name() for n in conn.listAllNetworks()]
        xml = conn.networkLookupByName(networks.PRIVATE_NETWORK).XMLDesc(0)
        assert "192.168.122." not in xml  # not the default network's subnet
        a.remove()
        assert networks.PRIVATE_NETWORK in [n.name() for n in conn.listAllNetworks()]
    finally:
        a.remove()
        b.remove()
    assert networks.PRIVATE_NETWORK not in [n.name() for n in conn.listAllNetworks()]


def test_free_octet_skips_taken_subnets() -> None:
    import ipaddress

    taken = [ipaddress.IPv4Network("192.168.100.0/24"), ipaddress.IPv4Network("192.168.101.0/25")]
    assert networks.free_octet(taken) == 102
    with pytest.raises(RuntimeError):
        networks.free_octet([ipaddress.IPv4Network("192.168.0.0/16")])


def test_host_routes_parse(tmp_path: Path) -> None:
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                     "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n"
                     "eth0\t0065A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    assert [str(n) for n in networks._host_routes(route)] == ["192.168.101.0/24"]


def test_port_in_time_wait_counts_as_free_but_a_listener_does_not() -> None:
    from machine.hostports import port_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as qemu's user-mode forwards do
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    assert not port_free(port)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the side that closes first keeps the port in TIME_WAIT
    client.close()
    listener.close()
    assert port_free(port)  # qemu binds with SO_REUSEADDR: a stopped machine keeps its forwards


@pytest.mark.parametrize(("image_kind", "restrict_opt", "want"), [
    ("machine-os", "auto", False), ("machine-os", "on", True), ("machine-os", "off", False), ("cloud", "auto", False),
    ("cloud", "on", True),
])
def test_only_restrict_on_cuts_the_guest_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_kind: str,
                                    restrict_opt: str, want: bool) -> None:
    import machine.drivers.libvirt.domainxml as dx

    fake_os(tmp_path, monkeypatch)
    image = None
    if image_kind == "cloud":
        image = str(tmp_path / "cloud.qcow2")
        bootplan.make_data_disk(Path(image), 16)
    seen: list[str] = []
    real = dx.render_domain
    spec_seen: list = []
    monkeypatch.setattr(dx, "render_domain", lambda spec: seen.append(" ".join(spec.qemu_args)) or
                        spec_seen.append(spec) or real(spec))
    drv = make_driver(tmp_path, f"r-{image_kind}-{restrict_opt}", restrict=restrict_opt, image=image)
    try:
        drv.create()
        if want:  # the agent reports why a UDP port is not forwarded (libslirp drops a restricted guest's UDP)
            # libvirt's test driver drops <qemu:commandline> from XMLDesc: answer with the XML the driver defined
            defined = real(spec_seen[0])
            with monkeypatch.context() as mp, \
                    pytest.raises(DriverError, match="--libvirt-restrict on .*restrict=on drops the guest's UDP"):
                mp.setattr(drv, "_domain", lambda: types.SimpleNamespace(XMLDesc=lambda flags: defined))
                drv.forward_port("udp", "127.0.0.1", 5353, 53)
    finally:
        drv.remove()
    assert seen and ("restrict=on" in seen[0]) is want


def test_qemu_permission_error_explains_the_file_access_problem() -> None:
    err = lv.operation_error(lv_error(libvirt.VIR_ERR_INTERNAL_ERROR, "process exited while connecting to monitor: "
                                      "Could not open '/home/u/.machine/machines/a/data.qcow2': Permission denied"),
                             "Starting the domain", "qemu:///system")
    assert isinstance(err, DriverError) and "qemu:///session" in err.hint and "storage-dir" in err.hint


def test_set_memory_and_cpus_take_effect_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`machine set --libvirt-memory/--libvirt-cpus` on a stopped machine: start redefines the domain."""
    from machine.driver import settable_changes

    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path, "u3", memory=1024, cpus=2)
    try:
        drv.create()
        assert settable_changes(LibvirtDriver, drv.ctx.options, {"memory": 1536, "cpus": 1}) == {
            "memory": (1024, 1536), "cpus": (2, 1)}
        drv.ctx.options.update(memory=1536, cpus=1)
        drv.start()
        _, max_kib, _, cpus, _ = drv._domain().info()
        assert (max_kib, cpus) == (1536 * 1024, 1)
        drv.stop(force=True)
        xml = drv._domain().XMLDesc(0)
        assert "<vcpu placement='static'>1</vcpu>" in xml and "<memory unit='KiB'>1572864</memory>" in xml
        assert drv.domain_name in xml and "data.qcow2" in xml  # the rest of the definition is kept
    finally:
        drv.remove()


def test_rewrite_resources_keeps_other_elements() -> None:
    from machine.drivers.libvirt.domainxml import rewrite_resources

    xml = ("<domain><memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>1048576</currentMemory>"
           "<memoryBacking><source type='memfd'/></memoryBacking>"
           "<vcpu placement='static' current='1'>2</vcpu></domain>")
    out = rewrite_resources(xml, 512, 4)
    assert out == ("<domain><memory unit='MiB'>512</memory><currentMemory unit='MiB'>512</currentMemory>"
                   "<memoryBacking><source type='memfd'/></memoryBacking><vcpu placement='static'>4</vcpu></domain>")


def test_shares_are_filesystems_and_follow_machine_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from machine.drivers.libvirt.sharesxml import shares_of

    fake_os(tmp_path, monkeypatch)
    monkeypatch.setenv("MACHINE_SHARE_MECHANISM", "9p")  # the test driver knows no virtiofs binary
    src, other = tmp_path / "src", tmp_path / "other"
    src.mkdir()
    other.mkdir()
    drv = make_driver(tmp_path, "sh1")
    drv.ctx.shares = [{"tag": "msh0", "host": str(src), "guest": "/src", "ro": True}]
    try:
        drv.create()
        xml = drv._domain().XMLDesc(0)
        assert shares_of(xml) == [("9p", str(src), "msh0", True)]
        assert drv.data["share_mechanism"] == "9p"
        drv.ctx.shares = [{"tag": "msh0", "host": str(other), "guest": "/o", "ro": False}]  # machine set
        drv.start()
        assert shares_of(drv._domain().XMLDesc(0)) == [("9p", str(other), "msh0", False)]
    finally:
        drv.remove()


@pytest.mark.skipif(not (shutil.which("virt-xml-validate") and shutil.which("xmllint")),
                    reason="virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) missing")
@pytest.mark.parametrize("mechanism", ["virtiofs", "9p"])
def test_domain_with_shares_passes_libvirts_own_schema(tmp_path: Path, mechanism: str) -> None:
    """The installed libvirt's RelaxNG schema is what `defineXML` checks: a share element it does not know (e.g.
    `<cache mode='auto'>` before libvirt 10) fails create on the real daemon, so validate against it here."""
    from machine.drivers.libvirt import sharesxml

    shares = [{"tag": "msh0", "host": "/home/me", "ro": False}, {"tag": "msh1", "host": "/src", "ro": True}]
    xml = sharesxml.with_shares(render_domain(spec()), shares, mechanism, "/usr/lib/qemu/virtiofsd")
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    res = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr + xml


def test_managed_save_is_saved_and_start_restores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_os(tmp_path, monkeypatch)
    drv = make_driver(tmp_path, "u3")
    try:
        drv.create()
        drv.start()
        assert drv.features.saved_state and drv.saved_state_blocker() == ""
        drv.save_state()
        assert drv.status() == State.SAVED and drv.finish_save()
        assert drv.ssh_endpoint() is None
        drv.start()
        assert drv.status() == State.RUNNING
        assert not drv._domain().hasManagedSaveImage(0)  # libvirt drops the image once it is restored
        drv.save_state()
        drv.discard_saved_state()
        assert drv.status() == State.STOPPED
        drv.ctx.shares = [{"tag": "msh0", "host": str(tmp_path), "guest": "/x", "ro": False}]
        drv.data["share_mechanism"] = "virtiofs"
        assert "virtiofs, which qemu cannot migrate" in drv.saved_state_blocker()
    finally:
        drv.remove()
