"""Private networks: one for builders (nothing inbound from the Internet), one per region."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_azure_native import network


class PrivateNetwork(pulumi.ComponentResource):
    """A VNet with one subnet guarded by an NSG.

    The NSG holds only the rules given; Azure's default rules already deny inbound traffic
    from the Internet, and the builder network is given none that would allow it.
    """

    vnet: network.VirtualNetwork
    nsg: network.NetworkSecurityGroup
    subnet: network.Subnet

    def __init__(
        self,
        name: str,
        *,
        token: str,
        resource_group_name: pulumi.Input[str],
        location: str,
        vnet_name: str,
        nsg_name: str,
        subnet_name: str,
        address_space: str,
        subnet_prefix: str,
        rules: Sequence[network.SecurityRuleArgs] = (),
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(token, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.nsg = network.NetworkSecurityGroup(
            f"{name}-nsg",
            network_security_group_name=nsg_name,
            resource_group_name=resource_group_name,
            location=location,
            security_rules=list(rules),
            tags=dict(tags),
            opts=child,
        )
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=vnet_name,
            resource_group_name=resource_group_name,
            location=location,
            address_space=network.AddressSpaceArgs(address_prefixes=[address_space]),
            tags=dict(tags),
            # Subnets are their own resources; keep the VNet from fighting over them.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),
        )
        self.subnet = network.Subnet(
            f"{name}-subnet",
            subnet_name=subnet_name,
            resource_group_name=resource_group_name,
            virtual_network_name=self.vnet.name,
            address_prefix=subnet_prefix,
            network_security_group=network.NetworkSecurityGroupArgs(id=self.nsg.id),
            # New subnets lose default outbound access; builders reach package mirrors
            # through it until the caller adds a NAT gateway.
            default_outbound_access=True,
            opts=child,
        )
        self.register_outputs({"vnetId": self.vnet.id, "subnetId": self.subnet.id})


def build_network(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: str,
    vnet_name: str,
    nsg_name: str,
    subnet_name: str,
    address_space: str,
    subnet_prefix: str,
    tags: Mapping[str, str],
) -> PrivateNetwork:
    """The builders' network: no inbound rule at all; Run Command needs none."""
    return PrivateNetwork(
        name,
        token="imagefactory:build:Network",
        resource_group_name=resource_group_name,
        location=location,
        vnet_name=vnet_name,
        nsg_name=nsg_name,
        subnet_name=subnet_name,
        address_space=address_space,
        subnet_prefix=subnet_prefix,
        tags=tags,
    )


def consumer_network(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: str,
    vnet_name: str,
    nsg_name: str,
    address_space: str,
    subnet_prefix: str,
    tags: Mapping[str, str],
) -> PrivateNetwork:
    """A consumer region's network: HTTP from inside the VNet and from Azure's load balancer."""
    http = network.SecurityRuleArgs(
        name="allow-http-vnet",
        priority=200,
        direction="Inbound",
        access="Allow",
        protocol="Tcp",
        source_address_prefix="VirtualNetwork",
        source_port_range="*",
        destination_address_prefix="*",
        destination_port_range="80",
    )
    probe = network.SecurityRuleArgs(
        name="allow-azure-lb",
        priority=210,
        direction="Inbound",
        access="Allow",
        protocol="*",
        source_address_prefix="AzureLoadBalancer",
        source_port_range="*",
        destination_address_prefix="*",
        destination_port_range="*",
    )
    return PrivateNetwork(
        name,
        token="imagefactory:consume:Network",
        resource_group_name=resource_group_name,
        location=location,
        vnet_name=vnet_name,
        nsg_name=nsg_name,
        subnet_name="workloads",
        address_space=address_space,
        subnet_prefix=subnet_prefix,
        rules=[http, probe],
        tags=tags,
    )
