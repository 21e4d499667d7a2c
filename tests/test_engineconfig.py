"""Engine configuration rendering: daemon.json per option combination, the systemd drop-in, OpenRC
conf.d block, env file; and the rule that no TCP port is ever opened without TLS client verification."""

from __future__ import annotations

import itertools
import json
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.errors import UsageError
from machine.provision import engineconfig as ec
from machine.provision.provisioners import packaged_exec_start, replace_block

TLS_KEYS = {"tls": True, "tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/server.pem",
            "tlskey": "/etc/docker/server-key.pem"}


def test_default_tls_config() -> None:
    conf = ec.daemon_config({"transport": "tls", "port": 2376}, "qemu")
    assert conf == {"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "labels": ["provider=qemu"],
                    **TLS_KEYS}


def test_ssh_transport_has_no_tcp_port_and_no_tls() -> None:
    conf = ec.daemon_config({"transport": "ssh", "port": 2376}, "qemu")
    assert conf["hosts"] == ["unix:///var/run/docker.sock"]
    assert not any(k.startswith("tls") for k in conf)


def test_all_options() -> None:
    conf = ec.daemon_config({
        "transport": "tls", "port": 3376, "labels": ["env=dev", "provider=evil", "team=a=b"],
        "insecure_registries": ["reg.local:5000"], "registry_mirrors": ["https://mirror.local"],
        "storage_driver": "overlay2", "opts": ["log-level=debug", "--max-concurrent-downloads=5", "dns=1.1.1.1",
                                               "debug=true", "log-opt=max-size=10m", "log-opt=max-file=3",
                                               "default-runtime=runc", "experimental=false"],
    }, "generic")
    assert conf["hosts"][1] == "tcp://0.0.0.0:3376"
    assert conf["labels"] == ["env=dev", "team=a=b", "provider=generic"]  # provider is ours, always
    assert conf["insecure-registries"] == ["reg.local:5000"]
    assert conf["registry-mirrors"] == ["https://mirror.local"]
    assert conf["storage-driver"] == "overlay2"
    assert conf["log-level"] == "debug" and conf["max-concurrent-downloads"] == 5
    assert conf["dns"] == ["1.1.1.1"] and conf["debug"] is True and conf["experimental"] is False
    assert conf["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert conf["default-runtime"] == "runc"
    assert json.loads(ec.render_daemon_json(conf)) == conf


def test_repeated_opt_becomes_a_list() -> None:
    assert ec.engine_opts(["a=1", "a=2", "a=x"]) == {"a": [1, 2, "x"]}


@pytest.mark.parametrize("opt", ["hosts=tcp://0.0.0.0:2375", "host=tcp://0.0.0.0:2375", "-H=tcp://0.0.0.0:2375",
                                 "tls=false", "tlsverify=false", "--tlsverify=false", "tlscacert=/x", "tlskey=/y"])
def test_opts_cannot_touch_listeners_or_tls(opt: str) -> None:
    with pytest.raises(UsageError, match="cannot be set"):
        ec.daemon_config({"transport": "tls", "opts": [opt]}, "qemu")


@pytest.mark.parametrize("bad", [{"opts": ["novalue"]}, {"labels": ["x"]}, {"env": ["=v"]}, {"env": ["1X=2"]},
                                 {"env": ["A=b\nc"]}, {"transport": "http"}, {"opts": ["log-opt=nokv"]}])
def test_bad_input_is_a_usage_error(bad: dict) -> None:
    with pytest.raises(UsageError):
        ec.daemon_config({"transport": "tls", **bad}, "qemu")
        ec.engine_env(bad)


@pytest.mark.parametrize("conf", [
    {"hosts": ["tcp://0.0.0.0:2375"]},
    {"hosts": "tcp://0.0.0.0:2375", "tlsverify": True},
    {"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tls": True, "tlscacert": "a", "tlscert": "b",
     "tlskey": "c"},
    {"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": "true", "tlscacert": "a", "tlscert": "b", "tlskey": "c"},
    {"hosts": ["ssh://x"], "tlsverify": True, "tlscacert": "a", "tlscert": "b"},
])
def test_check_safe_refuses_tcp_without_verification(conf: dict) -> None:
    with pytest.raises(UsageError, match="without TLS client verification"):
        ec.render_daemon_json(conf)


_opt_pool = ["log-level=info", "debug=true", "dns=8.8.8.8", "mtu=1400", "log-opt=max-size=1m", "bip=10.9.0.1/24"]


@pytest.mark.parametrize("transport,labels,insecure,mirrors,storage,opts", itertools.product(
    ["tls", "ssh"], [[], ["a=b"]], [[], ["r:5000"]], [[], ["https://m"]], ["", "overlay2"],
    [[], _opt_pool[:2], _opt_pool]))
def test_every_combination_is_safe_and_complete(transport, labels, insecure, mirrors, storage, opts) -> None:
    engine = {"transport": transport, "port": 2376, "labels": labels, "insecure_registries": insecure,
              "registry_mirrors": mirrors, "storage_driver": storage, "opts": opts}
    conf = json.loads(ec.render_daemon_json(ec.daemon_config(engine, "qemu")))
    tcp = [h for h in conf["hosts"] if h.startswith("tcp://")]
    assert (tcp == ["tcp://0.0.0.0:2376"]) == (transport == "tls")
    if tcp:
        assert all(conf[k] == v for k, v in TLS_KEYS.items())
    assert conf["labels"][-1] == "provider=qemu" and conf["labels"][:-1] == labels
    assert conf.get("insecure-registries", []) == insecure
    assert conf.get("registry-mirrors", []) == mirrors
    assert conf.get("storage-driver", "") == storage


@given(st.lists(st.from_regex(r"[a-zA-Z-]{1,12}=[a-z0-9:/.=-]{0,12}", fullmatch=True), max_size=6),
       st.sampled_from(["tls", "ssh"]))
def test_no_opts_ever_open_an_unverified_port(opts: list[str], transport: str) -> None:
    try:
        conf = ec.daemon_config({"transport": transport, "opts": opts}, "qemu")
    except UsageError:
        return
    tcp = [h for h in conf["hosts"] if not h.startswith("unix://")]
    assert not tcp or conf["tlsverify"] is True


# -- service files ------------------------------------------------------------------------------

DEBIAN_SHOW = ("{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS ; ignore_errors=no ; "
               "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }")
UBUNTU_SHOW = ("{ path=/usr/bin/dockerd ; argv[]=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"
               " ; ignore_errors=no ; start_time=[n/a] }")


@pytest.mark.parametrize("show,expected", [
    (DEBIAN_SHOW, "/usr/sbin/dockerd $DOCKER_OPTS"),
    (UBUNTU_SHOW, "/usr/bin/dockerd --containerd=/run/containerd/containerd.sock"),
    ("{ argv[]=/usr/bin/dockerd --host=fd:// --exec-opt native.cgroupdriver=systemd ; }",
     "/usr/bin/dockerd --exec-opt native.cgroupdriver=systemd"),
    ("{ argv[]=/usr/bin/dockerd -H=fd:// ; }", "/usr/bin/dockerd"),
    ("", "/usr/local/bin/dockerd"),
])
def test_exec_start_drops_fd_host(show: str, expected: str) -> None:
    assert ec.exec_start(packaged_exec_start(show), "/usr/local/bin/dockerd") == expected


def test_systemd_dropin_resets_execstart_and_sets_environment() -> None:
    text = ec.systemd_dropin("/usr/sbin/dockerd $DOCKER_OPTS",
                             {"HTTP_PROXY": "http://p:3128", "WEIRD": 'a "quoted" 100% \\ value'})
    lines = text.splitlines()
    assert lines[lines.index("[Service]") + 1:] == [
        "ExecStart=",
        "ExecStart=/usr/sbin/dockerd $DOCKER_OPTS",
        'Environment="HTTP_PROXY=http://p:3128"',
        'Environment="WEIRD=a \\"quoted\\" 100%% \\\\ value"',
    ]
    assert not [x for x in lines if x.startswith("ExecStart") and "fd://" in x]


def test_systemd_dropin_without_env() -> None:
    text = ec.systemd_dropin("/usr/bin/dockerd", {})
    assert "Environment" not in text and text.rstrip().endswith("ExecStart=/usr/bin/dockerd")


def test_openrc_block_and_env_file_are_shell_safe(tmp_path) -> None:
    env = {"HTTP_PROXY": "http://p:3128", "X": "it's $HOME; `id`"}
    block = ec.openrc_conf(env)
    assert block.startswith("# BEGIN machine") and block.rstrip().endswith("# END machine")
    conf = replace_block('DOCKER_OPTS=""\n', block)
    conf = replace_block(conf, ec.openrc_conf({"A": "1"}))  # replaced, not appended twice
    assert conf.count("# BEGIN machine") == 1 and "export A=1" in conf and "HTTP_PROXY" not in conf
    assert conf.startswith('DOCKER_OPTS=""\n')
    for line in ec.env_file(env).splitlines()[1:]:
        key, _, raw = line.partition("=")
        assert shlex.split(raw) == [env[key]]


def test_static_service_templates() -> None:
    assert "ExecStart=/usr/local/bin/dockerd" in ec.systemd_unit("/usr/local/bin/dockerd")
    assert 'command="/usr/local/bin/dockerd"' in ec.openrc_init("/usr/local/bin/dockerd")
