"""Run the real `__main__.py` for a stack under Pulumi's mock engine: no cloud, no CLI.

The offline plan and the tests both use this. The mocks answer like Azure would where
the program reads answers back (ARM ids, `name`, the VM's `vmId`), and a recording
monitor keeps the resource options (parent, depends_on, protect, timeouts) that
`Mocks.new_resource` never sees.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import re
import runpy
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime import resource as resource_runtime
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT_DIR = Path(__file__).resolve().parent.parent
MOCK_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
MOCK_TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

# type token -> (input holding the physical name, ARM path under the resource group)
_AZURE: dict[str, tuple[str, str]] = {
    "azure-native:resources:ResourceGroup": ("resourceGroupName", ""),
    "azure-native:network:VirtualNetwork": (
        "virtualNetworkName",
        "Microsoft.Network/virtualNetworks/{name}",
    ),
    "azure-native:network:Subnet": (
        "subnetName",
        "Microsoft.Network/virtualNetworks/{virtualNetworkName}/subnets/{name}",
    ),
    "azure-native:network:NetworkSecurityGroup": (
        "networkSecurityGroupName",
        "Microsoft.Network/networkSecurityGroups/{name}",
    ),
    "azure-native:network:NetworkInterface": (
        "networkInterfaceName",
        "Microsoft.Network/networkInterfaces/{name}",
    ),
    "azure-native:network:PublicIPAddress": (
        "publicIpAddressName",
        "Microsoft.Network/publicIPAddresses/{name}",
    ),
    "azure-native:compute:VirtualMachine": (
        "vmName",
        "Microsoft.Compute/virtualMachines/{name}",
    ),
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine": (
        "runCommandName",
        "Microsoft.Compute/virtualMachines/{vmName}/runCommands/{name}",
    ),
    "azure-native:compute:Image": ("imageName", "Microsoft.Compute/images/{name}"),
    "azure-native:compute:Gallery": ("galleryName", "Microsoft.Compute/galleries/{name}"),
    "azure-native:compute:GalleryImage": (
        "galleryImageName",
        "Microsoft.Compute/galleries/{galleryName}/images/{name}",
    ),
    "azure-native:compute:GalleryImageVersion": (
        "galleryImageVersionName",
        "Microsoft.Compute/galleries/{galleryName}/images/{galleryImageName}/versions/{name}",
    ),
    "azure-native:compute:VirtualMachineScaleSet": (
        "vmScaleSetName",
        "Microsoft.Compute/virtualMachineScaleSets/{name}",
    ),
    "azure-native:authorization:RoleAssignment": ("roleAssignmentName", ""),
}


@dataclass
class Registered:
    """One resource as the engine saw it: inputs, answers and options."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    replace_with: list[str] = field(default_factory=list)
    deleted_with: str = ""
    replace_on_changes: list[str] = field(default_factory=list)
    replacement_trigger: Any = None
    ignore_changes: list[str] = field(default_factory=list)
    additional_secret_outputs: list[str] = field(default_factory=list)
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Run:
    """What one program run registered and exported."""

    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    logs: list[tuple[str, str]]

    def of_type(self, token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: Registered) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn]

    def ancestors(self, res: Registered) -> Iterator[Registered]:
        urns = {r.urn: r for r in self.resources}
        while res.parent in urns:
            res = urns[res.parent]
            yield res


class AzureMocks(pulumi.runtime.Mocks):
    """Answers like Azure's control plane, deterministically."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        token = args.typ
        if token in _AZURE:
            name_key, path = _AZURE[token]
            name = str(args.inputs.get(name_key) or args.name)
            state["name"] = name
            state["id"] = _arm_id(token, name, path, args.inputs)
            if token == "azure-native:compute:VirtualMachine":
                state["vmId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, state["id"]))
            if token == "azure-native:compute:VirtualMachineScaleSet":
                state["uniqueId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, state["id"]))
            return state["id"], state
        if token == "tls:index/privateKey:PrivateKey":
            fake = uuid.uuid5(uuid.NAMESPACE_URL, args.name).hex
            state["publicKeyOpenssh"] = f"ssh-rsa AAAAB3NzaC1yc2E{fake} mock\n"
            state["privateKeyPem"] = f"-----BEGIN RSA PRIVATE KEY-----\n{fake}\n"
        if token == "random:index/randomPassword:RandomPassword":
            state["result"] = "Mock-" + uuid.uuid5(uuid.NAMESPACE_URL, args.name).hex[:20]
        if token == "command:local:Command":
            state["stdout"] = ""
            state["stderr"] = ""
        return f"{args.name}-id", state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": MOCK_SUBSCRIPTION,
                "tenantId": MOCK_TENANT,
                "clientId": "00000000-0000-0000-0000-0000000000c1",
                "objectId": "00000000-0000-0000-0000-0000000000d1",
            }, []
        raise NotImplementedError(f"no mock for invoke {args.token}")


def _arm_id(token: str, name: str, path: str, inputs: Mapping[str, Any]) -> str:
    sub = f"/subscriptions/{MOCK_SUBSCRIPTION}"
    if token == "azure-native:resources:ResourceGroup":
        return f"{sub}/resourceGroups/{name}"
    if token == "azure-native:authorization:RoleAssignment":
        return f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{name}"
    fields = {k: v for k, v in inputs.items() if isinstance(v, str)}
    return f"{sub}/resourceGroups/{inputs['resourceGroupName']}/providers/" + path.format(
        name=name, **fields
    )


class RecordingMonitor(mocks.MockMonitor):
    """MockMonitor that also keeps each registration's options and the stack's outputs."""

    def __init__(
        self, the_mocks: pulumi.runtime.Mocks, *, without_features: Iterable[int] = ()
    ) -> None:
        super().__init__(the_mocks)
        self.registered: list[Registered] = []
        self.stack_outputs: dict[str, Any] = {}
        self.without_features = frozenset(without_features)
        """Engine features to withhold, to play an older Pulumi CLI."""

    def GetDeploymentInfo(self, request: Any) -> Any:
        info = super().GetDeploymentInfo(request)
        if not self.without_features:
            return info
        kept = [f for f in info.supportedFeatures if f not in self.without_features]
        return type(info)(supportedFeatures=kept)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        if any(r.urn == response.urn for r in self.registered):
            # The engine stops a program that registers one URN twice; the mocks alone
            # would keep the last registration and hide the collision.
            raise pulumi.RunError(f"Duplicate resource URN '{response.urn}'")
        timeouts = json_format.MessageToDict(request.customTimeouts)
        self.registered.append(
            Registered(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                inputs=_plain(json_format.MessageToDict(request.object)),
                outputs=_plain(self.resources[response.urn].state),
                id=response.id,
                parent=request.parent,
                dependencies=list(request.dependencies),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_with=list(request.replace_with),
                deleted_with=request.deletedWith,
                replace_on_changes=list(request.replaceOnChanges),
                replacement_trigger=_plain(
                    rpc.deserialize_property(json_format.MessageToDict(request.replacement_trigger))
                )
                if request.HasField("replacement_trigger")
                else None,
                ignore_changes=list(request.ignoreChanges),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                custom_timeouts={k: v for k, v in timeouts.items() if v},
                property_dependencies={
                    k: list(v.urns) for k, v in request.propertyDependencies.items()
                },
            )
        )
        return response


_SECRET = rpc._special_secret_sig  # the wire marker of a secret value


def _plain(value: Any) -> Any:
    """Inputs as plain data: secrets unwrapped to {'secret': value} for the tests to see."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == _SECRET:
            return {"secret": _plain(value.get("value"))}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return str(yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"])


def stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The stack file's config with the project's declared defaults under it."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    name = project["name"]
    merged: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            merged[key if ":" in key else f"{name}:{key}"] = decl["default"]
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stacks(project_dir))
        raise FileNotFoundError(f"no stack file {path.name}; known stacks: {known}")
    # A YAML mistake is one line naming the file, the line and a fix (a RunError, which
    # the plan and the plan diff report like a refused config).
    merged.update(read_stack_file(path).get("config") or {})
    return merged


class StackFileError(pulumi.RunError):
    """A stack file YAML cannot read: one line naming the file, the line and a fix."""


_YAML_FIXES = (
    ("mapping values are not allowed", "a value that contains ': ' needs quotes, or the "
     "line is indented deeper than its key"),
    ("found character '\\t'", "YAML indents with spaces, never tabs"),
    ("could not find expected ':'", "a key needs ': ' after it (check this line and the one "
     "above)"),
    ("did not find expected key", "keys of one mapping must line up, and list entries start "
     "with '- ' at the same column"),
    ("expected <block end>", "keys of one mapping must line up, and list entries start with "
     "'- ' at the same column"),
    ("found undefined alias", "a value starting with '*' needs quotes"),
    ("found unexpected end of stream", "a quote is not closed"),
)  # fmt: skip


class StackFileLoader(yaml.SafeLoader):
    """YAML as Pulumi reads a stack file (gopkg.in/yaml.v3, YAML 1.2's core schema): only
    true/false are booleans, so `off`, `no` and `yes` stay text, as the program gets them.
    PyYAML's default is YAML 1.1, where they are booleans."""


StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The stack file as data; a YAML error is one line, not the parser's traceback."""
    try:
        data = yaml.load(path.read_text(), Loader=StackFileLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        text = f"{err.context or ''} {err.problem or ''}"
        fix = next(
            (f for needle, f in _YAML_FIXES if needle in text),
            "check the indentation and quoting on that line and the one above",
        )
        problem = err.problem or err.context or "not valid YAML"
        raise StackFileError(f"{where}: YAML syntax error: {problem}; {fix}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackFileError(f"{path.name}:1: a stack file is a mapping with a 'config:' key")
    return data


def stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    return sorted(p.name.split(".")[1] for p in project_dir.glob("Pulumi.*.yaml"))


def wire(value: Any) -> str:
    # The engine passes objects and lists as JSON and scalars as strings.
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run(
    stack: str,
    config: Mapping[str, Any] | None = None,
    *,
    preview: bool = False,
    monitor: RecordingMonitor | None = None,
    project_dir: Path = PROJECT_DIR,
) -> Run:
    """Run `__main__.py` with the stack's config (or `config`, full keys) under mocks.

    `project_dir` is the project to run (default: this checkout); its modules must be the
    ones importable as `imagefactory` and `components`. Raises pulumi.RunError when the
    program refuses the config; a `monitor` passed in still holds whatever was registered
    before that.
    """
    values = stack_config(stack, project_dir) if config is None else dict(config)
    return run_program(
        project_dir / "__main__.py",
        project=project_name(project_dir),
        stack=stack,
        config=values,
        preview=preview,
        monitor=monitor,
    )


def run_program(
    program: Path,
    *,
    project: str,
    stack: str,
    config: Mapping[str, Any],
    preview: bool = False,
    monitor: RecordingMonitor | None = None,
) -> Run:
    """Run any Pulumi Python program under the recording mock engine, in its own context
    (own event loop, root stack and config), so runs can follow each other in a process."""
    recorder = monitor or RecordingMonitor(AzureMocks())
    ctx = contextvars.copy_context()
    return ctx.run(_run, program, project, stack, config, preview, recorder)


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def _run(
    program: Path,
    project: str,
    stack: str,
    config: Mapping[str, Any],
    preview: bool,
    monitor: RecordingMonitor,
) -> Run:
    loop = asyncio.new_event_loop()
    # A refused program fails several outputs at once; the first error raised is the one
    # reported, so the loop need not log the rest as "never retrieved".
    loop.set_exception_handler(lambda _loop, _context: None)
    asyncio.set_event_loop(loop)
    settings.ROOT.set(None)
    runtime_config.set_all_config({k: wire(v) for k, v in config.items()}, [])
    pulumi.runtime.set_mocks(
        monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor
    )
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()

    def body() -> None:
        runpy.run_path(str(program), run_name="__main__")

    # The SDK keeps every resource's Outputs alive for the whole run, so with the default
    # thresholds the collector rescans them over and over: a third of the run's CPU for
    # 50 images. Collect young objects less often during the run only, and the older
    # generations rarely (a full collection rescans every Output the run has made).
    thresholds = gc.get_threshold()
    gc.set_threshold(200_000, 50, 1000)
    # The SDK walks the Python stack for every registration to tell the engine where in the
    # source a resource was made (RegisterResourceRequest.stackTrace/sourcePosition, for
    # the CLI's diagnostics): a tenth of the run, and nothing here reads it.
    traced = getattr(resource_runtime, "_get_stack_trace", None)
    if traced is not None:
        resource_runtime._get_stack_trace = _no_stack_trace
    try:
        _sync_await(run_pulumi_func(body))
    finally:
        gc.set_threshold(*thresholds)
        if traced is not None:
            resource_runtime._get_stack_trace = traced
    root = settings.get_root_resource()
    exported = getattr(root, "outputs", {})
    outputs = _sync_await(pulumi.Output.from_input(exported).future()) if exported else {}
    return Run(stack=stack, resources=monitor.registered, outputs=outputs or {}, logs=[])
