"""A fake Hyper-V host behind the fake WinRM server: real state, no PowerShell.

It receives the command line WinRM would run, decodes `powershell.exe ... -EncodedCommand`, and
interprets the driver's scripts by their `# machine-op: NAME` line. Each script's parameter block
(`$Var = <literal>` lines up to `# machine-params-end`) is parsed with an independent PowerShell
literal parser, and must hold exactly the parameters that operation takes; the body must contain
the cmdlets the operation is known to use. Anything else is rejected (exit 1 and an error on
stderr), so a script the fake does not know never "passes".

State: `state.json` (host facts, switches, VMs, VHDs) and `fs/` (the host's files: a Windows path
C:\\X\\y maps to fs/C/X/y) under the state directory. Outputs follow real cmdlet shapes
(hv_recorded.py, FIXTURES.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import hv_recorded as rec
from hv_scripts import BEGIN, END, OPS, PSError, ScriptRejected, parse_script  # noqa: F401 - OPS re-exported

MAX_LINE = 8191


# -- the host -----------------------------------------------------------------------------------------


def default_state() -> dict[str, Any]:
    return {
        "host": {"name": "HV01", "user": "HV01\\builder", "module": True, "hyperv_admin": True, "admin": False,
                 "hypervisor": True, "logical_processors": 8, "memory_mib": 16384,
                 "vm_path": "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V", "program_data": "C:\\ProgramData"},
        # Raw enum values as Get-VMSwitch | ConvertTo-Json prints them (2 External, 1 Internal).
        "switches": [{"Name": "Default Switch", "SwitchType": 1}, {"Name": "External LAN", "SwitchType": 2}],
        "vms": {},
        "vhds": {},
        "guest_ipv4": "127.0.0.1",
        "ip_after_polls": 1,  # KVP reports the address only after a while: the first poll sees none
        "log": [],
        # SMB: local accounts (password only as sha256), shares (Get-SmbShare + Get-SmbShareAccess shapes), folder
        # ACL entries our scripts added, and the host's IPv4 addresses per "vEthernet (SWITCH)" adapter.
        "users": {},
        "smb_shares": {},
        "acls": {},
        "host_ipv4": {"Default Switch": ["172.25.16.1"], "External LAN": ["192.168.1.20"]},
    }


class FakeHyperV:
    def __init__(self, state_dir: Path, local_files: bool = False) -> None:
        # local_files: the "host" is this machine (the local PowerShell path): absolute POSIX paths
        # name this machine's files, as C:\... paths would on Windows.
        self.local_files = local_files
        self.dir = Path(state_dir)
        self.fs = self.dir / "fs"
        self.fs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        if not (self.dir / "state.json").exists():
            self.save(default_state())

    # state
    def load(self) -> dict[str, Any]:
        return json.loads((self.dir / "state.json").read_text())

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.dir / "state.json")

    def update(self, fn: Any) -> None:
        with self.lock:
            s = self.load()
            fn(s)
            self.save(s)

    def local(self, win_path: str) -> Path:
        """The file behind a Windows path (drive-letter paths only; UNC \\\\server\\share -> fs/UNC/...)."""
        if self.local_files and win_path.startswith("/"):
            return Path(win_path.replace("\\", "/"))
        if win_path.startswith("\\\\"):
            parts = ["UNC", *[p for p in win_path[2:].split("\\") if p]]
        else:
            m = re.match(r"^([A-Za-z]):\\(.*)$", win_path)
            if not m:
                raise PSError(f"Cannot find drive. A drive with the name '{win_path[:1]}' does not exist.",
                              "ObjectNotFound", "DriveNotFound")
            parts = [m.group(1).upper(), *[p for p in m.group(2).split("\\") if p]]
        if ".." in parts:
            raise PSError("fake host: '..' in paths is not supported", "InvalidArgument", "FakePath")
        return self.fs.joinpath(*parts)

    # command lines
    def execute(self, command: str, stdin: bytes = b"") -> tuple[str, str, int]:
        """Run one WinRM command line with `stdin` (what the client sent); returns (stdout, stderr, exit code)."""
        if len(command) > MAX_LINE:
            return "", rec.LINE_TOO_LONG, 1
        m = re.fullmatch(r"powershell(?:\.exe)? -NoProfile -NonInteractive -EncodedCommand ([A-Za-z0-9+/=]+)",
                         command, re.I)
        if not m:
            name = command.split(" ", 1)[0]
            return "", (f"'{name}' is not recognized as an internal or external command,\r\n"
                        "operable program or batch file.\r\n"), 1
        try:
            script = base64.b64decode(m.group(1), validate=True).decode("utf-16-le")
            op, params, _body = parse_script(script.replace("\r\n", "\n"))
        except (ScriptRejected, ValueError, UnicodeDecodeError) as e:
            why = str(e)
            self.update(lambda s: s["log"].append({"op": "REJECTED", "why": why}))
            return "", f"fake Hyper-V host rejected the script: {why}\r\n", 1
        self.update(lambda s: s["log"].append({"op": op, "params": {k: v for k, v in params.items()
                                                                     if k not in ("Data", "Password")}}))
        if op == "iso-stream":
            params["stdin"] = stdin  # $input: the lines of the command's standard input
        try:
            result = getattr(self, "op_" + op.replace("-", "_"))(**params)
        except PSError as e:
            return self._out({"error": e.record}), "", 1
        return self._out(result), "", 0

    @staticmethod
    def _out(obj: Any) -> str:
        return BEGIN + json.dumps(obj, separators=(",", ":")) + END + "\r\n"

    # helpers
    def _host_gate(self, s: dict[str, Any], cmdlet: str) -> None:
        if not s["host"]["module"]:
            raise PSError(rec.COMMAND_NOT_FOUND.format(cmd="Hyper-V\\" + cmdlet), "ObjectNotFound",
                          rec.COMMAND_NOT_FOUND_ID)
        if not (s["host"]["hyperv_admin"] or s["host"]["admin"]):
            raise PSError(rec.PERMISSION.format(host=s["host"]["name"]), "PermissionDenied",
                          rec.PERMISSION_ID.format(cmd=cmdlet.replace("-", "")))

    def _vm(self, s: dict[str, Any], name: str, cmdlet: str) -> dict[str, Any]:
        self._host_gate(s, cmdlet)
        vm = s["vms"].get(name)
        if vm is None:
            raise PSError(rec.VM_NOT_FOUND.format(name=name), rec.VM_NOT_FOUND_CATEGORY.get(cmdlet, "ObjectNotFound"),
                          rec.VM_NOT_FOUND_ID.get(cmdlet, f"ObjectNotFound,Microsoft.HyperV.PowerShell.Commands."
                                                          f"{cmdlet.replace('-', '')}"))
        return vm

    @staticmethod
    def _state_name(vm: dict[str, Any]) -> str:
        return rec.VM_STATES.get(vm["State"], "Other")

    def _sha(self, path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest().upper()  # Get-FileHash prints upper-case hex

    # operations
    def op_check(self) -> dict[str, Any]:
        s = self.load()
        h = s["host"]
        switches = [{"Name": w["Name"], "SwitchType": rec.SWITCH_TYPES[w["SwitchType"]]} for w in s["switches"]]
        return {"user": h["user"], "module": h["module"], "hyperv_admin": h["hyperv_admin"], "admin": h["admin"],
                "hypervisor": h["hypervisor"],
                "switches": switches if h["module"] and (h["hyperv_admin"] or h["admin"]) else []}

    def op_vm_state(self, Name: str) -> dict[str, Any]:  # noqa: N803 - PowerShell parameter names
        s = self.load()
        self._host_gate(s, "Get-VM")
        vm = s["vms"].get(Name)
        if vm is None:
            return {"Name": Name, "State": "NotFound"}
        return {"Name": Name, "State": self._state_name(vm), "Status": "Operating normally", "Path": vm["Path"]}

    def op_start_vm(self, Name: str) -> dict[str, Any]:  # noqa: N803
        def go(s: dict[str, Any]) -> None:
            vm = self._vm(s, Name, "Start-VM")
            if vm["State"] == 2:
                raise PSError(rec.INVALID_STATE.format(name=Name), "InvalidOperation",
                              "InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM")
            for drive in vm["DvdDrives"]:
                if not self.local(drive["Path"]).is_file():
                    raise PSError(f"'{Name}' failed to start.\r\nFailed to open attachment '{drive['Path']}'.",
                                  "NotSpecified", "OperationFailed,Microsoft.HyperV.PowerShell.Commands.StartVM")
            vm["State"] = 2
            vm["polls"] = 0
            vm["NetworkAdapters"][0]["IPAddresses"] = []
        self.update(go)
        return {"Name": Name, "State": "Running"}

    def op_stop_vm(self, Name: str, TurnOff: bool) -> dict[str, Any]:  # noqa: N803
        def go(s: dict[str, Any]) -> None:
            vm = self._vm(s, Name, "Stop-VM")
            vm["State"] = 3
            vm["last_stop"] = "turnoff" if TurnOff else "shutdown"
            vm["NetworkAdapters"][0]["IPAddresses"] = []
        self.update(go)
        return {"Name": Name, "State": "Off"}

    def op_save_vm(self, Name: str) -> dict[str, Any]:  # noqa: N803
        """Save-VM: the memory goes to the VM's folder and the VM is Saved (6); Start-VM resumes it."""
        def go(s: dict[str, Any]) -> None:
            vm = self._vm(s, Name, "Save-VM")
            if vm["State"] != 2:
                raise PSError(rec.INVALID_STATE.format(name=Name), "InvalidOperation",
                              "InvalidState,Microsoft.HyperV.PowerShell.Commands.SaveVM")
            vm["State"] = 6
            vm["NetworkAdapters"][0]["IPAddresses"] = []
        self.update(go)
        return {"Name": Name, "State": "Saved"}

    def op_discard_saved_vm(self, Name: str) -> dict[str, Any]:  # noqa: N803
        """Remove-VMSavedState: a Saved VM becomes Off (3); any other state is refused."""
        def go(s: dict[str, Any]) -> None:
            vm = self._vm(s, Name, "Remove-VMSavedState")
            if vm["State"] not in (6, 32779):
                raise PSError(rec.INVALID_STATE.format(name=Name), "InvalidOperation",
                              "InvalidState,Microsoft.HyperV.PowerShell.Commands.RemoveVMSavedState")
            vm["State"] = 3
        self.update(go)
        return {"Name": Name, "State": "Off"}

    def op_vm_ip(self, Name: str) -> dict[str, Any]:  # noqa: N803
        out: dict[str, Any] = {}

        def go(s: dict[str, Any]) -> None:
            vm = self._vm(s, Name, "Get-VMNetworkAdapter")
            nic = vm["NetworkAdapters"][0]
            if vm["State"] == 2:
                vm["polls"] = vm.get("polls", 0) + 1
                if vm["polls"] > s["ip_after_polls"]:
                    nic["IPAddresses"] = [s["guest_ipv4"], rec.LINK_LOCAL.format(n=0x100 + len(Name))]
            out.update({"Name": Name, "IPAddresses": list(nic["IPAddresses"])})
        self.update(go)
        return out

    def op_vm_dir(self, Name: str, Base: str) -> dict[str, Any]:  # noqa: N803
        s = self.load()
        self._host_gate(s, "Get-VMHost")
        base = Base or s["host"]["vm_path"]
        d = base.rstrip("\\") + "\\machine\\" + Name
        self.local(d).mkdir(parents=True, exist_ok=True)
        (self.local(d) / "machine.json").write_text(json.dumps({"name": Name, "tool": "machine"}))
        return {"dir": d, "cache": s["host"]["program_data"] + "\\machine\\iso-cache"}

    def op_create_vm(self, Name: str, Dir: str, BootIso: str, SeedIso: str, DiskBytes: int,  # noqa: N803
                     MemoryBytes: int, Cpus: int, Switch: str, VlanId: int, Pipe: str) -> dict[str, Any]:
        """The steps of create-vm.ps1 in its order; a failing step leaves what the earlier ones
        made (as $ErrorActionPreference = 'Stop' does on a real host)."""
        out: dict[str, Any] = {}
        failed: list[PSError] = []

        def go(s: dict[str, Any]) -> None:
            try:
                self._create_steps(s, out, Name, Dir, BootIso, SeedIso, DiskBytes, MemoryBytes, Cpus, Switch,
                                   VlanId, Pipe)
            except PSError as e:
                failed.append(e)
        self.update(go)
        if failed:
            raise failed[0]
        return out

    def _create_steps(self, s: dict[str, Any], out: dict[str, Any], Name: str, Dir: str, BootIso: str,  # noqa: N803
                      SeedIso: str, DiskBytes: int, MemoryBytes: int, Cpus: int, Switch: str, VlanId: int,
                      Pipe: str) -> None:
        self._host_gate(s, "New-VM")
        if Name in s["vms"]:
            out.update({"Name": Name, "created": False, "Path": s["vms"][Name]["Path"]})
            return
        iso, vhd, seed = Dir + "\\boot.iso", Dir + "\\disk.vhdx", Dir + "\\seed.iso"
        for src, dst in ((BootIso, iso), (SeedIso, seed)):  # Copy-Item (the seed only when elsewhere)
            if src == dst:
                continue
            if not self.local(src).is_file():
                raise PSError(rec.PATH_NOT_FOUND.format(path=src), "ObjectNotFound",
                              rec.PATH_NOT_FOUND_ID.format(cmd="CopyItemCommand"))
            self.local(dst).write_bytes(self.local(src).read_bytes())
        if not self.local(vhd).is_file():  # New-VHD -Dynamic; VHDX files start with this signature
            self.local(vhd).write_bytes(b"vhdxfile" + b"\0" * 4088)
            s["vhds"][vhd] = {"Size": DiskBytes, "VhdType": "Dynamic", "VhdFormat": "VHDX"}
        if not any(w["Name"] == Switch for w in s["switches"]):  # New-VM -SwitchName
            raise PSError(f'Hyper-V was unable to find a virtual switch with name "{Switch}".', "ObjectNotFound",
                          "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.NewVM")
        if MemoryBytes % (2 << 20) or MemoryBytes < (32 << 20):  # New-VM -MemoryStartupBytes
            raise PSError(f"'{Name}' failed to modify device 'Memory'. Invalid startup memory amount assigned "
                          f"for '{Name}'.", "InvalidArgument",
                          "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.NewVM")
        vm = s["vms"][Name] = {  # New-VM -Generation 1: one IDE disk, a DVD drive on IDE 1:0, one adapter
            "Name": Name, "State": 3, "Generation": 1, "Path": Dir, "MemoryStartup": MemoryBytes,
            "DynamicMemoryEnabled": True, "ProcessorCount": 1,
            "HardDrives": [{"ControllerType": "IDE", "ControllerNumber": 0, "ControllerLocation": 0, "Path": vhd}],
            "DvdDrives": [{"ControllerNumber": 1, "ControllerLocation": 0, "Path": None}],
            "BootOrder": ["CD", "IDE", "LegacyNetworkAdapter", "Floppy"], "ComPort1": "",
            "NetworkAdapters": [{"SwitchName": Switch, "VlanId": None, "IPAddresses": []}],
        }
        vm["DynamicMemoryEnabled"] = False  # Set-VMMemory
        if Cpus > s["host"]["logical_processors"]:  # Set-VMProcessor
            raise PSError(f"Failed to modify device 'Processor'. '{Name}' failed to modify device 'Processor'. "
                          f"The processor count ({Cpus}) exceeds the host's logical processors.",
                          "InvalidArgument", "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.SetVMProcessor")
        vm["ProcessorCount"] = Cpus
        vm["DvdDrives"][0]["Path"] = iso  # Set-VMDvdDrive 1:0
        if not self.local(seed).is_file():  # Add-VMDvdDrive 1:1
            raise PSError(f"Failed to add device 'Virtual CD/DVD Disk'. The file '{seed}' was not found.",
                          "ObjectNotFound", "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.AddVMDvdDrive")
        vm["DvdDrives"].append({"ControllerNumber": 1, "ControllerLocation": 1, "Path": seed})
        vm["ComPort1"] = Pipe  # Set-VMComPort
        if VlanId > 0:  # Set-VMNetworkAdapterVlan -Access
            vm["NetworkAdapters"][0]["VlanId"] = VlanId
        out.update({"Name": Name, "created": True, "Path": Dir})

    def op_remove_vm(self, Name: str, Dir: str) -> dict[str, Any]:  # noqa: N803
        out: dict[str, Any] = {"Name": Name, "removed": False, "deleted": False}

        def go(s: dict[str, Any]) -> None:
            self._host_gate(s, "Remove-VM")
            vm = s["vms"].get(Name)
            if vm and Dir and vm["Path"].lower().startswith(Dir.lower()):
                del s["vms"][Name]
                for d in vm["HardDrives"]:
                    s["vhds"].pop(d["Path"], None)
                out["removed"] = True
            if Dir and (self.local(Dir) / "machine.json").is_file():
                import shutil

                shutil.rmtree(self.local(Dir))
                out["deleted"] = True
        self.update(go)
        return out

    # SMB shares (smb-share.ps1, smb-unshare.ps1)
    @staticmethod
    def _password_ok(password: str) -> bool:
        """Windows' default complexity rule: 8+ characters from 3 of upper, lower, digit, other."""
        kinds = [any(c.isupper() for c in password), any(c.islower() for c in password),
                 any(c.isdigit() for c in password), any(not c.isalnum() for c in password)]
        return len(password) >= 8 and sum(kinds) >= 3

    def _drop_shares(self, s: dict[str, Any], prefix: str, principal: str) -> list[str]:
        gone = []
        for name in [n for n in s["smb_shares"] if n.lower().startswith(prefix.lower())]:
            path = s["smb_shares"].pop(name)["Path"]
            s["acls"][path] = [r for r in s["acls"].get(path, []) if r["IdentityReference"] != principal]
            if not s["acls"][path]:
                del s["acls"][path]
            gone.append(name)
        return gone

    def op_smb_account(self, Account: str, Password: str, Prefix: str, Switch: str) -> dict[str, Any]:  # noqa: N803
        out: dict[str, Any] = {}

        def go(s: dict[str, Any]) -> None:
            cmd = "SetLocalUserCommand" if Account in s["users"] else "NewLocalUserCommand"
            if len(Account) > 20 or any(c in Account for c in '"/\\[]:;|=,+*?<>@'):
                raise PSError(rec.BAD_ACCOUNT_NAME, "InvalidArgument", rec.BAD_ACCOUNT_NAME_ID)
            if not self._password_ok(Password):
                raise PSError(rec.WEAK_PASSWORD, "InvalidOperation", rec.WEAK_PASSWORD_ID.format(cmd=cmd))
            s["users"][Account] = {"password_sha256": hashlib.sha256(Password.encode()).hexdigest(),
                                   "PasswordNeverExpires": True, "UserMayChangePassword": False}
            self._drop_shares(s, Prefix, f"{s['host']['name']}\\{Account}")
            out.update({"account": Account, "addresses": list(s["host_ipv4"].get(Switch, []))})
        self._apply(go)
        return out

    def op_smb_share(self, Account: str, Name: str, Path: str, ReadOnly: bool) -> dict[str, Any]:  # noqa: N803
        def go(s: dict[str, Any]) -> None:
            if not self.local(Path).is_dir():
                msg = f"Cannot share '{Path}': no such folder on the Hyper-V host"
                raise PSError(msg, "OperationStopped", msg)  # `throw "text"`: the text is the error id too
            principal = f"{s['host']['name']}\\{Account}"
            if Account not in s["users"]:
                raise PSError(rec.NO_SUCH_ACCOUNT, "NotSpecified", rec.NO_SUCH_ACCOUNT_ID)
            rights = "ReadAndExecute" if ReadOnly else "Modify"
            s["acls"].setdefault(Path, []).append({"IdentityReference": principal, "FileSystemRights": rights,
                                                   "InheritanceFlags": "ContainerInherit, ObjectInherit"})
            if Name.lower() in (n.lower() for n in s["smb_shares"]):
                raise PSError(rec.SHARE_EXISTS, "NotSpecified", rec.SHARE_EXISTS_ID)
            access = {"AccountName": principal, "AccessControlType": "Allow",
                      "AccessRight": "Read" if ReadOnly else "Change"}
            s["smb_shares"][Name] = {"Name": Name, "Path": Path, "Access": [access]}
        self._apply(go)
        return {"Name": Name, "Path": Path}

    def _apply(self, fn: Any) -> None:
        """Run a state change; a PSError still keeps what the script did before it (ErrorActionPreference Stop)."""
        failed: list[PSError] = []

        def go(s: dict[str, Any]) -> None:
            try:
                fn(s)
            except PSError as e:
                failed.append(e)
        self.update(go)
        if failed:
            raise failed[0]

    def op_smb_unshare(self, Account: str, Prefix: str) -> dict[str, Any]:  # noqa: N803
        out: dict[str, Any] = {}

        def go(s: dict[str, Any]) -> None:
            removed = self._drop_shares(s, Prefix, f"{s['host']['name']}\\{Account}")
            out.update({"removed": removed, "account_removed": s["users"].pop(Account, None) is not None})
        self.update(go)
        return out

    def op_iso_probe(self, Path: str, Sha256: str) -> dict[str, Any]:  # noqa: N803
        f, part = self.local(Path), self.local(Path + ".part")
        present = f.is_file() and self._sha(f) == Sha256.upper()
        return {"Path": Path, "present": present, "part_size": part.stat().st_size if part.is_file() else 0}

    def _part_at(self, Path: str, Offset: int) -> tuple[Any, int]:  # noqa: N803
        """The upload's .part file (truncated when a transfer starts at 0) and its current size; the
        scripts refuse to append anywhere but at the offset they were given."""
        part = self.local(Path + ".part")
        if Offset == 0:
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(b"")
        if not part.is_file():
            raise PSError(rec.PATH_NOT_FOUND.format(path=Path + ".part"), "ObjectNotFound",
                          rec.PATH_NOT_FOUND_ID.format(cmd="GetItemCommand"))
        return part, part.stat().st_size

    def op_iso_chunk(self, Path: str, Offset: int, Data: str) -> dict[str, Any]:  # noqa: N803
        part, size = self._part_at(Path, Offset)
        if size != Offset:
            return {"size": size, "written": 0}
        try:
            data = base64.b64decode(Data, validate=True)
        except ValueError:
            raise PSError('Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid '
                          'Base-64 string"', "NotSpecified", "FormatException") from None
        with open(part, "ab") as fh:
            fh.write(data)
        return {"size": Offset + len(data), "written": len(data)}

    def op_iso_stream(self, Path: str, Offset: int, stdin: bytes) -> dict[str, Any]:  # noqa: N803
        part, size = self._part_at(Path, Offset)
        if size != Offset:
            return {"size": size, "written": 0}
        written = 0
        with open(part, "ab") as fh:
            for line in stdin.decode("ascii").splitlines():
                if line:
                    data = base64.b64decode(line, validate=True)
                    fh.write(data)
                    written += len(data)
        return {"size": Offset + written, "written": written}

    def op_iso_finish(self, Path: str, Sha256: str) -> dict[str, Any]:  # noqa: N803
        part = self.local(Path + ".part")
        if not part.is_file():
            raise PSError(rec.PATH_NOT_FOUND.format(path=Path + ".part"), "ObjectNotFound",
                          rec.PATH_NOT_FOUND_ID.format(cmd="GetFileHashCommand"))
        h = self._sha(part)
        if h != Sha256.upper():
            part.unlink()
            raise PSError(f"sha256 mismatch: {Path}.part has {h}, expected {Sha256}", "OperationStopped",
                          f"sha256 mismatch: {Path}.part has {h}, expected {Sha256}")
        part.replace(self.local(Path))
        return {"Path": Path, "sha256": h.lower()}

    def op_iso_download(self, Url: str, Path: str, Sha256: str) -> dict[str, Any]:  # noqa: N803
        host = urllib.parse.urlsplit(Url).hostname or ""
        if not (host == "localhost" or host.startswith("127.")):
            # The fake host stays within the test network rule: it only fetches from loopback.
            raise PSError("Unable to connect to the remote server", "InvalidOperation",
                          "WebCmdletWebResponseException,Microsoft.PowerShell.Commands.InvokeWebRequestCommand")
        part = self.local(Path + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(Url, timeout=30) as resp:  # noqa: S310 - loopback only
                part.write_bytes(resp.read())
        except OSError as e:
            raise PSError(f"The remote server returned an error: {e}", "InvalidOperation",
                          "WebCmdletWebResponseException,Microsoft.PowerShell.Commands.InvokeWebRequestCommand"
                          ) from None
        h = self._sha(part)
        if h != Sha256.upper():
            part.unlink()
            raise PSError(f"sha256 mismatch: the download of {Url} has {h}, expected {Sha256}", "OperationStopped",
                          "sha256 mismatch")
        part.replace(self.local(Path))
        return {"Path": Path, "sha256": h.lower()}
