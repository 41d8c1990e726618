# Installs IIS, writes a default page naming the image, and applies basic hardening.
# Runs through Azure managed Run Command as SYSTEM, after a header of $env: assignments
# (IMAGE_NAME, IMAGE_VERSION, ...). That header is why there is no param() block:
# param() must be the first statement of a script. Safe to run again: every step
# checks the current state first and prints one line saying what it did.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Get-RequiredEnv {
    param([string]$Name)
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrWhiteSpace($value)) {
        throw "Required environment variable $Name is not set (the Run Command header must set it)."
    }
    return $value
}

function Set-RegistryDword {
    param([string]$Path, [string]$Name, [int]$Value)
    if (-not (Test-Path -LiteralPath $Path)) {
        New-Item -Path $Path -Force | Out-Null
    }
    $current = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -ne $current -and $current.$Name -eq $Value) {
        return $false
    }
    New-ItemProperty -LiteralPath $Path -Name $Name -PropertyType DWord -Value $Value -Force | Out-Null
    return $true
}

$imageName = Get-RequiredEnv -Name 'IMAGE_NAME'
$imageVersion = Get-RequiredEnv -Name 'IMAGE_VERSION'

# Step 1: IIS web server role only; the management tools (IIS Manager) stay off.
$feature = Get-WindowsFeature -Name 'Web-Server'
if ($feature.Installed) {
    Write-Output 'iis: Web-Server already installed'
} else {
    $result = Install-WindowsFeature -Name 'Web-Server'
    if (-not $result.Success) {
        throw "iis: installing Web-Server failed (exit code $($result.ExitCode))"
    }
    Write-Output "iis: Web-Server installed (restart needed: $($result.RestartNeeded))"
}

# Step 2: a default page saying which image this VM came from. index.html comes
# before iisstart.htm in IIS's default document list, so it is what / serves.
$encodedName = [System.Net.WebUtility]::HtmlEncode($imageName)
$encodedVersion = [System.Net.WebUtility]::HtmlEncode($imageVersion)
$page = @"
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>$encodedName $encodedVersion</title></head>
<body><h1>$encodedName</h1><p>Image version $encodedVersion</p></body>
</html>
"@
$pagePath = Join-Path $env:SystemDrive 'inetpub\wwwroot\index.html'
$existing = $null
if (Test-Path -LiteralPath $pagePath) {
    $existing = [System.IO.File]::ReadAllText($pagePath)
}
if ($existing -eq $page) {
    Write-Output "iis: default page already shows $imageName $imageVersion"
} else {
    [System.IO.File]::WriteAllText($pagePath, $page, (New-Object System.Text.UTF8Encoding $false))
    Write-Output "iis: default page written for $imageName $imageVersion at $pagePath"
}

# Step 3: SMBv1 off on the server side. Windows Server 2022 ships without the
# SMB1 feature; this makes sure the protocol stays disabled either way.
$smb = Get-SmbServerConfiguration
if ($smb.EnableSMB1Protocol) {
    Set-SmbServerConfiguration -EnableSMB1Protocol $false -Force
    Write-Output 'hardening: SMBv1 server protocol disabled'
} else {
    Write-Output 'hardening: SMBv1 server protocol already disabled'
}

# Step 4: TLS 1.0 and 1.1 off for SChannel, server and client side. TLS 1.2 and
# 1.3 are untouched (on by default). Takes effect for new processes and fully
# after the next boot, which every VM made from this image has.
$schannel = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols'
$changed = 0
foreach ($protocol in @('TLS 1.0', 'TLS 1.1')) {
    foreach ($side in @('Server', 'Client')) {
        $key = Join-Path $schannel "$protocol\$side"
        if (Set-RegistryDword -Path $key -Name 'Enabled' -Value 0) { $changed++ }
        if (Set-RegistryDword -Path $key -Name 'DisabledByDefault' -Value 1) { $changed++ }
    }
}
if ($changed -gt 0) {
    Write-Output "hardening: TLS 1.0 and 1.1 disabled ($changed registry values set)"
} else {
    Write-Output 'hardening: TLS 1.0 and 1.1 already disabled'
}
