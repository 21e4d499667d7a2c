# machine-op: remove-vm
$Name = {{ name }}
$Dir = {{ dir }}
{% include "_begin.ps1" %}
# Only the VM whose files are in our folder: never a same-named VM someone else made.
$vm = @(Hyper-V\Get-VM -Name $Name -ErrorAction SilentlyContinue) | Where-Object { $Dir -and $_.Path.StartsWith($Dir, [StringComparison]::OrdinalIgnoreCase) } | Select-Object -First 1
$removed = $false
if ($vm) {
  if ([string]$vm.State -ne 'Off') { Hyper-V\Stop-VM -VM $vm -TurnOff -Force -Confirm:$false }
  Hyper-V\Remove-VM -VM $vm -Force
  $removed = $true
}
# Only a folder this tool made (it holds machine.json) is deleted: VHDX, ISO copies, VM config.
$deleted = $false
if ($Dir -and (Test-Path -LiteralPath (Join-Path $Dir 'machine.json'))) {
  Remove-Item -LiteralPath $Dir -Recurse -Force
  $deleted = $true
}
Out-Result @{ Name = $Name; removed = $removed; deleted = $deleted }
{% include "_end.ps1" %}
