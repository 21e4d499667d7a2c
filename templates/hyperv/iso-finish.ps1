# machine-op: iso-finish
$Path = {{ path }}
$Sha256 = {{ sha256 }}
{% include "_begin.ps1" %}
$part = "$Path.part"
$h = (Get-FileHash -LiteralPath $part -Algorithm SHA256).Hash
if ($h -ne $Sha256) { Remove-Item -LiteralPath $part -Force; throw "sha256 mismatch: $Path.part has $h, expected $Sha256" }
Move-Item -LiteralPath $part -Destination $Path -Force
Out-Result @{ Path = $Path; sha256 = $h.ToLower() }
{% include "_end.ps1" %}
