"""Driver options through create: secrets are never saved, bool options are switches."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from machine import orchestrator, registry
from machine.commands import createoptions
from machine.driver import Features, Option
from machine.progress import Progress
from machine.store import Store
from tests.fakes.slow_driver import FakeDriver


class SecretDriver(FakeDriver):
    name = "secretive"
    options = FakeDriver.options + (
        Option("password", "A password", secret=True),
        Option("insecure", "Skip checks", default=False, type=bool),
    )
    seen: dict = {}

    def create(self) -> None:
        SecretDriver.seen = dict(self.ctx.options)


@pytest.fixture
def secretive(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get = registry.get
    monkeypatch.setattr(registry, "get", lambda n: SecretDriver if n == "secretive" else real_get(n))
    monkeypatch.setattr(registry, "names", lambda: ["secretive"])


def test_secret_option_reaches_the_driver_but_not_the_config(store_root: Path, secretive: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(store_root)
    req = orchestrator.CreateRequest(name="s", driver="secretive", driver_flags={"password": "hunter2"})
    orchestrator.create(store, req, Progress(quiet=True))
    assert SecretDriver.seen["password"] == "hunter2"
    saved = (store.machine_dir("s") / "config.json").read_text()
    assert "hunter2" not in saved and "password" not in json.loads(saved)["driver_options"]
    # later commands read it from the environment again
    monkeypatch.setenv("SECRETIVE_PASSWORD", "from-env")
    driver = orchestrator.driver_for(store, store.load("s"))
    assert driver.opt("password") == "from-env"


def test_bool_option_is_a_switch(secretive: None) -> None:
    cmd = click.Command("c", params=createoptions.driver_params(), callback=lambda **kw: kw)
    assert cmd.main(["--secretive-insecure"], standalone_mode=False)["secretive__insecure"] is True
    assert cmd.main([], standalone_mode=False)["secretive__insecure"] is None  # env/default decide later


def test_every_driver_declares_its_features() -> None:
    """Capabilities are one declaration per driver class, checked when it is made."""
    for name in registry.names():
        features = registry.get(name).features
        assert isinstance(features, Features), name
        assert not (features.always_running and features.power), f"{name}: an always-running machine has no power"
    assert registry.get("none").features.managed_engine is False
    assert registry.get("generic").features.removal_note


@pytest.mark.parametrize("bad", [{"port_forwarding": "qmp"}, {"cluster_nic": "bridge"},
                                 {"share_mechanisms": "virtiofs"}])
def test_features_refuse_unknown_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        Features(**bad)
