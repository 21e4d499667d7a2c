"""The read-only commands without click (issue #15 point 9): `env`, `config`, `url`, `ls -q`, `active` and
`version` answer inside `eval $(...)` and prompts, so they must start about as fast as the interpreter does.

`run(argv)` answers only the simple forms of those commands (the global `-s/--storage-path PATH`, the
command's own arguments as `machine COMMAND --help` lists them) and only when nothing but their plain answer
is due; for anything else (other commands, --help, -D, a misspelt option, a machine whose certificate needs
renewing, an SSH engine transport) it returns False before printing anything and the click CLI runs
instead. Errors are printed as the CLI prints them. tests/test_fastpath.py runs both paths and compares
their output, exit status and imported modules.

Each command first reads the store through machine.quickread (string paths, none of machine.store's imports);
where that cannot answer exactly as the store would (a docker-machine record, a damaged config, a busy lock,
a certificate check that needs more than the saved SANs) it raises NotQuick and the command runs again on
machine.store.Store. Only `re` (the console script's own import), json and machine's small modules load.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not loaded on this path
if TYPE_CHECKING:
    from machine.quickread import QuickStore, SavedConfig
    from machine.store import Store

PROGRAM = "machine"


class _Fallback(Exception):
    """This invocation is the click CLI's to answer."""


def _global_options(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    """(storage path, given on the command line, the command's words) from `[-s PATH] COMMAND ...`."""
    storage: str | None = None
    words = list(argv)
    while words and words[0].startswith("-"):
        word = words.pop(0)
        if word in ("-s", "--storage-path") and words and storage is None:
            storage = words.pop(0)
        elif word.startswith("--storage-path=") and storage is None:
            storage = word.partition("=")[2]
        else:  # -D, -h, --version, -sPATH, a second -s, '--': the CLI's
            raise _Fallback
    if storage is not None:
        return storage, True, words
    return os.environ.get("MACHINE_STORAGE_PATH") or None, False, words


def _one_name(args: list[str]) -> str | None:
    """[NAME] as click reads it: no option, at most one word."""
    if len(args) > 1 or (args and args[0].startswith("-")):
        raise _Fallback
    return args[0] if args else None


def _store(storage: str | None, quick: bool) -> Store | QuickStore:
    if quick:
        from machine.quickread import QuickStore

        return QuickStore(storage)
    from pathlib import Path

    from machine.store import Store

    return Store(Path(storage).expanduser() if storage else None)  # as machine.app.storage_root


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _version(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    if args:  # `version NAME` asks the engine: the CLI's
        raise _Fallback
    from machine import __version__

    _out(f"machine version {__version__}\n")


def _url(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    from machine.cheapstate import require_running
    from machine.readonly import name_or_default, saved_url

    store = _store(storage, quick)
    cfg = store.load(name_or_default(store, _one_name(args)))
    require_running(store, cfg)
    _out(saved_url(cfg) + "\n")


def _active(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    if args:
        raise _Fallback
    from machine.errors import NotFound
    from machine.readonly import active_names

    if quick:
        from machine.quickread import current_machine

        names = active_names(_store(storage, quick), current_machine)
    else:
        names = active_names(_store(storage, quick))
    if not names:
        raise NotFound("No active host found", "Activate one: eval $(machine env NAME), or machine use NAME.")
    _out(names[0] + "\n")


def _ls(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    if args not in (["-q"], ["--quiet"]):
        raise _Fallback
    if quick:  # without filters `ls -q` lists every machine of the store, readable or not (listing.quiet_names)
        from machine.names import natural_key

        names = sorted(_store(storage, quick).names(), key=natural_key)
    else:
        from machine.ls import listing

        names = listing.quiet_names(_store(storage, quick), listing.parse_filters(()))
    _out("".join(f"{name}\n" for name in names))


def _target(store: Store | QuickStore, name: str | None) -> tuple[str, str, str | None]:
    """(name, engine URL, cert dir or None) as env/config's client_target gives them, when that needs no
    warning, hint or certificate renewal (else the CLI answers)."""
    from machine.cheapstate import require_running
    from machine.quickread import QuickStore
    from machine.readonly import name_or_default

    quick = isinstance(store, QuickStore)
    resolved = name_or_default(store, name)
    with store.lock(resolved):
        cfg = store.load(resolved)
        require_running(store, cfg)
        url = str(cfg.engine.get("url") or "")
        if cfg.engine.get("transport") == "ssh" or not url:
            raise _Fallback
        if cfg.managed_engine and not cfg.origin:
            if quick:
                _quick_certs_check(cfg)
            else:
                from machine import provision

                if provision.check_certs(store, cfg):
                    raise _Fallback
        cert_dir = cfg.engine.get("cert_dir")
        if quick:
            from machine.quickread import NotQuick, pure_path

            if not url.startswith("tcp://") or (cert_dir and not isinstance(cert_dir, str)):
                raise NotQuick
            return cfg.name, url, pure_path(cert_dir) if cert_dir else store.machine_dir(cfg.name)
        from pathlib import Path
        from urllib.parse import urlsplit

        tls = urlsplit(url).scheme in ("tcp", "https")
        cert_path = Path(cert_dir) if cert_dir else store.machine_dir(cfg.name)
        return cfg.name, url, str(cert_path) if tls else None


def _quick_certs_check(cfg: SavedConfig) -> None:
    """provision.check_certs finds nothing to warn about when the engine URL is tcp://IPV4:PORT and that address
    is among the SANs saved at issue; for anything else (a host name, a stale certificate) NotQuick."""
    from machine.quickread import NotQuick

    if cfg.engine.get("transport", "tls") != "tls":
        return
    host, _, port = str(cfg.engine.get("url", "")).removeprefix("tcp://").partition(":")
    sans = cfg.engine.get("cert_sans")
    ips = sans.get("ips") if isinstance(sans, dict) else None
    octets = host.split(".")
    ipv4 = len(octets) == 4 and all(o.isdigit() and o.isascii() and str(int(o)) == o and int(o) < 256 for o in octets)
    if not (ipv4 and port.isdigit() and port.isascii() and 0 < int(port) < 65536 and str(int(port)) == port
            and isinstance(ips, list) and host in ips):
        raise NotQuick


def _config(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    from machine.readonly import config_text

    name, url, cert_dir = _target(_store(storage, quick), _one_name(args))
    _out(config_text(url, cert_dir))


def _env(args: list[str], storage: str | None, on_cmdline: bool, quick: bool) -> None:
    from machine import readonly
    from machine.client import shellenv

    name: str | None = None
    shell: str | None = None
    unset = no_proxy = False
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--shell" and words and shell is None:
            shell = words.pop(0)
        elif word.startswith("--shell=") and shell is None:
            shell = word.partition("=")[2]
        elif word in ("-u", "--unset"):
            unset = True
        elif word == "--no-proxy":
            no_proxy = True
        elif not word.startswith("-") and name is None:
            name = word
        else:
            raise _Fallback
    if shell is not None and shell not in shellenv.SHELLS:  # click's Choice normalises case: the CLI's
        raise _Fallback
    prefix = [PROGRAM, *(["-s", storage] if on_cmdline and storage else []), "env"]
    if unset:
        _out(readonly.unset_text(prefix, name, shell, no_proxy))
        return
    target = _target(_store(storage, quick), name)
    _out(readonly.env_text(prefix, name, shell, no_proxy, *target))


COMMANDS = {"version": _version, "url": _url, "active": _active, "ls": _ls, "env": _env, "config": _config}


def run(argv: list[str]) -> bool:
    """Answer argv when it is a simple read-only command; False (nothing printed) when the CLI must."""
    if "_MACHINE_COMPLETE" in os.environ:  # a completion script asks: click answers (machine.cli.COMPLETE_VAR)
        return False
    try:
        storage, on_cmdline, words = _global_options(argv)
        if not words or words[0] not in COMMANDS:
            return False
        command = COMMANDS[words[0]]
        from machine.errors import ExitCode, MachineError

        try:
            from machine.quickread import NotQuick

            try:
                command(words[1:], storage, on_cmdline, True)
            except NotQuick:  # machine.store answers this one
                command(words[1:], storage, on_cmdline, False)
        except MachineError as e:
            sys.stderr.write(f"Error: {e.message}\n" + (f"Hint: {e.hint}\n" if e.hint else ""))
            sys.stderr.flush()
            sys.exit(e.exit_code)
        except BrokenPipeError:
            sys.exit(ExitCode.OK)
    except _Fallback:
        return False
    return True
