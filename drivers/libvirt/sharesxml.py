"""Shared folders in a libvirt domain: `<filesystem>` devices (virtiofs, libvirt running virtiofsd itself, with
the guest RAM as shared memfd memory; or 9p with accessmode squash, files created as the qemu user), applied
to the domain XML at create and again at start when `machine set` changed the shares. ElementTree on the XML
libvirt returns: only the filesystems and the memory backing are touched."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

OUR_TAG_PREFIX = "msh"


def with_shares(domain_xml: str, shares: list[dict[str, Any]], mechanism: str | None,
                virtiofsd: str | None = None) -> str:
    """The domain XML with exactly `shares` ({"tag", "host", "ro"}) as filesystems of `mechanism`
    ("virtiofs" | "9p"; None: no shares)."""
    root = ET.fromstring(domain_xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    for fs in devices.findall("filesystem"):
        target = fs.find("target")
        if target is not None and target.get("dir", "").startswith(OUR_TAG_PREFIX):
            devices.remove(fs)
    backing = root.find("memoryBacking")
    virtiofs = bool(shares) and mechanism == "virtiofs"
    if backing is not None:
        root.remove(backing)
    if virtiofs:
        backing = ET.Element("memoryBacking")
        ET.SubElement(backing, "source", type="memfd")
        ET.SubElement(backing, "access", mode="shared")
        # memoryBacking goes before <os> in libvirt's schema order; libvirt accepts it anywhere, keep it tidy
        index = list(root).index(root.find("os")) if root.find("os") is not None else 0
        root.insert(index, backing)
    for share in shares if mechanism else []:
        fs = ET.SubElement(devices, "filesystem", type="mount",
                           accessmode="passthrough" if virtiofs else "squash")
        if virtiofs:
            ET.SubElement(fs, "driver", type="virtiofs", queue="1024")
            if virtiofsd:  # no <cache mode>: libvirt 9 knows only none|always; virtiofsd's default is auto
                ET.SubElement(fs, "binary", path=virtiofsd)
        ET.SubElement(fs, "source", dir=str(share["host"]))
        ET.SubElement(fs, "target", dir=str(share["tag"]))
        if share.get("ro") and not virtiofs:  # libvirt 9 refuses <readonly/> on virtiofs: the guest mounts ro
            ET.SubElement(fs, "readonly")
    return ET.tostring(root, encoding="unicode")


def shares_of(domain_xml: str) -> list[tuple[str, str, str, bool]]:
    """(mechanism, host folder, tag, read-only) of our filesystems in a domain (to compare with what it should
    have; virtiofs read-only is the guest's, so it reads False here)."""
    root = ET.fromstring(domain_xml)
    out = []
    for fs in root.findall("./devices/filesystem"):
        target, source, drv = fs.find("target"), fs.find("source"), fs.find("driver")
        if target is None or source is None or not target.get("dir", "").startswith(OUR_TAG_PREFIX):
            continue
        kind = drv.get("type", "path") if drv is not None else "path"
        out.append(("virtiofs" if kind == "virtiofs" else "9p", source.get("dir", ""), target.get("dir", ""),
                    fs.find("readonly") is not None))
    return out
