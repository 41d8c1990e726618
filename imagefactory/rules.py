"""Azure's rules that need no facts: admin accounts, tags, subnets, role assignments.

Each rule is a small pure function returning problem lines (`key: value ...; allowed ...`)
with the page it comes from beside it. `settings` runs them over the parsed config.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence

from imagefactory import naming

NAMESPACE = "imagefactory"


def config_key(path: Iterable[str | int]) -> str:
    """('images', 0, 'builder') -> 'imagefactory:images[0].builder'."""
    out = NAMESPACE + ":"
    first = True
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += part if first else f".{part}"
        first = False
    return out


# --- admin accounts ------------------------------------------------------------------------
# OSProfile.adminUsername, https://learn.microsoft.com/rest/api/compute/virtual-machines/
# create-or-update#osprofile: the disallowed names, 1-64 characters on Linux, at most 20 on
# Windows, and on Windows no trailing '.'. The character sets are those `az vm create`
# enforces before calling Azure (azure-cli, command_modules/vm/_validators.py,
# _validate_admin_username).
RESERVED_ADMIN_NAMES = frozenset(
    {
        "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3",
        "admin1", "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup",
        "console", "david", "guest", "john", "owner", "root", "server", "sql", "support",
        "support_388945a0", "sys", "test2", "test3", "user4", "user5",
    }
)  # fmt: skip
ADMIN_MAX = {"linux": 64, "windows": 20}
_LINUX_ADMIN_BAD = re.compile(r'[\\/"\[\]:|<>+=;,?*@#()!A-Z\s]')
_WINDOWS_ADMIN_BAD = re.compile(r'[\\/"\[\]:|<>+=;,?*@\s]')


def admin_username(key: str, name: str, oses: Sequence[str]) -> list[str]:
    """The admin account every builder and consumer VM gets; `oses`: the stack's images."""
    problems: list[str] = []
    if name.lower() in RESERVED_ADMIN_NAMES:
        problems.append(
            f"{key}: {name!r} is a name Azure reserves for admin accounts; choose another, "
            "e.g. 'azureuser' (reserved: administrator, admin, root, guest, test, user and "
            "the others in the OSProfile adminUsername documentation)"
        )
    for os in ("windows", "linux"):
        if os not in oses:
            continue
        limit = ADMIN_MAX[os]
        if len(name) > limit:
            problems.append(
                f"{key}: {name!r} has {len(name)} characters; {os.capitalize()} admin "
                f"names have at most {limit} (the stack has {os} images)"
            )
    if "windows" in oses:
        if _WINDOWS_ADMIN_BAD.search(name):
            problems.append(
                f"{key}: {name!r} has a character Windows admin names cannot hold; not "
                'allowed: \\ / " [ ] : | < > + = ; , ? * @ and spaces'
            )
        if name.endswith("."):
            problems.append(f"{key}: {name!r} ends in '.', which Windows admin names cannot")
    if "linux" in oses and (_LINUX_ADMIN_BAD.search(name) or name[:1] in ("-", "$")):
        problems.append(
            f"{key}: {name!r} is not a Linux user name; use lower-case letters, digits, "
            "'_', '-' and '.', not starting with '-' or '$'"
        )
    return problems


# --- tags ----------------------------------------------------------------------------------
# https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations
TAGS_MAX = 50
TAG_NAME_MAX = 512
TAG_VALUE_MAX = 256
TAG_NAME_FORBIDDEN = "<>%&\\?/"
# What the program adds to a resource at most: managed-by, imagefactory-stack, -image,
# -version and -lifecycle (naming.tags), and a test VM's role.
PROGRAM_TAGS = (
    "managed-by",
    "imagefactory-stack",
    "imagefactory-image",
    "imagefactory-version",
    "imagefactory-lifecycle",
    naming.ROLE_TAG,
)
# Names only the program writes: a stack tag must never pass for a validation.
RESERVED_TAGS = (*PROGRAM_TAGS, *naming.VALIDATION_TAGS)
# The most the program puts on one resource: a gallery version's managed-by, stack, image
# and version, and its validation tags. Those are kept as first written (ignore_changes),
# so stack tags added later must still leave room for them.
VERSION_PROGRAM_TAGS = 4 + len(naming.VALIDATION_TAGS)


def tags(key: str, values: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    room = TAGS_MAX - VERSION_PROGRAM_TAGS
    if len(values) > room:
        problems.append(
            f"{key}: {len(values)} tags; Azure allows {TAGS_MAX} per resource and the "
            f"program adds up to {VERSION_PROGRAM_TAGS} of its own to a gallery version "
            f"(managed-by, imagefactory-stack, imagefactory-image, imagefactory-version and "
            f"the {len(naming.VALIDATION_TAGS)} validation tags), so at most {room} here"
        )
    seen: dict[str, str] = {}
    for name, value in values.items():
        at = f"{key}.{name}" if len(name) <= 40 else f"{key}.{name[:40]}..."
        bad = sorted({c for c in name if c in TAG_NAME_FORBIDDEN})
        if not name:
            problems.append(
                f"{key}: a tag name is empty; tag names have 1-{TAG_NAME_MAX} characters"
            )
        if len(name) > TAG_NAME_MAX:
            problems.append(
                f"{at}: the tag name has {len(name)} characters; at most {TAG_NAME_MAX}"
            )
        if bad:
            problems.append(
                f"{at}: tag name {name!r} contains {' '.join(bad)}; tag names cannot contain "
                "< > % & \\ ? /"
            )
        if len(str(value)) > TAG_VALUE_MAX:
            problems.append(
                f"{at}: the value has {len(str(value))} characters; tag values have at most "
                f"{TAG_VALUE_MAX}"
            )
        folded = name.lower()
        if folded in RESERVED_TAGS:
            problems.append(
                f"{at}: {name!r} is a tag the program sets itself; allowed: any other name"
            )
        elif folded.startswith("imagefactory-"):
            # naming.own_tags keeps every imagefactory-* tag on the builders' Run Commands,
            # which Azure refuses to update once the builder is deallocated.
            problems.append(
                f"{at}: {name!r}: names starting with 'imagefactory-' are the program's own; "
                "allowed: any other name"
            )
        elif folded in seen:
            problems.append(
                f"{at}: tag names compare case-insensitively in Azure, so {name!r} and "
                f"{seen[folded]!r} are the same tag; keep one"
            )
        seen.setdefault(folded, name)
    return problems


# --- networks ------------------------------------------------------------------------------
# https://learn.microsoft.com/azure/virtual-network/virtual-networks-faq: the smallest
# IPv4 subnet is /29, and Azure reserves 5 addresses in every subnet.
SMALLEST_SUBNET_PREFIX = 29
RESERVED_PER_SUBNET = 5


def usable_addresses(net: ipaddress.IPv4Network) -> int:
    return int(net.num_addresses) - RESERVED_PER_SUBNET


def subnet(key: str, net: ipaddress.IPv4Network, needed: int, for_what: str) -> list[str]:
    if net.prefixlen > SMALLEST_SUBNET_PREFIX:
        return [
            f"{key}: {str(net)!r} is smaller than Azure's smallest subnet, a "
            f"/{SMALLEST_SUBNET_PREFIX} (3 usable addresses); use a prefix of "
            f"/{SMALLEST_SUBNET_PREFIX} or less"
        ]
    if needed > usable_addresses(net):
        return [
            f"{key}: {str(net)!r} has {usable_addresses(net)} usable addresses (Azure "
            f"reserves {RESERVED_PER_SUBNET}), but {for_what} need {needed}; use a larger subnet"
        ]
    return []


# --- gallery sharing -----------------------------------------------------------------------
# Azure keeps one role assignment per principal, role and scope: a second one fails with
# RoleAssignmentExists (https://learn.microsoft.com/azure/role-based-access-control/
# troubleshooting#symptom---role-assignment-already-exists).


def duplicate_principals(key: str, principal_ids: Sequence[str]) -> list[str]:
    problems: list[str] = []
    first: dict[str, int] = {}
    for n, pid in enumerate(principal_ids):
        folded = pid.lower()
        if folded in first:
            problems.append(
                f"{key}[{n}].principalId: {pid!r} is already listed at sharing[{first[folded]}]; "
                "Azure keeps one Reader assignment per principal on the gallery "
                "(RoleAssignmentExists), so list each principal once"
            )
        else:
            first[folded] = n
    return problems
