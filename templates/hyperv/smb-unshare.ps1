# machine-op: smb-unshare
$Account = {{ account }}
$Prefix = {{ prefix }}
{% include "_begin.ps1" %}
# Only this machine's shares (their names start with its prefix) and its own local account.
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
$user = $false
if (Get-LocalUser -Name $Account -ErrorAction SilentlyContinue) {
  Remove-LocalUser -Name $Account
  $user = $true
}
Out-Result @{ removed = $removed; account_removed = $user }
{% include "_end.ps1" %}
