# machine-op: iso-download
$Url = {{ url }}
$Path = {{ path }}
$Sha256 = {{ sha256 }}
{% include "_begin.ps1" %}
$part = "$Path.part"
New-Item -ItemType Directory -Force -Path (Split-Path -Parent $Path) | Out-Null
[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
Invoke-WebRequest -Uri $Url -OutFile $part -UseBasicParsing
$h = (Get-FileHash -LiteralPath $part -Algorithm SHA256).Hash
if ($h -ne $Sha256) { Remove-Item -LiteralPath $part -Force; throw "sha256 mismatch: the download of $Url has $h, expected $Sha256" }
Move-Item -LiteralPath $part -Destination $Path -Force
Out-Result @{ Path = $Path; sha256 = $h.ToLower() }
{% include "_end.ps1" %}
