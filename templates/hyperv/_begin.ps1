# machine-params-end
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Out-Result($o) { Write-Output ('##machine-json-begin##' + (ConvertTo-Json -InputObject $o -Depth 5 -Compress) + '##machine-json-end##') }
try {
