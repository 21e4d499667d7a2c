# machine-op: smb-share
$Account = {{ account }}
$Name = {{ name }}
$Path = {{ path }}
$ReadOnly = {{ read_only }}
{% include "_begin.ps1" %}
# One folder for the machine's account alone: a folder grant (inherited) and an SMB share; read-only: Read only.
if (-not (Test-Path -LiteralPath $Path -PathType Container)) { throw "Cannot share '$Path': no such folder on the Hyper-V host" }
$principal = "$env:COMPUTERNAME\$Account"
$rights = if ($ReadOnly) { 'ReadAndExecute' } else { 'Modify' }
$acl = Get-Acl -LiteralPath $Path
$acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($principal, $rights, 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
Set-Acl -LiteralPath $Path -AclObject $acl
if ($ReadOnly) {
  $s = New-SmbShare -Name $Name -Path $Path -ReadAccess $principal -Description 'machine: a VM shared folder'
} else {
  $s = New-SmbShare -Name $Name -Path $Path -ChangeAccess $principal -Description 'machine: a VM shared folder'
}
Out-Result @{ Name = $s.Name; Path = $s.Path }
{% include "_end.ps1" %}
