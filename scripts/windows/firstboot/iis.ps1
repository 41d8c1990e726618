# Per-environment settings of the iis image, run once at first boot by the Custom Script
# Extension (scripts/windows/run-first-boot.ps1 runs this file's rendered copy, which Azure
# keeps as the VM's custom data). imagefactory fills the placeholders with the consumer's
# userData values and imagefactory:userDataSecrets (README: "Per-environment configuration
# at boot").
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$environment = {{ environment | pwsh }}
$appPoolUser = 'iisapp'
$appPoolPassword = {{ appPoolPassword | pwsh }}

# For applications and operators: which environment this VM belongs to.
$folder = Join-Path -Path $env:ProgramData -ChildPath 'imagefactory'
New-Item -ItemType Directory -Path $folder -Force | Out-Null
Set-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'environment') `
    -Value "ENVIRONMENT=$environment" -Encoding ascii

Import-Module WebAdministration

# Every response of the default site names the environment that answered.
Add-WebConfigurationProperty -PSPath 'IIS:\Sites\Default Web Site' `
    -Filter 'system.webServer/httpProtocol/customHeaders' -Name '.' `
    -Value @{ name = 'X-Imagefactory-Environment'; value = $environment }

# The default application pool runs as a local account whose password is this
# environment's secret.
$secure = ConvertTo-SecureString -String $appPoolPassword -AsPlainText -Force
if (Get-LocalUser -Name $appPoolUser -ErrorAction SilentlyContinue) {
    Set-LocalUser -Name $appPoolUser -Password $secure
} else {
    New-LocalUser -Name $appPoolUser -Password $secure -PasswordNeverExpires `
        -Description 'IIS application pool identity (imagefactory first boot)' | Out-Null
}
Set-ItemProperty -Path 'IIS:\AppPools\DefaultAppPool' -Name processModel -Value @{
    userName     = "$env:COMPUTERNAME\$appPoolUser"
    password     = $appPoolPassword
    identityType = 3
}
