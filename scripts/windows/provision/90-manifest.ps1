# Writes the image manifest: what this image is, what it was built from, and
# what is installed in it. Runs last among the provisioning scripts, through
# Azure managed Run Command as SYSTEM, after a header of $env: assignments; so
# no param() block (it would have to be the first statement). Safe to run
# again: it rewrites the whole file.
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

# Uninstall entries are loosely shaped; under StrictMode reading a missing
# property throws, so look properties up by name.
function Get-PropertyOrNull {
    param($Object, [string]$Name)
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $null
    }
    return $property.Value
}

$imageName = Get-RequiredEnv -Name 'IMAGE_NAME'
$imageVersion = Get-RequiredEnv -Name 'IMAGE_VERSION'
$baseImage = Get-RequiredEnv -Name 'BASE_IMAGE'

# Step 1: installed Windows features (roles, role services and features).
$features = @(Get-WindowsFeature | Where-Object { $_.Installed } | ForEach-Object { $_.Name } | Sort-Object)
Write-Output "manifest: $($features.Count) installed Windows features"

# Step 2: installed programs, 64-bit and 32-bit Uninstall keys.
$uninstallKeys = @(
    'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
    'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
)
$programs = @(
    Get-ItemProperty -Path $uninstallKeys -ErrorAction SilentlyContinue |
        ForEach-Object {
            $name = Get-PropertyOrNull -Object $_ -Name 'DisplayName'
            if (-not [string]::IsNullOrWhiteSpace($name)) {
                [pscustomobject]@{
                    name    = $name.Trim()
                    version = Get-PropertyOrNull -Object $_ -Name 'DisplayVersion'
                }
            }
        } |
        Sort-Object -Property name, version -Unique
)
Write-Output "manifest: $($programs.Count) installed programs"

# Step 3: write the manifest as UTF-8 without a byte order mark.
$manifest = [ordered]@{
    image_name       = $imageName
    image_version    = $imageVersion
    build_time_utc   = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    base_image       = $baseImage
    windows_features = $features
    programs         = $programs
}
$manifestDir = Join-Path $env:ProgramData 'ImageFactory'
$manifestPath = Join-Path $manifestDir 'image-manifest.json'
New-Item -ItemType Directory -Path $manifestDir -Force | Out-Null
$json = ConvertTo-Json -InputObject $manifest -Depth 5
[System.IO.File]::WriteAllText($manifestPath, $json, (New-Object System.Text.UTF8Encoding $false))
Write-Output "manifest: written to $manifestPath"
