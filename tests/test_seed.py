"""The NoCloud seed ISO: label, names, and documents cloud-init and jq can both read."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest
import yaml
from test_provision import read_seed

from machine.errors import ConfigError
from machine.provision.seediso import SeedFile, build_seed, render_seed

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@host"
BLOB = bytes(range(256)) * 3


def _read_iso(path: Path) -> tuple[pycdlib.PyCdlib, dict[str, bytes]]:
    """The open ISO (for its volume descriptors) and its files by Rock Ridge name."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    return iso, read_seed(path)


def _seed(tmp_path: Path, **kw) -> Path:
    args = dict(instance_id="iid-abc123", hostname="dev1", authorized_keys=[KEY])
    args.update(kw)
    return build_seed(tmp_path / "seed.iso", **args)


def test_label_and_names(tmp_path: Path) -> None:
    path = _seed(tmp_path, network_config={"ethernets": {"eth0": {"dhcp4": True}}})
    iso, files = _read_iso(path)
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert sorted(files) == ["meta-data", "network-config", "user-data"]
        joliet = sorted(
            c.file_identifier().decode("utf-16_be")
            for c in iso.list_children(joliet_path="/")
            if not (c.is_dot() or c.is_dotdot())
        )
        assert joliet == ["meta-data", "network-config", "user-data"]
    finally:
        iso.close()
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": "iid-abc123", "local-hostname": "dev1"}
    net = json.loads(files["network-config"])
    assert net["version"] == 2 and net["ethernets"]["eth0"]["dhcp4"] is True


def test_no_network_config_by_default(tmp_path: Path) -> None:
    iso, files = _read_iso(_seed(tmp_path))
    iso.close()
    assert sorted(files) == ["meta-data", "user-data"]


def test_user_data_is_yaml_and_json(tmp_path: Path) -> None:
    iso, files = _read_iso(_seed(tmp_path))
    iso.close()
    text = files["user-data"].decode()
    assert text.startswith("#cloud-config\n")
    as_json = json.loads(text.split("\n", 1)[1])
    as_yaml = yaml.safe_load(text)
    assert as_json == as_yaml
    assert as_json["hostname"] == "dev1"
    assert as_json["ssh_authorized_keys"] == [KEY]
    assert as_json["disable_root"] is False
    assert "users" not in as_json
    assert "ssh_keys" not in as_json


def test_files_round_trip(tmp_path: Path) -> None:
    files = [
        SeedFile("/etc/machine/blob.bin", BLOB, permissions="0600"),
        SeedFile("/etc/machine/hello.txt", "héllo\nworld\n"),
    ]
    iso, docs = _read_iso(_seed(tmp_path, files=files))
    iso.close()
    cfg = json.loads(docs["user-data"].decode().split("\n", 1)[1])
    by_path = {f["path"]: f for f in cfg["write_files"]}
    assert by_path["/etc/machine/blob.bin"]["encoding"] == "b64"
    assert base64.b64decode(by_path["/etc/machine/blob.bin"]["content"]) == BLOB
    assert by_path["/etc/machine/blob.bin"]["permissions"] == "0600"
    assert base64.b64decode(by_path["/etc/machine/hello.txt"]["content"]).decode() == "héllo\nworld\n"
    assert by_path["/etc/machine/hello.txt"]["permissions"] == "0644"


def test_host_keys_and_user(tmp_path: Path) -> None:
    keys = {"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "ed25519_public": KEY}
    iso, docs = _read_iso(_seed(tmp_path, host_keys=keys, user="debian"))
    iso.close()
    cfg = yaml.safe_load(docs["user-data"])
    assert cfg["ssh_keys"]["ed25519_private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert cfg["ssh_keys"]["ed25519_public"].strip() == KEY
    assert cfg["ssh_genkeytypes"] == []
    assert cfg["disable_root"] is True
    assert cfg["users"][0]["name"] == "debian"
    assert cfg["users"][0]["ssh_authorized_keys"] == [KEY]


@pytest.mark.parametrize(
    "kw",
    [
        {"hostname": "bad_name"},
        {"hostname": "-x"},
        {"instance_id": ""},
        {"user": "Bad User"},
        {"files": [SeedFile("relative/path", "x")]},
        {"files": [SeedFile("/etc/x", "x", permissions="rw-r--r--")]},
        {"host_keys": {"dsa_private": "x"}},
        {"network_config": {"version": 1, "config": []}},
    ],
)
def test_rejects_bad_input(tmp_path: Path, kw: dict) -> None:
    with pytest.raises(ConfigError):
        _seed(tmp_path, **kw)
    assert not (tmp_path / "seed.iso").exists()


def test_atomic_overwrite_leaves_no_temp(tmp_path: Path) -> None:
    _seed(tmp_path)
    _seed(tmp_path, hostname="dev2")
    assert os.listdir(tmp_path) == ["seed.iso"]
    iso, docs = _read_iso(tmp_path / "seed.iso")
    iso.close()
    assert yaml.safe_load(docs["meta-data"])["local-hostname"] == "dev2"


def test_render_seed_is_pure() -> None:
    docs = render_seed(instance_id="i-1", hostname="h", authorized_keys=[KEY])
    assert set(docs) == {"meta-data", "user-data"}


@pytest.mark.skipif(not shutil.which("xorriso"), reason="xorriso not installed")
def test_xorriso_reads_it(tmp_path: Path) -> None:
    path = _seed(tmp_path, files=[SeedFile("/x", BLOB)])
    out = subprocess.run(
        ["xorriso", "-indev", str(path), "-pvd_info", "-find", "/", "-type", "f"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout + out.stderr
    assert "Volume Id    : cidata" in text
    for name in ("/meta-data", "/user-data"):
        assert f"'{name}'" in text
    extracted = tmp_path / "ud"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(path), "-extract", "/user-data", str(extracted)],
        capture_output=True,
        check=True,
    )
    assert extracted.read_text().startswith("#cloud-config\n")


@pytest.mark.skipif(not shutil.which("isoinfo"), reason="isoinfo not installed")
def test_isoinfo_reads_it(tmp_path: Path) -> None:
    path = _seed(tmp_path)
    out = subprocess.run(["isoinfo", "-R", "-f", "-i", str(path)], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) == {"/meta-data", "/user-data"}
