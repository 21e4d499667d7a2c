# machine-op: iso-chunk
$Path = {{ path }}
$Offset = {{ offset }}
$Data = {{ data }}
{% include "_begin.ps1" %}
$part = "$Path.part"
if ($Offset -eq 0) { New-Item -ItemType Directory -Force -Path (Split-Path -Parent $part) | Out-Null; [IO.File]::WriteAllBytes($part, [byte[]]@()) }
$size = (Get-Item -LiteralPath $part).Length
if ($size -ne $Offset) { Out-Result @{ size = $size; written = 0 }; return }
$b = [Convert]::FromBase64String($Data)
$f = [IO.File]::Open($part, 'Append', 'Write')
try { $f.Write($b, 0, $b.Length) } finally { $f.Close() }
Out-Result @{ size = $Offset + $b.Length; written = $b.Length }
{% include "_end.ps1" %}
