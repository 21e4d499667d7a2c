"""The files of a machine folder (`<store>/machines/<name>/`), each named once.

The store, the orchestrator, provisioning, the machine's agent and every driver use these names
instead of spelling them; the folder is the machine's state, so this list is also its map.
Files shared with the docker CLI keep docker-machine's names (DOCKER_CERT_PATH holds ca.pem,
cert.pem and key.pem).
"""

from __future__ import annotations

# -- written by the store ------------------------------------------------------------------------
CONFIG = "config.json"  # the saved MachineConfig
CREATING = ".creating"  # written first and removed last by a create (machine.createmarker): a killed create
LOCK_SUFFIX = ".lock"  # `<machines>/.<name>.lock`, beside the folder: held while a command changes the machine
# `<machines>/.<name>.host_key`, beside the folder: our pin of a docker-machine machine's SSH host key (docker-machine
# skips dot files)
HOST_KEY_SUFFIX = ".host_key"
DOCKER_MACHINE_BACKUP = CONFIG + ".docker-machine"  # docker-machine's own config.json, kept by `machine import`

# -- keys and certificates (machine/provision) -------------------------------------------------
LOGIN_KEY = "id_ed25519"  # the key machine logs in with (and LOGIN_KEY + ".pub"); in the seed
EXISTING_HOST_KEY = "id_ssh"  # a copy of the user's key for an existing host (generic)
KNOWN_HOSTS = "known_hosts"  # the guest's pinned host key, for the system ssh client
SSH_CONFIG = "ssh_config"  # an ssh_config snippet for the docker CLI's ssh:// transport
CA_CERT = "ca.pem"  # the store's CA, which signed the client and server certificates
CLIENT_CERT = "cert.pem"  # client certificate the docker CLI presents
CLIENT_KEY = "key.pem"
CLIENT_TLS_FILES = (CA_CERT, CLIENT_CERT, CLIENT_KEY)  # DOCKER_CERT_PATH's files
SERVER_CERT = "server.pem"  # the engine's certificate (uploaded to the guest)
SERVER_KEY = "server-key.pem"
SEED = "seed.iso"  # the NoCloud seed (label cidata) for drivers that boot an image

# -- the VM (drivers) ----------------------------------------------------------------------------
CONSOLE_LOG = "console.log"  # the guest's serial console, read for readiness lines and boot failures
ROOT_DISK = "disk.qcow2"  # qemu/libvirt: the overlay on a cached cloud image
DATA_DISK = "data.qcow2"  # qemu/libvirt: the machine OS's data disk (what persists)
QEMU_PID = "qemu.pid"
QEMU_LOG = "qemu.log"  # qemu's own output
QMP_SOCKET = "qmp.sock"  # qemu's QMP socket (a short path under the temp dir when this one is too long)
SAVED_STATE = "saved-state.bin"  # qemu: the VM's memory and devices after `machine suspend` (a migration stream)
SAVED_STATE_PART = "saved-state.part"  # qemu: the stream while it is written (renamed to SAVED_STATE when complete)
VBOX_DISK = "disk.vdi"  # VirtualBox: the data disk
HYPERKIT_STATE = "hyperkit.json"  # HyperKit: what the running VM was started with
HYPERKIT_PID = "hyperkit.pid"
HYPERKIT_LOG = "hyperkit.log"
HYPERKIT_DISK = "data.img"  # HyperKit: the raw sparse data disk
HYPERKIT_TTY = "tty"  # HyperKit: the serial console's pty link
HYPERKIT_TMP = "hyperkit.tmp"
# qemu shared folders: one virtiofsd per share N (drivers/qemu/sharing.py); format with the share's index
VIRTIOFSD_PID = "virtiofsd{}.pid"
VIRTIOFSD_LOG = "virtiofsd{}.log"
VIRTIOFS_SOCKET = "virtiofs{}.sock"  # its vhost-user socket (under the temp dir when this path is too long)

# -- the machine's agent (machine/agent: published ports, shares) ---------------------------------
AGENT_PID = "agent.pid"
AGENT_LOG = "agent.log"
AGENT_STATUS = "ports.json"  # what the agent forwards and what failed (`machine ports`)
