# machine-op: save-vm
$Name = {{ name }}
{% include "_begin.ps1" %}
Hyper-V\Save-VM -Name $Name
Out-Result (Hyper-V\Get-VM -Name $Name | Select-Object -First 1 Name, @{n='State';e={[string]$_.State}})
{% include "_end.ps1" %}
