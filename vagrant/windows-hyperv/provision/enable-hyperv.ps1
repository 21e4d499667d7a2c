# Enable the Hyper-V role and its PowerShell module (the provisioner reboots afterwards).
$ErrorActionPreference = "Stop"
$feature = Get-WindowsFeature -Name Hyper-V
if ($feature.InstallState -ne "Installed") {
    Install-WindowsFeature -Name Hyper-V -IncludeManagementTools | Out-Null
    Write-Output "Hyper-V role installed; rebooting."
} else {
    Write-Output "Hyper-V role already installed."
}
Install-WindowsFeature -Name Hyper-V-PowerShell | Out-Null
