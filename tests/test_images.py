"""Image catalogue and resolution (machine.images.catalogue) and the verified, resumable download cache
(machine.images.downloadcache), against a server on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from machine.errors import MachineError, NotFound
from machine.images import catalogue, downloadcache
from machine.images.catalogue import Image, fetch, load_catalogue, parse_checksums, resolve

PAYLOAD = os.urandom(300_000)  # tests shrink downloadcache.CHUNK so this spans many reads
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves `files`; optionally ignores Range, or drops the connection after `drop_after` bytes
    for the first `drops` responses."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.support_range = True
        self.drop_after: int | None = None
        self.drops = 0
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with outer.lock:
                    outer.requests.append({"path": self.path, **dict(self.headers)})
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and outer.support_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                chunk = body[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("ETag", '"v1"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if outer.support_range:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                with outer.lock:
                    drop = outer.drop_after is not None and outer.drops > 0
                    if drop:
                        outer.drops -= 1
                if drop:
                    self.wfile.write(chunk[: outer.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    s.files["/disk.qcow2"] = PAYLOAD
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloadcache.time, "sleep", lambda s: None)
    monkeypatch.setattr(downloadcache, "CHUNK", 16_384)


def _img(server: Server, **kw: object) -> Image:
    args: dict = dict(name="disk", format="qcow2", url=server.url("/disk.qcow2"), sha256=DIGEST)
    args.update(kw)
    return Image(**args)


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "images").iterdir() if not p.name.endswith(".lock"))


# -- catalogue ---------------------------------------------------------------------------------


def test_catalogue_entries_have_required_fields() -> None:
    cat = load_catalogue()
    assert {"machine-os", "debian-12", "ubuntu-24.04"} <= set(cat)
    for name, img in cat.items():
        assert img.format in catalogue.FORMATS, name
        assert img.arch and img.ssh_user and img.seed in catalogue.SEEDS, name
        if img.local:
            assert img.url is None
        else:
            assert img.url and img.url.startswith("https://"), name
            assert img.sha256 or (img.checksum_url and img.checksum_url.startswith("https://")), name
    assert cat["debian-12"].ssh_user == "debian"
    assert cat["ubuntu-24.04"].ssh_user == "ubuntu"
    assert cat["machine-os"].ssh_user == "root"


def test_catalogue_rejects_bad_entries() -> None:
    with pytest.raises(MachineError):
        load_catalogue("images:\n  x:\n    format: vhd\n    arch: amd64\n    ssh_user: a\n    seed: nocloud\n")
    with pytest.raises(MachineError):
        load_catalogue(
            "images:\n  x:\n    format: raw\n    arch: amd64\n    ssh_user: a\n    seed: nocloud\n"
            "    url: https://example.invalid/x.raw\n"
        )  # no checksum


def test_parse_checksums() -> None:
    text = f"{'a' * 64}  other.img\n{'b' * 64} *disk.img\nSHA512 (x.qcow2) = {'c' * 128}\n"
    assert parse_checksums(text, "disk.img") == "b" * 64
    assert parse_checksums(text, "x.qcow2") == "c" * 128
    assert parse_checksums(text, "missing") is None


# -- resolve -----------------------------------------------------------------------------------


def test_resolve_names_urls_paths(tmp_path: Path) -> None:
    assert resolve("debian-12").ssh_user == "debian"
    assert resolve("noble").name == "ubuntu-24.04"
    img = resolve("https://example.invalid/a/b.qcow2#sha256=" + DIGEST)
    assert img.url == "https://example.invalid/a/b.qcow2" and img.sha256 == DIGEST and img.format == "qcow2"
    q = tmp_path / "x.img"
    q.write_bytes(b"QFI\xfb" + b"\0" * 100)
    assert resolve(str(q)).format == "qcow2"
    assert fetch(resolve(str(q)), tmp_path / "cache") == q.resolve()
    with pytest.raises(NotFound) as e:
        resolve("no-such-image")
    assert "debian-12" in e.value.hint


def test_default_image_missing_names_build_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MACHINE_OS_DIR", raising=False)
    monkeypatch.setenv("MACHINE_OS_CACHE", str(tmp_path / "none"))
    monkeypatch.setenv("MACHINE_OS_SYSTEM_CACHE", str(tmp_path / "none-system"))
    with pytest.raises(MachineError) as e:
        catalogue.default_image()
    assert "machine os build" in e.value.hint
    with pytest.raises(MachineError):
        resolve("machine-os")


def test_default_image_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "latest"
    d.mkdir()
    for f in ("vmlinuz", "initrd.img", "machine-os.iso"):
        (d / f).write_bytes(b"x")
    (d / "manifest.json").write_text('{"version": "1.2.3"}')
    monkeypatch.setenv("MACHINE_OS_CACHE", str(tmp_path))
    monkeypatch.setenv("MACHINE_OS_SYSTEM_CACHE", str(tmp_path / "none-system"))
    monkeypatch.delenv("MACHINE_OS_DIR", raising=False)
    img = catalogue.default_image()
    assert img.format == "kernel+initrd" and img.kernel == d / "vmlinuz" and img.iso == d / "machine-os.iso"
    assert img.manifest["version"] == "1.2.3" and img.ssh_user == "root" and img.seed == "machine-os"
    monkeypatch.setenv("MACHINE_OS_DIR", str(d))
    assert resolve("machine-os").path == d
    assert fetch(img, tmp_path / "cache") == d


# -- fetch -------------------------------------------------------------------------------------


def test_fetch_verifies_and_caches(server: Server, tmp_path: Path) -> None:
    path = fetch(_img(server), tmp_path, progress=False)
    assert path == tmp_path / "images" / f"sha256-{DIGEST}.qcow2"
    assert path.read_bytes() == PAYLOAD
    index = json.loads((tmp_path / "images" / "index.json").read_text())
    assert index[server.url("/disk.qcow2")]["sha256"] == DIGEST
    assert _cache_files(tmp_path) == ["index.json", path.name]


def test_cache_hit_without_network(server: Server, tmp_path: Path) -> None:
    img = _img(server, sha256=None, checksum_url=server.url("/SHA256SUMS"))
    server.files["/SHA256SUMS"] = f"{DIGEST}  disk.qcow2\n".encode()
    first = fetch(img, tmp_path, progress=False)
    server.close()  # no network from here on
    assert fetch(img, tmp_path, progress=False) == first
    assert catalogue.cached(img, tmp_path) == first


def test_checksum_file_sha512(server: Server, tmp_path: Path) -> None:
    server.files["/SHA512SUMS"] = f"{hashlib.sha512(PAYLOAD).hexdigest()}  disk.qcow2\n".encode()
    img = _img(server, sha256=None, checksum_url=server.url("/SHA512SUMS"), checksum_algo="sha512")
    assert fetch(img, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_corrupt_download_rejected_and_not_cached(server: Server, tmp_path: Path) -> None:
    bad = "0" * 64
    with pytest.raises(MachineError) as e:
        fetch(_img(server, sha256=bad), tmp_path, progress=False)
    assert server.url("/disk.qcow2") in e.value.message
    assert bad in e.value.message and DIGEST in e.value.message and e.value.hint
    assert _cache_files(tmp_path) == []


def test_resume_with_range(server: Server, tmp_path: Path) -> None:
    server.drop_after, server.drops = 100_000, 1
    path = fetch(_img(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    gets = [r for r in server.requests if r["path"] == "/disk.qcow2"]
    assert len(gets) == 2 and gets[1]["Range"] == "bytes=100000-" and gets[1]["If-Range"] == '"v1"'


def test_interrupted_keeps_part_then_resumes(server: Server, tmp_path: Path) -> None:
    server.drop_after, server.drops = 50_000, 1
    with pytest.raises(MachineError) as e:
        fetch(_img(server), tmp_path, progress=False, attempts=1)
    assert "kept" in e.value.hint
    parts = [p for p in (tmp_path / "images").iterdir() if p.name.endswith(".part")]
    assert len(parts) == 1 and parts[0].stat().st_size == 50_000
    assert fetch(_img(server), tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1]["Range"] == "bytes=50000-"
    assert _cache_files(tmp_path) == ["index.json", f"sha256-{DIGEST}.qcow2"]


def test_restart_when_server_ignores_range(server: Server, tmp_path: Path) -> None:
    server.support_range = False
    server.drop_after, server.drops = 70_000, 2
    assert fetch(_img(server), tmp_path, progress=False).read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_http_404_is_not_retried(server: Server, tmp_path: Path) -> None:
    with pytest.raises(MachineError) as e:
        fetch(_img(server, url=server.url("/gone.qcow2")), tmp_path, progress=False)
    assert "404" in e.value.message and len(server.requests) == 1


def test_concurrent_fetches_do_not_corrupt(server: Server, tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: fetch(_img(server), tmp_path, progress=False), range(4)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == PAYLOAD
    assert len(server.requests) == 1  # the others waited for the lock and found the cache
    assert _cache_files(tmp_path) == ["index.json", paths[0].name]


def test_progress_lines_when_not_a_tty(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fetch(_img(server), tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "Downloading disk: 100%" in err and len(err.splitlines()) <= 5
