# The user the hyperv driver tests log in as: a member of Hyper-V Administrators (manages VMs without
# full admin rights) and Remote Management Users (may use WinRM). Password from MACHINE_TEST_PASSWORD.
$ErrorActionPreference = "Stop"
$name = "machine-test"
$password = ConvertTo-SecureString $env:MACHINE_TEST_PASSWORD -AsPlainText -Force
if (Get-LocalUser -Name $name -ErrorAction SilentlyContinue) {
    Set-LocalUser -Name $name -Password $password
} else {
    New-LocalUser -Name $name -Password $password -PasswordNeverExpires -Description "machine hyperv tests" | Out-Null
}
foreach ($group in @("Hyper-V Administrators", "Remote Management Users")) {
    if (-not (Get-LocalGroupMember -Group $group -Member $name -ErrorAction SilentlyContinue)) {
        Add-LocalGroupMember -Group $group -Member $name
    }
}
# Hyper-V Administrators may not write the default VM folder on every build: give the user a VM root.
New-Item -ItemType Directory -Force -Path C:\machine-vms | Out-Null
icacls C:\machine-vms /grant "${name}:(OI)(CI)F" | Out-Null
Write-Output "User $name is in Hyper-V Administrators and Remote Management Users; VM folder C:\machine-vms"
