# machine-op: iso-stream
$Path = {{ path }}
$Offset = {{ offset }}
{% include "_begin.ps1" %}
# Appends the base64 lines that arrive on stdin (WinRM Send) to "$Path.part", which must hold
# exactly $Offset bytes already (as in Ansible's winrm put_file, which streams the same way).
$part = "$Path.part"
if ($Offset -eq 0) { New-Item -ItemType Directory -Force -Path (Split-Path -Parent $part) | Out-Null; [IO.File]::WriteAllBytes($part, [byte[]]@()) }
$size = (Get-Item -LiteralPath $part).Length
if ($size -ne $Offset) { Out-Result @{ size = $size; written = 0 }; return }
$f = [IO.File]::Open($part, 'Append', 'Write')
$n = 0
try {
  foreach ($line in $input) {
    if ($line) { $b = [Convert]::FromBase64String($line); $f.Write($b, 0, $b.Length); $n += $b.Length }
  }
} finally { $f.Close() }
Out-Result @{ size = $Offset + $n; written = $n }
{% include "_end.ps1" %}
