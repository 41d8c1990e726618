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

$imageName = $env:IMAGE_NAME
$imageVersion = $env:IMAGE_VERSION
if ([string]::IsNullOrWhiteSpace($imageName) -or [string]::IsNullOrWhiteSpace($imageVersion)) {
    throw 'validate: IMAGE_NAME and IMAGE_VERSION are required'
}

$service = Get-Service -Name 'W3SVC' -ErrorAction SilentlyContinue
Write-Check -Name 'iis.w3svc' -Ok ($null -ne $service -and $service.Status -eq 'Running') -Detail 'W3SVC running'

$name = [System.Net.WebUtility]::HtmlEncode($imageName)
$version = [System.Net.WebUtility]::HtmlEncode($imageVersion)
try {
    $page = (Invoke-WebRequest -Uri 'http://localhost/' -UseBasicParsing -TimeoutSec 30).Content
    $named = $page.Contains("<h1>$name</h1>") -and $page.Contains("Image version $version")
    Write-Check -Name 'iis.page' -Ok $named -Detail "http://localhost/ names $imageName $imageVersion: $named"
} catch {
    Write-Check -Name 'iis.page' -Ok $false -Detail "http://localhost/: $($_.Exception.Message)"
}
if ($failures) {
    exit 1
}
