# machine-op: smb-account
$Account = {{ account }}
$Password = {{ password }}
$Prefix = {{ prefix }}
$Switch = {{ switch }}
{% include "_begin.ps1" %}
# The machine's own local account (its password: in the seed only); its earlier shares and folder grants go.
$secure = ConvertTo-SecureString -String $Password -AsPlainText -Force
if (Get-LocalUser -Name $Account -ErrorAction SilentlyContinue) {
  Set-LocalUser -Name $Account -Password $secure
} else {
  $null = New-LocalUser -Name $Account -Password $secure -PasswordNeverExpires -AccountNeverExpires -UserMayNotChangePassword -Description 'machine: shared folders of one VM'
}
{% include "_smb-remove-shares.ps1" %}
# Where the guest reaches the shares: the host's addresses on the VM's switch (its management adapter).
$addresses = @(Get-NetIPAddress -AddressFamily IPv4 -InterfaceAlias "vEthernet ($Switch)" -ErrorAction SilentlyContinue | ForEach-Object { $_.IPAddress })
Out-Result @{ account = $Account; addresses = $addresses }
{% include "_end.ps1" %}
