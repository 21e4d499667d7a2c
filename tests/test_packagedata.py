"""Shipped data (templates/, isos/) is found in a checkout and in an installed wheel's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from machine import packagedata
from machine.errors import ConfigError


def test_checkout_layout_finds_the_top_level_folders() -> None:
    root = Path(packagedata.__file__).resolve().parents[1]
    assert packagedata.folder("templates") == root / "templates"
    assert "machine-os:" in packagedata.isos_text("images.yaml")
    assert (packagedata.template_dir("libvirt") / "domain.xml.j2").is_file()


def test_installed_layout_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel installs templates/ as machine/templates; a stray site-packages/templates is not used."""
    package = tmp_path / "site-packages" / "machine"
    (package / "templates" / "engine").mkdir(parents=True)
    (package / "templates" / "engine" / "x.j2").write_text("{{ a }}|{{ b | shout }}\n")
    (tmp_path / "site-packages" / "templates").mkdir()
    monkeypatch.setattr(packagedata, "_PACKAGE", package)
    assert packagedata.folder("templates") == package / "templates"
    env = packagedata.templates("engine", filters={"shout": str.upper})
    assert env.get_template("x.j2").render(a="<1>", b="hi") == "<1>|HI\n"
    with pytest.raises(Exception, match="'a' is undefined"):
        env.get_template("x.j2").render(b="hi")


def test_a_missing_folder_says_to_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packagedata, "_PACKAGE", tmp_path / "machine")
    with pytest.raises(ConfigError) as err:
        packagedata.folder("isos")
    assert "Reinstall" in err.value.hint
