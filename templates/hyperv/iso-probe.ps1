# machine-op: iso-probe
$Path = {{ path }}
$Sha256 = {{ sha256 }}
{% include "_begin.ps1" %}
$r = @{ Path = $Path; present = $false; part_size = 0 }
if (Test-Path -LiteralPath $Path) { $r.present = ((Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash -eq $Sha256) }
if (Test-Path -LiteralPath "$Path.part") { $r.part_size = (Get-Item -LiteralPath "$Path.part").Length }
Out-Result $r
{% include "_end.ps1" %}
