"""`machine env` / `machine config`: docker-machine's exact lines per shell (golden files), hints,
shell detection, escaping, and that env stays store-only."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from machine.cli import cli
from machine.client import shellenv
from machine.store import Store

GOLDEN = Path(__file__).parent / "golden" / "env"
REGEN = os.environ.get("MACHINE_REGEN_GOLDEN") == "1"  # rewrite golden files (check them by hand after!)
GOLDEN_SHELLS = ("bash", "fish", "powershell", "cmd", "tcsh", "emacs")
URL = "tcp://127.0.0.1:2376"
SSH_URL = "ssh://root@127.0.0.1:2222"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def machine(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Machine 'quux' (none driver at 127.0.0.1:2376); returns the store root."""
    for var in ("no_proxy", "NO_PROXY", "SHELL", "__fish_bin_dir"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = run("create", "-d", "none", "--url", URL, "quux")
    assert code == 0, err
    return store_root


def make_ssh(store_root: Path, name: str = "quux") -> None:
    store = Store(store_root)
    cfg = store.load(name)
    cfg.engine["transport"] = "ssh"
    cfg.engine["url"] = SSH_URL
    store.save(cfg)


def check_golden(name: str, output: str, store_root: Path) -> None:
    text = output.replace(str(store_root), "@STORE@")
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    assert path.is_file(), f"golden file {path} missing (generate with MACHINE_REGEN_GOLDEN=1, then check it)"
    assert text == path.read_text(encoding="utf-8")


# -- golden output per shell ----------------------------------------------------------------------


@pytest.mark.parametrize("shell", GOLDEN_SHELLS)
def test_set_matches_golden(machine: Path, shell: str) -> None:
    code, out, _ = run("env", "--shell", shell, "quux")
    assert code == 0
    check_golden(f"{shell}-set", out, machine)


@pytest.mark.parametrize("shell", GOLDEN_SHELLS)
def test_unset_matches_golden(machine: Path, shell: str) -> None:
    code, out, _ = run("env", "--shell", shell, "-u")
    assert code == 0
    check_golden(f"{shell}-unset", out, machine)


@pytest.mark.parametrize("shell", GOLDEN_SHELLS)
def test_no_proxy_without_existing_value(machine: Path, shell: str) -> None:
    code, out, _ = run("env", "--shell", shell, "--no-proxy", "quux")
    assert code == 0
    check_golden(f"{shell}-no-proxy-new", out, machine)


@pytest.mark.parametrize("shell", GOLDEN_SHELLS)
def test_no_proxy_appends_to_existing_lower_case(machine: Path, shell: str) -> None:
    code, out, _ = run("env", "--shell", shell, "--no-proxy", "quux",
                       env={"no_proxy": "example.com", "NO_PROXY": "ignored.example"})
    assert code == 0
    check_golden(f"{shell}-no-proxy-existing", out, machine)


@pytest.mark.parametrize("shell", GOLDEN_SHELLS)
def test_ssh_transport(machine: Path, shell: str) -> None:
    make_ssh(machine)
    code, out, _ = run("env", "--shell", shell, "quux")
    assert code == 0
    check_golden(f"{shell}-ssh", out, machine)


def test_golden_bash_is_docker_machines_text(machine: Path) -> None:
    """One golden file spelled out, as docker-machine's env_test.go expects it."""
    machine_dir = machine / "machines" / "quux"
    expected = (f'export DOCKER_TLS_VERIFY="1"\nexport DOCKER_HOST="{URL}"\nexport DOCKER_CERT_PATH="{machine_dir}"\n'
                'export DOCKER_MACHINE_NAME="quux"\n# Run this command to configure your shell: \n'
                "# eval $(machine env --shell=bash quux)\n")
    assert run("env", "--shell", "bash", "quux")[1] == expected


@pytest.mark.parametrize("shell", ["zsh", "sh"])
def test_posix_shells_print_bash_lines(machine: Path, shell: str) -> None:
    out = run("env", "--shell", shell, "quux")[1]
    bash = run("env", "--shell", "bash", "quux")[1]
    assert out == bash.replace("--shell=bash", f"--shell={shell}")


def test_shell_detected_from_SHELL(machine: Path) -> None:  # noqa: N802
    out = run("env", "quux", env={"SHELL": "/usr/local/bin/fish"})[1]
    assert out.startswith('set -gx DOCKER_TLS_VERIFY "1";\n')
    assert out.endswith("# eval (machine env quux)\n")


def test_no_proxy_is_added_once(machine: Path) -> None:
    out = run("env", "--shell", "bash", "--no-proxy", "quux", env={"NO_PROXY": "localhost,127.0.0.1"})[1]
    assert 'export NO_PROXY="localhost,127.0.0.1"\n' in out


def test_unset_with_no_proxy_unsets_the_variable_in_use(machine: Path) -> None:
    out = run("env", "--shell", "bash", "-u", "--no-proxy", env={"no_proxy": "example.com"})[1]
    assert out.splitlines()[:5] == ["unset DOCKER_TLS_VERIFY", "unset DOCKER_HOST", "unset DOCKER_CERT_PATH",
                                    "unset DOCKER_MACHINE_NAME", "unset no_proxy"]


def test_storage_path_flag_is_kept_in_the_hint(machine: Path) -> None:
    out = run("-s", str(machine), "env", "--shell", "bash", "quux")[1]
    assert out.endswith(f"# eval $(machine -s {machine} env --shell=bash quux)\n")


def test_unknown_machine_is_an_error(machine: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "machine", "env", "nope"], capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert "Host does not exist: 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_machine_without_url_is_an_error(machine: Path) -> None:
    store = Store(machine)
    cfg = store.load("quux")
    del cfg.engine["url"]
    store.save(cfg)
    result = subprocess.run([sys.executable, "-m", "machine", "env", "--shell", "bash", "quux"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert "has no engine URL" in result.stderr and "machine provision quux" in result.stderr


# -- evaluated by a real shell ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_eval_sets_and_unsets(machine: Path) -> None:
    python = shlex.quote(sys.executable)
    script = (f'eval "$({python} -m machine env --shell bash quux)"; '
              'echo "$DOCKER_HOST|$DOCKER_CERT_PATH|$DOCKER_TLS_VERIFY"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == f"{URL}|{machine / 'machines' / 'quux'}|1\n"
    script = (f'export DOCKER_HOST=x DOCKER_TLS_VERIFY=1; eval "$({python} -m machine env --shell bash -u)"; '
              'echo "${DOCKER_HOST-unset}|${DOCKER_TLS_VERIFY-unset}"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "unset|unset\n"


@pytest.mark.skipif(shutil.which("sh") is None, reason="sh not installed")
def test_values_with_shell_characters_survive_eval() -> None:
    nasty = 'C:\\dir "with" $HOME `date` and spaces'
    text = shellenv.render("sh", [shellenv.Assignment("DOCKER_CERT_PATH", nasty)], "")
    out = subprocess.run(["sh", "-c", f'{text}printf %s "$DOCKER_CERT_PATH"'], capture_output=True, text=True,
                         check=True).stdout
    assert out == nasty


def test_escaping_is_invisible_for_ordinary_values() -> None:
    value = "/home/user/.docker/machine/machines/dev"
    for shell in GOLDEN_SHELLS:
        assert value in shellenv.render(shell, [shellenv.Assignment("X", value)], "")


def test_ssh_transport_empties_tls_variables(machine: Path) -> None:
    make_ssh(machine)
    out = run("env", "--shell", "bash", "quux")[1]
    assert out.splitlines()[:4] == ['export DOCKER_TLS_VERIFY=""', f'export DOCKER_HOST="{SSH_URL}"',
                                    'export DOCKER_CERT_PATH=""', 'export DOCKER_MACHINE_NAME="quux"']


def test_ssh_transport_survives_eval_of_joined_lines(machine: Path) -> None:
    """`eval $(machine env NAME)` joins the lines into one command: every variable must still land."""
    make_ssh(machine)
    out = run("env", "--shell", "bash", "quux")[1]
    script = ('export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=/old; eval $(cat); '
              'echo "$DOCKER_HOST|$DOCKER_TLS_VERIFY|$DOCKER_CERT_PATH|$DOCKER_MACHINE_NAME"')
    res = subprocess.run(["bash", "-c", script], input=out, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == f"{SSH_URL}|||quux"


# -- docker-machine's hint table (commands/env_test.go TestHints) --------------------------------


@pytest.mark.parametrize(("shell", "argv", "expected"), [
    ("bash", ["machine", "env", "default"],
     "# Run this command to configure your shell: \n# eval $(machine env default)\n"),
    ("bash", ["machine", "env", "--unset"],
     "# Run this command to configure your shell: \n# eval $(machine env --unset)\n"),
    ("bash", ["C:\\\\Program Files\\docker-machine.exe", "env", "default"],
     '# Run this command to configure your shell: \n# eval $("C:\\\\Program Files\\docker-machine.exe" env default)\n'),
    ("fish", ["./machine", "env", "--shell=fish", "default"],
     "# Run this command to configure your shell: \n# eval (./machine env --shell=fish default)\n"),
    ("powershell", ["./machine", "env", "--shell=powershell", "--no-proxy", "default"],
     "# Run this command to configure your shell: \n# & ./machine env --shell=powershell --no-proxy default "
     "| Invoke-Expression\n"),
    ("powershell", ["C:\\\\Me\\docker-machine.exe", "env", "--shell=powershell", "default"],
     '# Run this command to configure your shell: \n# & "C:\\\\Me\\docker-machine.exe" env --shell=powershell default'
     " | Invoke-Expression\n"),
    ("cmd", ["./machine", "env", "--shell=cmd", "default"],
     "REM Run this command to configure your shell: \nREM \t@FOR /f \"tokens=*\" %i IN "
     "('./machine env --shell=cmd default') DO @%i\n"),
    ("emacs", ["./machine", "env", "--shell=emacs", "--unset"],
     ";; Run this command to configure your shell: \n;; (with-temp-buffer (shell-command "
     "\"./machine env --shell=emacs --unset\" (current-buffer)) (eval-buffer))\n"),
    ("tcsh", ["./machine", "env", "--shell=tcsh", "default"],
     ": Run this command to configure your shell: \n: eval `./machine env --shell=tcsh default`\n"),
])
def test_usage_hint_matches_docker_machine(shell: str, argv: list[str], expected: str) -> None:
    assert shellenv.usage_hint(shell, argv) == expected


# -- detection and helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "windows", "expected"), [
    ({"SHELL": "/bin/bash"}, False, "bash"),
    ({"SHELL": "/usr/bin/zsh"}, False, "zsh"),
    ({"SHELL": "/usr/bin/fish"}, False, "fish"),
    ({"SHELL": "/bin/tcsh"}, False, "tcsh"),
    ({"SHELL": "/bin/csh"}, False, "tcsh"),
    ({}, False, "sh"),
    ({"__fish_bin_dir": "/usr/bin", "SHELL": "/bin/bash"}, False, "fish"),
    ({"SHELL": "C:\\Program Files\\Git\\usr\\bin\\bash.exe"}, True, "bash"),
    ({"PROMPT": "$P$G"}, True, "cmd"),
    ({}, True, "powershell"),
])
def test_detect_shell(environ: dict[str, str], windows: bool, expected: str) -> None:
    assert shellenv.detect_shell(environ, windows=windows) == expected


def test_no_proxy_variable_choice() -> None:
    assert shellenv.no_proxy_from_env({"no_proxy": "a", "NO_PROXY": "b"}) == ("no_proxy", "a")
    assert shellenv.no_proxy_from_env({"no_proxy": "", "NO_PROXY": "b"}) == ("NO_PROXY", "b")
    assert shellenv.no_proxy_from_env({}) == ("NO_PROXY", "")
    assert shellenv.with_no_proxy("", "1.2.3.4") == "1.2.3.4"
    assert shellenv.with_no_proxy("192.168.59.1", "1.2.3.4") == "192.168.59.1,1.2.3.4"
    assert shellenv.with_no_proxy("x,1.2.3.4", "1.2.3.4") == "x,1.2.3.4"
    assert shellenv.with_no_proxy("11.2.3.45", "1.2.3.4") == "11.2.3.45,1.2.3.4"


def test_windows_adds_compose_paths_variable() -> None:
    lines = shellenv.set_lines(name="quux", host=URL, cert_path="C:\\m", windows=True)
    names = [line.name for line in lines]
    assert names == ["DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME",
                     "COMPOSE_CONVERT_WINDOWS_PATHS"]
    assert shellenv.render("powershell", lines, "").splitlines()[2] == '$Env:DOCKER_CERT_PATH = "C:\\m"'


# -- config -------------------------------------------------------------------------------------


def test_config_prints_docker_machines_flags(machine: Path) -> None:
    d = machine / "machines" / "quux"
    code, out, _ = run("config", "quux")
    assert code == 0
    assert out == (f'--tlsverify\n--tlscacert="{d}/ca.pem"\n--tlscert="{d}/cert.pem"\n--tlskey="{d}/key.pem"\n'
                   f"-H={URL}\n")


def test_config_ssh_transport_prints_only_the_host(machine: Path) -> None:
    make_ssh(machine)
    assert run("config", "quux")[1] == f"-H={SSH_URL}\n"


# -- speed: store only --------------------------------------------------------------------------


def test_env_imports_no_driver_ssh_or_crypto(machine: Path) -> None:
    code = ("import sys\nfrom machine.cli import main\n"
            "try:\n    main(['env', '--shell', 'bash', 'quux'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('paramiko', 'cryptography', 'winrm', 'libvirt')"
            " or m.startswith('machine.drivers') or m == 'machine.orchestrator']\n"
            "print('LOADED', bad, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "export DOCKER_HOST" in result.stdout
    assert "LOADED []" in result.stderr
