"""Static checks of the Windows scripts in scripts/windows.

There is no PowerShell on the build host, so these tests read the scripts as
text: the preamble, the environment contract with the Run Command header, the
Sysprep call and ImageState wait, and bracket/quote balance via a small
scanner that skips strings and comments.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WINDOWS = Path(__file__).resolve().parent.parent / "scripts" / "windows"
IIS = WINDOWS / "provision" / "10-iis.ps1"
MANIFEST = WINDOWS / "provision" / "90-manifest.ps1"
AUDIT = WINDOWS / "audit.ps1"
GENERALIZE = WINDOWS / "generalize.ps1"
SCRIPTS = [IIS, MANIFEST, AUDIT, GENERALIZE]

# Variables the Python side's Run Command header may set.
HEADER_VARS = {
    "IMAGE_NAME",
    "IMAGE_VERSION",
    "BASE_IMAGE",
    "BUILD_USERS",
    "SYSPREP_TIMEOUT_SECONDS",
}
# Windows' own variables the scripts may read.
SYSTEM_VARS = {"SystemRoot", "SystemDrive", "ProgramData"}

REQUIRED_VARS = {
    IIS: {"IMAGE_NAME", "IMAGE_VERSION"},
    MANIFEST: {"IMAGE_NAME", "IMAGE_VERSION", "BASE_IMAGE"},
    AUDIT: set(),
    GENERALIZE: {"BUILD_USERS"},
}

HEADER = (
    "$env:IMAGE_NAME = 'iis'\n"
    "$env:IMAGE_VERSION = '1.0.0'\n"
    "$env:BASE_IMAGE = "
    "'MicrosoftWindowsServer:WindowsServer:2022-datacenter-azure-edition:latest'\n"
    "$env:BUILD_USERS = 'buildadmin'\n"
    "$env:SYSPREP_TIMEOUT_SECONDS = '1800'\n"
)


# --- a small PowerShell scanner ------------------------------------------------


class ScanError(ValueError):
    pass


class Scanned:
    """A script split into code (strings and comments blanked) and string bodies."""

    def __init__(self) -> None:
        self.code: list[str] = []
        self.expandable: list[str] = []  # bodies of "..." and @"..."@ strings
        self.literal: list[str] = []  # bodies of '...' and @'...'@ strings


def _starts_comment(text: str, i: int) -> bool:
    # '#' starts a comment only at the start of a token: a#b is a bare word.
    return i == 0 or text[i - 1] in " \t\r\n;({})"


def _scan_code(text: str, i: int, out: Scanned, code: list[str], in_subexpr: bool) -> int:
    """Scan code from i. In a $( ) subexpression, return just past its closing ')'."""
    depth = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "<" and text.startswith("<#", i):
            end = text.find("#>", i + 2)
            if end < 0:
                raise ScanError(f"unterminated block comment at offset {i}")
            code.append("\n" * text.count("\n", i, end))
            i = end + 2
        elif c == "#" and _starts_comment(text, i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "`":
            code.append(" ")
            i += 2
        elif c == "@" and text.startswith(("@'\n", "@'\r\n", '@"\n', '@"\r\n'), i):
            quote = text[i + 1]
            match = re.compile(r"\r?\n" + quote + "@").search(text, i + 2)
            if match is None:
                raise ScanError(f"unterminated here-string at offset {i}")
            body = text[i + 2 : match.start()]
            (out.expandable if quote == '"' else out.literal).append(body)
            code.append("''" + "\n" * body.count("\n"))
            i = match.end()
        elif c == "'":
            i = _scan_single(text, i + 1, out)
            code.append("''")
        elif c == '"':
            i = _scan_double(text, i + 1, out)
            code.append("''")
        else:
            if in_subexpr:
                if c == "(":
                    depth += 1
                elif c == ")":
                    if depth == 0:
                        return i + 1
                    depth -= 1
            code.append(c)
            i += 1
    if in_subexpr:
        raise ScanError("unterminated $( subexpression")
    return i


def _scan_single(text: str, i: int, out: Scanned) -> int:
    body: list[str] = []
    while i < len(text):
        if text[i] == "'":
            if text.startswith("''", i):
                body.append("'")
                i += 2
                continue
            out.literal.append("".join(body))
            return i + 1
        body.append(text[i])
        i += 1
    raise ScanError("unterminated single-quoted string")


def _scan_double(text: str, i: int, out: Scanned) -> int:
    body: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "`":
            body.append(text[i : i + 2])
            i += 2
        elif c == "$" and text.startswith("$(", i):
            start = i
            i = _scan_code(text, i + 2, out, [], in_subexpr=True)
            body.append(text[start:i])
        elif c == '"':
            if text.startswith('""', i):
                body.append('"')
                i += 2
                continue
            out.expandable.append("".join(body))
            return i + 1
        else:
            body.append(c)
            i += 1
    raise ScanError("unterminated double-quoted string")


def scan(text: str) -> Scanned:
    out = Scanned()
    _scan_code(text, 0, out, out.code, in_subexpr=False)
    return out


def code_of(text: str) -> str:
    return "".join(scan(text).code)


def strings_of(text: str) -> list[str]:
    """The bodies of every string in text, literal and expandable (code_of blanks them)."""
    scanned = scan(text)
    return scanned.literal + scanned.expandable


def unbalanced(code: str) -> str | None:
    """Describe the first bracket mismatch in code, or None when balanced."""
    pairs = {")": "(", "}": "{", "]": "["}
    stack: list[tuple[str, int]] = []
    for line_no, line in enumerate(code.splitlines(), start=1):
        for c in line:
            if c in "({[":
                stack.append((c, line_no))
            elif c in pairs:
                if not stack or stack[-1][0] != pairs[c]:
                    return f"unexpected {c!r} on line {line_no}"
                stack.pop()
    if stack:
        c, line_no = stack[-1]
        return f"{c!r} opened on line {line_no} is never closed"
    return None


def top_level_param(code: str) -> bool:
    """True if a param( block appears outside any { } (i.e. at script level)."""
    depth = 0
    for match in re.finditer(r"[{}]|\bparam\s*\(", code, flags=re.IGNORECASE):
        token = match.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif depth == 0:
            return True
    return False


def read(path: Path) -> str:
    return path.read_text(encoding="ascii")


# --- the scanner itself --------------------------------------------------------


def test_scanner_ignores_brackets_in_strings_and_comments() -> None:
    text = (
        "$a = '{(' # }\n"
        '$b = "x $($c.Count) ) ""q"" `" ]"\n'
        "<# { #>\n"
        "$h = @'\n}}\n'@\n"
        "if ($a) { $b }\n"
    )
    assert unbalanced(code_of(text)) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("if ($a) { $b\n", "'{' opened on line 1 is never closed"),
        ("$x = @(1, 2))\n", "unexpected ')' on line 1"),
        ("$x = [int(3]\n", "unexpected ']' on line 1"),
    ],
)
def test_scanner_reports_unbalanced_brackets(text: str, problem: str) -> None:
    assert unbalanced(code_of(text)) == problem


@pytest.mark.parametrize("text", ["$a = 'open\n", '$a = "open\n', "$a = @'\nopen\n", "<# open\n"])
def test_scanner_rejects_unterminated_strings_and_comments(text: str) -> None:
    with pytest.raises(ScanError):
        scan(text)


def test_top_level_param_detection() -> None:
    assert top_level_param(code_of("param([string]$Name)\nWrite-Output $Name\n"))
    assert top_level_param(code_of("# header\nParam ( $x )\n"))
    assert not top_level_param(code_of("function F {\n    param([string]$Name)\n}\n"))
    assert not top_level_param(code_of("Write-Output 'param($x)'\n"))


# --- every script --------------------------------------------------------------


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_starts_with_strict_mode_and_stop(path: Path) -> None:
    statements = [
        line.strip()
        for line in read(path).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert statements[:2] == ["Set-StrictMode -Version Latest", "$ErrorActionPreference = 'Stop'"]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_is_ascii(path: Path) -> None:
    # Windows PowerShell 5.1 reads a BOM-less script as the ANSI code page.
    path.read_bytes().decode("ascii")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_brackets_and_quotes_balance(path: Path) -> None:
    assert unbalanced(code_of(read(path))) is None


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_has_no_top_level_param_even_after_the_header(path: Path) -> None:
    # The header of $env: lines comes first, so a script-level param() would be
    # a syntax error; param() inside functions is fine.
    assert not top_level_param(code_of(HEADER + read(path)))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_reads_only_header_and_windows_variables(path: Path) -> None:
    text = read(path)
    required = set(re.findall(r"Get-RequiredEnv -Name '(\w+)'", text))
    optional = set(re.findall(r"GetEnvironmentVariable\('(\w+)'\)", text))
    direct = set(re.findall(r"\$env:(\w+)", text))
    assert required == REQUIRED_VARS[path]
    assert optional <= HEADER_VARS
    assert direct <= SYSTEM_VARS


@pytest.mark.parametrize("path", [p for p in SCRIPTS if REQUIRED_VARS[p]], ids=lambda p: p.name)
def test_missing_required_variable_error_names_it(path: Path) -> None:
    text = read(path)
    function = re.search(r"function Get-RequiredEnv \{.*?\n\}", text, flags=re.DOTALL)
    assert function is not None
    body = function.group(0)
    assert "IsNullOrWhiteSpace($value)" in body
    assert 'throw "Required environment variable $Name is not set' in body


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_drive_style_variable_in_expandable_strings(path: Path) -> None:
    # "$path: x" is a parse error in PowerShell ($path: reads as a drive
    # qualifier); it has to be "${path}: x".
    for body in scan(read(path)).expandable:
        assert not re.search(r"\$[A-Za-z_]\w*:(?![\w{])", body), body


# --- 10-iis.ps1 ----------------------------------------------------------------


def test_iis_installs_web_server_without_management_tools() -> None:
    text = read(IIS)
    assert "Install-WindowsFeature -Name 'Web-Server'\n" in text
    assert "IncludeManagementTools" not in text
    assert "if ($feature.Installed)" in text


def test_iis_page_shows_encoded_image_name_and_version() -> None:
    text = read(IIS)
    assert "HtmlEncode($imageName)" in text
    assert "HtmlEncode($imageVersion)" in text
    assert "inetpub\\wwwroot\\index.html" in text


def test_iis_hardening_disables_smb1_and_old_tls() -> None:
    text = read(IIS)
    assert "Set-SmbServerConfiguration -EnableSMB1Protocol $false -Force" in text
    assert "SecurityProviders\\SCHANNEL\\Protocols" in text
    assert "@('TLS 1.0', 'TLS 1.1')" in text
    assert "@('Server', 'Client')" in text
    assert "-Name 'Enabled' -Value 0" in text
    assert "-Name 'DisabledByDefault' -Value 1" in text
    assert not disables_tls_1_2(text)


def disables_tls_1_2(text: str) -> bool:
    # The protocol names are strings, so look in the string bodies, not in code_of.
    return any("TLS 1.2" in body for body in strings_of(text))


def test_tls_1_2_check_sees_the_protocol_list() -> None:
    text = read(IIS)
    modified = text.replace("@('TLS 1.0', 'TLS 1.1')", "@('TLS 1.0', 'TLS 1.1', 'TLS 1.2')")
    assert modified != text
    assert disables_tls_1_2(modified)


# --- 90-manifest.ps1 -----------------------------------------------------------


def test_manifest_path_and_fields() -> None:
    text = read(MANIFEST)
    assert "Join-Path $env:ProgramData 'ImageFactory'" in text
    assert "Join-Path $manifestDir 'image-manifest.json'" in text
    fields = re.findall(r"^\s+(\w+)\s+= ", text.split("$manifest = [ordered]@{")[1], flags=re.M)
    assert fields[:6] == [
        "image_name",
        "image_version",
        "build_time_utc",
        "base_image",
        "windows_features",
        "programs",
    ]
    assert "ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')" in text


def test_manifest_reads_both_uninstall_keys() -> None:
    text = read(MANIFEST)
    uninstall = "Microsoft\\Windows\\CurrentVersion\\Uninstall\\*'"
    assert "'HKLM:\\SOFTWARE\\" + uninstall in text
    assert "'HKLM:\\SOFTWARE\\WOW6432Node\\" + uninstall in text
    assert "-Name 'DisplayName'" in text
    assert "-Name 'DisplayVersion'" in text


# --- audit.ps1 -----------------------------------------------------------------


def test_audit_looks_for_each_kind_of_secret() -> None:
    text = read(AUDIT)
    assert "@('.azure', '.aws')" in text
    assert "PSReadLine\\ConsoleHost_history.txt" in text
    for name in ["id_rsa", "id_ed25519", "msal_token_cache.json", "accessTokens.json"]:
        assert f"'{name}'" in text
    assert "@('.pfx', '.p12')" in text
    assert "'PRIVATE KEY-----'" in text
    assert "$name -eq '.env'" in text


def test_audit_exit_codes_and_is_read_only() -> None:
    code = code_of(read(AUDIT))
    assert re.findall(r"\bexit (\d)", code) == ["1", "0"]
    assert "Remove-Item" not in code
    assert "Set-Item" not in code


# --- generalize.ps1 ------------------------------------------------------------


def test_generalize_runs_sysprep_with_exactly_these_flags() -> None:
    text = read(GENERALIZE)
    assert "Join-Path $env:SystemRoot 'System32\\Sysprep\\Sysprep.exe'" in text
    calls = re.findall(r"Start-Process -FilePath \$sysprep -ArgumentList '([^']*)'", text)
    assert [call.split() for call in calls] == [
        ["/generalize", "/oobe", "/quit", "/quiet", "/mode:vm"]
    ]
    assert forbidden_sysprep_flags(text) == []


FORBIDDEN_SYSPREP_FLAGS = ("/shutdown", "/reboot", "/unattend", "/audit")


def forbidden_sysprep_flags(text: str) -> list[str]:
    """Forbidden flags anywhere an argument can be: string bodies (a quoted -ArgumentList)
    and code (bare-word arguments). Comments are left out, so they may name the flags."""
    places = [code_of(text), *strings_of(text)]
    return [
        flag
        for flag in FORBIDDEN_SYSPREP_FLAGS
        if any(re.search(re.escape(flag) + r"\b", place, flags=re.IGNORECASE) for place in places)
    ]


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        (
            "'/generalize /oobe /quit /quiet /mode:vm'",
            "'/generalize /oobe /shutdown /quiet /mode:vm'",
            ["/shutdown"],
        ),
        (
            "'/generalize /oobe /quit /quiet /mode:vm'",
            '"/generalize /oobe /Reboot /mode:vm"',
            ["/reboot"],
        ),
        (
            "-ArgumentList '/generalize /oobe /quit /quiet /mode:vm'",
            "-ArgumentList '/generalize', '/oobe', '/quit', '/unattend:u.xml'",
            ["/unattend"],
        ),
        (
            "-ArgumentList '/generalize /oobe /quit /quiet /mode:vm'",
            "-ArgumentList /audit, /quit",
            ["/audit"],
        ),
        ("# Step 6: Sysprep.", "# Step 6: Sysprep, never /shutdown.", []),
    ],
    ids=["literal", "expandable", "argument-array", "bare-word", "comment-is-fine"],
)
def test_forbidden_sysprep_flag_check_sees_every_argument(
    old: str, new: str, found: list[str]
) -> None:
    text = read(GENERALIZE)
    modified = text.replace(old, new)
    assert modified != text
    assert forbidden_sysprep_flags(modified) == found


def test_generalize_waits_for_image_state() -> None:
    text = read(GENERALIZE)
    assert "$stateKey = 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State'" in text
    assert "-Name 'ImageState'" in text
    assert "$generalizedState = 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE'" in text
    assert "$stillSpecializedState = 'IMAGE_STATE_SPECIALIZE_RESEAL_TO_OOBE'" in text
    assert "$undeployableState = 'IMAGE_STATE_UNDEPLOYABLE'" in text
    assert "while ((Get-ImageState) -ne $generalizedState)" in text


def test_generalize_timeout_defaults_to_1800_and_reads_the_variable() -> None:
    text = read(GENERALIZE)
    assert "$timeoutSeconds = 1800\n" in text
    assert "GetEnvironmentVariable('SYSPREP_TIMEOUT_SECONDS')" in text
    assert "$deadline = (Get-Date).AddSeconds($timeoutSeconds)" in text


def test_generalize_failure_shows_the_sysprep_log_tails() -> None:
    text = read(GENERALIZE)
    assert "Join-Path $env:SystemRoot 'System32\\Sysprep\\Panther'" in text
    assert "$logTailLines = 40" in text
    assert "-Tail $logTailLines" in text
    assert "Get-LogTail -Name 'setupact.log'" in text
    assert "Get-LogTail -Name 'setuperr.log'" in text
    # Both the non-zero exit and the timeout go through the log-tail error.
    assert 'Stop-WithSysprepLogs -Reason "Sysprep exited with code' in text
    assert 'Stop-WithSysprepLogs -Reason "ImageState did not reach' in text


def test_generalize_removes_build_secrets_before_sysprep() -> None:
    text = read(GENERALIZE)
    sysprep_at = text.index("Start-Process -FilePath $sysprep")
    for leftover in [
        "PSReadLine\\ConsoleHost_history.txt",
        "(Join-Path $root '.azure')",
        "Join-Path $env:SystemRoot 'Temp'",
        "Remove-LocalUser",
    ]:
        assert -1 < text.index(leftover) < sysprep_at, leftover


def test_generalize_checks_guest_agent_before_sysprep() -> None:
    text = read(GENERALIZE)
    agent_at = text.index("@('WindowsAzureGuestAgent', 'RdAgent')")
    assert agent_at < text.index("Start-Process -FilePath $sysprep")


def test_generalize_shuts_down_after_the_state_is_reached_with_a_delay() -> None:
    code = code_of(read(GENERALIZE))
    # 60 s: time for the agent to report the Run Command's result first.
    shutdown = "& shutdown.exe /s /t 60 /d p:4:1"
    assert code.count(shutdown) == 1
    assert code.index(shutdown) > code.index("while ((Get-ImageState) -ne $generalizedState)")
    assert "Stop-Computer" not in code
    assert "$LASTEXITCODE -ne 1190" in code


def test_generalize_leaves_the_built_in_administrator_to_sysprep() -> None:
    """Azure's admin is the renamed built-in Administrator (SID ...-500), which Windows
    refuses to delete; removing it would fail the generalize step."""
    code = read(GENERALIZE)
    skip_at = code.index("if ($sid -match '-500$')")
    assert skip_at < code.index("Remove-LocalUser -SID $account.SID")
    block = code[skip_at : code.index("Remove-LocalUser -SID $account.SID")]
    assert "continue" in block
