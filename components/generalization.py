"""Generalization: in-guest (waagent / sysprep), then `az vm deallocate` + `az vm generalize`."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_command as command
from pulumi_azure_native import compute

from components.provisioning import run_steps
from imagefactory.scripts import CaptureCommand, Step, with_subscription


class Generalization(pulumi.ComponentResource):
    """The last in-guest step, then the control-plane capture command.

    The command's triggers hold the builder's `vm_id`, unique per VM instance: a VM
    recreated under the same name keeps its ARM id but must be generalized again.
    """

    in_guest: compute.VirtualMachineRunCommandByVirtualMachine
    capture: command.local.Command

    def __init__(
        self,
        name: str,
        *,
        step: Step,
        step_index: int,
        capture: CaptureCommand,
        subscription_id: pulumi.Input[str],
        vm: compute.VirtualMachine,
        after: pulumi.Resource,
        resource_group_name: pulumi.Input[str],
        location: str,
        timeout_seconds: int,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:build:Generalization", name, None, opts)
        (self.in_guest,) = run_steps(
            self,
            name,
            steps=[step],
            first_index=step_index,
            vm=vm,
            resource_group_name=resource_group_name,
            location=location,
            timeout_seconds=timeout_seconds,
            after=after,
            tags=tags,
        )
        self.capture = command.local.Command(
            f"{name}-capture",
            # The provider's subscription, not whatever `az account set` last chose.
            create=pulumi.Output.from_input(subscription_id).apply(
                lambda sub: with_subscription(capture.create, sub)
            ),
            delete=capture.delete,
            environment=capture.environment,
            # Only a new VM instance captures again: an edited capture.sh is for the next
            # builder, and running it on a generalized VM would do nothing anyway.
            triggers=[vm.vm_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.in_guest], deleted_with=vm),
        )
        self.register_outputs({"captureStdout": self.capture.stdout})
