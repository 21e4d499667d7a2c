"""Getting the boot ISO onto a remote Hyper-V host: chunked upload over WinRM (bytes and hash
verified on the fake host's disk), resume, skip when cached, host download by URL, host path."""

from __future__ import annotations

import hashlib
import http.server
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "winrm"))

from hv_pytest import context, fake_host, fake_iso, options_for  # noqa: E402
from machine.drivers.hyperv import HypervDriver, isotransfer  # noqa: E402

from machine.driver import State  # noqa: E402
from machine.errors import DriverError, UsageError  # noqa: E402

CACHE = "C:\\ProgramData\\machine\\iso-cache"


@pytest.fixture
def host(tmp_path: Path):
    with fake_host(tmp_path) as srv:
        yield srv


def ops(srv) -> list[str]:
    return [entry["op"] for entry in srv.state.host.load()["log"]]


def clear_log(srv) -> None:
    srv.state.host.update(lambda s: s.update(log=[]))


def runner(srv, tmp_path: Path):
    return HypervDriver.make_runner(options_for(srv, tmp_path))


def test_streamed_upload_puts_the_exact_bytes_on_the_host(host, tmp_path: Path) -> None:
    size = 3 * isotransfer.STREAM_CHUNK + 1234
    iso = fake_iso(tmp_path, size=size)
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    dest = f"{CACHE}\\sha256-{digest}.iso"
    r = runner(host, tmp_path)
    assert r.can_stream
    seen: list[tuple[int, int]] = []
    assert isotransfer.upload(r, iso, dest, progress=lambda done, total: seen.append((done, total))) == "uploaded"
    arrived = host.state.host.local(dest)
    assert arrived.read_bytes() == iso.read_bytes()
    assert hashlib.sha256(arrived.read_bytes()).hexdigest() == digest
    assert ops(host) == ["iso-probe", "iso-stream", "iso-finish"]
    assert host.state.sends == 4  # one WinRM Send per 48 KiB chunk, the last one closing stdin
    assert seen[-1] == (size, size) and len(seen) == 4
    clear_log(host)
    assert isotransfer.upload(r, iso, dest) == "present"
    assert ops(host) == ["iso-probe"]
    r.close()


def test_chunked_upload_puts_the_exact_bytes_on_the_host(host, tmp_path: Path) -> None:
    iso = fake_iso(tmp_path, size=23_456)
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    dest = f"{CACHE}\\sha256-{digest}.iso"
    r = runner(host, tmp_path)
    seen: list[tuple[int, int]] = []
    assert isotransfer.upload(r, iso, dest, progress=lambda done, total: seen.append((done, total)),
                              stream=False) == "uploaded"
    arrived = host.state.host.local(dest)
    assert arrived.read_bytes() == iso.read_bytes()
    assert hashlib.sha256(arrived.read_bytes()).hexdigest() == digest
    assert not arrived.with_name(arrived.name + ".part").exists()
    chunks = ops(host).count("iso-chunk")
    step = isotransfer.chunk_size(dest)
    assert chunks == -(-23_456 // step) and chunks > 5
    assert seen[-1] == (23_456, 23_456) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # a second upload finds the file by digest and sends nothing
    clear_log(host)
    assert isotransfer.upload(r, iso, dest, stream=False) == "present"
    assert ops(host) == ["iso-probe"]
    r.close()


@pytest.mark.parametrize("stream", [True, False])
def test_interrupted_upload_resumes_from_the_host_part_file(host, tmp_path: Path, stream: bool) -> None:
    iso = fake_iso(tmp_path, size=120_000)
    dest = f"{CACHE}\\x.iso"
    have = 2 * isotransfer.chunk_size(dest)
    part = host.state.host.local(dest + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(iso.read_bytes()[:have])  # what arrived before the interruption
    r = runner(host, tmp_path)
    isotransfer.upload(r, iso, dest, stream=stream)
    assert host.state.host.local(dest).read_bytes() == iso.read_bytes()
    op = "iso-stream" if stream else "iso-chunk"
    offsets = [e["params"]["Offset"] for e in host.state.host.load()["log"] if e["op"] == op]
    assert offsets[0] == have  # nothing re-sent


def test_stream_resyncs_when_the_host_part_grew(host, tmp_path: Path, monkeypatch) -> None:
    iso = fake_iso(tmp_path, size=100_000)
    dest = f"{CACHE}\\g.iso"
    part = host.state.host.local(dest + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(iso.read_bytes()[:10_000])
    r = runner(host, tmp_path)
    real = r.call_with_input
    offsets: list[int] = []

    def racing(op, chunks, **values):
        offsets.append(values["offset"])
        if len(offsets) == 1:  # an earlier stream's bytes land after the probe: the host is ahead
            part.write_bytes(iso.read_bytes()[:30_000])
        return real(op, chunks, **values)

    monkeypatch.setattr(r, "call_with_input", racing)
    isotransfer.upload(r, iso, dest, stream=True)
    assert offsets == [10_000, 30_000]
    assert host.state.host.local(dest).read_bytes() == iso.read_bytes()


def test_upload_resyncs_when_the_host_has_another_size(host, tmp_path: Path, monkeypatch) -> None:
    iso = fake_iso(tmp_path, size=9_000)
    dest = f"{CACHE}\\y.iso"
    r = runner(host, tmp_path)
    real_call = r.call
    state = {"lost": False}

    def lossy(op, **values):
        answer = real_call(op, **values)
        if op == "iso-chunk" and values["offset"] > 0 and not state["lost"]:
            # the host wrote the chunk but its answer was lost; a retry of the same chunk finds the
            # part file longer than its offset, writes nothing, and the client continues from there
            state["lost"] = True
            answer = real_call(op, **values)
            assert answer["written"] == 0
        return answer

    monkeypatch.setattr(r, "call", lossy)
    isotransfer.upload(r, iso, dest, stream=False)
    assert state["lost"]
    assert host.state.host.local(dest).read_bytes() == iso.read_bytes()


@pytest.mark.parametrize("stream", [True, False])
def test_corrupted_upload_is_detected(host, tmp_path: Path, stream: bool) -> None:
    iso = fake_iso(tmp_path, size=5_000)
    r = runner(host, tmp_path)
    with pytest.raises(DriverError, match="sha256 mismatch") as info:
        isotransfer.upload(r, iso, f"{CACHE}\\z.iso", digest="0" * 64, stream=stream)
    assert "--hyperv-iso-sha256" in info.value.hint
    assert not host.state.host.local(f"{CACHE}\\z.iso").exists()
    assert not host.state.host.local(f"{CACHE}\\z.iso.part").exists()


def test_create_skips_the_upload_when_the_host_has_the_iso(host, tmp_path: Path) -> None:
    iso = fake_iso(tmp_path / "iso")
    opts = options_for(host, tmp_path, iso=str(iso))
    HypervDriver(context(tmp_path / "one", opts, name="one")).create()
    clear_log(host)
    two = HypervDriver(context(tmp_path / "two", opts, name="two"))
    two.create()
    log = ops(host)
    assert log.count("iso-probe") == 2  # boot ISO (cached) and seed
    assert log.count("iso-stream") == 1  # the seed only
    assert two.status() == State.STOPPED


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path):
    root = tmp_path / "web"
    root.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(root), **k)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_host_downloads_the_iso_by_url(host, tmp_path: Path, web) -> None:
    root, base = web
    iso = fake_iso(root, size=70_000)
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    opts = options_for(host, tmp_path, iso_url=f"{base}/machine-os.iso", iso_sha256=digest)
    d = HypervDriver(context(tmp_path, opts))
    d.create()
    cached = host.state.host.local(f"{CACHE}\\sha256-{digest}.iso")
    assert cached.read_bytes() == iso.read_bytes()
    assert "iso-download" in ops(host)
    assert host.state.host.local(d.data["vm_dir"] + "\\boot.iso").read_bytes() == iso.read_bytes()
    # the boot ISO was not uploaded: the only upload is the seed's
    assert [e["params"]["Path"][-8:] for e in host.state.host.load()["log"] if e["op"] == "iso-stream"] == \
        ["seed.iso"]


def test_url_download_with_the_wrong_hash_fails(host, tmp_path: Path, web) -> None:
    root, base = web
    fake_iso(root)
    opts = options_for(host, tmp_path, iso_url=f"{base}/machine-os.iso", iso_sha256="a" * 64)
    with pytest.raises(DriverError, match="sha256 mismatch"):
        HypervDriver(context(tmp_path, opts)).create()
    assert not host.state.host.local(f"{CACHE}\\sha256-{'a' * 64}.iso").exists()


def test_url_needs_a_hash(host, tmp_path: Path) -> None:
    opts = options_for(host, tmp_path, iso_url="http://127.0.0.1:9/x.iso")
    with pytest.raises(UsageError, match="sha256"):
        HypervDriver(context(tmp_path, opts)).create()


def test_iso_already_on_a_host_path(host, tmp_path: Path) -> None:
    iso = fake_iso(tmp_path / "iso")
    share = "\\\\fileserver\\isos\\machine-os.iso"
    target = host.state.host.local(share)
    target.parent.mkdir(parents=True)
    target.write_bytes(iso.read_bytes())
    opts = options_for(host, tmp_path, iso=str(iso), iso_host_path=share)
    d = HypervDriver(context(tmp_path, opts))
    d.create()
    assert host.state.host.local(d.data["vm_dir"] + "\\boot.iso").read_bytes() == iso.read_bytes()
    target.write_bytes(b"something else")
    other = HypervDriver(context(tmp_path / "b", opts, name="hv2"))
    with pytest.raises(DriverError, match="not the expected ISO"):
        other.create()
