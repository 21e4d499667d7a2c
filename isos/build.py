#!/usr/bin/env python3
"""Build the machine OS (our guest image) from Debian packages, offline-reproducible from the recipe in isos/.

    python3 isos/build.py [--force] [--cache DIR]

Outputs go to ${MACHINE_OS_CACHE:-~/.cache/machine/machine-os}/<recipe-hash>/ (vmlinuz, initrd.img,
machine-os.iso, manifest.json) plus a `latest` symlink. The last stdout line is the output directory.
An unchanged recipe is not rebuilt. Needs root (mmdebstrap --mode=root) and the host packages listed in
isos/README.md. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "0.1.0"
SUITE = "bookworm"
MIRRORS = [
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
]
ISO_LABEL = "MACHINE_OS"
# Files in isos/ that do not affect the build (docs, benchmark, the image catalogue someone else owns).
NOT_RECIPE = {"README.md", "bench.py", "images.yaml", "__init__.py"}
# cryptomgr.notests: no crypto self-tests at boot. Under TCG on a loaded host one of them spun for minutes
# ("soft lockup - CPU#1 stuck for 190s! [cryptomgr_test]" in the console log), and a module load waiting for
# its algorithm's test (a container start loads netfilter/bridge modules) hung `docker run` with it.
DEFAULT_CMDLINE = (
    f"console=tty0 console=ttyS0,115200n8 quiet apparmor=0 scsi_mod.scan=sync machine.root=LABEL={ISO_LABEL}"
    " cryptomgr.notests"
)

t0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[build {time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def recipe_files() -> list[Path]:
    out = []
    for p in sorted(HERE.rglob("*")):
        rel = p.relative_to(HERE)
        if p.is_dir() or "__pycache__" in rel.parts or rel.as_posix() in NOT_RECIPE or p.suffix == ".pyc":
            continue
        out.append(p)
    return out


def recipe_hash() -> str:
    h = hashlib.sha256()
    for p in recipe_files():
        rel = p.relative_to(HERE).as_posix()
        data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
        mode = "x" if os.access(p, os.X_OK) else "-"
        h.update(f"{rel}\0{mode}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def read_list(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
def build_rootfs(root: Path, apt_cache: Path) -> None:
    pkgs = read_list("packages.txt")
    apt_cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mmdebstrap", "--mode=root", "--variant=essential", "--quiet",
        "--skip=download/empty", "--skip=essential/unlink",
        "--aptopt=Acquire::Retries \"3\"",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        f"--include={','.join(pkgs)}",
        f"--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/ && cp -a {apt_cache}/. \"$1\"/var/cache/apt/archives/",
        f"--customize-hook=cp -a \"$1\"/var/cache/apt/archives/*.deb {apt_cache}/ 2>/dev/null || true",
        SUITE, str(root), *MIRRORS,
    ]  # fmt: skip
    run(cmd, stdout=sys.stderr)


def kernel_version(root: Path) -> str:
    versions = sorted(p.name for p in (root / "usr/lib/modules").iterdir())
    if len(versions) != 1:
        raise SystemExit(f"expected one kernel in the rootfs, found {versions}")
    return versions[0]


def customize_rootfs(root: Path, kver: str, out: Path, build_id: str) -> None:
    # kernel out of the rootfs
    shutil.copy2(root / f"boot/vmlinuz-{kver}", out / "vmlinuz")
    # our files (inittab, rc scripts, sshd_config, ...)
    run(["cp", "-a", "--remove-destination", f"{HERE}/rootfs/.", f"{root}/"])
    # trim: docs, unused kernel modules, tools the engine never calls, generated host keys
    for pattern in read_list("trim.txt"):
        for p in root.glob(pattern.lstrip("/")):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    run(["chroot", str(root), "depmod", "-a", kver])
    # busybox (static) provides init, acpid, udhcpc, poweroff/reboot/halt
    for applet, where in [("init", "sbin"), ("acpid", "sbin"), ("udhcpc", "sbin"), ("poweroff", "sbin"),
                          ("reboot", "sbin"), ("halt", "sbin")]:  # fmt: skip
        link = root / "usr" / where / applet
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to("/bin/busybox")
    (root / "etc/machine-os-release").write_text(
        f"VERSION={VERSION}\nBUILD_ID={build_id}\nSUITE={SUITE}\nKERNEL={kver}\n"
    )
    (root / "etc/hostname").write_text("machine\n")
    for d in ("mnt/data", "run/machine-os", "var/lib/docker", "var/lib/containerd", "etc/docker"):
        (root / d).mkdir(parents=True, exist_ok=True)


# Share file systems the guest can mount (manifest `share_filesystems`; the host picks a share mechanism the image
# mounts): each needs these kernel options, as built-ins or as modules the image keeps after trim.txt.
SHARE_FS = {
    "virtiofs": (("CONFIG_VIRTIO_FS", "virtiofs"), ("CONFIG_FUSE_FS", "fuse")),
    "9p": (("CONFIG_9P_FS", "9p"), ("CONFIG_NET_9P_VIRTIO", "9pnet_virtio")),
    "fuse": (("CONFIG_FUSE_FS", "fuse"),),
    "cifs": (("CONFIG_CIFS", "cifs"),),
    "vboxsf": (("CONFIG_VBOXSF_FS", "vboxsf"), ("CONFIG_VBOXGUEST", "vboxguest")),
}


def share_filesystems(kernel_config: str, modules: set[str]) -> list[str]:
    """The SHARE_FS entries whose options are =y, or =m with the module among `modules` (names, '-' as '_')."""
    opts = dict(line.split("=", 1) for line in kernel_config.splitlines() if line.startswith("CONFIG_") and "=" in line)

    def has(opt: str, mod: str) -> bool:
        return opts.get(opt) == "y" or (opts.get(opt) == "m" and mod in modules)

    return sorted(fs for fs, needs in SHARE_FS.items() if all(has(o, m) for o, m in needs))


def kept_modules(root: Path, kver: str) -> set[str]:
    """Module names in the trimmed rootfs (modules.dep after depmod)."""
    dep = (root / "usr/lib/modules" / kver / "modules.dep").read_text()
    return {Path(line.partition(":")[0]).name.split(".ko")[0].replace("-", "_") for line in dep.splitlines() if line}


def packages_manifest(root: Path) -> dict[str, str]:
    res = run(["chroot", str(root), "dpkg-query", "-W", "-f=${Package}\t${Version}\n"], capture_output=True, text=True)
    return dict(line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)


def module_closure(root: Path, kver: str, wanted: list[str]) -> list[str]:
    """Module paths (relative to the kver dir) for `wanted`, dependencies first."""
    moddir = root / "usr/lib/modules" / kver
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[Path(mod).name.split(".ko")[0].replace("-", "_")] = mod
    builtin = {Path(x).name.split(".ko")[0].replace("-", "_") for x in (moddir / "modules.builtin").read_text().split()}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for d in deps.get(mod, []):
            visit(d)
        order.append(mod)

    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            log(f"warning: module {name} is neither a module nor built in")
    return order


def build_initrd(root: Path, kver: str, work: Path, out: Path, build_id: str) -> None:
    ird = work / "initrd"
    if ird.exists():
        shutil.rmtree(ird)
    for d in ("bin", "dev", "proc", "sys", "run", "newroot", "etc", f"lib/modules/{kver}"):
        (ird / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "usr/bin/busybox", ird / "bin/busybox")
    applets = run([str(ird / "bin/busybox"), "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            (ird / "bin" / a).symlink_to("busybox")
    shutil.copy2(HERE / "initrd/init", ird / "init")
    os.chmod(ird / "init", 0o755)
    mods = module_closure(root, kver, read_list("initrd/modules.txt"))
    src = root / "usr/lib/modules" / kver
    for m in mods:
        dst = ird / "lib/modules" / kver / m
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / m, dst)
    (ird / "etc/modules").write_text("".join(f"/lib/modules/{kver}/{m}\n" for m in mods))
    (ird / "etc/machine-os-build").write_text(build_id + "\n")
    (ird / "dev/console").unlink(missing_ok=True)
    run(["mknod", "-m", "600", str(ird / "dev/console"), "c", "5", "1"])
    cpio = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc", "--reproducible"], cwd=ird,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    with open(out / "initrd.img", "wb") as f:
        zst = subprocess.Popen(["zstd", "-q", "-19", "-T2", "-c"], stdin=cpio.stdout, stdout=f)
        files = sorted(str(p.relative_to(ird)) for p in ird.rglob("*"))
        cpio.stdin.write(("\n".join(["."] + files) + "\n").encode())
        cpio.stdin.close()
        cpio.stdout.close()
        if cpio.wait() or zst.wait():
            raise SystemExit("initrd: cpio/zstd failed")


def build_squashfs(root: Path, dst: Path) -> None:
    run(["mksquashfs", str(root), str(dst), "-noappend", "-no-progress", "-quiet", "-comp", "zstd",
         "-Xcompression-level", "15", "-b", "256K", "-wildcards", "-e", "proc/*", "sys/*", "dev/*", "tmp/*",
         "run/*"], stdout=sys.stderr)  # fmt: skip


def build_iso(work: Path, out: Path, squash: Path, cmdline: str, build_id: str) -> None:
    st = work / "iso"
    if st.exists():
        shutil.rmtree(st)
    for d in ("boot/grub", "isolinux", "live", "EFI/BOOT"):
        (st / d).mkdir(parents=True)
    shutil.copy2(out / "vmlinuz", st / "boot/vmlinuz")
    shutil.copy2(out / "initrd.img", st / "boot/initrd.img")
    os.link(squash, st / "live/rootfs.squashfs")
    (st / "live/build-id").write_text(build_id + "\n")

    def render(name: str) -> str:
        return (HERE / "boot" / name).read_text().replace("@CMDLINE@", cmdline).replace("@LABEL@", ISO_LABEL)

    # BIOS: isolinux
    shutil.copy2("/usr/lib/ISOLINUX/isolinux.bin", st / "isolinux/isolinux.bin")
    shutil.copy2("/usr/lib/syslinux/modules/bios/ldlinux.c32", st / "isolinux/ldlinux.c32")
    (st / "isolinux/isolinux.cfg").write_text(render("isolinux.cfg"))
    # UEFI: a standalone grub (its config embedded) on a FAT El Torito image, and in /EFI/BOOT for disks
    grub_cfg = render("grub.cfg")
    (st / "boot/grub/grub.cfg").write_text(grub_cfg)
    (work / "grub-embedded.cfg").write_text(grub_cfg)
    efi = work / "BOOTX64.EFI"
    mods = "linux normal iso9660 search search_label search_fs_file part_msdos part_gpt fat configfile echo test " \
           "all_video efi_gop efi_uga gzio serial terminal"  # fmt: skip
    run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi), f"--modules={mods}", f"--install-modules={mods}",
         "--locales=", "--fonts=", "--themes=", f"boot/grub/grub.cfg={work / 'grub-embedded.cfg'}"])  # fmt: skip
    shutil.copy2(efi, st / "EFI/BOOT/BOOTX64.EFI")
    img = st / "boot/grub/efiboot.img"
    size_kib = (efi.stat().st_size // 1024) + 512
    run(["mkfs.vfat", "-C", "-n", "EFIBOOT", str(img), str(size_kib)], stdout=subprocess.DEVNULL)
    run(["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-i", str(img), str(efi), "::/EFI/BOOT/BOOTX64.EFI"])
    run(["xorriso", "-as", "mkisofs", "-quiet", "-iso-level", "3", "-V", ISO_LABEL, "-J", "-joliet-long", "-R",
         "-o", str(out / "machine-os.iso"),
         "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
         "-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4",
         "-boot-info-table",
         "-eltorito-alt-boot", "-e", "boot/grub/efiboot.img", "-no-emul-boot", "-isohybrid-gpt-basdat",
         str(st)], stdout=sys.stderr)  # fmt: skip


def qemu_args(cmdline: str) -> dict:
    return {
        "direct_boot": [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "file:SERIAL.log",
            "-kernel", "vmlinuz", "-initrd", "initrd.img", "-append", f"{cmdline} machine.hostname=NAME",
            "-drive", "file=machine-os.iso,if=virtio,format=raw,readonly=on",
            "-drive", "file=DATA.qcow2,if=virtio,format=qcow2",
            "-drive", "file=SEED.iso,if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:SSHPORT-:22",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
        ],
        "iso_boot_bios": [
            "qemu-system-x86_64", "-machine", "pc", "-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "file:SERIAL.log",
            "-drive", "file=machine-os.iso,if=none,id=cd0,format=raw,readonly=on,media=cdrom",
            "-device", "ide-cd,drive=cd0,bootindex=0",
            "-drive", "file=DATA.qcow2,if=virtio,format=qcow2",
            "-drive", "file=SEED.iso,if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:SSHPORT-:22",
            "-device", "virtio-net-pci,netdev=n0",
        ],
        "iso_boot_uefi": [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=128", "-m", "1024", "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "file:SERIAL.log",
            "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive", "if=pflash,format=raw,file=COPY_OF_OVMF_VARS_4M.fd",
            "-device", "virtio-scsi-pci,id=scsi0",
            "-drive", "file=machine-os.iso,if=none,id=cd0,format=raw,readonly=on,media=cdrom",
            "-device", "scsi-cd,drive=cd0,bootindex=0",
            "-drive", "file=DATA.qcow2,if=virtio,format=qcow2",
            "-drive", "file=SEED.iso,if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:SSHPORT-:22",
            "-device", "virtio-net-pci,netdev=n0",
        ],
        "note": "q35 attaches ide-cd to AHCI, which the cloud kernel lacks: use the pc machine for an IDE CD, "
                "or a virtio-scsi CD (or the ISO as a read-only virtio disk) on q35",
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild even if this recipe was built already")
    ap.add_argument(
        "--cache", default=os.environ.get("MACHINE_OS_CACHE") or str(Path.home() / ".cache/machine/machine-os")
    )
    ap.add_argument("--print-hash", action="store_true", help="print the recipe hash and exit")
    args = ap.parse_args()

    rh = recipe_hash()
    if args.print_hash:
        print(rh)
        return 0
    cache = Path(args.cache)
    final = cache / rh
    if (final / "manifest.json").exists() and not args.force:
        log(f"recipe {rh} already built")
        _link_latest(cache, rh)
        print(final)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("build.py must run as root (mmdebstrap --mode=root, mknod, chroot)")
    for tool in ("mmdebstrap", "mksquashfs", "xorriso", "grub-mkstandalone", "mkfs.vfat", "mcopy", "cpio", "zstd"):
        if not shutil.which(tool):
            raise SystemExit(f"missing host tool {tool}: see isos/README.md for the apt packages")

    work = cache / f".work-{rh}"
    if work.exists():
        shutil.rmtree(work)
    out = work / "out"
    out.mkdir(parents=True)
    root = work / "rootfs"
    build_id = f"{VERSION}-{rh}"
    times = {}
    s = time.monotonic()
    log(f"mmdebstrap {SUITE} -> {root}")
    build_rootfs(root, cache / "apt-archives")
    times["rootfs_s"] = round(time.monotonic() - s, 1)
    kver = kernel_version(root)
    pkgs = packages_manifest(root)
    kernel_config = (root / f"boot/config-{kver}").read_text()  # /boot goes with the trim
    customize_rootfs(root, kver, out, build_id)
    share_fs = share_filesystems(kernel_config, kept_modules(root, kver))
    s = time.monotonic()
    log("initrd")
    build_initrd(root, kver, work, out, build_id)
    times["initrd_s"] = round(time.monotonic() - s, 1)
    s = time.monotonic()
    log("squashfs")
    squash = work / "rootfs.squashfs"
    build_squashfs(root, squash)
    times["squashfs_s"] = round(time.monotonic() - s, 1)
    s = time.monotonic()
    log("iso")
    build_iso(work, out, squash, DEFAULT_CMDLINE, build_id)
    times["iso_s"] = round(time.monotonic() - s, 1)

    files = {}
    for name in ("vmlinuz", "initrd.img", "machine-os.iso"):
        p = out / name
        files[name] = {"sha256": sha256(p), "size": p.stat().st_size}
    manifest = {
        "name": "machine-os",
        "version": VERSION,
        "recipe_hash": rh,
        "build_id": build_id,
        "build_date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": round(time.monotonic() - t0, 1),
        "build_times": times,
        "suite": SUITE,
        "kernel": kver,
        "share_filesystems": share_fs,
        "files": files,
        "squashfs_size": squash.stat().st_size,
        "cmdline": DEFAULT_CMDLINE,
        "rootfs": {
            "how": "squashfs /live/rootfs.squashfs on the ISO; the initrd finds the volume by label "
                   f"(machine.root=LABEL={ISO_LABEL}) on any virtio/SCSI/IDE/SATA/Hyper-V disk or CD-ROM, "
                   "checks /live/build-id against its own, and mounts it read-only under a tmpfs overlay",
            "iso_label": ISO_LABEL,
            "path_on_iso": "/live/rootfs.squashfs",
            "attach_iso_for_direct_boot": "-drive file=machine-os.iso,if=virtio,format=raw,readonly=on",
        },
        "data_disk": {"label": "machine-os-data", "fs": "ext4",
                      "formatted": "once, only if blank (no signature, first and last MiB all zero)"},
        "seed": {"label": "cidata", "format": "NoCloud; user-data is #cloud-config + JSON"},
        "serial_markers": ["machine-os: ssh-ready", "machine-os: engine-ready", "machine-os: boot-failed: <reason>"],
        "engine_marker": "/etc/docker/machine-ready",
        "qemu": qemu_args(DEFAULT_CMDLINE),
        "packages": pkgs,
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    shutil.rmtree(work)
    _link_latest(cache, rh)
    _prune(cache, rh)
    log(f"done in {time.monotonic() - t0:.1f}s")
    print(final)
    return 0


KEEP_BUILDS = 3


def _prune(cache: Path, keep: str, keep_builds: int = KEEP_BUILDS) -> None:
    """Keep the newest `keep_builds` build directories (and `keep`), so a CI cache does not grow without bound.
    (tests/vm/debian_guest.py prunes its cache with this too.)"""
    builds = [p for p in cache.iterdir() if p.is_dir() and not p.is_symlink() and (p / "manifest.json").exists()]
    builds.sort(key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)
    for old in builds[keep_builds:]:
        if old.name != keep:
            log(f"pruning old build {old.name}")
            shutil.rmtree(old, ignore_errors=True)


def _link_latest(cache: Path, rh: str) -> None:
    tmp = cache / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(rh)
    os.replace(tmp, cache / "latest")


if __name__ == "__main__":
    sys.exit(main())
