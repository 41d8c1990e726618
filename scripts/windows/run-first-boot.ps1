# Runs the first-boot script imagefactory passed as custom data: once per VM, and again
# after a reimage or an automatic OS image upgrade (both run the extensions anew).
#
# Azure writes custom data to %SYSTEMDRIVE%\AzureData\CustomData.bin and does not run it
# ("Custom data and cloud-init on Azure Virtual Machines",
# https://learn.microsoft.com/azure/virtual-machines/custom-data). The Custom Script
# Extension runs this loader as LocalSystem; a failure fails the extension, so the VM or
# scale set instance reports it (and a rolling upgrade stops on it).
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$path = Join-Path -Path $env:SystemDrive -ChildPath 'AzureData\CustomData.bin'
if (-not (Test-Path -LiteralPath $path)) {
    throw "No custom data at ${path}: this VM was created without a first-boot script"
}
# The file holds the script's bytes as written (UTF-8); no copy is left on disk.
$text = [System.IO.File]::ReadAllText($path, [System.Text.Encoding]::UTF8)
& ([scriptblock]::Create($text))
