"""Machine names, fuzzed through the real CLI: for any text, `machine create -d none --url ... -- TEXT`
never prints a traceback, succeeds exactly for valid names and exits 2 (usage error) otherwise."""

from __future__ import annotations

import shutil
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cli import run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from machine.errors import UsageError
from machine.names import MAX_LEN, validate_name

NAME_CHARS = string.ascii_letters + string.digits


def is_valid(text: str) -> bool:
    """docker-machine's rule, written independently of machine.names: an ASCII letter or digit,
    then ASCII letters, digits, '-' and '.'; at most 63 characters."""
    return (0 < len(text) <= 63 and text[0] in NAME_CHARS
            and all(c in NAME_CHARS + "-." for c in text))


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("names")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MACHINE_STORAGE_PATH", str(root / "store"))
        mp.setenv("DOCKER_CONFIG", str(root / "docker-config"))
        mp.delenv("DOCKER_HOST", raising=False)
        yield root / "store"


names = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=NAME_CHARS + "-._ /\\:@\n\t\x00", max_size=70),
    st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9.\-]{0,62}", fullmatch=True),
)


# too_slow: each example runs the CLI; on a loaded CI host generation can look slow without being wrong
@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=names)
@example(text="")
@example(text="a")
@example(text="0")
@example(text="-")
@example(text=".")
@example(text="..")
@example(text="∞")
@example(text="a" * 63)
@example(text="a" * 64)
@example(text="a b")
@example(text="a/../b")
@example(text="name\n")
@example(text="Dev-1.example")
@example(text="-h")
@example(text="-D")  # after `--` a name, not the debug flag (it printed a traceback)
def test_create_accepts_exactly_the_valid_names(store_dir: Path, text: str) -> None:
    result = run("create", "-d", "none", "--url", "tcp://127.0.0.1:2376", "--", text)
    assert result.crash is None, f"{text!r} crashed: {result.crash!r}"
    assert "Traceback" not in result.output, result
    if is_valid(text):
        assert result.code == 0, result
        assert (store_dir / "machines" / text / "config.json").is_file()
        shutil.rmtree(store_dir / "machines" / text)
    else:
        assert result.code == 2, result
        assert result.err.startswith("Error: "), result
        assert "Hint: " in result.err
        machines = store_dir / "machines"
        assert not machines.is_dir() or [p.name for p in machines.iterdir() if not p.name.startswith(".")] == []


@given(text=st.text(max_size=80))
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_validate_name_agrees_with_the_rule(text: str) -> None:
    if is_valid(text):
        assert validate_name(text) == text
    else:
        with pytest.raises(UsageError) as info:
            validate_name(text)
        assert info.value.hint


def test_messages_name_the_problem() -> None:
    with pytest.raises(UsageError, match="must not be empty"):
        validate_name("")
    with pytest.raises(UsageError, match="Invalid machine name '∞'") as info:
        validate_name("∞")
    assert "letters, digits, '-' and '.'" in info.value.hint
    long = "x" * 200
    with pytest.raises(UsageError) as info:
        validate_name(long)
    assert "..." in info.value.message and len(info.value.message) < 120, "long names are shortened"
    assert str(MAX_LEN) in info.value.hint
