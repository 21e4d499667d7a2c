# machine-op: stop-vm
$Name = {{ name }}
$TurnOff = {{ turn_off }}
{% include "_begin.ps1" %}
if ($TurnOff) { Hyper-V\Stop-VM -Name $Name -TurnOff -Force -Confirm:$false }
else { Hyper-V\Stop-VM -Name $Name -Force -Confirm:$false }
Out-Result (Hyper-V\Get-VM -Name $Name | Select-Object -First 1 Name, @{n='State';e={[string]$_.State}})
{% include "_end.ps1" %}
