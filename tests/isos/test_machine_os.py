"""The machine OS (isos/): seed reader and recipe checks without VMs; real boots under qemu TCG marked `vm`."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from mos_helpers import VM, busybox_rootfs_tar, keypair, make_seed

REPO = Path(__file__).resolve().parents[2]
ISOS = REPO / "isos"
SEED_JQ = ISOS / "rootfs/etc/machine-os/seed.jq"

BOOT_TIMEOUT = 180  # generous: CI runners are shared and TCG is slow
ENGINE_TIMEOUT = 240


# ----------------------------------------------------------------------------------------------------------------
# no VM
# ----------------------------------------------------------------------------------------------------------------
def _load_build():
    spec = importlib.util.spec_from_file_location("machine_os_build", ISOS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recipe_hash_is_stable_and_ignores_docs():
    build = _load_build()
    h = build.recipe_hash()
    assert len(h) == 16 and h == build.recipe_hash()
    names = {p.relative_to(ISOS).as_posix() for p in build.recipe_files()}
    assert "build.py" in names and "initrd/init" in names and "rootfs/etc/inittab" in names
    assert "README.md" not in names and "bench.py" not in names and "images.yaml" not in names


def _seed_shell(tmp_path: Path, md: str, ud: str, nc: str = "") -> str:
    if not shutil.which("jq"):
        pytest.skip("jq not installed")
    for name, text in (("md", md), ("ud", ud), ("nc", nc)):
        (tmp_path / name).write_text(text)
    r = subprocess.run(["jq", "-n", "-r", "--rawfile", "md", str(tmp_path / "md"), "--rawfile", "ud",
                        str(tmp_path / "ud"), "--rawfile", "nc", str(tmp_path / "nc"), "-f", str(SEED_JQ)],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return r.stdout


def _run_seed(tmp_path: Path, script: str) -> dict:
    """Source the generated shell with stub commands and report what it would do."""
    prog = r"""
out=""
warn() { echo "warn|$*"; }
add_user() { echo "add_user|$1|$2|$3"; }
add_key() { echo "add_key|$1|$2"; }
write_file() { printf 'write_file|%s|%s|%s|%s|%s|' "$1" "$2" "$3" "$4" "$5"; printf '%s' "$6" | base64 -w0; echo; }
net_if() { echo "net_if|$1|$2|$3|$4|$5|$6"; }
net_addr() { echo "net_addr|$1|$2"; }
net_route() { echo "net_route|$1|$2|$3|$4"; }
net_dns() { echo "net_dns|$1"; }
net_search() { echo "net_search|$*"; }
RUN=$(mktemp -d)
. "$1"
echo "vars|$MD_INSTANCE_ID|$MD_HOSTNAME|$UD_HOSTNAME|$DISABLE_ROOT|$UD_ED_PUB"
apply_user_data
apply_network_config
echo "runcmd|$(base64 -w0 <$RUN/runcmd.sh 2>/dev/null)"
"""
    (tmp_path / "seed.sh").write_text(script)
    r = subprocess.run(["sh", "-c", prog, "sh", str(tmp_path / "seed.sh")], capture_output=True, text=True, check=True)
    return {"lines": r.stdout.splitlines()}


def test_seed_reader_json_cloud_config(tmp_path):
    import base64

    content = b"line1\n'quoted' $(not run)\n"
    ud = {
        "hostname": "node-1",
        "ssh_authorized_keys": ["ssh-ed25519 AAAA key1"],
        "users": [{"name": "docker", "groups": ["sudo"], "ssh_authorized_keys": ["ssh-ed25519 BBBB key2"]}],
        "write_files": [
            {"path": "/etc/docker/daemon.json", "encoding": "b64", "content": base64.b64encode(content).decode(),
             "permissions": "0600"},
            {"path": "/etc/docker/machine-ready", "content": ""},
        ],
        "ssh_keys": {"ed25519_private": "-----BEGIN X-----\nabc\n", "ed25519_public": "ssh-ed25519 CC"},
        "runcmd": ["echo hi", ["touch", "/tmp/a b"]],
    }  # fmt: skip
    nc = {"network": {"version": 2, "ethernets": {"swarm": {"match": {"macaddress": "52:54:00:AA:BB:CC"},
          "addresses": ["10.10.0.2/24"], "routes": [{"to": "10.20.0.0/16", "via": "10.10.0.1"}],
          "nameservers": {"addresses": ["10.10.0.1"]}}}}}  # fmt: skip
    sh = _seed_shell(tmp_path, "instance-id: 'iid-9'\nlocal-hostname: meta-name\n",
                     "#cloud-config\n" + json.dumps(ud), json.dumps(nc))  # fmt: skip
    lines = _run_seed(tmp_path, sh)["lines"]
    assert "vars|iid-9|meta-name|node-1|false|ssh-ed25519 CC" in lines
    assert "add_user|docker|/bin/bash|sudo" in lines
    assert "add_key|docker|ssh-ed25519 BBBB key2" in lines
    assert "add_key|root|ssh-ed25519 AAAA key1" in lines
    wf = [ln for ln in lines if ln.startswith("write_file|/etc/docker/daemon.json|b64|0600")]
    assert wf and base64.b64decode(base64.b64decode(wf[0].split("|")[-1])) == content
    assert any(ln.startswith("write_file|/etc/docker/machine-ready||0644||false|") for ln in lines)
    assert "net_if|swarm|52:54:00:AA:BB:CC|||false|" in lines
    assert "net_addr|swarm|10.10.0.2/24" in lines
    assert "net_route|swarm|10.20.0.0/16|10.10.0.1|" in lines
    assert "net_dns|10.10.0.1" in lines
    runcmd = base64.b64decode([ln for ln in lines if ln.startswith("runcmd|")][0][7:]).decode()
    assert runcmd.splitlines() == ["echo hi", "'touch' '/tmp/a b'"]


def test_seed_reader_rejects_non_json_user_data(tmp_path):
    sh = _seed_shell(tmp_path, '{"instance-id": "i1", "local-hostname": "x"}', "#cloud-config\nhostname: yaml\n")
    lines = _run_seed(tmp_path, sh)["lines"]
    assert any(ln.startswith("warn|user-data is not #cloud-config + JSON") for ln in lines)
    assert "vars|i1|x|||false|" not in lines  # sanity of the format below
    assert "vars|i1|x||false|" in lines


def test_seed_reader_empty_seed(tmp_path):
    lines = _run_seed(tmp_path, _seed_shell(tmp_path, "", ""))["lines"]
    assert "vars|||||" not in lines and "vars||||false|" in lines
    assert not any(ln.startswith("warn|") for ln in lines)


# ----------------------------------------------------------------------------------------------------------------
# real VMs (qemu TCG)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.vm
def test_direct_boot_provision_persist_docker_and_acpi_poweroff(image, manifest, vms, tmp_path):
    """Direct kernel boot; provisioning over SSH (marker last); data disk survives reboot; docker run; ACPI off."""
    key = tmp_path / "id"
    keypair(key)
    hk = tmp_path / "hostkey"
    hk_priv, hk_pub = keypair(hk)
    known = tmp_path / "known_hosts"
    known.write_text(f"machine-test {hk_pub}\n")  # the host pins the key it put in the seed
    name = "mos-" + secrets.token_hex(3)
    # a second NIC with a static address from network-config, matched by MAC (as the Swarm setup does)
    mac = "52:54:00:6d:6f:02"
    netcfg = {"version": 2, "ethernets": {"swarm0": {"match": {"macaddress": mac}, "addresses": ["10.77.0.5/24"]}}}
    seed = make_seed(tmp_path / "seed.iso", hostname=name, authorized_key=key.with_suffix(".pub").read_text().strip(),
                     host_key=(hk_priv, hk_pub), network_config=netcfg)  # fmt: skip
    data = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "2G"], check=True)
    nic2 = ["-netdev", "user,id=n1,restrict=on", "-device", f"virtio-net-pci,netdev=n1,mac={mac}"]
    vm = vms(image, manifest, tmp_path, name, seed, data, key, known_hosts=known, extra=nic2).start()

    t_ssh = vm.wait_for("machine-os: ssh-ready", BOOT_TIMEOUT)
    assert vm.ssh("hostname").strip() == name
    assert "machine-os: engine-ready" not in vm.console()  # no marker yet: the engine waits
    addrs = vm.ssh("ip -o -4 addr show")
    assert "10.0.2.15/24" in addrs  # DHCP on the first NIC
    nic = vm.ssh(f"grep -l {mac} /sys/class/net/*/address").strip().split("/")[-2]
    assert any(ln.split()[1] == nic and " 10.77.0.5/24 " in ln for ln in addrs.splitlines()), addrs
    uuid = vm.ssh("blkid -s UUID -o value $(cat /run/machine-os/data-device)")
    assert uuid.strip()
    token = secrets.token_hex(8)
    vm.ssh(f"echo {token} > /mnt/data/persist-test && sync")

    # provisioner protocol over SSH: config first, the marker last; the OS starts dockerd by itself
    vm.ssh("cat > /etc/docker/daemon.json", input=json.dumps({"hosts": ["unix:///var/run/docker.sock"]}).encode())
    t_marker = time.monotonic()
    vm.ssh("touch /etc/docker/machine-ready")
    vm.wait_for("machine-os: engine-ready", ENGINE_TIMEOUT)
    print(f"ssh-ready {t_ssh:.1f}s, marker->engine-ready {time.monotonic() - t_marker:.1f}s")
    assert vm.ssh("pgrep -c dockerd").strip() == "1"

    vm.ssh("docker import - mos-test:1 >/dev/null", input=busybox_rootfs_tar(), timeout=300)
    assert vm.ssh("docker run --rm mos-test:1 /bin/busybox echo hi", timeout=300).strip() == "hi"

    # reboot: same data disk (not reformatted), engine starts at boot (marker persisted), image kept
    vm.ssh("reboot", check=False, timeout=30)
    vm.wait_for("machine-os: ssh-ready", BOOT_TIMEOUT, count=2)
    assert vm.ssh("cat /mnt/data/persist-test").strip() == token
    uuid2 = vm.ssh("blkid -s UUID -o value $(cat /run/machine-os/data-device)")
    assert uuid2.strip() == uuid.strip()
    assert "formatting blank data disk" not in vm.ssh("cat /run/machine-os/boot.log")
    assert vm.ssh("hostname").strip() == name
    vm.wait_for("machine-os: engine-ready", ENGINE_TIMEOUT, count=2)
    assert vm.ssh("docker run --rm mos-test:1 /bin/busybox echo again", timeout=300).strip() == "again"

    # ACPI power button -> clean shutdown (engine stopped, data disk unmounted) -> qemu exits
    vm.qmp("system_powerdown")
    rc = vm.wait_exit(120)
    assert rc is not None, f"guest did not power off on the ACPI button\n{vm.tail()}"
    assert "machine-os: shutdown done" in vm.console(), vm.tail()


def _iso_boot(image, manifest, vms, tmp_path, mode: str):
    key = tmp_path / "id"
    keypair(key)
    name = f"mos-{mode}-" + secrets.token_hex(2)
    files = {"/etc/docker/daemon.json": b'{"hosts": ["unix:///var/run/docker.sock"]}', "/etc/docker/machine-ready": b""}
    seed = make_seed(tmp_path / "seed.iso", hostname=name, authorized_key=key.with_suffix(".pub").read_text().strip(),
                     files=files)  # fmt: skip
    # a disk that is NOT blank (bytes in its first MiB, no filesystem): it must never be formatted
    junk = tmp_path / "junk.qcow2"
    raw = tmp_path / "junk.raw"
    with open(raw, "wb") as f:
        f.truncate(256 << 20)
        f.seek(4096)
        f.write(b"precious data, not a filesystem" * 8)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(junk)], check=True)
    before = hashlib.sha256(raw.read_bytes()).hexdigest()
    vm = vms(image, manifest, tmp_path, name, seed, junk, key, mode=mode).start()
    t = vm.wait_for("machine-os: ssh-ready", BOOT_TIMEOUT)
    print(f"{mode}: ssh-ready {t:.1f}s")
    assert vm.ssh("hostname").strip() == name
    assert "no data disk" in vm.console()
    vm.wait_for("machine-os: engine-ready", ENGINE_TIMEOUT)
    vm.ssh("poweroff", check=False, timeout=30)
    assert vm.wait_exit(120) is not None, vm.tail()
    subprocess.run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", str(junk), str(raw)], check=True)
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == before, "a non-blank disk was modified"


@pytest.mark.vm
def test_iso_boot_bios(image, manifest, vms, tmp_path):
    _iso_boot(image, manifest, vms, tmp_path, "bios")


@pytest.mark.vm
def test_iso_boot_uefi(image, manifest, vms, tmp_path):
    _iso_boot(image, manifest, vms, tmp_path, "uefi")


def test_vm_class_builds_documented_direct_boot_args(tmp_path):
    vm = VM(Path("/img"), {"cmdline": "quiet"}, tmp_path, "n", tmp_path / "s.iso", tmp_path / "d.qcow2", tmp_path / "k")
    a = vm.args()
    assert a[a.index("-append") + 1] == "quiet machine.hostname=n"
    assert "file=/img/machine-os.iso,if=virtio,format=raw,readonly=on" in a
    assert any("restrict=on" in x and "127.0.0.1" in x for x in a)
