"""Driver `hyperv`: VMs on Microsoft Hyper-V, on a remote host over WinRM (pywinrm) or on this
Windows machine through powershell.exe.

Every hypervisor call is a PowerShell script from templates/hyperv/ (see scripts.py), run by a
Runner (runner.py). The VM is Generation 1: it boots our BIOS/isolinux ISO from IDE DVD 1:0 with
the NoCloud seed ISO on DVD 1:1, a dynamic VHDX data disk on IDE 0:0, static memory, and COM1 on
a named pipe. ISO transfer to remote hosts: isotransfer.py and README.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from machine import machinedir, sizes
from machine.driver import Availability, Driver, DriverContext, Features, Option, SSHEndpoint, State
from machine.errors import DriverError, HostNotUsable, ImageNotFound, MachineError, NotFound, UsageError

from . import isotransfer, smbshares
from .hostfacts import choose_switch, first_ipv4, host_problem
from .runner import LocalRunner, Runner, WinRMRunner, WinRMSettings

log = logging.getLogger("machine.drivers.hyperv")

STATES = {
    "Running": State.RUNNING, "Off": State.STOPPED, "Saved": State.SAVED, "FastSaved": State.SAVED,
    "Paused": State.PAUSED, "Starting": State.STARTING, "Resuming": State.STARTING, "Reset": State.STARTING,
    "Stopping": State.STOPPING, "Saving": State.STOPPING, "FastSaving": State.STOPPING, "Pausing": State.STOPPING,
    "NotFound": State.NOT_CREATED,
}
TRANSFERS = ("auto", "upload", "url", "host-path")
_warned_insecure: set[str] = set()


class HypervDriver(Driver):
    name = "hyperv"
    description = "Microsoft Hyper-V, on this Windows machine or a remote host over WinRM."
    features = Features(share_mechanisms=(smbshares.MECHANISM,), saved_state=True)
    options = (
        Option("host", "Hyper-V host to manage over WinRM (empty: this Windows machine, via PowerShell)", default=""),
        Option("user", "WinRM user (DOMAIN\\user or user@REALM)", default=""),
        Option("password", "WinRM password (better: the HYPERV_PASSWORD variable or --hyperv-password-file)",
               secret=True),
        Option("password-file", "File whose first line is the WinRM password"),
        Option("transport", "WinRM authentication", default="ntlm",
               choices=("ntlm", "kerberos", "credssp", "ssl", "basic")),
        Option("port", "WinRM port: 5986 (HTTPS, default) or 5985 (HTTP)", default=5986, type=int, minimum=1,
               maximum=65535),
        Option("scheme", "WinRM scheme; auto: http on port 5985, else https", default="auto",
               choices=("auto", "https", "http")),
        Option("insecure", "Skip TLS certificate validation of the WinRM endpoint (unsafe)", default=False,
               type=bool),
        Option("ca-file", "PEM file with the CA that signed the host's WinRM certificate"),
        Option("virtual-switch", "Virtual switch (default: an External switch; locally 'Default Switch')"),
        sizes.memory(2048, "Memory in MiB (static; or 2g)"),
        sizes.cpus(help="Virtual processors", aliases=("--hyperv-cpu-count",), env_aliases=("HYPERV_CPU_COUNT",)),
        sizes.disk("Data disk size (dynamic VHDX)"),
        Option("vlan-id", "VLAN id of the network adapter (access mode)", type=int, minimum=1, maximum=4094),
        Option("vm-path", "Folder on the host for the VMs' files (default: the host's VirtualMachinePath)"),
        Option("iso", "Local boot ISO (default: the built machine OS ISO)"),
        Option("iso-url", "URL the Hyper-V host downloads the boot ISO from (checked against its sha256)"),
        Option("iso-sha256", "sha256 of the boot ISO (needed with --hyperv-iso-url when no local ISO is given)"),
        Option("iso-host-path", "Boot ISO already on the host (a local path or an SMB share the host can read)"),
        Option("iso-transfer", "How the boot ISO reaches a remote host: auto, upload (chunked over WinRM), url "
               "(host downloads --hyperv-iso-url), host-path", default="auto", choices=TRANSFERS),
    )

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self._runner: Runner | None = None

    # -- connection --------------------------------------------------------------------------
    @staticmethod
    def make_runner(options: dict[str, Any]) -> Runner:
        host = (options.get("host") or "").strip()
        if not host:
            if sys.platform != "win32":
                raise HostNotUsable("Hyper-V runs on Windows only, and no --hyperv-host was given",
                                    "Manage a remote Hyper-V host: --hyperv-host HOST --hyperv-user USER "
                                    "(password in HYPERV_PASSWORD or --hyperv-password-file).")
            return LocalRunner()
        transport = options.get("transport") or "ntlm"
        user = options.get("user") or ""
        password = options.get("password")
        if options.get("password_file"):
            try:
                password = Path(options["password_file"]).expanduser().read_text().splitlines()[0]
            except (OSError, IndexError) as e:
                raise UsageError(f"Cannot read --hyperv-password-file: {e}", "Put the password on its first line.")\
                    from None
        if transport != "kerberos" and (not user or password is None):
            raise UsageError(f"WinRM transport {transport} needs a user and a password",
                             "Give --hyperv-user and the password in HYPERV_PASSWORD, --hyperv-password-file or "
                             "--hyperv-password.")
        port = int(options.get("port") or 5986)
        scheme = options.get("scheme") or "auto"
        if scheme == "auto":
            scheme = "http" if port == 5985 else "https"
        insecure = bool(options.get("insecure"))
        if insecure and scheme == "https" and host not in _warned_insecure:
            _warned_insecure.add(host)
            msg = (f"Warning: TLS certificate validation for WinRM at {host} is OFF (--hyperv-insecure): anyone "
                   "on the path can read the credentials and commands. Prefer --hyperv-ca-file.")
            log.warning(msg)
            sys.stderr.write(msg + "\n")
        return WinRMRunner(WinRMSettings(host=host, port=port, scheme=scheme, user=user, password=password or "",
                                         transport=transport, verify=not insecure,
                                         ca_file=options.get("ca_file") or None))

    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = self.make_runner(self.ctx.options)
        return self._runner

    def _call(self, op: str, **values: Any) -> Any:
        return self.runner().call(op, **values)

    def _done(self) -> None:
        if self._runner is not None:
            self._runner.close()

    # -- availability ------------------------------------------------------------------------
    @classmethod
    def check_available(cls, options: dict[str, Any] | None = None) -> Availability:
        options = options or {}
        runner: Runner | None = None
        try:
            runner = cls.make_runner(options)
            facts = runner.call("check")
        except MachineError as e:
            return Availability(False, e.message, e.hint or "Run with -D for details.")
        except Exception as e:  # an availability check answers, it does not raise
            return Availability(False, f"Hyper-V check failed: {e}", "Run with -D for details.")
        finally:
            if runner is not None:
                runner.close()
        problem = host_problem(facts, options.get("host") or "this machine")
        if problem:
            return Availability(False, problem[0], problem[1])
        return Availability(True, f"Hyper-V on {options.get('host') or 'this machine'} as {facts.get('user')}")

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self) -> None:
        try:
            self._create()
        finally:
            self._done()

    def _create(self) -> None:
        if self.data.get("created") and self._state() != State.NOT_CREATED:
            return
        memory, cpus, disk = int(self.opt("memory")), int(self.opt("cpus")), int(self.opt("disk_size"))
        if memory < 32 or memory % 2:
            raise UsageError(f"--hyperv-memory {memory} is not usable", "Hyper-V needs an even number of MiB, >= 32.")
        if cpus < 1 or disk < 1:
            raise UsageError("--hyperv-cpus and --hyperv-disk-size must be at least 1",
                             "Give a number of CPUs of 1 or more and a disk size in MiB.")
        facts = self._call("check")
        problem = host_problem(facts, self.opt("host") or "this machine")
        if problem:
            raise HostNotUsable(*problem)
        switch = choose_switch(facts.get("switches") or [], self.opt("virtual_switch"), remote=bool(self.opt("host")))
        where = self._call("vm-dir", name=self.ctx.name, base=self.opt("vm_path") or "")
        self.data.update(vm_dir=where["dir"], iso_cache=where["cache"], switch=switch,
                         pipe=f"\\\\.\\pipe\\machine-{self.ctx.name}")
        boot_iso = self._boot_iso(where["cache"])
        smbshares.sync(self)  # before the seed goes to the host: it carries the shares' addresses and account
        seed_iso = self._place_seed(where["dir"])
        made = self._call("create-vm", name=self.ctx.name, dir=where["dir"], boot_iso=boot_iso, seed_iso=seed_iso,
                          disk_bytes=disk << 20, memory_bytes=memory << 20, cpus=cpus, switch=switch,
                          vlan_id=int(self.opt("vlan_id") or 0), pipe=self.data["pipe"])
        if not made.get("created") and not self.data.get("created"):
            raise DriverError(f"A VM named {self.ctx.name!r} already exists on the Hyper-V host",
                              "Pick another machine name, or remove that VM on the host.")
        self.data["created"] = True

    def _place_seed(self, vm_dir: str) -> str:
        """The seed ISO's path on the host: this machine's file locally (create-vm copies it into the
        VM folder), else uploaded straight into the VM folder (it holds keys: never cached)."""
        seed = self.ctx.seed_path
        if seed is None or not Path(seed).is_file():
            raise DriverError("No seed ISO was prepared for this machine", "This is a bug in machine; report it.")
        if isinstance(self.runner(), LocalRunner):
            return str(Path(seed).resolve())
        dest = vm_dir + "\\" + machinedir.SEED
        isotransfer.upload(self.runner(), Path(seed), dest)
        return dest

    def _local_iso(self, required: bool) -> Path | None:
        given = self.opt("iso")
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise UsageError(f"--hyperv-iso {given}: no such file", "Give the path of a bootable ISO.")
            return path
        if not required:
            return None
        from machine.images import catalogue

        iso = catalogue.default_image().iso
        if iso is None:
            raise ImageNotFound("The machine OS ISO (machine-os.iso) is not built",
                                "Build the machine OS image, or pass --hyperv-iso FILE or --hyperv-iso-url URL.")
        return iso

    def _boot_iso(self, cache: str) -> str:
        """The boot ISO's path on the host, putting it there first when needed."""
        mode = self.opt("iso_transfer") or "auto"
        if isinstance(self.runner(), LocalRunner):
            return str(Path(str(self._local_iso(True))).resolve())
        if mode == "auto":
            mode = "host-path" if self.opt("iso_host_path") else "url" if self.opt("iso_url") else "upload"
        digest = (self.opt("iso_sha256") or "").lower() or None
        if mode == "host-path":
            path = self.opt("iso_host_path")
            if not path:
                raise UsageError("--hyperv-iso-transfer host-path needs --hyperv-iso-host-path",
                                 "Give the ISO's path on the Hyper-V host: --hyperv-iso-host-path PATH.")
            local = self._local_iso(False)
            digest = digest or (isotransfer.sha256_file(local) if local else None)
            if digest and not self._call("iso-probe", path=path, sha256=digest).get("present"):
                raise DriverError(f"{path} on the Hyper-V host is missing or is not the expected ISO",
                                  f"Copy the ISO (sha256 {digest}) there, or use --hyperv-iso-transfer upload.")
            return path
        if mode == "url":
            url = self.opt("iso_url")
            if not url:
                raise UsageError("--hyperv-iso-transfer url needs --hyperv-iso-url",
                                 "Give the URL the Hyper-V host downloads the ISO from: --hyperv-iso-url URL.")
            local = self._local_iso(False)
            digest = digest or (isotransfer.sha256_file(local) if local else None)
            if not digest:
                raise UsageError("--hyperv-iso-url needs the ISO's sha256",
                                 "Give --hyperv-iso-sha256 HEX (or --hyperv-iso with the same file).")
            dest = f"{cache}\\{isotransfer.cached_name(digest)}"
            isotransfer.download(self.runner(), url, dest, digest)
        else:
            local = self._local_iso(True)
            assert local is not None
            digest = isotransfer.sha256_file(local)
            dest = f"{cache}\\{isotransfer.cached_name(digest)}"
            isotransfer.upload(self.runner(), local, dest, digest,
                               progress=isotransfer.stderr_progress(f"Uploading {local.name} to {self.opt('host')}"))
        self.data["iso_sha256"] = digest
        return dest

    def start(self) -> None:
        try:
            if self._state() == State.RUNNING:
                return
            if self.data.get("vm_dir") and not smbshares.in_sync(self.data, self.ctx.shares):
                smbshares.sync(self)  # `machine set` changed the shares: new SMB shares, a new seed on DVD 1:1
                smbshares.replace_seed_copy(self)
            self._call("start-vm", name=self.ctx.name)
        finally:
            self._done()

    def stop(self, force: bool = False) -> None:
        try:
            if self._state() in (State.STOPPED, State.NOT_CREATED):
                return
            self._call("stop-vm", name=self.ctx.name, turn_off=bool(force))
        finally:
            self._done()

    def save_state(self) -> None:
        """Save-VM: Hyper-V writes the memory and the VM is Saved when the cmdlet returns; Start-VM resumes it."""
        try:
            self._call("save-vm", name=self.ctx.name)
        finally:
            self._done()

    def discard_saved_state(self) -> None:
        try:
            if self._state() == State.SAVED:
                self._call("discard-saved-vm", name=self.ctx.name)
        finally:
            self._done()

    def remove(self) -> None:
        vm_dir = self.data.get("vm_dir")
        if not vm_dir:
            return  # nothing of ours was made on the host
        try:
            self._call("remove-vm", name=self.ctx.name, dir=vm_dir)
            if self.data.get("smb"):
                smbshares.unshare(self)
        finally:
            self._done()
        self.data.pop("created", None)

    def status(self) -> State:
        try:
            return self._state()
        finally:
            self._done()

    def _state(self) -> State:
        answer = self._call("vm-state", name=self.ctx.name)
        if answer.get("State") != "NotFound" and self.data.get("vm_dir") and answer.get("Path") \
                and not str(answer["Path"]).lower().startswith(str(self.data["vm_dir"]).lower()):
            return State.NOT_CREATED  # a VM of that name that is not ours
        return STATES.get(str(answer.get("State")), State.ERROR if "Critical" in str(answer.get("State"))
                          else State.UNKNOWN)

    # -- addresses -----------------------------------------------------------------------------
    def ip(self) -> str | None:
        try:
            answer = self._call("vm-ip", name=self.ctx.name)
        except NotFound:
            return None  # no VM, no address
        finally:
            self._done()
        return first_ipv4(answer.get("IPAddresses") or [])

    def ssh_endpoint(self) -> SSHEndpoint | None:
        ip = self.ip()
        return SSHEndpoint(ip, 22, "root") if ip else None

    def console_log(self) -> Path | None:
        """COM1 is a named pipe on the Hyper-V host: not readable from here, so waiting for the
        machine uses the SSH banner instead of the serial readiness line."""
        return None


__all__ = ["DRIVER", "HypervDriver", "choose_switch", "first_ipv4", "host_problem"]

DRIVER = HypervDriver
