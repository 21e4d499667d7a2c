# machine-op: vm-state
$Name = {{ name }}
{% include "_begin.ps1" %}
$vm = Hyper-V\Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { Out-Result @{ Name = $Name; State = 'NotFound' } }
else { Out-Result ($vm | Select-Object -First 1 Name, @{n='State';e={[string]$_.State}}, @{n='Status';e={[string]$_.Status}}, Path) }
{% include "_end.ps1" %}
