# machine-op: check
{% include "_begin.ps1" %}
$p = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
$r = @{
  user = $p.Identity.Name
  module = [bool](Get-Module -ListAvailable -Name Hyper-V)
  hyperv_admin = $p.IsInRole((New-Object Security.Principal.SecurityIdentifier('S-1-5-32-578')))
  admin = $p.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
  hypervisor = [bool](Get-CimInstance -ClassName Win32_ComputerSystem).HypervisorPresent
  switches = @()
}
if ($r.module -and ($r.hyperv_admin -or $r.admin)) {
  $r.switches = @(Hyper-V\Get-VMSwitch | Select-Object Name, @{n='SwitchType';e={[string]$_.SwitchType}})
}
Out-Result $r
{% include "_end.ps1" %}
