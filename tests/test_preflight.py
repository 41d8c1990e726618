"""Azure's rules, one case each: the facts (sizes, images, disks, plans) and the fact-free
rules (admin names, tags, subnets, sharing, shallow replication), with exact messages.

Each case starts from the real prod config, breaks one thing (a size, a base image, ...)
and expects exactly the problems listed. The good edges after them must pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_settings import put

from imagefactory.settings import ConfigError, check

ROCKY = {"name": "9-base", "product": "rockylinux-x86_64", "publisher": "resf"}
SNAPSHOT = "the facts snapshot of 2026-11-29 (imagefactory/facts/)"

CASES: list[tuple[str, list[tuple[str, Any]], list[str]]] = [
    (
        "dv3 v2",
        [("builder.vmSize", "Standard_D2_v3")],
        [
            line
            for image in ("webserver", "hardened", "webapp")
            for line in (
                "imagefactory:builder.vmSize: 'Standard_D2_v3' cannot boot the builder of image "
                f"{image!r} (generation V2); it boots V1 only (HyperVGenerations); allowed: a "
                "size whose HyperVGenerations include V2, such as 'Standard_D2s_v5'",
                "imagefactory:builder.osDiskType: 'Premium_LRS' needs a VM size with premium "
                f"storage, and the builder of image {image!r} is 'Standard_D2_v3', which has "
                "none (PremiumIO False); use 'StandardSSD_LRS' or a premium-capable size such as "
                "'Standard_D2s_v3'",
            )
        ],
    ),
    (
        "arm64 default size",
        [
            ("images.0.architecture", "Arm64"),
            (
                "images.0.baseImage",
                {"offer": "ubuntu-24_04-lts", "publisher": "Canonical", "sku": "server-arm64"},
            ),
        ],
        [
            "imagefactory:builder.vmSize: 'Standard_D2s_v5' is an x64 size and cannot run the "
            "builder of image 'webserver' (Arm64); allowed: an Arm64 size, such as "
            "'Standard_D2ps_v5'",
            "imagefactory:scaleSets[0].sku: 'Standard_D2s_v5' is an x64 size and cannot run "
            "image 'webserver' (Arm64); allowed: an Arm64 size, such as 'Standard_D2ps_v5'",
            "imagefactory:scaleSets[1].sku: 'Standard_D2s_v5' is an x64 size and cannot run "
            "image 'webserver' (Arm64); allowed: an Arm64 size, such as 'Standard_D2ps_v5'",
        ],
    ),
    (
        "arm image x64 base",
        [("images.0.architecture", "Arm64")],
        [
            "imagefactory:images[0].architecture: 'Arm64' does not match the default base image "
            "Canonical:ubuntu-24_04-lts:server:latest, which is x64; use architecture: x64, or "
            "an Arm64 base image such as baseImage.sku: server-arm64",
            "imagefactory:builder.vmSize: 'Standard_D2s_v5' is an x64 size and cannot run the "
            "builder of image 'webserver' (Arm64); allowed: an Arm64 size, such as "
            "'Standard_D2ps_v5'",
            "imagefactory:scaleSets[0].sku: 'Standard_D2s_v5' is an x64 size and cannot run "
            "image 'webserver' (Arm64); allowed: an Arm64 size, such as 'Standard_D2ps_v5'",
            "imagefactory:scaleSets[1].sku: 'Standard_D2s_v5' is an x64 size and cannot run "
            "image 'webserver' (Arm64); allowed: an Arm64 size, such as 'Standard_D2ps_v5'",
        ],
    ),
    (
        "premium on d2_v5",
        [("builder.vmSize", "Standard_D2_v5")],
        [
            "imagefactory:builder.osDiskType: 'Premium_LRS' needs a VM size with premium "
            f"storage, and the builder of image {image!r} is 'Standard_D2_v5', which has none "
            "(PremiumIO False); use 'StandardSSD_LRS' or a premium-capable size such as "
            "'Standard_D2s_v5'"
            for image in ("webserver", "hardened", "webapp")
        ],
    ),
    (
        "windows on b1ls",
        [("builder.windowsVmSize", "Standard_B1ls")],
        [
            "imagefactory:builder.windowsVmSize: 'Standard_B1ls' runs linux only and cannot run "
            "the builder of image 'iis' (windows); choose another size"
        ],
    ),
    (
        "vm group b1ls",
        [("vmGroups.0.size", "Standard_B1ls")],
        [
            "imagefactory:vmGroups[0].size: 'Standard_B1ls' runs linux only and cannot run image "
            "'iis' (windows); choose another size"
        ],
    ),
    (
        "scale set arm",
        [("scaleSets.0.sku", "Standard_D2ps_v5")],
        [
            "imagefactory:scaleSets[0].sku: 'Standard_D2ps_v5' is an Arm64 size and cannot run "
            "image 'webserver' (x64); allowed: an x64 size, such as 'Standard_D2s_v5'",
            "imagefactory:scaleSets[0].sku: 'Standard_D2ps_v5' does not support Trusted Launch "
            "(TrustedLaunchDisabled), which image 'webserver' needs; allowed: a size that "
            "supports it, or securityType Standard",
        ],
    ),
    (
        "scale set dv3",
        [("scaleSets.0.sku", "Standard_D2_v3")],
        [
            "imagefactory:scaleSets[0].sku: 'Standard_D2_v3' cannot boot image 'webserver' "
            "(generation V2); it boots V1 only (HyperVGenerations); allowed: a size whose "
            "HyperVGenerations include V2, such as 'Standard_D2s_v5'"
        ],
    ),
    (
        "tl builder on arm",
        [("images.1.builder.vmSize", "Standard_D2ps_v5")],
        [
            "imagefactory:images[1].builder.vmSize: 'Standard_D2ps_v5' is an Arm64 size and "
            "cannot run the builder of image 'iis' (x64); allowed: an x64 size, such as "
            "'Standard_D2s_v5'",
            "imagefactory:images[1].builder.vmSize: 'Standard_D2ps_v5' does not support Trusted "
            "Launch (TrustedLaunchDisabled), which the builder of image 'iis' needs; allowed: a "
            "size that supports it, or securityType Standard",
        ],
    ),
    (
        "gen1 default",
        [("images.0.generation", "V1"), ("images.0.securityType", "Standard")],
        [
            "imagefactory:images[0].generation: 'V1' does not match the default base image "
            "Canonical:ubuntu-24_04-lts:server:latest, which is a V2 image (the managed image "
            "and definition would be labelled V1 while the VM boots V2); use generation: V2, or "
            "a V1 base image such as baseImage.sku: server-gen1"
        ],
    ),
    (
        "v2 with gen1 sku",
        [
            (
                "images.0.baseImage",
                {"offer": "ubuntu-24_04-lts", "publisher": "Canonical", "sku": "server-gen1"},
            )
        ],
        [
            "imagefactory:images[0].generation: 'V2' does not match the base image "
            "Canonical:ubuntu-24_04-lts:server-gen1:latest, which is a V1 image (the managed "
            "image and definition would be labelled V2 while the VM boots V1); use generation: "
            "V1, or a V2 base image such as baseImage.sku: server"
        ],
    ),
    (
        "windows base for linux",
        [
            (
                "images.0.baseImage",
                {
                    "offer": "WindowsServer",
                    "publisher": "MicrosoftWindowsServer",
                    "sku": "2022-datacenter-g2",
                },
            )
        ],
        [
            "imagefactory:images[0].os: 'linux' does not match the base image "
            "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest, which is a windows "
            "image; use os: windows or a linux base image"
        ],
    ),
    (
        "disk 64 windows",
        [("builder.osDiskSizeGb", 64)],
        [
            "imagefactory:builder.osDiskSizeGb: 64 GiB is smaller than the 127 GiB OS disk of "
            "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest (image 'iis'); a "
            "disk cannot be smaller than its image: use at least 127, or leave it out to take "
            "the image's size"
        ],
    ),
    (
        "disk 64 image own",
        [("images.1.builder.osDiskSizeGb", 64)],
        [
            "imagefactory:images[1].builder.osDiskSizeGb: 64 GiB is smaller than the 127 GiB OS "
            "disk of MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest (image "
            "'iis'); a disk cannot be smaller than its image: use at least 127, or leave it out "
            "to take the image's size"
        ],
    ),
    (
        "plan missing",
        [
            (
                "images.0.baseImage",
                {"offer": "rockylinux-x86_64", "publisher": "resf", "sku": "9-base"},
            )
        ],
        [
            "imagefactory:images[0].baseImage.plan: resf:rockylinux-x86_64:9-base:latest is sold "
            "through a Marketplace purchase plan; add plan: {name: 9-base, product: "
            "rockylinux-x86_64, publisher: resf} (the builder, the definition and every consumer "
            "then carry it) and accept its terms once per subscription: az vm image terms accept "
            "--urn resf:rockylinux-x86_64:9-base:latest"
        ],
    ),
    (
        "plan wrong",
        [
            (
                "images.0.baseImage",
                {
                    "offer": "rockylinux-x86_64",
                    "plan": {"name": "8-base", "product": "rockylinux-x86_64", "publisher": "resf"},
                    "publisher": "resf",
                    "sku": "9-base",
                },
            )
        ],
        [
            "imagefactory:images[0].baseImage.plan: {name: 8-base, product: rockylinux-x86_64, "
            "publisher: resf} is not the plan of resf:rockylinux-x86_64:9-base:latest; Azure "
            "sells it as {name: 9-base, product: rockylinux-x86_64, publisher: resf}"
        ],
    ),
    (
        "plan extra",
        [
            (
                "images.0.baseImage",
                {
                    "offer": "ubuntu-24_04-lts",
                    "plan": ROCKY,
                    "publisher": "Canonical",
                    "sku": "server",
                },
            )
        ],
        [
            "imagefactory:images[0].baseImage.plan: Canonical:ubuntu-24_04-lts:server:latest has "
            "no purchase plan, so Azure refuses one on the VM; remove plan"
        ],
    ),
    (
        "admin",
        [("builder.adminUsername", "admin")],
        [
            "imagefactory:builder.adminUsername: 'admin' is a name Azure reserves for admin "
            "accounts; choose another, e.g. 'azureuser' (reserved: administrator, admin, root, "
            "guest, test, user and the others in the OSProfile adminUsername documentation)"
        ],
    ),
    (
        "admin 21",
        [("builder.adminUsername", "aaaaaaaaaaaaaaaaaaaaa")],
        [
            "imagefactory:builder.adminUsername: 'aaaaaaaaaaaaaaaaaaaaa' has 21 characters; "
            "Windows admin names have at most 20 (the stack has windows images)"
        ],
    ),
    (
        "admin dot",
        [("builder.adminUsername", "deploy.")],
        [
            "imagefactory:builder.adminUsername: 'deploy.' ends in '.', which Windows admin "
            "names cannot"
        ],
    ),
    (
        "admin upper",
        [("builder.adminUsername", "Deploy")],
        [
            "imagefactory:builder.adminUsername: 'Deploy' is not a Linux user name; use "
            "lower-case letters, digits, '_', '-' and '.', not starting with '-' or '$'"
        ],
    ),
    (
        "admin Administrator",
        [("builder.adminUsername", "Administrator")],
        [
            "imagefactory:builder.adminUsername: 'Administrator' is a name Azure reserves for "
            "admin accounts; choose another, e.g. 'azureuser' (reserved: administrator, admin, "
            "root, guest, test, user and the others in the OSProfile adminUsername documentation)",
            "imagefactory:builder.adminUsername: 'Administrator' is not a Linux user name; use "
            "lower-case letters, digits, '_', '-' and '.', not starting with '-' or '$'",
        ],
    ),
    (
        "tags 41",
        [
            (
                "tags",
                {
                    "t0": "v",
                    "t1": "v",
                    "t10": "v",
                    "t11": "v",
                    "t12": "v",
                    "t13": "v",
                    "t14": "v",
                    "t15": "v",
                    "t16": "v",
                    "t17": "v",
                    "t18": "v",
                    "t19": "v",
                    "t2": "v",
                    "t20": "v",
                    "t21": "v",
                    "t22": "v",
                    "t23": "v",
                    "t24": "v",
                    "t25": "v",
                    "t26": "v",
                    "t27": "v",
                    "t28": "v",
                    "t29": "v",
                    "t3": "v",
                    "t30": "v",
                    "t31": "v",
                    "t32": "v",
                    "t33": "v",
                    "t34": "v",
                    "t35": "v",
                    "t36": "v",
                    "t37": "v",
                    "t38": "v",
                    "t39": "v",
                    "t4": "v",
                    "t40": "v",
                    "t5": "v",
                    "t6": "v",
                    "t7": "v",
                    "t8": "v",
                    "t9": "v",
                },
            )
        ],
        [
            "imagefactory:tags: 41 tags; Azure allows 50 per resource and the program adds up to "
            "10 of its own to a gallery version (managed-by, imagefactory-stack, "
            "imagefactory-image, imagefactory-version and the 6 validation tags), so at most 40 "
            "here"
        ],
    ),
    (
        "tag name long",
        [
            (
                "tags",
                {"n" * 513: "v"},
            )
        ],
        [
            "imagefactory:tags.nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...: the tag name has 513 "
            "characters; at most 512"
        ],
    ),
    (
        "tag value long",
        [
            (
                "tags",
                {"team": "v" * 257},
            )
        ],
        ["imagefactory:tags.team: the value has 257 characters; tag values have at most 256"],
    ),
    (
        "tag chars",
        [("tags", {"cost/center": "1"})],
        [
            "imagefactory:tags.cost/center: tag name 'cost/center' contains /; tag names cannot "
            "contain < > % & \\ ? /"
        ],
    ),
    (
        "tag case",
        [("tags", {"Owner": "a", "owner": "b"})],
        [
            "imagefactory:tags.owner: tag names compare case-insensitively in Azure, so 'owner' "
            "and 'Owner' are the same tag; keep one"
        ],
    ),
    (
        "tag program",
        [("tags", {"Managed-By": "me"})],
        [
            "imagefactory:tags.Managed-By: 'Managed-By' is a tag the program sets itself; "
            "allowed: any other name"
        ],
    ),
    (
        "tag a validation writes",
        [("tags", {"imagefactory-validation": "passed: trust me"})],
        [
            "imagefactory:tags.imagefactory-validation: 'imagefactory-validation' is a tag the "
            "program sets itself; allowed: any other name"
        ],
    ),
    (
        "subnet /30",
        [("network", {"builderSubnet": "10.42.1.0/30"})],
        [
            "imagefactory:network.builderSubnet: '10.42.1.0/30' is smaller than Azure's smallest "
            "subnet, a /29 (3 usable addresses); use a prefix of /29 or less"
        ],
    ),
    (
        "builder subnet without room for the test VMs",
        [
            ("network", {"builderSubnet": "10.42.1.0/29"}),
            ("images.2.versions.0.builder", "retired"),
        ],
        [
            "imagefactory:network.builderSubnet: '10.42.1.0/29' has 3 usable addresses (Azure "
            "reserves 5), but 3 active builder(s) and their test VM(s) need 6; use a larger "
            "subnet"
        ],
    ),
    (
        "test VM size that cannot boot the image",
        [("images.0.validation", {"vmSize": "Standard_D2_v3"})],
        [
            "imagefactory:images[0].validation.vmSize: 'Standard_D2_v3' cannot boot the "
            "validation test VM of image 'webserver' (generation V2); it boots V1 only "
            "(HyperVGenerations); allowed: a size whose HyperVGenerations include V2, such as "
            "'Standard_D2s_v5'",
            "imagefactory:images[0].validation.vmSize: 'Standard_D2_v3' has no premium storage "
            "(PremiumIO False), and the test VM's OS disk is 'Premium_LRS' like the builder's "
            "(imagefactory:builder.osDiskType); choose a premium-capable size",
        ],
    ),
    (
        "validation script of the other OS",
        [("images.1.validation", {"scripts": ["linux/validate/20-webserver.sh"]})],
        [
            "imagefactory:images[1].validation.scripts[0]: 'linux/validate/20-webserver.sh' is "
            "not a windows script; windows images run .ps1 files"
        ],
    ),
    (
        "image names one VM name cannot tell apart",
        [("images.3.name", "Hardened")],
        [
            "imagefactory:images: images 'hardened' and 'Hardened' differ only in '-', "
            "'_', '.' or case, which VM names cannot tell apart (their builders and test VMs "
            "would share one name); rename one"
        ],
    ),
    (
        "tag in the program's own namespace",
        [("tags", {"imagefactory-team": "platform"})],
        [
            "imagefactory:tags.imagefactory-team: 'imagefactory-team': names starting with "
            "'imagefactory-' are the program's own; allowed: any other name"
        ],
    ),
    (
        "generalization listed as a check",
        [("images.0.validation", {"scripts": ["linux/generalize.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: 'linux/generalize.sh' is the "
            "program's own 'generalize' step, not a check; allowed: a script that only reads, "
            "e.g. under scripts/<os>/validate/"
        ],
    ),
    (
        "host-side script listed as a check",
        [("images.0.validation", {"scripts": ["azure/capture.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: 'azure/capture.sh' is not under "
            "scripts/linux/; checks run on the test VM: allowed: a linux script under "
            "scripts/linux/"
        ],
    ),
    (
        "validation switch written as no",
        [("validation", {"enabled": "no"})],
        ["imagefactory:validation.enabled: 'no' is not true or false; allowed: true or false"],
    ),
    (
        "validation script outside scripts/",
        [("images.0.validation", {"scripts": ["../../../tmp/evil.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: '../../../tmp/evil.sh' is outside "
            "scripts/; allowed: a path relative to scripts/, e.g. "
            "'linux/validate/20-webserver.sh'"
        ],
    ),
    (
        "validation script written with ./",
        [("images.0.validation", {"scripts": ["linux/validate/./10-base.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: 'linux/validate/./10-base.sh' is not "
            "written plainly; write it as 'linux/validate/10-base.sh'"
        ],
    ),
    (
        "validation script named like one of the image's checks",
        [("images.0.validation", {"scripts": ["linux/provision/20-webserver.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: 'linux/provision/20-webserver.sh' has "
            "the same file name as 'linux/validate/20-webserver.sh', and each step is named "
            "after its file name; rename one of them"
        ],
    ),
    (
        "the common check listed as an image's own",
        [("images.1.validation", {"scripts": ["windows/validate.ps1"]})],
        [
            "imagefactory:images[1].validation.scripts[0]: 'windows/validate.ps1' is the common "
            "check every test VM runs first; list only the image's own checks"
        ],
    ),
    (
        "provision script named like the audit step",
        [("images.2.scripts", ["linux/provision/10-base.sh", "linux/audit.sh"])],
        [
            "imagefactory:images[2].scripts[1]: 'linux/audit.sh' has the name of the program's "
            "own 'audit' step; rename the file"
        ],
    ),
    (
        "validation script that does not exist",
        [("images.0.validation", {"scripts": ["linux/validate/missing.sh"]})],
        [
            "imagefactory:images[0].validation.scripts[0]: 'linux/validate/missing.sh' does not "
            "exist under scripts/"
        ],
    ),
    (
        "subnet full",
        [("network", {"consumerSubnet": "10.60.1.0/29"})],
        [
            "imagefactory:network.consumerSubnet: '10.60.1.0/29' has 3 usable addresses (Azure "
            "reserves 5), but the scale set instances and VMs in 'eastus' need 14; use a larger "
            "subnet"
        ],
    ),
    (
        "ipv6",
        [("network", {"consumerAddressSpace": "fd00::/48", "consumerSubnet": "fd00::/64"})],
        [
            "imagefactory:network.consumerAddressSpace: 'fd00::/48' is IPv6; Azure virtual "
            "networks need an IPv4 range (e.g. '10.42.0.0/16')",
            "imagefactory:network.consumerSubnet: 'fd00::/64' is IPv6; Azure virtual networks "
            "need an IPv4 range (e.g. '10.42.0.0/16')",
        ],
    ),
    (
        "dup principal",
        [("gallery.sharing.1.principalId", "3F2A4C1E-8B7D-4E29-9A51-6C0D2E7F9B13")],
        [
            "imagefactory:gallery.sharing[1].principalId: '3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13' "
            "is already listed at sharing[0]; Azure keeps one Reader assignment per principal on "
            "the gallery (RoleAssignmentExists), so list each principal once"
        ],
    ),
    (
        "shallow",
        [("images.1.versions.0.replicationMode", "Shallow")],
        [
            "imagefactory:images[1].versions[0].regions[0].replicas: 2 replicas with "
            "replicationMode 'Shallow'; shallow replication keeps exactly 1 replica per region",
            "imagefactory:images[1].versions[0].regions[1].name: 'westeurope' with "
            "replicationMode 'Shallow'; a shallow version stays in its source region 'eastus' "
            "(config key imagefactory:location); use replicationMode: Full to replicate it",
        ],
    ),
    (
        "dup consumer case",
        [("vmGroups.0.name", "Web-US")],
        [
            "imagefactory:scaleSets: consumer 'Web-US' is defined more than once (names are "
            "shared by scaleSets and vmGroups) ('Web-US' and 'web-us' differ only in case, which "
            "Azure ignores)"
        ],
    ),
    (
        "float version",
        [("images.0.versions.1.version", 1.1)],
        [
            "imagefactory:images[0].versions[1].version: 1.1 is a YAML number, not a version: "
            "unquoted, 1.10 reads as 1.1; quote the version and give all three parts, "
            'e.g. "1.1.0"'
        ],
    ),
    (
        "float consumer version",
        [("scaleSets.1.version", 1.0)],
        [
            "imagefactory:scaleSets[1].version: 1.0 is a YAML number, not a version: "
            "unquoted, 1.10 reads as 1.1; quote the version and give all three parts, "
            'e.g. "1.0.0"'
        ],
    ),
]


@pytest.mark.parametrize(("edits", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_the_key_the_value_and_what_is_allowed(
    prod_raw: dict[str, Any], edits: list[tuple[str, Any]], expected: list[str]
) -> None:
    for path, value in edits:
        put(prod_raw, path, value)
    with pytest.raises(ConfigError) as caught:
        check(prod_raw)
    assert caught.value.problems == expected
    assert not any("input should" in p.lower() for p in caught.value.problems)


# --- good configs at the edges: they must pass, with no warning -------------------------------

GOOD: list[tuple[str, list[tuple[str, Any]]]] = [
    (
        "Windows scale set name of 16",
        [
            (
                "scaleSets.1",
                {
                    "name": "iis-web-frontend",
                    "region": "eastus",
                    "image": "iis",
                    "version": "1.0.0",
                },
            )
        ],
    ),
    ("upper-case scale set name", [("scaleSets.0.name", "Web-US")]),
    ("admin name of 20 with Windows images", [("builder.adminUsername", "a" * 20)]),
    (
        "40 tags, names of 512, values of 256",
        [("tags", {**{f"t{n}": "v" for n in range(38)}, "n" * 512: "v", "team": "v" * 256})],
    ),
    (
        "a /29 builder subnet for 3 builders, validation off",
        [
            ("network", {"builderSubnet": "10.42.1.0/29"}),
            ("images.2.versions.0.builder", "retired"),
            ("validation", {"enabled": False}),
        ],
    ),
    (
        "a /29 builder subnet for 1 builder and its test VM",
        [
            ("network", {"builderSubnet": "10.42.1.0/29"}),
            ("images.1.versions.0.builder", "retired"),
            ("images.2.versions.0.builder", "retired"),
            ("images.3.versions.0.builder", "retired"),
        ],
    ),
    ("Windows OS disk of exactly 127 GiB", [("builder.osDiskSizeGb", 127)]),
    ("premium OS disk on a premium size", [("builder.osDiskType", "Premium_ZRS")]),
    (
        "Gen1 image on a Gen1 base and a Gen1-only size",
        [
            ("images.0.generation", "V1"),
            ("images.0.securityType", "Standard"),
            (
                "images.0.baseImage",
                {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server-gen1"},
            ),
            ("images.0.builder", {"vmSize": "Standard_D2_v3", "osDiskType": "StandardSSD_LRS"}),
            ("scaleSets.0.sku", "Standard_A1_v2"),
        ],
    ),
    (
        "Arm64 image on an Arm64 base and sizes",
        [
            ("images.0.architecture", "Arm64"),
            ("images.0.securityType", "Standard"),
            (
                "images.0.baseImage",
                {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server-arm64"},
            ),
            ("images.0.builder", {"vmSize": "Standard_D2ps_v5"}),
            ("scaleSets.0.sku", "Standard_D2ps_v5"),
            ("scaleSets.1.sku", "Standard_D4ps_v5"),
        ],
    ),
    (
        "a plan image with its plan",
        [
            (
                "images.0.baseImage",
                {"publisher": "resf", "offer": "rockylinux-x86_64", "sku": "9-base", "plan": ROCKY},
            )
        ],
    ),
    (
        "case-insensitive duplicate principals are one only when equal",
        [("gallery.sharing.1.principalId", "9C1D7E52-4A3B-4F8E-B6D2-0E5A7C9F1B24")],
    ),
]


@pytest.mark.parametrize("edits", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_configs_at_the_edges_pass_without_warnings(
    prod_raw: dict[str, Any], edits: list[tuple[str, Any]]
) -> None:
    for path, value in edits:
        put(prod_raw, path, value)
    assert check(prod_raw).warnings == ()


def test_a_size_or_image_the_snapshot_does_not_know_is_a_warning(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "scaleSets.0.sku", "Standard_X9s_v9")
    put(
        prod_raw,
        "images.0.baseImage",
        {"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2"},
    )
    assert check(prod_raw).warnings == (
        "imagefactory:images[0].baseImage: 'Debian:debian-12:12-gen2:latest' is not in "
        f"{SNAPSHOT}; its OS, generation, disk size and plan were not checked. Run with "
        "Azure credentials (or "
        "python -m offline.plan --online) to ask Azure, or refresh the snapshot (see its 'refresh' "
        "command)",
        f"imagefactory:scaleSets[0].sku: 'Standard_X9s_v9' is not in {SNAPSHOT}; its generations "
        "and architecture were not checked. Run with Azure credentials (or python -m offline.plan "
        "--online) to ask Azure, or refresh the snapshot (see its 'refresh' command)",
    )


def test_the_windows_scale_set_gets_a_short_physical_name(prod_raw: dict[str, Any]) -> None:
    put(
        prod_raw,
        "scaleSets.1",
        {"name": "iis-web-frontend", "region": "eastus", "image": "iis", "version": "1.0.0"},
    )
    settings = check(prod_raw).settings
    assert settings.names.scale_set("iis-web-frontend", "windows") == "ss90be86580652"  # 14 of 15
    assert (
        settings.names.computer_name_prefix("iis-web-frontend", "windows") == "iis-w20e6"
    )  # 9 + 6 per instance
