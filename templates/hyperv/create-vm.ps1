# machine-op: create-vm
$Name = {{ name }}
$Dir = {{ dir }}
$BootIso = {{ boot_iso }}
$SeedIso = {{ seed_iso }}
$DiskBytes = {{ disk_bytes }}
$MemoryBytes = {{ memory_bytes }}
$Cpus = {{ cpus }}
$Switch = {{ switch }}
$VlanId = {{ vlan_id }}
$Pipe = {{ pipe }}
{% include "_begin.ps1" %}
$old = Hyper-V\Get-VM -Name $Name -ErrorAction SilentlyContinue | Select-Object -First 1
if ($old) { Out-Result @{ Name = $Name; created = $false; Path = $old.Path }; return }
$vhd = Join-Path $Dir 'disk.vhdx'
$iso = Join-Path $Dir 'boot.iso'
$seed = Join-Path $Dir 'seed.iso'
Copy-Item -LiteralPath $BootIso -Destination $iso -Force
if ($SeedIso -ne $seed) { Copy-Item -LiteralPath $SeedIso -Destination $seed -Force }
if (-not (Test-Path -LiteralPath $vhd)) { Hyper-V\New-VHD -Path $vhd -SizeBytes $DiskBytes -Dynamic | Out-Null }
$vm = Hyper-V\New-VM -Name $Name -Path $Dir -Generation 1 -MemoryStartupBytes $MemoryBytes -VHDPath $vhd -SwitchName $Switch
Hyper-V\Set-VMMemory -VM $vm -DynamicMemoryEnabled $false
Hyper-V\Set-VMProcessor -VM $vm -Count $Cpus
Hyper-V\Set-VMDvdDrive -VMName $Name -ControllerNumber 1 -ControllerLocation 0 -Path $iso
Hyper-V\Add-VMDvdDrive -VMName $Name -ControllerNumber 1 -ControllerLocation 1 -Path $seed
Hyper-V\Set-VMBios -VM $vm -StartupOrder @('CD', 'IDE', 'LegacyNetworkAdapter', 'Floppy')
Hyper-V\Set-VMComPort -VM $vm -Number 1 -Path $Pipe
if ($VlanId -gt 0) { Hyper-V\Set-VMNetworkAdapterVlan -VM $vm -Access -VlanId $VlanId }
Out-Result @{ Name = $Name; created = $true; Path = $vm.Path }
{% include "_end.ps1" %}
