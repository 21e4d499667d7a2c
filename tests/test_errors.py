"""Typed errors: every raise in machine/ and drivers/ gives a hint; exit codes are ExitCode members, never
integer literals; wrong-state refusals are InvalidState with a hint naming the command to run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fakes.cli import run

from machine import errors
from machine.errors import ExitCode, InvalidState, MachineError

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "machine").rglob("*.py"), *(REPO / "drivers").rglob("*.py")])


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """machine.errors' classes and every class anywhere that derives from one of them."""
    known = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, MachineError)}
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in known and \
                        any(_name(b) in known for b in node.bases):
                    known.add(node.name)
                    grew = True
    return known


def _hint(call: ast.Call) -> ast.expr | None:
    if any(isinstance(a, ast.Starred) for a in call.args):  # HostNotUsable(*problem): (message, hint) pairs
        return call.args[-1]
    if len(call.args) > 1:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "hint"), None)


def test_every_raise_of_a_machine_error_gives_a_hint() -> None:
    trees = {p: ast.parse(p.read_text(), str(p)) for p in SOURCES}
    classes = _error_classes(trees)
    assert {"InvalidState", "HostKeyMismatch", "VBoxNotFound"} <= classes  # the walk finds subclasses elsewhere
    raises, bare = 0, []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and _name(node.exc.func) in classes:
                raises += 1
                hint = _hint(node.exc)
                if hint is None or (isinstance(hint, ast.Constant) and not str(hint.value).strip()):
                    bare.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert raises > 200  # the walk sees the raise sites
    assert not bare, f"errors raised without a hint: {bare}"


def test_no_bare_machine_error_is_raised() -> None:
    """MachineError is the base class: a raise names what went wrong (InvalidState, SSHError, ...)."""
    bare = [f"{p.relative_to(REPO)}:{n.lineno}" for p in SOURCES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and _name(n.exc.func) == "MachineError"]
    assert not bare, bare


def test_exit_codes_are_named() -> None:
    """No sys.exit(<int>) or exit_code = <int> in machine/ or drivers/: ExitCode says what the number means."""
    literal = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func) == "exit" and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, int):
                literal.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Assign) and any(_name(t) == "exit_code" for t in node.targets) and \
                    isinstance(node.value, ast.Constant):
                literal.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not literal, literal
    assert {c: errors.__dict__[c].exit_code for c in ("UsageError", "ConfigError", "HostNotUsable", "InvalidState")} \
        == {"UsageError": ExitCode.USAGE, "ConfigError": ExitCode.USAGE, "HostNotUsable": ExitCode.HOST_NOT_USABLE,
            "InvalidState": ExitCode.ERROR}


def _stopped_qemu(store_root: Path) -> None:
    from test_set import qemu_machine

    qemu_machine(store_root)


@pytest.mark.parametrize("argv", [["ssh", "dev", "true"], ["scp", "x", "dev:/tmp"], ["provision", "dev"],
                                  ["upgrade", "dev"], ["version", "dev"]])
def test_commands_needing_a_running_machine_say_how_to_start_it(store_root: Path, argv: list[str]) -> None:
    _stopped_qemu(store_root)
    res = run(*argv)
    assert res.crash is None and res.code == ExitCode.ERROR, res
    assert "Error: Machine 'dev' is not running (state: Stopped)" in res.err, res
    assert "Hint: Start it: machine start dev" in res.err, res


def test_require_running_raises_invalid_state(store_root: Path) -> None:
    from machine import orchestrator
    from machine.store import Store

    _stopped_qemu(store_root)
    store = Store(store_root)
    with pytest.raises(InvalidState) as info:
        orchestrator.require_running(orchestrator.driver_for(store, store.load("dev")), "dev")
    assert info.value.hint == "Start it: machine start dev"


def test_several_machines_report_each_failure_then_a_partial_failure(store_root: Path) -> None:
    """App.each: every machine is tried, each failure is told, then one PartialFailure (exit 1)."""
    from test_set import qemu_machine

    qemu_machine(store_root, "a")
    qemu_machine(store_root, "b")
    res = run("provision", "a", "b")
    assert res.crash is None and res.code == ExitCode.ERROR, res
    assert "Error with a: Machine 'a' is not running" in res.err
    assert "Error with b: Machine 'b' is not running" in res.err
    assert "Error: 2 of 2 machines failed" in res.err and "Hint: See the errors above." in res.err
    res = run("provision", "a", "ghost")  # every name is checked before any machine is touched
    assert res.code == ExitCode.ERROR and "Error with a" not in res.err and "'ghost'" in res.err, res
