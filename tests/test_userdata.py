"""imagefactory.userdata: templates, placeholders and filters, the checks that name the key,
and the Windows first-boot loader; the templates in scripts/ render for dev and prod."""

from __future__ import annotations

import base64
import json
import shlex

import pytest
import tree_sitter
import tree_sitter_pwsh
import yaml

from imagefactory import userdata
from imagefactory.userdata import Template

KEY = "imagefactory:scaleSets[0].userData"
SECRETS = "imagefactory:userDataSecrets"
PWSH = tree_sitter.Parser(tree_sitter.Language(tree_sitter_pwsh.language()))


def pwsh_errors(text: str) -> list[int]:
    """Lines where the PowerShell grammar finds a syntax error or a missing token."""
    lines: list[int] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            lines.append(node.start_point[0] + 1)
            return
        for child in node.children:
            walk(child)

    walk(PWSH.parse(text.encode()).root_node)
    return lines


# --- placeholders and filters ------------------------------------------------------------


def test_placeholders_are_identifiers_with_an_optional_filter() -> None:
    template = Template(
        "t.yaml",
        "#cloud-config\n"
        "a: {{ one }} {{two|json}}\n"
        "b: {{ v1.region }} {{ ds.meta_data.x }} {{0}}\n"
        "c: {{ three | sh }} {{ one }}\n",
    )
    assert [(p.name, p.filter, p.line) for p in template.placeholders] == [
        ("one", None, 2),
        ("two", "json", 2),
        ("three", "sh", 4),
        ("one", None, 4),
    ]
    # cloud-init's own Jinja variables are dotted: left for cloud-init.
    assert template.names == ("one", "two", "three")


@pytest.mark.parametrize(
    ("value", "how", "written"),
    [
        ("prod", None, "prod"),
        ('a "b": c', "json", '"a \\"b\\": c"'),
        ("it's $HOME", "sh", "'it'\"'\"'s $HOME'"),
        ("it's", "pwsh", "'it''s'"),
        # PowerShell's other single quotes (U+2018, U+2019, U+201A, U+201B) are doubled too.
        ("a\u2019b", "pwsh", "'a\u2019\u2019b'"),
    ],
)
def test_filters_quote_for_their_language(value: str, how: str | None, written: str) -> None:
    assert userdata.quote(value, how) == written


def test_json_filter_gives_a_yaml_scalar_and_sh_a_shell_word() -> None:
    value = "p@ss: #1 'x' \"y\""
    assert yaml.safe_load(f"k: {userdata.quote(value, 'json')}") == {"k": value}
    assert shlex.split(userdata.quote(value, "sh")) == [value]


def test_render_marks_which_secrets_went_in_and_keeps_other_braces() -> None:
    template = Template("t.ps1", "$a = {{ env | pwsh }}\n$b = {{ pw | pwsh }}\n@{ k = 1 }\n")
    rendered = userdata.render(template, {"env": "prod"}, {"pw": "s3cret", "unused": "x"})
    assert rendered.text == "$a = 'prod'\n$b = 's3cret'\n@{ k = 1 }\n"
    assert rendered.secrets == ("pw",)
    assert base64.b64decode(rendered.custom_data).decode() == rendered.text
    assert rendered.size == len(rendered.text)
    plain = userdata.render(Template("t", "{{ env }}"), {"env": "dev"}, {"pw": "s3cret"})
    assert plain.secrets == ()


# --- checks: each names the key, the value and what is allowed -----------------------------


def test_a_missing_file() -> None:
    assert userdata.file_problems(KEY, "linux/userdata/nope.yaml", "linux", None) == [
        f"{KEY}.file: 'linux/userdata/nope.yaml' does not exist under scripts/; templates live "
        "in scripts/linux/userdata/ (paths are relative to scripts/)"
    ]


def test_a_path_outside_scripts_is_no_template() -> None:
    assert userdata.load("../Pulumi.prod.yaml") is None
    assert userdata.load("linux/userdata/webserver.yaml") is not None


def test_cloud_init_ignores_a_file_without_its_header() -> None:
    template = Template("linux/userdata/x.yaml", "write_files: []\n")
    assert userdata.file_problems(KEY, template.path, "linux", template) == [
        f"{KEY}.file: 'linux/userdata/x.yaml' starts with 'write_files: []', which cloud-init "
        "does not recognise, so it would ignore the whole file; start it with '#cloud-config' "
        "(allowed: #cloud-config, #!, #include, #cloud-boothook, #part-handler, "
        "#cloud-config-archive, ## template: jinja, Content-Type: multipart/)"
    ]


def test_windows_runs_powershell_only() -> None:
    template = Template("linux/userdata/webserver.yaml", "#cloud-config\n")
    assert userdata.file_problems(KEY, template.path, "windows", template) == [
        f"{KEY}.file: 'linux/userdata/webserver.yaml' is not a PowerShell script; a windows "
        "consumer runs its first-boot script with the Custom Script Extension, so the file must "
        "end in .ps1"
    ]


def test_an_unknown_filter() -> None:
    template = Template("t.yaml", "#cloud-config\nx: {{ env | yaml }}\n")
    assert userdata.file_problems(KEY, "t.yaml", "linux", template) == [
        f"{KEY}.file: t.yaml line 2: {{{{ env | yaml }}}} has the filter 'yaml'; allowed: json, "
        "sh, pwsh, or none"
    ]


def test_values_and_placeholders_must_match() -> None:
    template = Template("t.yaml", "#cloud-config\na: {{ environment }}\nb: {{ apiUrl }}\n")
    problems = userdata.value_problems(
        KEY, template, {"enviroment": "prod", "apiUrl": "x"}, {"apiUrl": "s"}, SECRETS
    )
    assert problems == [
        f"{KEY}.values.enviroment: not used by t.yaml (did you mean 'environment'?); its "
        "placeholders: environment, apiUrl",
        f"{KEY}.values.apiUrl: also set in {SECRETS}; a placeholder takes one value, so keep it "
        f"in one place ({SECRETS} for secrets)",
        f"{KEY}.values: t.yaml line 2 uses {{{{ environment }}}}, which has no value; give it "
        f"under values, or as {SECRETS}.environment if it is a secret (given: apiUrl, "
        f"enviroment, {SECRETS}.apiUrl)",
    ]


def test_a_value_is_one_line() -> None:
    template = Template("t.yaml", "#cloud-config\na: {{ x }}\n")
    assert userdata.value_problems(KEY, template, {"x": "a\nb"}, {}, SECRETS) == [
        f"{KEY}.values.x: 'a\\nb' holds a line break or control character; a value is one line "
        "of text (put multi-line content in the template itself)"
    ]


def test_custom_data_is_at_most_65535_bytes() -> None:
    rendered = userdata.Rendered("big.yaml", "#!/bin/sh\n" + "#" * 65_530, ())
    assert userdata.rendered_problems(KEY, rendered) == [
        f"{KEY}.file: big.yaml renders to 65540 bytes with this stack's values; Azure takes at "
        "most 65535 bytes of custom data (osProfile.customData)"
    ]
    fits = userdata.Rendered("ok.yaml", "#!/bin/sh\n" + "#" * 65_525, ())
    assert userdata.rendered_problems(KEY, fits) == []


def test_cloud_config_must_stay_yaml_and_the_message_never_quotes_the_text() -> None:
    template = Template("t.yaml", "#cloud-config\npassword: {{ pw }}\n")
    rendered = userdata.render(template, {"pw": "a: b: c"}, {})
    problems = userdata.rendered_problems(KEY, rendered)
    assert problems == [
        f"{KEY}.file: t.yaml is not valid YAML once the values are in (line 2: mapping values "
        "are not allowed here); quote inserted values with {{ name | json }}"
    ]
    assert "a: b: c" not in problems[0]
    # The parser would name an undefined alias, here a secret's text: only the line is left.
    aliased = userdata.render(
        Template("t.yaml", "#cloud-config\npassword: {{ pw }}\n"), {}, {"pw": "*hunter2"}
    )
    assert aliased.secrets == ("pw",)
    assert userdata.rendered_problems(KEY, aliased) == [
        f"{KEY}.file: t.yaml is not valid YAML once the values are in (line 2: not YAML); "
        "quote inserted values with {{ name | json }}"
    ]
    quoted = userdata.render(
        Template("t.yaml", "#cloud-config\npassword: {{ pw | json }}\n"), {}, {"pw": "a: b: c"}
    )
    assert userdata.rendered_problems(KEY, quoted) == []
    assert yaml.safe_load(quoted.text) == {"password": "a: b: c"}


# --- the templates in scripts/ -----------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_webserver_template_renders_to_cloud_config(environment: str) -> None:
    template = userdata.load("linux/userdata/webserver.yaml")
    assert template is not None
    values = {"environment": environment, "apiUrl": f"https://api.{environment}.example"}
    assert userdata.value_problems(KEY, template, values, {}, SECRETS) == []
    rendered = userdata.render(template, values, {})
    assert userdata.rendered_problems(KEY, rendered) == []
    doc = yaml.safe_load(rendered.text)
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert files["/etc/imagefactory/environment"] == (
        f"ENVIRONMENT={environment}\nAPI_URL=https://api.{environment}.example\n"
    )
    assert files["/etc/nginx/conf.d/imagefactory-environment.conf"] == (
        f'add_header X-Imagefactory-Environment "{environment}" always;\n'
    )
    assert doc["runcmd"] == [["systemctl", "reload-or-restart", "nginx.service"]]


def test_the_iis_first_boot_script_parses_before_and_after_rendering() -> None:
    template = userdata.load("windows/firstboot/iis.ps1")
    assert template is not None
    assert template.names == ("environment", "appPoolPassword")
    # {{ ... }} is a script block in PowerShell: the template file itself parses.
    assert pwsh_errors(template.text) == []
    rendered = userdata.render(template, {"environment": "prod"}, {"appPoolPassword": "it's"})
    assert pwsh_errors(rendered.text) == []
    assert "$appPoolPassword = 'it''s'" in rendered.text
    assert rendered.secrets == ("appPoolPassword",)
    template.text.encode("ascii")  # Windows PowerShell 5.1 reads BOM-less files as ANSI


def test_the_windows_loader_runs_the_custom_data_file_in_strict_mode() -> None:
    loader = (userdata.SCRIPTS_DIR / userdata.WINDOWS_FIRST_BOOT_LOADER).read_text()
    assert pwsh_errors(loader) == []
    statements = [
        line.strip() for line in loader.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert statements[:2] == ["Set-StrictMode -Version Latest", "$ErrorActionPreference = 'Stop'"]
    assert "'AzureData\\CustomData.bin'" in loader
    assert "[scriptblock]::Create($text)" in loader


def test_the_extension_command_is_the_loader_encoded() -> None:
    loader = "Write-Output 'x'\n"
    settings = userdata.first_boot_extension_settings(loader)
    assert list(settings) == ["commandToExecute"]
    prefix = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
    command = settings["commandToExecute"]
    assert command.startswith(prefix)
    assert base64.b64decode(command.removeprefix(prefix)).decode("utf-16-le") == loader
    # Nothing cmd.exe would read as syntax: base64 only.
    assert json.dumps(command) == f'"{command}"'
