"""A Debian bookworm test guest WITHOUT Docker, plus the offline package bundle that installs it.

    python3 -m tests.vm.debian_guest [--force] [--cache DIR]     (root; needs mmdebstrap and deb.debian.org)

One mmdebstrap run makes both:
- the guest: minbase + systemd, sshd (ed25519 host key only), the cloud kernel and an initrd for direct
  kernel boot, systemd-networkd with DHCP, root's authorized key (`client`, `client.pub`) -> `disk.img` (raw
  ext4, sparse), `vmlinuz`, `initrd.img`;
- `bundle/`: every .deb that `apt-get install --no-install-recommends docker.io` needs on top of that guest
  (downloaded in a customize hook into a separate archive directory, so only the missing closure lands there).

The bundle is then installed for real into the extracted rootfs (after the disk image was made from it, so
the image stays without Docker) inside a new network namespace with no network at all: the build fails
unless that ends with a working `dockerd --version`.

Outputs go to ${MACHINE_TEST_DEBIAN_CACHE:-~/.cache/machine/test-debian}/<recipe hash>/ plus a `latest`
symlink; the last stdout line is that directory. A build of the same recipe is a no-op.
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

from isos.build import _link_latest, _prune

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd-sysv", "udev", "openssh-server", "linux-image-cloud-amd64", "initramfs-tools", "iproute2",
            "apparmor", "ca-certificates")
BUNDLE = ("docker.io",)
DISK_SIZE = "3G"
HOOKS = (
    'echo deb12 > "$1/etc/hostname"',
    'printf "[Match]\\nName=en*\\n[Network]\\nDHCP=yes\\n" > "$1/etc/systemd/network/80-dhcp.network"',
    'chroot "$1" systemctl enable systemd-networkd',
    'echo "/dev/vda / ext4 rw 0 1" > "$1/etc/fstab"',
    'rm -f "$1"/etc/ssh/ssh_host_rsa_key* "$1"/etc/ssh/ssh_host_ecdsa_key*',
)
RECIPE_VERSION = 1
FILES = ("disk.img", "vmlinuz", "initrd.img", "client", "client.pub")


def cache_root() -> Path:
    return Path(os.environ.get("MACHINE_TEST_DEBIAN_CACHE") or Path.home() / ".cache/machine/test-debian")


def recipe_hash() -> str:
    recipe = {"v": RECIPE_VERSION, "suite": SUITE, "mirror": MIRROR, "packages": PACKAGES, "bundle": BUNDLE,
              "disk": DISK_SIZE, "hooks": HOOKS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def built_dir() -> Path | None:
    """The directory of a finished build: MACHINE_TEST_DEBIAN_DIR, else this recipe's build, else None."""
    override = os.environ.get("MACHINE_TEST_DEBIAN_DIR")
    d = Path(override) if override else cache_root() / recipe_hash()
    return d if (d / "manifest.json").is_file() and all((d / f).exists() for f in FILES) else None


def log(msg: str) -> None:
    print(f"debian_guest: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log(" ".join(cmd)[:300])
    return subprocess.run(cmd, **{"check": True, **kw})


def _mmdebstrap(tar: Path, out: Path) -> None:
    bundle = out / "bundle"
    bundle.mkdir()
    hooks = [*HOOKS,
             f'mkdir -p "$1/root/.ssh" && cp {out}/client.pub "$1/root/.ssh/authorized_keys"',
             # the docker.io closure missing from this guest, into its own archive directory
             'mkdir -p "$1/tmp/bundle/partial" && chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install '
             f'-y -q --no-install-recommends --download-only -o Dir::Cache::Archives=/tmp/bundle {" ".join(BUNDLE)}',
             f'cp "$1"/tmp/bundle/*.deb {bundle}/ && rm -rf "$1/tmp/bundle"']
    _run(["mmdebstrap", "--mode=root", "--variant=minbase", "--quiet", f"--include={','.join(PACKAGES)}",
          '--aptopt=Acquire::Retries "3"', "--dpkgopt=path-exclude=/usr/share/man/*",
          "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
          *[f"--customize-hook={h}" for h in hooks], SUITE, str(tar), MIRROR], stdout=sys.stderr, timeout=1800)


def _verify_offline(root: Path, bundle: Path) -> str:
    """Install the bundle into `root` with no network (a new, empty network namespace), the way the
    provisioner does it; returns `dockerd --version`. `root` is scratch afterwards."""
    target = root / "tmp/bundle"
    target.mkdir(parents=True)
    for deb in bundle.glob("*.deb"):
        shutil.copy(deb, target)
    script = ('mount -t proc proc "$1/proc" && chroot "$1" sh -c "printf \'#!/bin/sh\\nexit 101\\n\' '
              '>/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && DEBIAN_FRONTEND=noninteractive '
              'apt-get install -y -q --no-install-recommends /tmp/bundle/*.deb && dockerd --version"; '
              'rc=$?; umount "$1/proc"; exit $rc')
    res = _run(["unshare", "--net", "--mount", "--fork", "sh", "-c", script, "sh", str(root)],
               capture_output=True, text=True, timeout=900, check=False)
    if res.returncode != 0:
        raise SystemExit(f"the bundle did not install offline:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout.strip().splitlines()[-1]


def build(cache: Path, rh: str) -> Path:
    from machine.provision import keys

    work = cache / f".work-{rh}"
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    out.mkdir(parents=True)
    t0 = time.monotonic()
    keys.write_keypair(out / "client", keys.new_ed25519("machine-test-debian"))
    tar = work / "rootfs.tar"
    _mmdebstrap(tar, out)
    times = {"mmdebstrap_s": round(time.monotonic() - t0, 1)}
    root = work / "rootfs"
    root.mkdir()
    _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tar)])
    tar.unlink()
    shutil.copy(next((root / "boot").glob("vmlinuz-*")), out / "vmlinuz")
    shutil.copy(next((root / "boot").glob("initrd.img-*")), out / "initrd.img")
    s = time.monotonic()
    _run(["mkfs.ext4", "-q", "-F", "-L", "deb12", "-d", str(root), str(out / "disk.img"), DISK_SIZE])
    times["mkfs_s"] = round(time.monotonic() - s, 1)
    if shutil.which("dockerd", path=f"{root}/usr/sbin:{root}/usr/bin"):
        raise SystemExit("the guest has dockerd: the recipe must not install Docker")
    s = time.monotonic()
    dockerd = _verify_offline(root, out / "bundle")  # after mkfs: the disk image stays without Docker
    times["offline_install_s"] = round(time.monotonic() - s, 1)
    shutil.rmtree(root)
    debs = sorted(p.name for p in (out / "bundle").glob("*.deb"))
    manifest = {
        "recipe_hash": rh, "suite": SUITE, "packages": PACKAGES, "bundle_for": BUNDLE,
        "bundle": debs, "bundle_bytes": sum(p.stat().st_size for p in (out / "bundle").glob("*.deb")),
        "offline_install_check": dockerd,
        "build_date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": round(time.monotonic() - t0, 1), "build_times": times,
        "boot": {"kernel": "vmlinuz", "initrd": "initrd.img", "append": "root=/dev/vda rw console=ttyS0",
                 "disk": "disk.img (raw; use snapshot=on)", "login": "root with the key `client`"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    final = cache / rh
    shutil.rmtree(final, ignore_errors=True)
    out.rename(final)
    shutil.rmtree(work)
    log(f"built in {manifest['build_seconds']} s: {len(debs)} packages in the bundle, {dockerd}")
    return final


KEEP_BUILDS = 2


def ensure(cache: Path | None = None, force: bool = False) -> Path:
    """The build directory of this recipe, built first when missing (one builder at a time: a lock file)."""
    import fcntl

    cache = cache or cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    rh = recipe_hash()
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        final = cache / rh
        if force or not (final / "manifest.json").is_file():
            if os.geteuid() != 0:
                raise SystemExit("building the Debian test guest needs root (mmdebstrap --mode=root, chroot)")
            for tool in ("mmdebstrap", "mkfs.ext4", "unshare"):
                if not shutil.which(tool):
                    raise SystemExit(f"missing host tool {tool} (apt-get install mmdebstrap e2fsprogs util-linux)")
            build(cache, rh)
            _prune(cache, rh, KEEP_BUILDS)
        else:
            log(f"recipe {rh} already built")
        _link_latest(cache, rh)
    return final


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild even if this recipe was built already")
    ap.add_argument("--cache", type=Path, default=None,
                    help="cache root (default: $MACHINE_TEST_DEBIAN_CACHE or ~/.cache/machine/test-debian)")
    ap.add_argument("--print-hash", action="store_true", help="print the recipe hash and exit")
    args = ap.parse_args()
    if args.print_hash:
        print(recipe_hash())
        return 0
    print(ensure(args.cache, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
