"""Shell lines that point the docker client at a machine (`machine env`), as docker-machine prints them.

Each shell has its own set/unset syntax, comment character and eval form; the lines and the two-line
usage hint follow docker-machine's commands/env.go byte for byte for ordinary values. Values are
escaped where the shell's quoting needs it (docker-machine did not), which changes nothing for
ordinary paths and URLs. Imports only os and collections (which the interpreter's `re` has loaded already):
`machine env` runs inside `eval $(...)` and must start about as fast as the interpreter.
"""

from __future__ import annotations

import os
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

POSIX_SHELLS = ("bash", "zsh", "sh", "ksh", "dash", "ash", "mksh")
SHELLS = (*POSIX_SHELLS, "fish", "powershell", "pwsh", "cmd", "tcsh", "csh", "emacs")
ALIASES = {"pwsh": "powershell", "csh": "tcsh"}
TLS_VARS = ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def _escape(chars: str, escape: str = "\\") -> Callable[[str], str]:
    def quote(value: str) -> str:
        return "".join(escape + c if c in chars else c for c in value)

    return quote


def _raw(value: str) -> str:
    return value


def _tcsh(value: str) -> str:
    """For tcsh's "...": a backslash escapes nothing there, so `$`, backquote and `"` leave the double quotes
    for single quotes ("'$'"), and `!` (history, live even in single quotes) becomes a backslashed `!`."""
    out = []
    for c in value:
        if c in "$`\"":
            out.append(f"\"'{c}'\"")
        elif c == "!":
            out.append('"\\!"')
        else:
            out.append(c)
    return "".join(out)


CMD_SPECIAL = set('&|<>^%!()"')


def _cmd_set(name: str, value: str) -> str:
    """cmd.exe: `SET NAME=value`, as docker-machine prints it; a value with characters cmd would act on
    (& | < > ^ ( ) ! %) uses the quoted form `SET "NAME=value"`, inside which they are plain text."""
    if not CMD_SPECIAL.intersection(value):
        return f"SET {name}={value}\n"
    return f'SET "{name}={value.replace(chr(34), "")}"\n'


# docker-machine's ShellConfig Prefix/Delimiter/Suffix for set and unset, the comment character and the hint's eval
# form ({cmd} is the command line); `escape` quotes a value, `set_line` (name, value) -> a whole set line for shells
# whose quoting is not prefix + escaped value + suffix (None: the usual form)
Syntax = namedtuple("Syntax", ["set_prefix", "set_delimiter", "set_suffix", "unset_prefix", "unset_delimiter",
                               "unset_suffix", "comment", "eval_form", "escape", "set_line"], defaults=(_raw, None))


POSIX = Syntax("export ", '="', '"\n', "unset ", "", "\n", "#", "eval $({cmd})", _escape('\\"$`'))
SYNTAX: dict[str, Syntax] = {
    "fish": Syntax("set -gx ", ' "', '";\n', "set -e ", "", ";\n", "#", "eval ({cmd})", _escape('\\"$')),
    "powershell": Syntax("$Env:", ' = "', '"\n', "Remove-Item Env:\\\\", "", "\n", "#",
                         "& {cmd} | Invoke-Expression", _escape('`"$', "`")),
    "cmd": Syntax("SET ", "=", "\n", "SET ", "=", "\n", "REM",
                  "\t@FOR /f \"tokens=*\" %i IN ('{cmd}') DO @%i", set_line=_cmd_set),
    "tcsh": Syntax("setenv ", ' "', '";\n', "unsetenv ", "", ";\n", ":", "eval `{cmd}`", _tcsh),
    "emacs": Syntax('(setenv "', '" "', '")\n', '(setenv "', '" nil', ")\n", ";;",
                    '(with-temp-buffer (shell-command "{cmd}" (current-buffer)) (eval-buffer))', _escape('\\"')),
}


def shell_name(shell: str) -> str:
    """A shell path or name as a name: /usr/bin/zsh -> zsh, pwsh.exe -> powershell, csh -> tcsh."""
    name = _basename(shell.strip()).lower()
    if name.endswith(".exe"):
        name = name[:-4]
    return ALIASES.get(name, name)


def _basename(path: str) -> str:
    """The last part of a path as pathlib's `.name` gives it (trailing separators and `.` parts ignored)."""
    seps = os.sep + (os.altsep or "")
    if os.name == "nt":  # pragma: no cover - Windows only: a drive's `C:` is no name
        path = os.path.splitdrive(path)[1]
    parts = [p for p in path.replace(seps[-1], seps[0]).split(seps[0]) if p and p != "."]
    return parts[-1] if parts else ""


def canonical(shell: str) -> str:
    """The shell name whose syntax is used: fish, powershell, cmd, tcsh, emacs, or bash for the rest."""
    name = shell_name(shell)
    return name if name in SYNTAX else "bash"


def syntax_for(shell: str) -> Syntax:
    return SYNTAX.get(canonical(shell), POSIX)


def detect_shell(environ: dict[str, str] | None = None, windows: bool | None = None) -> str:
    """The user's shell: basename of $SHELL; on Windows (without $SHELL, e.g. outside Git Bash) the
    parent process (powershell or cmd), defaulting like docker-machine to cmd when %PROMPT% is set
    and powershell otherwise. On POSIX without $SHELL: sh syntax."""
    env = os.environ if environ is None else environ
    windows = (os.name == "nt") if windows is None else windows
    if env.get("__fish_bin_dir"):
        return "fish"
    shell = env.get("SHELL", "")
    if shell:
        return shell_name(shell.replace("\\", "/"))
    if not windows:
        return "sh"
    for parent in _windows_parent_names():
        lowered = parent.lower()
        if "powershell" in lowered or "pwsh" in lowered:
            return "powershell"
        if "cmd" in lowered:
            return "cmd"
    return "cmd" if env.get("PROMPT") else "powershell"


def _windows_parent_names(levels: int = 2) -> list[str]:  # pragma: no cover - Windows only
    """Executable names of the parent and grandparent processes (Toolhelp32 snapshot)."""
    if os.name != "nt":
        return []
    import ctypes
    from ctypes import wintypes

    class ProcessEntry32(ctypes.Structure):
        _fields_ = [("dwSize", wintypes.DWORD), ("cntUsage", wintypes.DWORD), ("th32ProcessID", wintypes.DWORD),
                    ("th32DefaultHeapID", ctypes.c_void_p), ("th32ModuleID", wintypes.DWORD),
                    ("cntThreads", wintypes.DWORD), ("th32ParentProcessID", wintypes.DWORD),
                    ("pcPriClassBase", ctypes.c_long), ("dwFlags", wintypes.DWORD),
                    ("szExeFile", ctypes.c_wchar * 260)]

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    snapshot = kernel32.CreateToolhelp32Snapshot(0x2, 0)  # TH32CS_SNAPPROCESS
    if snapshot in (-1, 0xFFFFFFFF, None):
        return []
    try:
        table: dict[int, tuple[str, int]] = {}
        entry = ProcessEntry32()
        entry.dwSize = ctypes.sizeof(ProcessEntry32)
        ok = kernel32.Process32FirstW(snapshot, ctypes.byref(entry))
        while ok:
            table[entry.th32ProcessID] = (entry.szExeFile, entry.th32ParentProcessID)
            ok = kernel32.Process32NextW(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    names, pid = [], os.getppid()
    for _ in range(levels):
        if pid not in table:
            break
        name, pid = table[pid]
        names.append(name)
    return names


def usage_hint(shell: str, command_line: Sequence[str]) -> str:
    """docker-machine's two-line hint, e.g. '# Run this command to configure your shell: \\n# eval $(machine env a)\\n'.
    The program (first word) is quoted when it holds a space or a backslash, as docker-machine does."""
    words = list(command_line)
    if words and (" " in words[0] or "\\" in words[0]):
        words[0] = f'"{words[0]}"'
    syntax = syntax_for(shell)
    cmd = syntax.eval_form.format(cmd=" ".join(words))
    return f"{syntax.comment} Run this command to configure your shell: \n{syntax.comment} {cmd}\n"


# one line: set `name` to `value`, or unset it when value is None
Assignment = namedtuple("Assignment", ["name", "value"])


def render(shell: str, lines: Sequence[Assignment], hint: str) -> str:
    syntax = syntax_for(shell)
    out = []
    for line in lines:
        if line.value is None:
            out.append(f"{syntax.unset_prefix}{line.name}{syntax.unset_delimiter}{syntax.unset_suffix}")
        elif syntax.set_line is not None:
            out.append(syntax.set_line(line.name, line.value))
        else:
            out.append(f"{syntax.set_prefix}{line.name}{syntax.set_delimiter}{syntax.escape(line.value)}"
                       f"{syntax.set_suffix}")
    return "".join(out) + hint


def no_proxy_from_env(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(variable, value): lower-case no_proxy when it is set, else NO_PROXY (docker-machine's rule)."""
    env = os.environ if environ is None else environ
    value = env.get("no_proxy", "")
    if value:
        return "no_proxy", value
    return "NO_PROXY", env.get("NO_PROXY", "")


def with_no_proxy(current: str, ip: str) -> str:
    """`current` with `ip` appended once (comma-separated)."""
    entries = [e.strip() for e in current.split(",") if e.strip()]
    if ip in entries:
        return current
    return f"{current},{ip}" if current else ip


def set_lines(*, name: str, host: str, cert_path: str | None, no_proxy: tuple[str, str] | None = None,
              windows: bool = False) -> list[Assignment]:
    """The variables `machine env NAME` sets. cert_path None means the engine is reached over SSH:
    the TLS variables are set empty (the docker CLI treats empty as unset), so a previous machine's TLS
    settings do not linger. They are not `unset` lines: `eval $(machine env)` joins all lines into one
    command line, where an `unset` would swallow the `export`s after it."""
    lines = [Assignment("DOCKER_TLS_VERIFY", "1" if cert_path is not None else ""),
             Assignment("DOCKER_HOST", host),
             Assignment("DOCKER_CERT_PATH", cert_path if cert_path is not None else ""),
             Assignment("DOCKER_MACHINE_NAME", name)]
    if windows:
        lines.append(Assignment("COMPOSE_CONVERT_WINDOWS_PATHS", "true"))
    if no_proxy:
        lines.append(Assignment(*no_proxy))
    return lines


def unset_lines(no_proxy_var: str | None = None) -> list[Assignment]:
    """The variables `machine env -u` unsets. cmd cannot unset: it sets them empty (as docker-machine)."""
    names = ["DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME"]
    if no_proxy_var:
        names.append(no_proxy_var)
    return [Assignment(n, None) for n in names]


__all__ = ["SHELLS", "Assignment", "Syntax", "canonical", "detect_shell", "no_proxy_from_env", "render",
           "set_lines", "syntax_for", "unset_lines", "usage_hint", "with_no_proxy"]
