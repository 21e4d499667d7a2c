# A WinRM HTTPS listener (5986) with a self-signed certificate; tests connect with certificate
# validation pinned to this certificate (exported to C:\vagrant-share\winrm-cert.cer when the synced folder exists).
$ErrorActionPreference = "Stop"
$names = @($env:COMPUTERNAME, "localhost")
$cert = Get-ChildItem Cert:\LocalMachine\My | Where-Object { $_.Subject -eq "CN=$($env:COMPUTERNAME)" } |
    Select-Object -First 1
if (-not $cert) {
    $cert = New-SelfSignedCertificate -DnsName $names -CertStoreLocation Cert:\LocalMachine\My `
        -KeyExportPolicy NonExportable -NotAfter (Get-Date).AddYears(2)
}
Get-ChildItem WSMan:\localhost\Listener | Where-Object { $_.Keys -contains "Transport=HTTPS" } |
    Remove-Item -Recurse -Force
New-Item -Path WSMan:\localhost\Listener -Transport HTTPS -Address * -CertificateThumbPrint $cert.Thumbprint `
    -Force | Out-Null
Set-Item WSMan:\localhost\Service\Auth\Basic -Value $false
Set-Item WSMan:\localhost\Service\AllowUnencrypted -Value $false
if (-not (Get-NetFirewallRule -Name "machine-winrm-https" -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name "machine-winrm-https" -DisplayName "WinRM HTTPS (machine tests)" -Direction Inbound `
        -LocalPort 5986 -Protocol TCP -Action Allow | Out-Null
}
if (Test-Path C:\vagrant) { Export-Certificate -Cert $cert -FilePath C:\vagrant\winrm-cert.cer | Out-Null }
Write-Output "WinRM HTTPS listener on 5986, certificate $($cert.Thumbprint)"
