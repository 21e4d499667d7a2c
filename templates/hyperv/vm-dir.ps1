# machine-op: vm-dir
$Name = {{ name }}
$Base = {{ base }}
{% include "_begin.ps1" %}
if (-not $Base) { $Base = (Hyper-V\Get-VMHost).VirtualMachinePath }
$dir = Join-Path (Join-Path $Base 'machine') $Name
New-Item -ItemType Directory -Force -Path $dir | Out-Null
Set-Content -LiteralPath (Join-Path $dir 'machine.json') -Value (ConvertTo-Json -Compress -InputObject @{ name = $Name; tool = 'machine' })
Out-Result @{ dir = $dir; cache = (Join-Path $env:ProgramData 'machine\iso-cache') }
{% include "_end.ps1" %}
