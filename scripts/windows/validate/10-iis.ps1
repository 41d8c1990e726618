# The IIS image's own check, run on the test VM after scripts/windows/validate.ps1
# because the image ran provision/10-iis.ps1: W3SVC runs and / serves the page that
# names this image and version. One JSON line per check; exits 1 when one fails.
# Environment (Run Command header): IMAGE_NAME, IMAGE_VERSION.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$failures = 0
function Write-Check {
    param([string]$Name, [bool]$Ok, [string]$Detail)
    Write-Output (ConvertTo-Json -InputObject ([ordered]@{ check = $Name; ok = $Ok; detail = $Detail }) -Compress)
    if (-not $Ok) {
        [Console]::Error.WriteLine("validate: FAIL ${Name}: $Detail")
        $script:failures++
    }
}

function Get-RequiredEnv {
    param([string]$Name)
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrWhiteSpace($value)) {
        throw "Required environment variable $Name is not set (the Run Command header must set it)."
    }
    return $value
}

$imageName = Get-RequiredEnv -Name 'IMAGE_NAME'
$imageVersion = Get-RequiredEnv -Name 'IMAGE_VERSION'

$service = Get-Service -Name 'W3SVC' -ErrorAction SilentlyContinue
Write-Check -Name 'iis.w3svc' -Ok ($null -ne $service -and $service.Status -eq 'Running') -Detail 'W3SVC running'

$name = [System.Net.WebUtility]::HtmlEncode($imageName)
$version = [System.Net.WebUtility]::HtmlEncode($imageVersion)
try {
    $page = (Invoke-WebRequest -Uri 'http://localhost/' -UseBasicParsing -TimeoutSec 30).Content
    $named = $page.Contains("<h1>$name</h1>") -and $page.Contains("Image version $version")
    Write-Check -Name 'iis.page' -Ok $named -Detail "http://localhost/ names ${imageName} ${imageVersion}: $named"
} catch {
    Write-Check -Name 'iis.page' -Ok $false -Detail "http://localhost/: $($_.Exception.Message)"
}
if ($failures) {
    exit 1
}
