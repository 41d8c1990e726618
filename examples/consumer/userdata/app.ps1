# This stack's settings for the app, run once at first boot by the Custom Script Extension
# (the factory's scripts/windows/run-first-boot.ps1 runs this file's rendered copy).
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$folder = Join-Path -Path $env:ProgramData -ChildPath 'app'
New-Item -ItemType Directory -Path $folder -Force | Out-Null
$lines = @(
    ('ENVIRONMENT=' + {{ environment | pwsh }}),
    ('API_URL=' + {{ apiUrl | pwsh }}),
    ('API_TOKEN=' + {{ apiToken | pwsh }})
)
Set-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'environment') -Value $lines -Encoding ascii
