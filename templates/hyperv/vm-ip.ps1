# machine-op: vm-ip
$Name = {{ name }}
{% include "_begin.ps1" %}
$nic = @(Hyper-V\Get-VMNetworkAdapter -VMName $Name) | Select-Object -First 1
Out-Result @{ Name = $Name; IPAddresses = @($nic.IPAddresses) }
{% include "_end.ps1" %}
