# Secret audit before generalization: looks for credentials and histories left
# by the build in user profiles (including SYSTEM's, which Run Command uses).
# Prints one line per finding, naming the path, then a summary line.
# Exit code 1 when anything is found, 0 when clean. Changes nothing, so it is
# safe to run again. No param() block: Run Command prepends $env: lines.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$privateKeyNames = @('id_rsa', 'id_dsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk')
$keyContainerExtensions = @('.pfx', '.p12')
$pemExtensions = @('.pem', '.key')
$tokenCacheNames = @('msal_token_cache.json', 'msal_token_cache.bin', 'accessTokens.json', 'TokenCache.dat', 'msal.cache')
$cloudCredentialDirs = @('.azure', '.aws')
$historyRelative = 'AppData\Roaming\Microsoft\Windows\PowerShell\PSReadLine\ConsoleHost_history.txt'
# A .env line assigning a value to something named like a secret.
$envSecretPattern = '^\s*(export\s+)?[A-Za-z0-9_]*(SECRET|TOKEN|PASSWORD|PASSWD|PWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|CONNECTION_STRING|CLIENT_SECRET|SAS)[A-Za-z0-9_]*\s*=\s*\S'

$findings = New-Object System.Collections.Generic.List[string]

function Add-Finding {
    param([string]$Path, [string]$Reason)
    $findings.Add("finding: $Path ($Reason)")
}

# Every real user profile, plus SYSTEM's profile (Win32_UserProfile marks it
# special, but Run Command scripts run as SYSTEM and write there).
$profileRoots = @(
    Get-CimInstance -ClassName Win32_UserProfile |
        Where-Object { -not $_.Special } |
        ForEach-Object { $_.LocalPath }
)
$profileRoots += Join-Path $env:SystemRoot 'System32\config\systemprofile'
$profileRoots = @($profileRoots | Where-Object { Test-Path -LiteralPath $_ } | Sort-Object -Unique)
Write-Output "audit: checking $($profileRoots.Count) profiles"

foreach ($root in $profileRoots) {
    foreach ($dirName in $cloudCredentialDirs) {
        $dir = Join-Path $root $dirName
        if (Test-Path -LiteralPath $dir) {
            Add-Finding -Path $dir -Reason 'cloud CLI credential folder'
        }
    }

    $history = Join-Path $root $historyRelative
    if (Test-Path -LiteralPath $history) {
        Add-Finding -Path $history -Reason 'PowerShell command history'
    }

    $files = @(Get-ChildItem -LiteralPath $root -Recurse -Force -File -ErrorAction SilentlyContinue)
    foreach ($file in $files) {
        $name = $file.Name
        $extension = $file.Extension.ToLowerInvariant()
        if ($privateKeyNames -contains $name) {
            Add-Finding -Path $file.FullName -Reason 'SSH private key'
        } elseif ($keyContainerExtensions -contains $extension) {
            Add-Finding -Path $file.FullName -Reason 'certificate container with a private key'
        } elseif ($pemExtensions -contains $extension -and $file.Length -lt 1MB) {
            if (Select-String -LiteralPath $file.FullName -Pattern 'PRIVATE KEY-----' -SimpleMatch -Quiet -ErrorAction SilentlyContinue) {
                Add-Finding -Path $file.FullName -Reason 'PEM private key'
            }
        } elseif ($tokenCacheNames -contains $name) {
            Add-Finding -Path $file.FullName -Reason 'token cache'
        } elseif (($name -eq '.env' -or $name.StartsWith('.env.')) -and $file.Length -lt 1MB) {
            if (Select-String -LiteralPath $file.FullName -Pattern $envSecretPattern -Quiet -ErrorAction SilentlyContinue) {
                Add-Finding -Path $file.FullName -Reason '.env file assigning a secret'
            }
        }
    }
}

foreach ($line in $findings) {
    Write-Output $line
}
if ($findings.Count -gt 0) {
    Write-Output "audit: $($findings.Count) findings; remove them before generalizing"
    exit 1
}
Write-Output 'audit: clean'
exit 0
