"""`machine os build|pull|ls|info|pack`: get the machine OS image (our guest) as an installed user.

build: runs the recipe this package carries (machine/isos/build.py) into the cache: as root the system-wide cache
every user's `machine` searches, else the user's (a build needs root: mmdebstrap --mode=root, chroot, mknod).
pull: downloads a published bundle (the catalogue's URL + sha256, or MACHINE_OS_URL / MACHINE_OS_SHA256) through
the verified, resumable download cache and unpacks it. pack: makes such a bundle from a build.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from machine.app import App, pass_app
from machine.errors import HostNotUsable, ImageError, NotFound, Unsupported, UsageError


def _cache_option(f):  # noqa: ANN001, ANN202 - a click decorator
    return click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Cache root to put the image in [default: $MACHINE_OS_CACHE when set, else the "
                             "system-wide cache as root, else ~/.cache/machine/machine-os].")(f)


@click.group(name="os")
def os_group() -> None:
    """Get, list and inspect the machine OS image (the guest the qemu/libvirt/... drivers boot)."""


@os_group.command()
@click.option("--force", is_flag=True, help="Rebuild even if this recipe was built already.")
@_cache_option
def build(force: bool, cache: Path | None) -> None:
    """Build the machine OS from the recipe this package carries (Linux, as root; ~1-3 minutes)."""
    from machine import process
    from machine.images import machineos

    if not sys.platform.startswith("linux"):
        raise HostNotUsable("The machine OS is built on Linux only (mmdebstrap, chroot)",
                            "Use machine os pull (a published image), or build on a Linux host and copy the folder "
                            "(MACHINE_OS_DIR).")
    if not machineos.is_root():
        raise Unsupported(
            "Building the machine OS needs root (mmdebstrap --mode=root, chroot, device nodes)",
            f"Run: sudo {_self_command()} os build  (it lands in {machineos.system_cache()}, which every user's "
            "machine searches); or machine os pull when a published image is configured (MACHINE_OS_URL).")
    target = (cache or machineos.default_build_cache()).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o755)
    except OSError as e:
        raise ImageError(f"Cannot create the image cache {target}: {e}", "Pick another folder with --cache.") from e
    rc = process.exec_interactive(machineos.build_command(target, force))
    if rc != 0:
        raise ImageError(f"The machine OS build failed (exit {rc})",
                         "Its output above names the step; the host packages it needs are listed in "
                         f"{machineos.recipe_dir() / 'README.md'}.")
    _share(target)


def _share(cache: Path) -> None:
    """A build in a shared cache must be readable by every user, whatever root's umask was."""
    latest = cache / "latest"
    if not latest.is_dir():
        return
    build_dir = latest.resolve()
    for p in (cache, build_dir):
        os.chmod(p, 0o755)
    for f in build_dir.iterdir():
        if f.is_file():
            os.chmod(f, 0o644)


def _self_command() -> str:
    """How to name this `machine` under sudo (whose PATH may not hold a pipx/venv install)."""
    argv0 = Path(sys.argv[0])
    return str(argv0.resolve()) if argv0.name == "machine" and argv0.is_file() else "machine"


@os_group.command()
@click.option("--url", default=None, help="Bundle URL (http/https) [default: MACHINE_OS_URL, else the catalogue's].")
@click.option("--sha256", "digest", default=None, help="The bundle's sha256 [default: MACHINE_OS_SHA256].")
@_cache_option
@pass_app
def pull(app: App, url: str | None, digest: str | None, cache: Path | None) -> None:
    """Download the published machine OS image (verified against its sha256, resumed when interrupted)."""
    from machine.images import catalogue, downloadcache, machineos

    if digest and not url:
        raise UsageError("--sha256 needs --url", "Give both, or neither (then MACHINE_OS_URL or the catalogue).")
    bundle = machineos.bundle(url, digest) if url else catalogue.published_machine_os()
    if bundle is None:
        raise NotFound("No published machine OS image is configured",
                       "Set MACHINE_OS_URL (and MACHINE_OS_SHA256), or pass --url URL --sha256 HEX; "
                       "or build it: " + ("machine os build" if machineos.is_root() else "sudo machine os build"))
    tar = downloadcache.download(bundle, app.store.cache_dir, progress=True)
    target = (cache or machineos.default_build_cache()).expanduser()
    final = machineos.install_bundle(tar, target)
    click.echo(str(final))


@os_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_(as_json: bool) -> None:
    """List the machine OS builds in the searched caches (IN USE marks the one machines boot)."""
    from machine.images import machineos

    rows = machineos.builds()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'RECIPE':<18}{'BUILT':<22}{'SIZE':>9}  {'LATEST':<7}{'IN USE':<7}PATH")
    for r in rows:
        size = f"{r['size'] / (1 << 20):.0f} MiB"
        click.echo(f"{r['recipe_hash']:<18}{r['built']:<22}{size:>9}  {'*' if r['latest'] else '':<7}"
                   f"{'*' if r['in_use'] else '':<7}{r['path']}")


@os_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json: bool) -> None:
    """Show the machine OS build in use, the recipe this package carries, and where images are searched."""
    from machine.images import catalogue, machineos

    d = machineos.machine_os_dir()
    manifest = machineos.read_manifest(d) if machineos.is_build(d) else {}
    published = catalogue.published_machine_os()
    report = {
        "in_use": str(d.resolve()) if machineos.is_build(d) else None,
        "recipe_hash_installed": machineos.recipe_hash(),
        "recipe_hash_in_use": manifest.get("recipe_hash"),
        "version": manifest.get("version"),
        "kernel": manifest.get("kernel"),
        "built": manifest.get("build_date"),
        "searched": [str(p) for p in machineos.candidates()],
        "recipe": str(machineos.recipe_dir()),
        "published": {"url": published.url, "sha256": published.sha256} if published else None,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if report["in_use"] is None:
        click.echo("Machine OS: not found")
        click.echo(f"  {catalogue.machine_os_hint()}")
    else:
        current = report["recipe_hash_in_use"] == report["recipe_hash_installed"]
        click.echo(f"Machine OS: {report['in_use']}")
        click.echo(f"  version {report['version']}, kernel {report['kernel']}, built {report['built']}")
        click.echo(f"  recipe {report['recipe_hash_in_use']}" + ("" if current else
                   f" (this package's recipe is {report['recipe_hash_installed']}: machine os build updates it)"))
    click.echo(f"Searched: {', '.join(report['searched'])}")
    click.echo(f"Recipe: {report['recipe']}")
    click.echo(f"Published image: {published.url if published else 'none configured (MACHINE_OS_URL)'}")


@os_group.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "source", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="The build folder [default: the one in use].")
def pack(out: Path, source: Path | None) -> None:
    """Write a build as a bundle to publish (then: MACHINE_OS_URL=<its URL> MACHINE_OS_SHA256=<printed digest>)."""
    from machine.images import machineos

    src = source or machineos.machine_os_dir()
    digest = machineos.pack(src, out)
    click.echo(f"{digest}  {out}")
