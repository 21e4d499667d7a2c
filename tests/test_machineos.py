"""Getting the machine OS as an installed user (machine.images.machineos, `machine os ...`): where builds are
searched (user cache, system-wide cache, the installed recipe's build first), the hint when none is found, and
`machine os pack` / `machine os pull` of a published bundle over real HTTP on 127.0.0.1 (Range resume, sha256
check, download cache), with a synthetic build and with the real built image when there is one."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cli import run
from test_images import Server

from machine.errors import ConfigError, MachineError
from machine.images import catalogue, downloadcache, machineos

BUILD_FILES = ("vmlinuz", "initrd.img", "machine-os.iso")


def make_build(d: Path, rh: str = "feedc0ffee123456", size: int = 200_000) -> Path:
    d.mkdir(parents=True)
    files = {}
    for name in BUILD_FILES:
        data = os.urandom(size)
        (d / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": size}
    (d / "manifest.json").write_text(json.dumps({"recipe_hash": rh, "version": "9.9", "files": files,
                                                  "build_date": "2026-11-29T00:00:00Z", "kernel": "k1"}))
    return d


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_root: Path) -> tuple[Path, Path]:
    user, system = tmp_path / "user-cache", tmp_path / "system-cache"
    monkeypatch.setenv("MACHINE_OS_CACHE", str(user))
    monkeypatch.setenv("MACHINE_OS_SYSTEM_CACHE", str(system))
    for var in ("MACHINE_OS_DIR", "MACHINE_OS_URL", "MACHINE_OS_SHA256"):
        monkeypatch.delenv(var, raising=False)
    return user, system


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _latest(cache: Path, name: str) -> None:
    machineos.link_latest(cache, name)


# -- where the image is searched ---------------------------------------------------------------


def test_system_cache_is_searched_when_the_user_has_none(caches: tuple[Path, Path]) -> None:
    user, system = caches
    make_build(system / "b1")
    _latest(system, "b1")
    img = catalogue.default_image()
    assert img.path == system / "latest" and img.kernel == system / "latest" / "vmlinuz"
    assert img.url is None  # a found build is local, whatever the catalogue's published URL is


def test_a_root_build_goes_to_machine_os_cache_when_it_is_set(caches: tuple[Path, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    user, system = caches
    monkeypatch.setattr(machineos, "is_root", lambda: True)
    assert machineos.default_build_cache() == user  # MACHINE_OS_CACHE is set by the fixture
    monkeypatch.delenv("MACHINE_OS_CACHE")
    assert machineos.default_build_cache() == system
    monkeypatch.setattr(machineos, "is_root", lambda: False)
    assert machineos.default_build_cache() == Path.home() / ".cache" / "machine" / "machine-os"


def test_build_of_the_installed_recipe_wins_over_another_latest(caches: tuple[Path, Path]) -> None:
    user, system = caches
    current = machineos.recipe_hash()
    assert current and len(current) == 16
    make_build(user / "otherrecipe00000", rh="otherrecipe00000")
    _latest(user, "otherrecipe00000")
    make_build(system / current, rh=current)
    _latest(system, current)
    assert machineos.machine_os_dir() == system / current
    make_build(user / current, rh=current)
    assert machineos.machine_os_dir() == user / current
    rows = {r["path"]: r for r in machineos.builds()}
    assert rows[str(user / current)]["in_use"] and not rows[str(system / current)]["in_use"]
    assert rows[str(user / "otherrecipe00000")]["latest"]


def test_missing_image_hint_names_the_ways_to_get_it(caches: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    user, system = caches
    monkeypatch.setattr(machineos, "is_root", lambda: False)
    with pytest.raises(MachineError) as e:
        catalogue.default_image()
    assert str(user / "latest") in e.value.message and str(system / "latest") in e.value.message
    assert f"sudo machine os build (root builds into {system}" in e.value.hint
    assert "machine os pull --url URL --sha256 HEX" in e.value.hint
    monkeypatch.setenv("MACHINE_OS_URL", "http://127.0.0.1:9/m.tar#sha256=" + "a" * 64)
    assert "machine os pull (downloads the published image" in catalogue.machine_os_hint()
    res = run("os", "build")
    assert res.code == 1 and "needs root" in res.err and f"it lands in {system}" in res.err, res


def test_published_image_from_env_and_catalogue(caches: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert catalogue.published_machine_os() is None  # nothing is published in isos/images.yaml yet
    monkeypatch.setenv("MACHINE_OS_URL", "https://example.invalid/os.tar#sha256=" + "B" * 64)
    b = catalogue.published_machine_os()
    assert b is not None and b.url == "https://example.invalid/os.tar" and b.sha256 == "b" * 64 and b.ext == "tar"
    monkeypatch.setenv("MACHINE_OS_SHA256", "c" * 64)
    assert catalogue.published_machine_os().sha256 == "c" * 64
    monkeypatch.setenv("MACHINE_OS_URL", "file:///etc/passwd")
    with pytest.raises(ConfigError):
        catalogue.published_machine_os()
    with pytest.raises(ConfigError):
        machineos.bundle("https://example.invalid/os.tar", "xyz")
    entry = ("images:\n  machine-os:\n    local: true\n    format: kernel+initrd\n    arch: amd64\n    ssh_user: root\n"
             "    seed: machine-os\n    url: https://example.invalid/os.tar\n")
    with pytest.raises(ConfigError):
        catalogue.load_catalogue(entry)  # a published build needs a pinned sha256
    cat = catalogue.load_catalogue(entry + f"    sha256: {'d' * 64}\n")
    assert cat["machine-os"].local and cat["machine-os"].sha256 == "d" * 64


# -- pack and pull over HTTP -------------------------------------------------------------------


def test_pull_resumes_verifies_and_caches(caches: tuple[Path, Path], server: Server, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, store_root: Path) -> None:
    user, _system = caches
    monkeypatch.setattr(downloadcache.time, "sleep", lambda s: None)
    src = make_build(tmp_path / "src")
    out = tmp_path / "machine-os.tar"
    res = run("os", "pack", str(out), "--from", str(src))
    assert res.code == 0, res
    digest = res.out.split()[0]
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    server.files["/machine-os.tar"] = out.read_bytes()
    server.drop_after, server.drops = 250_000, 1  # the first response breaks off: the second must resume
    monkeypatch.setattr(machineos, "is_root", lambda: False)
    res = run("os", "pull", "--url", server.url("/machine-os.tar"), "--sha256", digest)
    assert res.code == 0, res
    gets = [r for r in server.requests if r["path"] == "/machine-os.tar"]
    assert len(gets) == 2 and "Range" not in gets[0] and gets[1]["Range"] == "bytes=250000-"
    assert Path(res.out.strip()) == user / "feedc0ffee123456"
    img = catalogue.default_image()
    assert img.path == user / "latest" and img.manifest["version"] == "9.9"
    for name in BUILD_FILES:
        assert (user / "latest" / name).read_bytes() == (src / name).read_bytes()
    # cached: a second pull downloads nothing; MACHINE_OS_URL/MACHINE_OS_SHA256 configure the same
    monkeypatch.setenv("MACHINE_OS_URL", server.url("/machine-os.tar"))
    monkeypatch.setenv("MACHINE_OS_SHA256", digest)
    assert run("os", "pull").code == 0 and len(server.requests) == 2
    info = json.loads(run("os", "info", "--json").out)
    assert info["in_use"] == str(user / "feedc0ffee123456") and info["published"]["sha256"] == digest


def test_pull_rejects_a_wrong_digest_and_a_damaged_bundle(caches: tuple[Path, Path], server: Server,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user, _system = caches
    monkeypatch.setattr(machineos, "is_root", lambda: False)
    src = make_build(tmp_path / "src")
    out = tmp_path / "b.tar"
    digest = machineos.pack(src, out)
    server.files["/b.tar"] = out.read_bytes()
    res = run("os", "pull", "--url", server.url("/b.tar"), "--sha256", "0" * 64)
    assert res.code == 1 and "Checksum mismatch" in res.err and res.crash is None, res
    assert not (user / "latest").exists()
    # a bundle whose file does not match its own manifest is refused and leaves no build behind
    (src / "initrd.img").write_bytes(b"tampered")
    bad = tmp_path / "bad.tar"
    bad_digest = machineos.pack(src, bad)
    server.files["/bad.tar"] = bad.read_bytes()
    res = run("os", "pull", "--url", server.url("/bad.tar"), "--sha256", bad_digest)
    assert res.code == 1 and "does not match the bundle's manifest" in res.err, res
    assert not (user / "latest").exists() and not list(user.glob("feed*"))
    assert digest != bad_digest
    res = run("os", "pull", "--sha256", digest)
    assert res.code == 2 and "--sha256 needs --url" in res.err


def test_pull_of_the_real_built_image(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
                                      store_root: Path) -> None:
    """The real machine OS build (when there is one here), packed, served on 127.0.0.1 and pulled."""
    built = machineos.machine_os_dir()
    if not all((built / f).is_file() for f in machineos.BUNDLE_FILES):
        pytest.skip(f"no machine OS build here ({built}): machine os build")
    monkeypatch.setattr(downloadcache.time, "sleep", lambda s: None)
    monkeypatch.setattr(machineos, "is_root", lambda: False)
    out = tmp_path / "real.tar"
    digest = machineos.pack(built, out)
    server.files["/real.tar"] = out.read_bytes()
    out.unlink()
    server.drop_after, server.drops = 30 << 20, 1
    cache = tmp_path / "pulled"
    monkeypatch.setenv("MACHINE_OS_CACHE", str(cache))
    monkeypatch.setenv("MACHINE_OS_SYSTEM_CACHE", str(tmp_path / "nosys"))
    monkeypatch.setenv("MACHINE_OS_URL", server.url("/real.tar") + "#sha256=" + digest)
    monkeypatch.delenv("MACHINE_OS_DIR", raising=False)
    res = run("os", "pull")
    assert res.code == 0, res
    assert server.requests[-1]["Range"] == f"bytes={30 << 20}-"
    got = catalogue.default_image()
    manifest = json.loads((built / "manifest.json").read_text())
    assert got.manifest["recipe_hash"] == manifest["recipe_hash"] and got.path.resolve().parent == cache
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((got.path / name).read_bytes()).hexdigest() == meta["sha256"]
