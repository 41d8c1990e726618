# Secret audit of a Windows image before generalization: reads the files of the OS disk
# (outside the Windows folders, which are Windows' own) and the places Windows keeps
# secrets outside files, and names everything that would ship in every VM made from the
# image. Run through Azure managed Run Command as SYSTEM, right before generalize.ps1.
#
# What it looks for, the same kinds as scripts/linux/audit.sh:
#   - private keys by content (PEM, OpenSSH, PuTTY) and key stores by their first bytes
#     (PKCS#12/PFX, Java key stores, DER private keys, KeePass), whatever their name;
#   - known token formats and secret-like assignments in any file (the catalogue below,
#     the same table as audit.sh's: gitleaks v8.30.0's rule ids, detect-secrets 1.5.0's
#     keyword and basic-auth rules), including IIS web.config connection strings;
#   - passwords in unattend files (Panther, Sysprep, autounattend.xml), PowerShell
#     histories, Credential Manager files, cloud CLI credentials and token caches;
#   - autologon passwords in the registry, machine certificates with a private key,
#     local accounts with a password, authorized_keys files, and Administrators members
#     that no longer resolve to an account.
# Files signed by their vendor (a valid Authenticode signature) are the vendor's own and
# are not reported. What generalize.ps1 removes anyway (histories, the SYSTEM profile's
# credentials, the build accounts, the Azure agent's certificate, Panther) is left to it.
#
# Environment: AUDIT_ALLOWLIST (optional): one "PATH<TAB>REASON" a line; a PATH ending in
# "\" covers everything below it. BUILD_USERS (optional): the build accounts.
# Prints the allowlist, one line per finding ("audit: FINDING <path>: <reason> [<rule>]",
# never the secret itself), one per allowlisted finding, then a summary. Exit code 1 when
# anything is found, 0 when clean. Changes nothing, so it is safe to run again. No param()
# block: Run Command prepends $env: lines.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# One rule a line, TAB-separated: id, flags ("i": case-insensitive), reason, regex, and
# "unless" (a match that also matches it is no finding; "-": none). Kept identical to the
# table in scripts/linux/audit.sh (a test compares them).
$catalogue = @'
private-key	i	private key (PEM or OpenSSH)	-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY( BLOCK)?-----	-
putty-private-key	-	private key (PuTTY)	^PuTTY-User-Key-File-[0-9]+:	-
gnupg-private-key	-	private key (GnuPG key file)	\((protected-|shadowed-)?private-key ?\(	-
aws-access-token	-	AWS access key ID	\b(A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b	-
azure-ad-client-secret	-	Azure AD client secret	(^|[^a-zA-Z0-9_~.-])[a-zA-Z0-9_~.]{3}[0-9]Q~[a-zA-Z0-9_~.-]{31,34}($|[^a-zA-Z0-9_~.-])	-
azure-storage-key	-	Azure storage or Service Bus key	(AccountKey|SharedAccessKey)=[a-zA-Z0-9+/]{40,}	-
azure-sas-token	-	Azure shared access signature	sv=[0-9]{4}-[0-9]{2}-[0-9]{2}&.*sig=[a-zA-Z0-9%+/]{30,}	-
github-token	-	GitHub token	\b(ghp|gho|ghu|ghs|ghr)_[0-9a-zA-Z]{36}\b	-
github-fine-grained-pat	-	GitHub fine-grained token	\bgithub_pat_[0-9a-zA-Z_]{82}\b	-
gitlab-pat	-	GitLab token	\bglpat-[0-9a-zA-Z_-]{20}	-
npm-access-token	i	npm access token	\bnpm_[a-z0-9]{36}\b	-
pypi-upload-token	-	PyPI upload token	pypi-AgEIcHlwaS5vcmc[0-9a-zA-Z_-]{50,}	-
slack-token	-	Slack token	\bxox[abeoprs]-[0-9]{6,13}-[0-9a-zA-Z-]{6,}	-
slack-app-token	i	Slack app token	\bxapp-[0-9]-[a-z0-9]+-[0-9]+-[a-z0-9]+	-
slack-webhook-url	-	Slack webhook URL	hooks\.slack\.com/(services|workflows|triggers)/[a-zA-Z0-9+/]{43,56}	-
jwt	-	JSON Web Token	\bey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9/_-]{17,}\.	-
gcp-api-key	-	Google API key	\bAIza[0-9a-zA-Z_-]{35}	-
stripe-access-token	-	Stripe key	\b(sk|rk)_(test|live|prod)_[a-zA-Z0-9]{10,99}	-
sendgrid-api-token	-	SendGrid API key	\bSG\.[a-zA-Z0-9=_.-]{66}	-
twilio-api-key	-	Twilio API key	\bSK[0-9a-fA-F]{32}\b	-
vault-service-token	-	HashiCorp Vault token	\bhvs\.[a-zA-Z0-9_-]{90,120}	-
hashicorp-tf-api-token	i	Terraform Cloud token	[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}	-
digitalocean-pat	-	DigitalOcean token	\bdop_v1_[a-f0-9]{64}	-
openai-api-key	-	OpenAI API key	\bsk-[a-zA-Z0-9_-]{20,}T3BlbkFJ	-
anthropic-api-key	-	Anthropic API key	\bsk-ant-(api03|admin01)-[a-zA-Z0-9_-]{93}AA	-
huggingface-access-token	-	Hugging Face token	\bhf_[a-zA-Z]{34}\b	-
age-secret-key	-	age secret key	AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}	-
databricks-api-token	-	Databricks token	\bdapi[a-f0-9]{32}	-
grafana-service-account-token	-	Grafana service account token	\bglsa_[a-zA-Z0-9]{32}_[a-fA-F0-9]{8}	-
shopify-access-token	-	Shopify token	\bshp(at|ca|pa|ss)_[a-fA-F0-9]{32}	-
url-credentials	-	credentials in a URL (user:secret@host)	[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:'" <>]+:[^/?#@'" <>]+@[^/?#@'" <>]	://[^/?#@:'" <>]*:(\$|\{|%s@|%\(|\*+@|<)
connection-string-password	i	connection string with a password	(server|data source|host|address|addr)\s*=[^;]*;.*(password|pwd)\s*=\s*[^;"' $]	-
xml-password	i	password in an XML element or NuGet setting	(<(password|passwd|secret|token|cleartextpassword)>[^<$ ]{3,}<|key="[^"]*(password|secret|token)[^"]*"\s+value="[^"$]{3,}")	-
npmrc-auth	i	npm registry credentials (.npmrc)	(^|:)_(auth|authtoken|password)\s*=\s*[^ "'$]	-
keyword-assignment	i	secret-like assignment	(passw(or)?d|passphrase|secret|token|api[_.-]?key|access[_.-]?key|private[_.-]?key|client[_.-]?secret|credentials?|auth[_.-]?key|account[_.-]?key|sas[_.-]?key|psk|pwd)[a-z0-9_-]*(["']?\s*(=|:=|=>)\s*["']?|["']\s*:\s*["']?|\s*:\s+["']?)[^ "'$<{%*(#;,&|/\\`][^ "';,]{2,}	(=|:)\s*["']?((true|false|yes|no|none|null|nil|undefined|required|optional|disabled|enabled|on|off|[0-9]{1,5})["']?\s*$|[a-z][a-z0-9+.-]*://)|^(passwd|shadow|gshadow)\s*:\s*(files|compat|systemd|sss|ldap|nis|winbind|db|all)
'@

$maxContentBytes = 64MB
$latin1 = [System.Text.Encoding]::GetEncoding(28591)
$rules = @(
    foreach ($line in ($catalogue -split "`r?`n")) {
        if ($line -eq '') { continue }
        $fields = $line.Split("`t")
        $options = [System.Text.RegularExpressions.RegexOptions]::CultureInvariant
        if ($fields[1] -eq 'i') {
            $options = $options -bor [System.Text.RegularExpressions.RegexOptions]::IgnoreCase
        }
        $unless = $null
        if ($fields[4] -ne '-') {
            $unless = [regex]::new($fields[4], $options -bor [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
        }
        [pscustomobject]@{
            Id     = $fields[0]
            Reason = $fields[2]
            Regex  = [regex]::new($fields[3], $options -bor [System.Text.RegularExpressions.RegexOptions]::Multiline)
            Unless = $unless
        }
    }
)

# --- allowlist and findings --------------------------------------------------------------

$allowlist = @()
$allowText = [Environment]::GetEnvironmentVariable('AUDIT_ALLOWLIST')
if (-not [string]::IsNullOrWhiteSpace($allowText)) {
    $allowlist = @(
        foreach ($line in ($allowText -split "`r?`n")) {
            if ([string]::IsNullOrWhiteSpace($line)) { continue }
            $tab = $line.IndexOf("`t")
            if ($tab -lt 1) {
                throw "audit: allowlist entry '$line' has no TAB between path and reason"
            }
            [pscustomobject]@{ Path = $line.Substring(0, $tab); Reason = $line.Substring($tab + 1); Used = $false }
        }
    )
}
foreach ($entry in $allowlist) {
    Write-Output "audit: allowlist: $($entry.Path) ($($entry.Reason))"
}

$buildUsers = @()
$buildUsersText = [Environment]::GetEnvironmentVariable('BUILD_USERS')
if (-not [string]::IsNullOrWhiteSpace($buildUsersText)) {
    $buildUsers = @($buildUsersText.Split(',') | ForEach-Object { $_.Trim() } | Where-Object { $_ -ne '' })
}

$findings = New-Object 'System.Collections.Generic.SortedDictionary[string,System.Collections.Generic.List[string]]' ([System.StringComparer]::OrdinalIgnoreCase)

function Add-Finding {
    param([string]$Path, [string]$Reason)
    if (-not $findings.ContainsKey($Path)) {
        $findings[$Path] = New-Object System.Collections.Generic.List[string]
    }
    if (-not $findings[$Path].Contains($Reason)) {
        $findings[$Path].Add($Reason)
    }
}

# --- scope -------------------------------------------------------------------------------

$systemRoot = $env:SystemRoot
$drive = $env:SystemDrive + '\'
# Windows' own folders, and inside them the places where a build leaves secrets.
$skippedDirs = @(
    $systemRoot,
    (Join-Path $env:ProgramFiles 'WindowsApps'),
    (Join-Path $env:ProgramFiles 'Windows Defender'),
    (Join-Path $env:ProgramFiles 'Windows Defender Advanced Threat Protection'),
    (Join-Path $env:ProgramData 'Microsoft\Windows Defender'),
    (Join-Path $drive 'System Volume Information')
)
$scannedWindowsDirs = @(
    (Join-Path $systemRoot 'Panther'),
    (Join-Path $systemRoot 'Temp'),
    (Join-Path $systemRoot 'Setup\Scripts'),
    (Join-Path $systemRoot 'ServiceProfiles'),
    (Join-Path $systemRoot 'System32\Sysprep'),
    (Join-Path $systemRoot 'System32\inetsrv\config'),
    (Join-Path $systemRoot 'System32\config\systemprofile')
)
# Page, swap and hibernation files are open and not files a build writes.
$skippedFiles = @('pagefile.sys', 'swapfile.sys', 'hiberfil.sys', 'DumpStack.log.tmp')

function Get-ScopeFiles {
    param([string]$Root, [string[]]$Skip)
    $pending = New-Object System.Collections.Generic.Stack[string]
    $pending.Push($Root)
    while ($pending.Count -gt 0) {
        $dir = $pending.Pop()
        $entries = @(Get-ChildItem -LiteralPath $dir -Force -ErrorAction SilentlyContinue)
        foreach ($entry in $entries) {
            if ($entry.PSIsContainer) {
                # Junctions and symbolic links lead to folders scanned at their own place.
                if ($entry.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { continue }
                if ($Skip -contains $entry.FullName) { continue }
                $pending.Push($entry.FullName)
            } elseif ($skippedFiles -notcontains $entry.Name -or $dir -ne $Root) {
                $entry
            }
        }
    }
}

$files = @(Get-ScopeFiles -Root $drive -Skip $skippedDirs)
foreach ($dir in $scannedWindowsDirs) {
    if (Test-Path -LiteralPath $dir) {
        $files += @(Get-ScopeFiles -Root $dir -Skip @())
    }
}
Write-Output "audit: scope: $($files.Count) files on $drive outside the Windows folders (but $($scannedWindowsDirs.Count) of their folders where builds leave secrets)"

# Profiles: every real user's and SYSTEM's (Run Command runs as SYSTEM).
$profileRoots = @(
    Get-CimInstance -ClassName Win32_UserProfile |
        Where-Object { -not $_.Special } |
        ForEach-Object { $_.LocalPath }
)
$profileRoots += Join-Path $systemRoot 'System32\config\systemprofile'
$buildProfiles = @(
    foreach ($user in $buildUsers) {
        $account = Get-LocalUser -Name $user -ErrorAction SilentlyContinue
        if ($null -eq $account -or $account.SID.Value -match '-500$') { continue }
        $userProfile = Get-CimInstance -ClassName Win32_UserProfile -Filter "SID = '$($account.SID.Value)'"
        if ($null -ne $userProfile) { $userProfile.LocalPath }
    }
)
$systemProfile = Join-Path $systemRoot 'System32\config\systemprofile'

# What generalize.ps1 removes anyway: it is left to it.
function Test-Residue {
    param([string]$Path)
    if ($Path -like '*\AppData\Roaming\Microsoft\Windows\PowerShell\PSReadLine\ConsoleHost_history.txt') { return $true }
    if ($Path -like (Join-Path $systemRoot 'Panther\*') -or $Path -like (Join-Path $systemRoot 'Temp\*')) { return $true }
    if ($Path -like (Join-Path $drive 'AzureData\*')) { return $true }
    foreach ($root in $profileRoots) {
        foreach ($name in @('.azure', '.aws')) {
            if ($Path -like (Join-Path $root "$name\*")) { return $true }
        }
        if ($Path -like (Join-Path $root 'AppData\Local\Temp\*')) { return $true }
    }
    foreach ($root in @($buildProfiles) + @($systemProfile)) {
        if ($Path -like "$root\*") { return $true }
    }
    return $false
}

function Add-FileFinding {
    param([string]$Path, [string]$Reason)
    if (-not (Test-Residue -Path $Path)) {
        Add-Finding -Path $Path -Reason $Reason
    }
}

# The kind of key store in a file's first bytes, or $null. DER: a SEQUENCE, its length
# (short or long form), then what distinguishes each format.
function Get-KeyStoreKind {
    param([byte[]]$Bytes, [string]$Name)
    $hex = ([System.BitConverter]::ToString($Bytes, 0, [Math]::Min($Bytes.Length, 40))).Replace('-', '')
    if ($hex.StartsWith('FEEDFEED')) { return 'Java key store (JKS)' }
    if ($hex.StartsWith('CECECECE')) { return 'Java key store (JCEKS)' }
    if ($hex.StartsWith('03D9A29A67FB4BB5') -or $hex.StartsWith('03D9A29A65FB4BB5')) { return 'KeePass password database' }
    if ($hex.StartsWith('0502') -and $Name -like '*.keytab') { return 'Kerberos keytab' }
    if ($Bytes.Length -lt 8 -or $Bytes[0] -ne 0x30) { return $null }
    $at = 2
    if ($Bytes[1] -ge 0x81 -and $Bytes[1] -le 0x83) { $at = 2 + ($Bytes[1] - 0x80) }
    $body = $hex.Substring(2 * $at)
    if ($body.StartsWith('020103') -and $hex.Contains('06092A864886F70D0107')) { return 'PKCS#12/PFX key store' }
    if ($body -match '^02010[01]30' -or $body -match '^02010002' -or $body -match '^02010104') { return 'private key (DER)' }
    if ($body.StartsWith('30') -and $hex.Contains('06092A864886F70D01050D')) { return 'private key (DER)' }
    return $null
}

# --- 1. content rules and first bytes ---------------------------------------------------

$anyRule = [regex]::new(
    (($rules | ForEach-Object { '(?:' + $_.Regex.ToString() + ')' }) -join '|'),
    [System.Text.RegularExpressions.RegexOptions]'IgnoreCase, CultureInvariant, Multiline'
)
$hits = New-Object System.Collections.Generic.List[object]
foreach ($file in $files) {
    $bytes = $null
    try {
        if ($file.Length -gt $maxContentBytes) {
            $stream = [System.IO.File]::OpenRead($file.FullName)
            try {
                $bytes = New-Object byte[] 64
                $null = $stream.Read($bytes, 0, 64)
            } finally {
                $stream.Dispose()
            }
        } else {
            $bytes = [System.IO.File]::ReadAllBytes($file.FullName)
        }
    } catch {
        # A file in use by Windows (a registry hive, a log being written) cannot be read.
        continue
    }
    if ($bytes.Length -eq 0) { continue }
    $reason = Get-KeyStoreKind -Bytes $bytes -Name $file.Name
    if ($null -ne $reason) {
        $hits.Add([pscustomobject]@{ Path = $file.FullName; Reason = "$reason [binary-key-store]" })
    }
    if ($file.Length -gt $maxContentBytes) { continue }
    $text = $latin1.GetString($bytes)
    if ($bytes.Length -ge 2 -and $bytes[0] -eq 0xFF -and $bytes[1] -eq 0xFE) {
        $text = [System.Text.Encoding]::Unicode.GetString($bytes)
    }
    # Lines as grep sees them: "$" in a multi-line .NET regex stops before LF only.
    $text = $text.Replace("`r`n", "`n")
    if (-not $anyRule.IsMatch($text)) { continue }
    foreach ($rule in $rules) {
        foreach ($match in $rule.Regex.Matches($text)) {
            if ($null -eq $rule.Unless -or -not $rule.Unless.IsMatch($match.Value)) {
                $hits.Add([pscustomobject]@{ Path = $file.FullName; Reason = "$($rule.Reason) [$($rule.Id)]" })
                break
            }
        }
    }
}

# Vendor files: a valid Authenticode signature (embedded or by catalog) means the file is
# as its publisher shipped it, like dpkg's unchanged files on Linux.
$signedCache = @{}
foreach ($hit in $hits) {
    if (-not $signedCache.ContainsKey($hit.Path)) {
        $status = 'NotSigned'
        try {
            $status = [string](Get-AuthenticodeSignature -LiteralPath $hit.Path).Status
        } catch {
            $status = 'Unknown'
        }
        $signedCache[$hit.Path] = ($status -eq 'Valid')
    }
    if (-not $signedCache[$hit.Path]) {
        Add-FileFinding -Path $hit.Path -Reason $hit.Reason
    }
}

# --- 2. files known by name ---------------------------------------------------------------

$tokenCacheNames = @('msal_token_cache.json', 'msal_token_cache.bin', 'msal_http_cache.bin', 'accessTokens.json', 'TokenCache.dat', 'msal.cache')
foreach ($file in $files) {
    $name = $file.Name
    $path = $file.FullName
    if ($name -eq 'ConsoleHost_history.txt' -and $file.Length -gt 0) {
        Add-FileFinding -Path $path -Reason 'PowerShell command history [credential-file]'
    } elseif ($tokenCacheNames -contains $name) {
        Add-FileFinding -Path $path -Reason 'token cache [credential-file]'
    } elseif ($path -like '*\.aws\credentials') {
        Add-FileFinding -Path $path -Reason 'AWS credentials [credential-file]'
    } elseif ($path -like '*\.git-credentials' -or $path -like '*\_netrc' -or $path -like '*\.netrc') {
        if ($file.Length -gt 0) { Add-FileFinding -Path $path -Reason 'git or netrc credentials [credential-file]' }
    } elseif ($path -like '*\.docker\config.json') {
        if (Select-String -LiteralPath $path -Pattern '"(auth|identitytoken|registrytoken)"' -Quiet) {
            Add-FileFinding -Path $path -Reason 'Docker registry credentials [credential-file]'
        }
    } elseif ($path -like '*\.kube\config' -and $file.Length -gt 0) {
        Add-FileFinding -Path $path -Reason 'Kubernetes credentials [credential-file]'
    } elseif ($path -like '*\AppData\*\Microsoft\Credentials\*') {
        Add-FileFinding -Path $path -Reason 'Windows Credential Manager credentials [credential-file]'
    } elseif ($name -eq 'authorized_keys' -or $name -eq 'administrators_authorized_keys') {
        if (Select-String -LiteralPath $path -Pattern '(ssh-(rsa|dss|ed25519)|ecdsa-sha2-[a-z0-9]+) AAAA' -Quiet) {
            Add-FileFinding -Path $path -Reason 'authorized_keys: SSH login into every VM made from the image [authorized-keys]'
        }
    } elseif ($name -like '*unattend*.xml') {
        # Any *Password element (AdministratorPassword, AutoLogon\Password, LocalAccount
        # Password, ...) with a value: base64 with PlainText false is not encryption.
        try {
            [xml]$xml = [System.IO.File]::ReadAllText($path)
            $withValue = @($xml.SelectNodes("//*[substring(local-name(), string-length(local-name()) - 7) = 'Password' and *[local-name() = 'Value' and normalize-space(.) != '']]"))
            if ($withValue.Count -gt 0) {
                Add-FileFinding -Path $path -Reason 'password in an unattend file [unattend-password]'
            }
        } catch {
            Add-FileFinding -Path $path -Reason 'unattend file that is not valid XML (cannot be checked) [unattend-password]'
        }
    }
}
foreach ($root in $profileRoots) {
    $azure = Join-Path $root '.azure'
    if ((Test-Path -LiteralPath $azure) -and @(Get-ChildItem -LiteralPath $azure -Recurse -Force -File -ErrorAction SilentlyContinue).Count -gt 0) {
        Add-FileFinding -Path $azure -Reason 'Azure CLI credentials directory [credential-file]'
    }
}

# --- 3. secrets outside files -------------------------------------------------------------

# Autologon: Winlogon's DefaultPassword is plain text (Sysinternals Autologon keeps it as
# an LSA secret instead, which the audit cannot read: see the README).
$winlogon = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon'
$logon = Get-ItemProperty -LiteralPath $winlogon -ErrorAction SilentlyContinue
if ($null -ne $logon) {
    $names = @($logon.PSObject.Properties | ForEach-Object { $_.Name })
    if ($names -contains 'DefaultPassword' -and -not [string]::IsNullOrEmpty([string]$logon.DefaultPassword)) {
        Add-Finding -Path "$winlogon\DefaultPassword" -Reason 'autologon password in the registry [autologon]'
    }
    if ($names -contains 'AutoAdminLogon' -and [string]$logon.AutoAdminLogon -eq '1') {
        Add-Finding -Path "$winlogon\AutoAdminLogon" -Reason 'autologon is on: every VM signs in by itself [autologon]'
    }
}

# Machine certificates with a private key (an application's TLS key, imported). The Azure
# guest agent's own transport certificate is the builder's and generalize.ps1 removes it.
$agentIssuer = 'CN=Windows Azure CRP Certificate Generator'
foreach ($store in @('My', 'WebHosting', 'Remote Desktop')) {
    $storePath = "Cert:\LocalMachine\$store"
    if (-not (Test-Path -LiteralPath $storePath)) { continue }
    foreach ($cert in @(Get-ChildItem -LiteralPath $storePath)) {
        if ($cert.HasPrivateKey -and $cert.Issuer -ne $agentIssuer -and -not ($store -eq 'Remote Desktop' -and $cert.Subject -eq $cert.Issuer)) {
            Add-Finding -Path "$storePath\$($cert.Thumbprint)" -Reason "certificate with a private key ($($cert.Subject)) [certificate-store]"
        }
    }
}

# Local accounts with a password: the same password on every VM. The built-in
# Administrator (renamed by Azure to the admin's name) is reset by Sysprep and Azure's
# provisioning; build accounts are removed by generalize.ps1.
foreach ($account in @(Get-LocalUser)) {
    if (-not $account.Enabled -or $account.SID.Value -match '-50[0-3]$') { continue }
    if ($buildUsers -contains $account.Name) { continue }
    if ($null -ne $account.PasswordLastSet) {
        Add-Finding -Path "LocalUser:\$($account.Name)" -Reason 'local account with a password [password-hash]'
    }
}

# Administrators members that do not resolve (a deleted account's SID): a new account
# that reuses nothing gets nothing, but the entry says the build left accounts behind.
$administrators = Get-LocalGroup -SID 'S-1-5-32-544'
try {
    $members = @(Get-LocalGroupMember -Group $administrators)
} catch {
    # Get-LocalGroupMember fails outright on a member it cannot resolve.
    $members = @()
    Add-Finding -Path "LocalGroup:\$($administrators.Name)" -Reason 'membership cannot be read (usually a member that is no account) [sudoers]'
}
foreach ($member in $members) {
    if ([string]$member.PrincipalSource -eq 'Unknown' -and $member.Name -match '^S-1-') {
        Add-Finding -Path "LocalGroup:\$($administrators.Name)\$($member.Name)" -Reason 'Administrators member that is no account [sudoers]'
    }
}

# --- report -------------------------------------------------------------------------------

$count = 0
$allowed = 0
foreach ($path in $findings.Keys) {
    foreach ($reason in $findings[$path]) {
        $entry = $null
        foreach ($candidate in $allowlist) {
            if ($path -eq $candidate.Path -or ($candidate.Path.EndsWith('\') -and $path.StartsWith($candidate.Path, [System.StringComparison]::OrdinalIgnoreCase))) {
                $entry = $candidate
                break
            }
        }
        if ($null -ne $entry) {
            $entry.Used = $true
            $allowed++
            Write-Output "audit: ALLOWED ${path}: $reason -- allowlisted: $($entry.Reason)"
        } else {
            $count++
            Write-Output "audit: FINDING ${path}: $reason"
        }
    }
}
foreach ($entry in $allowlist) {
    if (-not $entry.Used) {
        Write-Output "audit: allowlist entry matched nothing: $($entry.Path)"
    }
}
if ($count -gt 0) {
    Write-Output "audit: $count finding(s) on $drive; remove them before generalizing, or allowlist them with a reason"
    exit 1
}
Write-Output "audit: clean: $drive ($allowed allowlisted)"
exit 0
