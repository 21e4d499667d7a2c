"""`machine ssh`'s words, read as ssh reads its own: `machine ssh [-t|-T] [--native] NAME [SSH OPTIONS] [--]
[COMMAND...]`. Options after NAME are OpenSSH's (its getopt letters: -L/-R/-D/-N/-o/... pass through to the
system ssh); `--` ends them; the first other word starts the remote command, and everything after it is the
command's, even words starting with '-'. -t forces a TTY, -T refuses one; by default a TTY is allocated when
stdin is a terminal and a command is given (as `ssh -t`), so `machine ssh NAME top` works from a terminal."""

from __future__ import annotations

from dataclasses import dataclass, field

from machine.errors import UsageError

# OpenSSH's ssh(1) getopt string: letters followed by ':' take an argument
_SSH_GETOPT = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"
WITH_ARGUMENT = frozenset(c for i, c in enumerate(_SSH_GETOPT) if i + 1 < len(_SSH_GETOPT) and
                          _SSH_GETOPT[i + 1] == ":")
FLAGS = frozenset(c for c in _SSH_GETOPT if c != ":") - WITH_ARGUMENT


@dataclass
class SSHWords:
    options: list[str] = field(default_factory=list)  # ssh options for the system client (without -t/-T)
    command: list[str] = field(default_factory=list)
    tty: bool | None = None  # True: -t, False: -T, None: decide from the terminal

    def wants_tty(self, stdin_is_terminal: bool) -> bool:
        if self.tty is not None:
            return self.tty
        return bool(self.command) and stdin_is_terminal


def split(words: list[str]) -> SSHWords:
    """Split the words after NAME into ssh options and the remote command; UsageError for an unknown
    option or a missing option argument (naming it)."""
    out = SSHWords()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            out.command = words[i + 1:]
            return out
        if not word.startswith("-") or word == "-":
            out.command = words[i:]
            return out
        j = 1
        while j < len(word):  # bundled letters: -NL 8080:localhost:80, -tt, -p2222
            letter = word[j]
            if letter in WITH_ARGUMENT:
                value = word[j + 1:]
                if not value:
                    i += 1
                    if i >= len(words):
                        raise UsageError(f"ssh option -{letter} needs an argument",
                                         "See 'man ssh'; e.g. machine ssh NAME -L 8080:localhost:80 -N")
                    value = words[i]
                out.options += [f"-{letter}", value]
                break
            if letter == "t":
                out.tty = True
            elif letter == "T":
                out.tty = False
            elif letter in FLAGS:
                out.options.append(f"-{letter}")
            else:
                raise UsageError(f"Unknown ssh option -{letter} in {word!r}",
                                 "Options after the machine name are ssh's (see 'man ssh'); put the remote "
                                 "command after '--' if it starts with '-'.")
            j += 1
        i += 1
    return out
