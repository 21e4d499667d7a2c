# This machine's earlier shares (their names start with $Prefix) go, with the folder grants of $Account.
$principal = "$env:COMPUTERNAME\$Account"
$removed = @()
foreach ($old in @(Get-SmbShare | Where-Object { $_.Name.StartsWith($Prefix, [StringComparison]::OrdinalIgnoreCase) })) {
  if (Test-Path -LiteralPath $old.Path) {
    $acl = Get-Acl -LiteralPath $old.Path
    $acl.PurgeAccessRules([System.Security.Principal.NTAccount]$principal)
    Set-Acl -LiteralPath $old.Path -AclObject $acl
  }
  Remove-SmbShare -Name $old.Name -Force
  $removed += $old.Name
}
