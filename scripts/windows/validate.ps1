# Validates a VM created from a new image, on that VM, before the image is published to
# anyone: the checks every image must pass. The image's own checks
# (scripts/windows/validate/) run after it, each its own Run Command.
#
# Runs through Azure managed Run Command as SYSTEM on the test VM, after a header of
# $env: assignments (so no param() block). It reads; it changes nothing.
#
# Every check is one JSON line on stdout, the machine-readable result:
#   {"check":"identity.hostname","ok":true,"detail":"..."}
# then {"manifest":{...}} with what the image holds, read from its manifest, and a last
# line {"result":"passed"|"failed","failed":[names]}. A failed check is also written to
# stderr as "validate: FAIL <check>: <detail>", and the script exits 1.
#
# Environment:
#   IMAGE_NAME, IMAGE_VERSION  what the image must say it is (required)
#   EXPECTED_HOSTNAME          the test VM's computer name (required)
#   ADMIN_USERNAME             the test VM's admin account (required)
#   BUILDER_IDENTITY           MachineGuids of the builder, space separated (optional)
#   EXPECT_AGENT               1 (default): the Azure guest agent must run; 0 elsewhere
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$failed = New-Object System.Collections.Generic.List[string]

function Get-RequiredEnv {
    param([string]$Name)
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrWhiteSpace($value)) {
        throw "Required environment variable $Name is not set (the Run Command header must set it)."
    }
    return $value
}

function Write-Check {
    param([string]$Name, [ValidateSet('pass', 'fail', 'skip')][string]$Status, [string]$Detail)
    $ok = $null
    if ($Status -eq 'pass') { $ok = $true }
    if ($Status -eq 'fail') {
        $ok = $false
        $failed.Add($Name)
        [Console]::Error.WriteLine("validate: FAIL ${Name}: $Detail")
    }
    $record = [ordered]@{ check = $Name; ok = $ok; detail = $Detail }
    Write-Output (ConvertTo-Json -InputObject $record -Compress)
}

$imageName = Get-RequiredEnv -Name 'IMAGE_NAME'
$imageVersion = Get-RequiredEnv -Name 'IMAGE_VERSION'
$expectedHost = Get-RequiredEnv -Name 'EXPECTED_HOSTNAME'
$admin = Get-RequiredEnv -Name 'ADMIN_USERNAME'
$builderIds = @(([string][Environment]::GetEnvironmentVariable('BUILDER_IDENTITY')).Split(' ', [StringSplitOptions]::RemoveEmptyEntries))

# Provisioning: Windows setup finished its OOBE pass (sysprep's generalize worked), and
# the guest agent that reported the VM ready to Azure runs.
$stateKey = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State'
$imageState = (Get-ItemProperty -Path $stateKey -Name 'ImageState').ImageState
if ($imageState -eq 'IMAGE_STATE_COMPLETE') {
    Write-Check -Name 'provisioning.setup' -Status pass -Detail $imageState
} else {
    Write-Check -Name 'provisioning.setup' -Status fail -Detail "ImageState is $imageState, not IMAGE_STATE_COMPLETE"
}
if ([Environment]::GetEnvironmentVariable('EXPECT_AGENT') -ne '0') {
    $agent = Get-Service -Name 'WindowsAzureGuestAgent' -ErrorAction SilentlyContinue
    if ($null -ne $agent -and $agent.Status -eq 'Running') {
        Write-Check -Name 'provisioning.agent' -Status pass -Detail 'WindowsAzureGuestAgent running'
    } else {
        Write-Check -Name 'provisioning.agent' -Status fail -Detail 'WindowsAzureGuestAgent is not running'
    }
} else {
    Write-Check -Name 'provisioning.agent' -Status skip -Detail 'EXPECT_AGENT=0: no Azure fabric here'
}

# Identity: this VM's name, a MachineGuid that is not the builder's, an installation
# (the specialize pass) newer than the image's build.
if ($env:COMPUTERNAME -eq $expectedHost) {
    Write-Check -Name 'identity.hostname' -Status pass -Detail $env:COMPUTERNAME
} else {
    Write-Check -Name 'identity.hostname' -Status fail -Detail "computer name is '$($env:COMPUTERNAME)', expected '$expectedHost'"
}
$machineGuid = (Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Cryptography' -Name 'MachineGuid').MachineGuid
if ($builderIds -contains $machineGuid) {
    Write-Check -Name 'identity.machine-guid' -Status fail -Detail "MachineGuid $machineGuid is the builder's"
} else {
    Write-Check -Name 'identity.machine-guid' -Status pass -Detail $machineGuid
}

# Accounts: the admin Azure created, and no other enabled local account with a password.
$user = Get-LocalUser -Name $admin -ErrorAction SilentlyContinue
if ($null -ne $user -and $user.Enabled) {
    Write-Check -Name 'accounts.admin' -Status pass -Detail "$admin enabled"
} else {
    Write-Check -Name 'accounts.admin' -Status fail -Detail "the admin account '$admin' is missing or disabled"
}
$others = @(Get-LocalUser | Where-Object { $_.Enabled -and $_.Name -ne $admin } | ForEach-Object { $_.Name })
if ($others.Count -eq 0) {
    Write-Check -Name 'accounts.no-build-users' -Status pass -Detail "no enabled account but $admin"
} else {
    Write-Check -Name 'accounts.no-build-users' -Status fail -Detail "enabled accounts the image brought: $($others -join ',')"
}

# The manifest names this image; a summary of what it holds goes into the result.
$manifestPath = Join-Path $env:ProgramData 'ImageFactory\image-manifest.json'
$summary = [ordered]@{}
try {
    $manifest = Get-Content -LiteralPath $manifestPath -Raw | ConvertFrom-Json
    Write-Check -Name 'manifest.present' -Status pass -Detail $manifestPath
    $listing = (@($manifest.programs) | ForEach-Object { "$($_.name)=$($_.version)" }) -join "`n"
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $digest = -join ($sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($listing)) | ForEach-Object { $_.ToString('x2') })
    $summary = [ordered]@{
        base_image     = $manifest.base_image
        build_time     = $manifest.build_time_utc
        features       = @($manifest.windows_features).Count
        image_name     = $manifest.image_name
        image_version  = $manifest.image_version
        os             = (Get-CimInstance -ClassName Win32_OperatingSystem).Caption
        packages       = @($manifest.programs).Count
        packagesSha256 = $digest
    }
    if ($manifest.image_name -eq $imageName -and $manifest.image_version -eq $imageVersion) {
        Write-Check -Name 'manifest.names-image' -Status pass -Detail "$imageName $imageVersion"
    } else {
        Write-Check -Name 'manifest.names-image' -Status fail -Detail "the manifest names '$($manifest.image_name) $($manifest.image_version)', expected '$imageName $imageVersion'"
    }
    $installed = (Get-CimInstance -ClassName Win32_OperatingSystem).InstallDate.ToUniversalTime()
    $built = [datetime]::Parse($manifest.build_time_utc).ToUniversalTime()
    if ($installed -gt $built) {
        Write-Check -Name 'identity.installation' -Status pass -Detail "specialized $($installed.ToString('s'))Z, after the build"
    } else {
        Write-Check -Name 'identity.installation' -Status fail -Detail "installed $($installed.ToString('s'))Z, before the image was built: sysprep did not run"
    }
} catch {
    Write-Check -Name 'manifest.present' -Status fail -Detail "${manifestPath}: $($_.Exception.Message)"
}

Write-Output (ConvertTo-Json -InputObject ([ordered]@{ manifest = $summary }) -Compress)
Write-Output (ConvertTo-Json -InputObject ([ordered]@{
            result = $(if ($failed.Count) { 'failed' } else { 'passed' })
            failed = @($failed)
        }) -Compress)
if ($failed.Count) {
    [Console]::Error.WriteLine("validate: $($failed.Count) check(s) failed: $($failed -join ' ')")
    exit 1
}
