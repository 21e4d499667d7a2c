# machine-op: smb-unshare
$Account = {{ account }}
$Prefix = {{ prefix }}
{% include "_begin.ps1" %}
# Only this machine's shares and its own local account.
{% include "_smb-remove-shares.ps1" %}
$user = $false
if (Get-LocalUser -Name $Account -ErrorAction SilentlyContinue) {
  Remove-LocalUser -Name $Account
  $user = $true
}
Out-Result @{ removed = $removed; account_removed = $user }
{% include "_end.ps1" %}
