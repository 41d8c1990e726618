"""In-guest steps through the VM agent (managed Run Command): no inbound network needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_azure_native import compute

from imagefactory import naming
from imagefactory.scripts import Step

# Azure's own overhead around a script: agent hand-off and status reporting.
RUN_COMMAND_SLACK_SECONDS = 600


def run_steps(
    owner: pulumi.Resource,
    name: str,
    *,
    steps: Sequence[Step],
    first_index: int,
    vm: compute.VirtualMachine,
    resource_group_name: pulumi.Input[str],
    location: str,
    timeout_seconds: int,
    after: pulumi.Resource,
    tags: Mapping[str, str],
) -> list[compute.VirtualMachineRunCommandByVirtualMachine]:
    """One Run Command per step, each waiting for the one before (Azure runs them in
    parallel otherwise). A failing script fails `pulumi up`."""
    made: list[compute.VirtualMachineRunCommandByVirtualMachine] = []
    previous = after
    for offset, step in enumerate(steps):
        index = first_index + offset
        command = compute.VirtualMachineRunCommandByVirtualMachine(
            f"{name}-{step.name}",
            run_command_name=naming.run_command_name(index, step.name),
            resource_group_name=resource_group_name,
            vm_name=vm.name,
            location=location,
            source=compute.VirtualMachineRunCommandScriptSourceArgs(script=step.source),
            async_execution=False,
            treat_failure_as_deployment_failure=True,
            timeout_in_seconds=timeout_seconds,
            tags={**tags, "imagefactory-script": f"{step.script.path}@{step.script.sha256[:12]}"},
            opts=pulumi.ResourceOptions(
                parent=owner,
                depends_on=[previous],
                # A rebuilt VM has none of the old run commands: run them all again.
                replace_with=[vm],
                # They go with their VM. Deleting one on its own is an extension change,
                # which Azure refuses on a deallocated, generalized builder. deleted_with
                # skips the delete when the VM goes; retain_on_delete makes sure no engine
                # ever sends it, also when the VM is replaced delete-first (engines before
                # pulumi/pulumi#23818 deleted dependents of such a VM one by one). Azure
                # removes a VM's run commands with the VM.
                deleted_with=vm,
                retain_on_delete=True,
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{timeout_seconds + RUN_COMMAND_SLACK_SECONDS}s",
                    update=f"{timeout_seconds + RUN_COMMAND_SLACK_SECONDS}s",
                ),
            ),
        )
        made.append(command)
        previous = command
    return made


class Provisioning(pulumi.ComponentResource):
    """The image's provisioning scripts, then the secret audit, in order."""

    commands: list[compute.VirtualMachineRunCommandByVirtualMachine]

    def __init__(
        self,
        name: str,
        *,
        steps: Sequence[Step],
        vm: compute.VirtualMachine,
        resource_group_name: pulumi.Input[str],
        location: str,
        timeout_seconds: int,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:build:Provisioning", name, None, opts)
        self.commands = run_steps(
            self,
            name,
            steps=steps,
            first_index=1,
            vm=vm,
            resource_group_name=resource_group_name,
            location=location,
            timeout_seconds=timeout_seconds,
            after=vm,
            tags=tags,
        )
        self.register_outputs({"steps": [s.name for s in steps]})

    @property
    def last(self) -> pulumi.Resource:
        return self.commands[-1]
