# Generalizes the builder VM in the guest: removes build-time secrets and
# histories, waits for the Azure guest agent to be steady, runs Sysprep, waits
# for Windows to record that generalization finished, then shuts the VM down.
#
# It removes only what is always build residue: histories and cloud CLI folders of
# every profile, the SYSTEM profile's tool credentials (Run Command runs as SYSTEM),
# Azure's provisioning data (C:\AzureData, Panther), the Azure agent's transport
# certificate, autologon of a build account, and the build accounts. What it cannot
# judge (an application's certificate or connection string) audit.ps1 reports first,
# and the build fails there.
#
# Runs through Azure managed Run Command as SYSTEM, after a header of $env:
# assignments, so there is no param() block (it would have to be the first
# statement). Environment:
#   BUILD_USERS              required; comma-separated local accounts used only by the build
#   SYSPREP_TIMEOUT_SECONDS  optional; how long to wait for Sysprep, default 1800
# Safe to run again: if the image is already generalized it goes straight to
# the shutdown step.
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

# ImageState values: "Windows Setup States",
# https://learn.microsoft.com/windows-hardware/manufacture/desktop/windows-setup-states
$stateKey = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State'
$generalizedState = 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE'
$stillSpecializedState = 'IMAGE_STATE_SPECIALIZE_RESEAL_TO_OOBE'
$undeployableState = 'IMAGE_STATE_UNDEPLOYABLE'

function Get-ImageState {
    $item = Get-ItemProperty -LiteralPath $stateKey -Name 'ImageState' -ErrorAction SilentlyContinue
    if ($null -eq $item) {
        return '(no ImageState value)'
    }
    return [string]$item.ImageState
}

$pantherDir = Join-Path $env:SystemRoot 'System32\Sysprep\Panther'
$logTailLines = 40

function Get-LogTail {
    param([string]$Name)
    $path = Join-Path $pantherDir $Name
    if (-not (Test-Path -LiteralPath $path)) {
        return "--- ${path}: not found"
    }
    $tail = @(Get-Content -LiteralPath $path -Tail $logTailLines -ErrorAction SilentlyContinue)
    return "--- last $($tail.Count) lines of $path`n" + ($tail -join "`n")
}

function Stop-WithSysprepLogs {
    param([string]$Reason)
    $state = Get-ImageState
    $hint = ''
    if ($state -eq $stillSpecializedState) {
        $hint = ' Windows is still specialized: the generalize pass did not run or did not finish.'
    } elseif ($state -eq $undeployableState) {
        $hint = ' A Setup pass is still running or failed; this VM cannot be captured and must be rebuilt.'
    }
    $message = "generalize: $Reason ImageState is $state.$hint`n" +
        (Get-LogTail -Name 'setupact.log') + "`n" +
        (Get-LogTail -Name 'setuperr.log')
    throw $message
}

$buildUsers = @(
    (Get-RequiredEnv -Name 'BUILD_USERS').Split(',') |
        ForEach-Object { $_.Trim() } |
        Where-Object { $_ -ne '' }
)

$timeoutSeconds = 1800
$timeoutText = [Environment]::GetEnvironmentVariable('SYSPREP_TIMEOUT_SECONDS')
if (-not [string]::IsNullOrWhiteSpace($timeoutText)) {
    $parsed = 0
    if (-not [int]::TryParse($timeoutText, [ref]$parsed) -or $parsed -le 0) {
        throw "SYSPREP_TIMEOUT_SECONDS must be a positive whole number of seconds, got '$timeoutText'."
    }
    $timeoutSeconds = $parsed
}

$initialState = Get-ImageState
if ($initialState -eq $generalizedState) {
    Write-Output "generalize: already generalized ($generalizedState); skipping cleanup and Sysprep"
} else {
    # Step 1: build-time secrets and histories in every profile, SYSTEM's included.
    $profileRoots = @(
        Get-CimInstance -ClassName Win32_UserProfile |
            Where-Object { -not $_.Special } |
            ForEach-Object { $_.LocalPath }
    )
    $profileRoots += Join-Path $env:SystemRoot 'System32\config\systemprofile'
    $removed = 0
    foreach ($root in $profileRoots) {
        $leftovers = @(
            (Join-Path $root 'AppData\Roaming\Microsoft\Windows\PowerShell\PSReadLine\ConsoleHost_history.txt'),
            (Join-Path $root '.azure'),
            (Join-Path $root '.aws')
        )
        foreach ($path in $leftovers) {
            if (Test-Path -LiteralPath $path) {
                Remove-Item -LiteralPath $path -Recurse -Force
                $removed++
            }
        }
    }
    Write-Output "generalize: removed $removed histories and cloud credential folders"

    # Step 1b: the SYSTEM profile's tool credentials and Credential Manager files, and
    # Azure's provisioning data (custom data may hold secrets; Panther goes in step 5).
    $systemProfile = Join-Path $env:SystemRoot 'System32\config\systemprofile'
    $systemLeftovers = @(
        '.docker', '.kube', '.git-credentials', '.netrc', '_netrc', '.npmrc', '.pypirc',
        '.vault-token', '.config', 'AppData\Roaming\Microsoft\Credentials',
        'AppData\Local\Microsoft\Credentials'
    )
    $removed = 0
    foreach ($name in $systemLeftovers) {
        $path = Join-Path $systemProfile $name
        if (Test-Path -LiteralPath $path) {
            Remove-Item -LiteralPath $path -Recurse -Force
            $removed++
        }
    }
    $azureData = Join-Path $env:SystemDrive 'AzureData'
    if (Test-Path -LiteralPath $azureData) {
        Remove-Item -LiteralPath $azureData -Recurse -Force
        $removed++
    }
    Write-Output "generalize: removed $removed SYSTEM profile credentials and Azure provisioning data"

    # Step 1c: the Azure guest agent's transport certificate (its private key is the
    # builder's; the agent makes a new one on every VM).
    $agentCerts = @(
        Get-ChildItem -LiteralPath 'Cert:\LocalMachine\My' |
            Where-Object { $_.Issuer -eq 'CN=Windows Azure CRP Certificate Generator' }
    )
    foreach ($cert in $agentCerts) {
        Remove-Item -LiteralPath "Cert:\LocalMachine\My\$($cert.Thumbprint)" -DeleteKey
    }
    Write-Output "generalize: removed $($agentCerts.Count) Azure agent transport certificates"

    # Step 1d: autologon as a build account (its password is in the registry).
    $winlogon = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon'
    $logon = Get-ItemProperty -LiteralPath $winlogon
    $logonNames = @($logon.PSObject.Properties | ForEach-Object { $_.Name })
    if ($logonNames -contains 'DefaultUserName' -and $buildUsers -contains [string]$logon.DefaultUserName) {
        Remove-ItemProperty -LiteralPath $winlogon -Name 'DefaultPassword' -ErrorAction SilentlyContinue
        Set-ItemProperty -LiteralPath $winlogon -Name 'AutoAdminLogon' -Value '0'
        Write-Output "generalize: autologon as build account $($logon.DefaultUserName) turned off, its password removed"
    } else {
        Write-Output 'generalize: no autologon as a build account'
    }

    # Step 2: temporary files. Files in use (Run Command's own, for one) are skipped.
    $tempDirs = @((Join-Path $env:SystemRoot 'Temp'))
    $tempDirs += @($profileRoots | ForEach-Object { Join-Path $_ 'AppData\Local\Temp' })
    foreach ($dir in $tempDirs) {
        if (Test-Path -LiteralPath $dir) {
            Get-ChildItem -LiteralPath $dir -Force -ErrorAction SilentlyContinue |
                Remove-Item -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
    Write-Output "generalize: emptied $($tempDirs.Count) temp folders (files in use left)"

    # Step 3: the build accounts. Sysprep keeps local accounts, so the account
    # Azure created for the build (and its password) would otherwise be in every
    # VM made from the image. Deployments from the image get their own admin.
    # A profile that is loaded (someone logged on) is left; removing it would fail.
    foreach ($user in $buildUsers) {
        $account = Get-LocalUser -Name $user -ErrorAction SilentlyContinue
        if ($null -eq $account) {
            Write-Output "generalize: build account $user already gone"
            continue
        }
        $sid = $account.SID.Value
        if ($sid -match '-500$') {
            # On Azure the admin named at VM creation is the built-in Administrator,
            # renamed; Windows refuses to delete it. Sysprep resets it and Azure's
            # provisioning of each new VM renames it and sets a new password.
            Write-Output "generalize: build account $user is the built-in Administrator; left to Sysprep"
            continue
        }
        $userProfile = Get-CimInstance -ClassName Win32_UserProfile -Filter "SID = '$sid'"
        $profileNote = 'no profile'
        if ($null -ne $userProfile -and $userProfile.Loaded) {
            $profileNote = "profile $($userProfile.LocalPath) left (loaded)"
        } elseif ($null -ne $userProfile) {
            Remove-CimInstance -InputObject $userProfile
            $profileNote = "profile $($userProfile.LocalPath) removed"
        }
        Remove-LocalUser -SID $account.SID
        Write-Output "generalize: build account $user removed, $profileNote"
    }

    # Step 4: the Azure guest agent must not be mid-update: an update stops and
    # restarts its services, and Sysprep racing it can leave the image broken.
    $agentServices = @('WindowsAzureGuestAgent', 'RdAgent')
    $agentDeadline = (Get-Date).AddSeconds(300)
    while ($true) {
        $notRunning = @($agentServices | Where-Object {
                $service = Get-Service -Name $_ -ErrorAction SilentlyContinue
                $null -eq $service -or $service.Status -ne 'Running'
            })
        if ($notRunning.Count -eq 0) {
            break
        }
        if ((Get-Date) -gt $agentDeadline) {
            throw "generalize: Azure guest agent services not running after 300 seconds: $($notRunning -join ', ')"
        }
        Start-Sleep -Seconds 5
    }
    Write-Output "generalize: Azure guest agent steady ($($agentServices -join ', ') running)"

    # Step 5: prerequisites from "Remove machine specific information by
    # deprovisioning or generalizing a VM" (learn.microsoft.com/azure/virtual-machines/generalize):
    # the CD/DVD-ROM driver must be enabled, or VMs from the image stop at OOBE
    # (Azure mounts the provisioning ISO there); and old Panther logs can make
    # Sysprep fail.
    $cdrom = 'HKLM:\SYSTEM\CurrentControlSet\Services\cdrom'
    if ((Get-ItemProperty -LiteralPath $cdrom -Name 'Start').Start -ne 1) {
        Set-ItemProperty -LiteralPath $cdrom -Name 'Start' -Value 1 -Type DWord
    }
    $oldPanther = Join-Path $env:SystemRoot 'Panther'
    if (Test-Path -LiteralPath $oldPanther) {
        Remove-Item -LiteralPath $oldPanther -Recurse -Force
    }
    Write-Output 'generalize: CD-ROM driver enabled, old Panther logs removed'

    # Step 6: Sysprep. /generalize /oobe: strip machine-specific data and boot
    # into OOBE (where Azure provisioning takes over); /mode:vm: skip hardware
    # re-detection, the image only ever runs on Azure VMs; /quit: exit instead
    # of shutting down, so this script can confirm the result and report it;
    # /quiet: no dialog that would wait unseen in session 0 until the timeout.
    # Start-Process rather than the call operator: Sysprep.exe is a GUI program,
    # so & would return at once without an exit code, and the wait below must
    # be bounded by our own timeout.
    $sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\Sysprep.exe'
    $process = Start-Process -FilePath $sysprep -ArgumentList '/generalize /oobe /quit /quiet /mode:vm' -PassThru
    # Reading Handle now keeps it open, so ExitCode is still readable after exit.
    $null = $process.Handle
    Write-Output "generalize: Sysprep started (process $($process.Id)), waiting up to $timeoutSeconds seconds"

    # Step 7: wait for the generalize pass to be recorded.
    $deadline = (Get-Date).AddSeconds($timeoutSeconds)
    while ((Get-ImageState) -ne $generalizedState) {
        if ($process.HasExited -and $process.ExitCode -ne 0) {
            Stop-WithSysprepLogs -Reason "Sysprep exited with code $($process.ExitCode)."
        }
        if ((Get-Date) -gt $deadline) {
            Stop-WithSysprepLogs -Reason "ImageState did not reach $generalizedState within $timeoutSeconds seconds."
        }
        Start-Sleep -Seconds 10
    }
    Write-Output "generalize: ImageState is $generalizedState"
}

# Step 8: stop the VM. With /quit Sysprep leaves it running; the control plane
# waits for "PowerState/stopped" and then deallocates and marks it generalized.
# The shutdown is delayed, not immediate, so this script can exit and Run Command
# can report success before Windows goes down (an immediate shutdown would kill
# the Run Command handler and the run would be reported as failed or never
# finish). /d p:4:1 records it as a planned application maintenance shutdown.
# Exit code 1190 means a shutdown is already scheduled: fine on a re-run.
& shutdown.exe /s /t 60 /d p:4:1 /c 'Image factory: generalized, shutting down for capture'
if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 1190) {
    throw "generalize: shutdown.exe failed with exit code $LASTEXITCODE"
}
Write-Output 'generalize: shutdown scheduled in 60 seconds'
exit 0
