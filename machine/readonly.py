"""What the read-only commands answer, from the store alone and without click: the machine a command means,
`url`'s and `active`'s answers, and the text `env` and `config` print. The click commands (machine/commands/)
and the fast path (machine/fastpath.py) both print these, so both print the same bytes."""

from __future__ import annotations

import os

from machine import machinedir
from machine.client import shellenv
from machine.errors import InvalidState, MachineError, NotFound, UsageError
from machine.names import validate_name

TYPE_CHECKING = False  # typing itself (and re, which it imports) is not loaded on this path
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from machine.quickread import QuickStore, SavedConfig
    from machine.store import MachineConfig, Store

DEFAULT_NAME = "default"
PROGRAM = "machine"


def name_or_default(store: Store | QuickStore, name: str | None) -> str:
    """`name` validated, or `default` when none was given (saying so clearly if it does not exist).
    An empty name ("") is refused: it is not the same as giving none."""
    if name is not None:
        return validate_name(name)
    if not store.exists(DEFAULT_NAME):
        raise NotFound(
            "No machine name given, and there is no machine named 'default'",
            "Give a machine name (see 'machine ls'), or create one called 'default'.",
        )
    return DEFAULT_NAME


def saved_url(cfg: MachineConfig | SavedConfig) -> str:
    url = cfg.engine.get("url")
    if not url:
        raise InvalidState(f"Machine {cfg.name!r} has no engine URL yet",
                           f"It may not have finished provisioning: machine provision {cfg.name}")
    return str(url)


def active_names(store: Store | QuickStore, current_machine: Callable[[], str | None] | None = None) -> list[str]:
    """Machines whose URL equals $DOCKER_HOST, or whose docker context is current (`current_machine`, by default
    machine.client.dockercontext's)."""
    if current_machine is None:
        from machine.client.dockercontext import current_machine

    docker_host = os.environ.get("DOCKER_HOST", "")
    current = None if docker_host else current_machine()
    found = []
    for n in store.names():
        if not docker_host and current != n:
            continue  # only the current context's machine is a candidate: the others are not read
        try:
            cfg = store.load(n)
        except MachineError:
            continue
        url = cfg.engine.get("url")
        if not docker_host or (url and url == docker_host):
            found.append(n)
    return found


def quote_word(word: str, shell: str) -> str:
    if not word or any(c in word for c in " \t\"'$`\\;&|<>()*?"):
        if shellenv.canonical(shell) in ("powershell", "cmd"):
            return f'"{word}"'
        import shlex

        return shlex.quote(word)
    return word


def _hint(shell: str, prefix: Sequence[str], words: list[str]) -> str:
    """The usage hint: `prefix` (program, -s PATH when given on the command line, the command), then words."""
    line = [prefix[0], *(quote_word(w, shell) for w in prefix[1:-1]), prefix[-1]]
    return shellenv.usage_hint(shell, line + [quote_word(w, shell) for w in words])


def _options(shell: str | None, no_proxy: bool) -> list[str]:
    return ([f"--shell={shell}"] if shell else []) + (["--no-proxy"] if no_proxy else [])


def unset_text(prefix: Sequence[str], name: str | None, shell: str | None, no_proxy: bool) -> str:
    """`env -u`: the lines that unset the variables."""
    if name is not None:
        raise UsageError("Expected no machine name when the -u flag is present",
                         f"Run '{PROGRAM} env -u' alone: it unsets the variables of whichever machine was set.")
    used_shell = shell.lower() if shell else shellenv.detect_shell()
    hint = _hint(used_shell, prefix, [*_options(shell, no_proxy), "-u"])
    proxy_var = shellenv.no_proxy_from_env()[0] if no_proxy else None
    return shellenv.render(used_shell, shellenv.unset_lines(proxy_var), hint)


def env_text(prefix: Sequence[str], name: str | None, shell: str | None, no_proxy: bool,
             machine: str, url: str, cert_dir: str | None) -> str:
    """`env`: the lines that point the docker client at `machine`'s engine (url, cert_dir: its client target)."""
    used_shell = shell.lower() if shell else shellenv.detect_shell()
    proxy = None
    if no_proxy:
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname or ""
        if not host:
            raise UsageError(f"Machine {machine!r} has no host address in its URL {url}",
                             "--no-proxy needs a TCP or SSH engine URL.")
        var, value = shellenv.no_proxy_from_env()
        proxy = (var, shellenv.with_no_proxy(value, host))
    lines = shellenv.set_lines(name=machine, host=url, cert_path=cert_dir, no_proxy=proxy, windows=os.name == "nt")
    hint = _hint(used_shell, prefix, _options(shell, no_proxy) + ([name] if name else []))
    return shellenv.render(used_shell, lines, hint)


def config_text(url: str, cert_dir: str | None) -> str:
    """`config`: the docker client's flags (Go's %q quoting of the paths, as docker-machine)."""
    import json

    if cert_dir is None:
        return f"-H={url}\n"
    ca, cert, key = (json.dumps(os.path.join(cert_dir, f), ensure_ascii=False) for f in machinedir.CLIENT_TLS_FILES)
    return f"--tlsverify\n--tlscacert={ca}\n--tlscert={cert}\n--tlskey={key}\n-H={url}\n"
