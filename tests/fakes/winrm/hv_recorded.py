"""Outputs recorded from real Hyper-V / PowerShell / WinRM, used by the fake host. Where each one
comes from is in FIXTURES.md (same names)."""

# Get-VM <missing> (minikube issue #8970 log; PS-AutoLab-Env #133): message, category, FullyQualifiedErrorId.
VM_NOT_FOUND = 'Hyper-V was unable to find a virtual machine with name "{name}".'
VM_NOT_FOUND_CATEGORY = {"Get-VM": "InvalidArgument"}  # other cmdlets report ObjectNotFound (PS-AutoLab-Env #133)
VM_NOT_FOUND_ID = {"Get-VM": "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"}

# A cmdlet of a module that is not installed (seflerZ/oneclick-gpu-pv #4, English wording of PowerShell 5.1).
COMMAND_NOT_FOUND = ("The term '{cmd}' is not recognized as the name of a cmdlet, function, script file, or operable "
                     "program. Check the spelling of the name, or if a path was included, verify that the path is "
                     "correct and try again.")
COMMAND_NOT_FOUND_ID = "CommandNotFoundException"

# A non-admin user running Hyper-V cmdlets (docker/machine and minikube hyperv issue reports).
PERMISSION = ("You do not have the required permission to complete this task. Contact the administrator of the "
              "authorization policy for the computer '{host}'.")
PERMISSION_ID = "AccessDenied,Microsoft.HyperV.PowerShell.Commands.{cmd}"

# Copy-Item with a missing source (PowerShell's PathNotFound error record).
PATH_NOT_FOUND = "Cannot find path '{path}' because it does not exist."
PATH_NOT_FOUND_ID = "PathNotFound,Microsoft.PowerShell.Commands.{cmd}"

# Start-VM on a running VM.
INVALID_STATE = ("'{name}' failed to change state.\r\nThe operation cannot be performed while the object is in its "
                 "current state.")

# Get-VM State enum names (Eryph VirtualMachineState mirror of Microsoft.HyperV.PowerShell.VMState).
VM_STATES = {1: "Other", 2: "Running", 3: "Off", 4: "Stopping", 6: "Saved", 9: "Paused", 10: "Starting", 11: "Reset",
             32773: "Saving", 32776: "Pausing", 32777: "Resuming", 32779: "FastSaved", 32780: "FastSaving"}

# Get-VMSwitch SwitchType enum (vagrant get_switches.ps1 comment: 0 Private, 1 Internal; 2 External).
SWITCH_TYPES = {0: "Private", 1: "Internal", 2: "External"}

# Get-VMNetworkAdapter .IPAddresses of a Linux guest with KVP: IPv4 and the IPv6 link-local address
# (order as in vagrant get_network_config.ps1, which scans for the first address containing '.').
LINK_LOCAL = "fe80::215:5dff:fe00:{n:x}"

# powershell.exe over WinRM writes progress as CLIXML on stderr on a first module load (pywinrm's
# _clean_error_msg handles '#< CLIXML'); our scripts set $ProgressPreference, real hosts still emit this.
CLIXML_PROGRESS = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
    '<AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>')

# cmd.exe when a command line exceeds 8191 characters.
LINE_TOO_LONG = "The command line is too long.\r\n"

# WS-Management fault for an unknown shell (WinRM error 2150858843, "The request for the Windows Remote
# Shell with ShellId ... failed because the shell was not found on the server.").
SHELL_NOT_FOUND_CODE = "2150858843"

# SMB shares and local accounts (smb-share.ps1 / smb-unshare.ps1); sources in FIXTURES.md.
SHARE_EXISTS = "The name has already been shared."
SHARE_EXISTS_ID = "Windows System Error 2118,New-SmbShare"
NO_SUCH_ACCOUNT = "No mapping between account names and security IDs was done."
NO_SUCH_ACCOUNT_ID = "Windows System Error 1332,New-SmbShare"
WEAK_PASSWORD = ("Unable to update the password. The value provided for the new password does not meet the length, "
                 "complexity, or history requirements of the domain.")
WEAK_PASSWORD_ID = "InvalidPassword,Microsoft.PowerShell.Commands.{cmd}"
BAD_ACCOUNT_NAME = "The name provided is not a properly formed account name."
BAD_ACCOUNT_NAME_ID = "InvalidName,Microsoft.PowerShell.Commands.NewLocalUserCommand"
