"""Static checks of the Windows scripts in scripts/windows, on their syntax trees.

There is no PowerShell on the build host, so every .ps1 is parsed with a real PowerShell
grammar (tree-sitter with tree-sitter-pwsh): it must parse without an error node, alone and
after the Run Command header; and the checks read the tree: which commands run with which
arguments, which strings and variables a script uses, its exit codes, and the audit's rule
catalogue (the same table as scripts/linux/audit.sh).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import tree_sitter_pwsh
from tree_sitter import Language, Node, Parser

WINDOWS = Path(__file__).resolve().parent.parent / "scripts" / "windows"
IIS = WINDOWS / "provision" / "10-iis.ps1"
MANIFEST = WINDOWS / "provision" / "90-manifest.ps1"
AUDIT = WINDOWS / "audit.ps1"
GENERALIZE = WINDOWS / "generalize.ps1"
VALIDATE = WINDOWS / "validate.ps1"
IIS_CHECK = WINDOWS / "validate" / "10-iis.ps1"
SCRIPTS = [IIS, MANIFEST, AUDIT, GENERALIZE, VALIDATE, IIS_CHECK]

# Variables the Python side's Run Command header may set.
HEADER_VARS = {
    "IMAGE_NAME",
    "IMAGE_VERSION",
    "BASE_IMAGE",
    "BUILD_USERS",
    "SYSPREP_TIMEOUT_SECONDS",
    "AUDIT_ALLOWLIST",
    # The test VM's checks (imagefactory/validation.py).
    "EXPECTED_HOSTNAME",
    "ADMIN_USERNAME",
    "BUILDER_IDENTITY",
    "EXPECT_AGENT",
}
# Windows' own variables the scripts may read.
SYSTEM_VARS = {"SystemRoot", "SystemDrive", "ProgramData", "ProgramFiles", "COMPUTERNAME"}

REQUIRED_VARS = {
    IIS: {"IMAGE_NAME", "IMAGE_VERSION"},
    MANIFEST: {"IMAGE_NAME", "IMAGE_VERSION", "BASE_IMAGE"},
    AUDIT: set(),
    GENERALIZE: {"BUILD_USERS"},
    VALIDATE: {"IMAGE_NAME", "IMAGE_VERSION", "EXPECTED_HOSTNAME", "ADMIN_USERNAME"},
    IIS_CHECK: {"IMAGE_NAME", "IMAGE_VERSION"},
}

HEADER = (
    "$env:IMAGE_NAME = 'iis'\n"
    "$env:IMAGE_VERSION = '1.0.0'\n"
    "$env:BASE_IMAGE = "
    "'MicrosoftWindowsServer:WindowsServer:2022-datacenter-azure-edition:latest'\n"
    "$env:BUILD_USERS = 'buildadmin'\n"
    "$env:SYSPREP_TIMEOUT_SECONDS = '1800'\n"
    "$env:AUDIT_ALLOWLIST = 'C:\\inetpub\\app\\app.pfx\tIIS binding'\n"
)

PARSER = Parser(Language(tree_sitter_pwsh.language()))


# --- the syntax tree -----------------------------------------------------------------------


class Script:
    """A PowerShell script and its tree-sitter syntax tree."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.source = text.encode()
        self.tree = PARSER.parse(self.source)

    def of(self, node: Node) -> str:
        return self.source[node.start_byte : node.end_byte].decode()

    def nodes(self, *types: str) -> list[Node]:
        found: list[Node] = []

        def walk(node: Node) -> None:
            if node.type in types:
                found.append(node)
            for child in node.children:
                walk(child)

        walk(self.tree.root_node)
        return found

    def errors(self) -> list[str]:
        """Where the grammar found a syntax error or had to invent a missing token."""
        problems: list[str] = []

        def walk(node: Node) -> None:
            if node.type == "ERROR" or node.is_missing:
                kind = f"missing {node.type!r}" if node.is_missing else "syntax error"
                problems.append(f"{kind} at line {node.start_point[0] + 1}")
                return
            for child in node.children:
                walk(child)

        walk(self.tree.root_node)
        return problems

    def strings(self) -> list[str]:
        """The bodies of every string literal (quotes and here-string markers removed)."""
        bodies = []
        for node in self.nodes("string_literal"):
            raw = self.of(node)
            if raw.startswith(("@'", '@"')):
                bodies.append(re.sub(r"^@['\"]\r?\n|\r?\n['\"]@$", "", raw))
            elif raw.startswith("'"):
                bodies.append(raw[1:-1].replace("''", "'"))
            else:
                bodies.append(raw[1:-1])
        return bodies

    def code(self) -> str:
        """The text with comments blanked and each string literal as ''."""
        out = bytearray(self.source)
        for node in sorted(
            self.nodes("comment", "string_literal"), key=lambda n: n.start_byte, reverse=True
        ):
            body = self.source[node.start_byte : node.end_byte]
            blank = b"''" if node.type == "string_literal" else b""
            out[node.start_byte : node.end_byte] = blank + b"\n" * body.count(b"\n")
        return out.decode()

    def commands(self, name: str) -> list[list[str]]:
        """The arguments (as written) of every call of the command `name`."""
        calls = []
        for node in self.nodes("command"):
            head = node.child_by_field_name("command_name") or next(
                (c for c in node.named_children if c.type in ("command_name", "command_name_expr")),
                None,
            )
            if head is None or self.of(head).lower() != name.lower():
                continue
            elements = next((c for c in node.named_children if c.type == "command_elements"), None)
            args = (
                [self.of(c) for c in elements.named_children if c.type != "command_argument_sep"]
                if elements is not None
                else []
            )
            calls.append(args)
        return calls

    def exit_codes(self) -> list[str]:
        return [
            self.of(n).split(None, 1)[1]
            for n in self.nodes("flow_control_statement")
            if self.of(n).lower().startswith("exit ")
        ]

    def env_reads(self) -> tuple[set[str], set[str], set[str]]:
        """Variables read through Get-RequiredEnv -Name 'X', GetEnvironmentVariable('X') and
        $env:X."""
        required = {
            args[1].strip("'")
            for args in self.commands("Get-RequiredEnv")
            if len(args) == 2 and args[0] == "-Name"
        }
        optional = set()
        for node in self.nodes("invocation_expression"):
            member = next((c for c in node.named_children if c.type == "member_name"), None)
            arguments = next((c for c in node.named_children if c.type == "argument_list"), None)
            if member is None or arguments is None or self.of(member) != "GetEnvironmentVariable":
                continue
            literal = self.of(arguments).strip("()")
            if literal.startswith("'"):
                optional.add(literal.strip("'"))
        direct = {
            m.group(1)
            for n in self.nodes("variable")
            if (m := re.fullmatch(r"\$(?:\{)?env:(\w+)\}?", self.of(n), flags=re.IGNORECASE))
        }
        return required, optional, direct

    def top_level_param(self) -> bool:
        """A param() block outside any function (a syntax error after the header)."""
        for node in self.nodes("param_block"):
            parent = node.parent
            while parent is not None and parent.type not in (
                "function_statement",
                "script_block_expression",
            ):
                parent = parent.parent
            if parent is None or parent.type != "function_statement":
                return True
        return any(self.of(n).lower() == "param" for n in self.nodes("command_name"))


@functools.cache
def script(path: Path) -> Script:
    return Script(path.read_text(encoding="ascii"))


def read(path: Path) -> str:
    return script(path).text


# Every .ps1 under scripts/windows is parsed, also those not run during a build.
ALL_SCRIPTS = sorted(WINDOWS.rglob("*.ps1"))


def test_the_build_scripts_are_among_those_parsed() -> None:
    assert set(SCRIPTS) <= set(ALL_SCRIPTS)


# --- the grammar sees real errors ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "if ($a) { $b\n",
        "$x = @(1, 2))\n",
        "$a = 'open\n",
        '$a = "open\n',
        "$h = @'\nopen\n",
        "function F {\n    param([string]$Name\n}\n",
        "foreach ($x in $y) Write-Output $x\n",
    ],
)
def test_the_grammar_reports_broken_scripts(text: str) -> None:
    assert Script(text).errors() != []


def test_tree_helpers() -> None:
    parsed = Script(
        '# comment { (\n$a = \'{(\' # }\n$b = "x $($c.Count) ) ""q"" `" ]"\n'
        "$h = @'\n}}\n'@\nif ($a) { exit 3 }\n& shutdown.exe /s /t 60\n"
    )
    assert parsed.errors() == []
    assert parsed.strings() == ["{(", 'x $($c.Count) ) ""q"" `" ]', "}}"]
    assert "comment" not in parsed.code() and "{(" not in parsed.code()
    assert parsed.exit_codes() == ["3"]
    assert parsed.commands("shutdown.exe") == [["/s", "/t", "60"]]
    assert Script("param([string]$Name)\nWrite-Output $Name\n").top_level_param()
    assert Script("# header\nParam ( $x )\n").top_level_param()
    assert Script("$env:A = 1\nparam($x)\n").top_level_param()
    assert not Script("function F {\n    param([string]$Name)\n}\n").top_level_param()
    assert not Script("Write-Output 'param($x)'\n").top_level_param()


# --- every script --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: p.name)
def test_script_parses(path: Path) -> None:
    assert script(path).errors() == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_after_the_header(path: Path) -> None:
    assert Script(HEADER + read(path)).errors() == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_starts_with_strict_mode_and_stop(path: Path) -> None:
    statements = [line.strip() for line in script(path).code().splitlines() if line.strip()]
    assert statements[:2] == ["Set-StrictMode -Version Latest", "$ErrorActionPreference = ''"]
    assert "$ErrorActionPreference = 'Stop'" in read(path).splitlines()


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: p.name)
def test_script_is_ascii(path: Path) -> None:
    # Windows PowerShell 5.1 reads a BOM-less script as the ANSI code page.
    path.read_bytes().decode("ascii")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_has_no_top_level_param_even_after_the_header(path: Path) -> None:
    # The header of $env: lines comes first, so a script-level param() would be
    # a syntax error; param() inside functions is fine.
    assert not Script(HEADER + read(path)).top_level_param()


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_reads_only_header_and_windows_variables(path: Path) -> None:
    required, optional, direct = script(path).env_reads()
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
    parsed = script(path)
    for node in parsed.nodes("expandable_string_literal", "expandable_here_string_literal"):
        body = parsed.of(node)
        assert not re.search(r"\$[A-Za-z_]\w*:(?![\w{])", body), body


def code_of(text: str) -> str:
    return Script(text).code()


def strings_of(text: str) -> list[str]:
    return Script(text).strings()


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


# --- audit.ps1 ----------------------------------------------------------------------------


def audit_catalogue() -> str:
    """The here-string assigned to $catalogue in audit.ps1, read from the syntax tree."""
    parsed = script(AUDIT)
    for node in parsed.nodes("assignment_expression"):
        target = parsed.of(node).split("=", 1)[0].strip()
        if target == "$catalogue":
            (literal,) = [
                n
                for n in parsed.nodes("string_literal")
                if node.start_byte <= n.start_byte < node.end_byte
            ]
            return Script(parsed.of(literal)).strings()[0]
    raise AssertionError("audit.ps1 assigns no $catalogue")


def test_audit_catalogue_is_the_linux_one() -> None:
    linux = (WINDOWS.parent / "linux" / "audit.sh").read_text()
    table = linux.split("CATALOGUE=$(cat <<'RULES'\n", 1)[1].split("\nRULES\n", 1)[0]
    assert audit_catalogue() == table
    assert len(table.splitlines()) >= 30


def test_audit_looks_for_each_kind_of_secret() -> None:
    parsed = script(AUDIT)
    strings = set(parsed.strings())
    # Key stores by their first bytes, whatever the file is called.
    for magic in ("FEEDFEED", "CECECECE", "03D9A29A67FB4BB5", "020103", "06092A864886F70D0107"):
        assert any(magic in s for s in strings), magic
    assert "ConsoleHost_history.txt" in strings
    assert "*unattend*.xml" in strings
    assert "*\\AppData\\*\\Microsoft\\Credentials\\*" in strings
    assert "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon" in strings
    assert {"DefaultPassword", "AutoAdminLogon"} <= strings
    assert "Cert:\\LocalMachine\\$store" in strings
    assert "S-1-5-32-544" in strings
    assert {"authorized_keys", "administrators_authorized_keys"} <= strings
    # Vendor-signed files are the vendor's, like dpkg's unchanged files on Linux.
    assert parsed.commands("Get-AuthenticodeSignature") == [["-LiteralPath", "$hit.Path"]]
    # Every enabled local account is looked at (no -Name: all of them).
    assert [] in parsed.commands("Get-LocalUser")


def test_audit_reads_the_allowlist_and_names_no_secret() -> None:
    parsed = script(AUDIT)
    _, optional, _ = parsed.env_reads()
    assert optional == {"AUDIT_ALLOWLIST", "BUILD_USERS"}
    outputs = [args[0] for args in parsed.commands("Write-Output")]
    assert '"audit: FINDING ${path}: $reason"' in outputs
    assert '"audit: ALLOWED ${path}: $reason -- allowlisted: $($entry.Reason)"' in outputs
    assert '"audit: allowlist: $($entry.Path) ($($entry.Reason))"' in outputs
    # Findings name paths and reasons, never a match's text.
    assert not any("$match" in o or "$text" in o for o in outputs)


def test_audit_exit_codes_and_is_read_only() -> None:
    parsed = script(AUDIT)
    assert parsed.exit_codes() == ["1", "0"]
    for command in (
        "Remove-Item",
        "Set-Item",
        "Set-ItemProperty",
        "Remove-ItemProperty",
        "Remove-LocalUser",
    ):
        assert parsed.commands(command) == [], command


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
        "Join-Path $env:SystemDrive 'AzureData'",
        "'AppData\\Roaming\\Microsoft\\Credentials'",
        "'CN=Windows Azure CRP Certificate Generator'",
        "Remove-ItemProperty -LiteralPath $winlogon -Name 'DefaultPassword'",
    ]:
        assert -1 < text.index(leftover) < sysprep_at, leftover
    parsed = script(GENERALIZE)
    # The agent's certificate goes with its private key.
    assert (
        parsed.commands("Remove-Item").count(
            ["-LiteralPath", '"Cert:\\LocalMachine\\My\\$($cert.Thumbprint)"', "-DeleteKey"]
        )
        == 1
    )
    # Autologon is turned off only for a build account: anything else is the audit's.
    assert (
        parsed.commands("Set-ItemProperty").count(
            ["-LiteralPath", "$winlogon", "-Name", "'AutoAdminLogon'", "-Value", "'0'"]
        )
        == 1
    )


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
