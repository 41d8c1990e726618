"""One benchmark case, measured in this (fresh) process; prints one JSON line.

.venv/bin/python -m bench.case dev|prod|fleet-N
"""

from __future__ import annotations

import json
import resource
import sys
import time


def measure(case: str) -> dict[str, float | int | str]:
    start = time.perf_counter()
    # What __main__.py imports, so the evaluation below times only the program's run.
    import pulumi_azure_native
    import pulumi_command
    import pulumi_random
    import pulumi_tls

    import components.build
    import components.consumers
    import components.gallery
    import components.groups
    import components.image_version
    import components.network
    import imagefactory.stackconfig
    from offline import engine as offline_engine

    # azure-native loads each module on first attribute access: load what the program uses.
    _ = (
        pulumi_azure_native.authorization.RoleAssignment,
        pulumi_azure_native.compute.VirtualMachine,
        pulumi_azure_native.network.VirtualNetwork,
        pulumi_azure_native.resources.ResourceGroup,
        pulumi_command.local.Command,
        pulumi_random.RandomPassword,
        pulumi_tls.PrivateKey,
    )
    imported = time.perf_counter()
    if case.startswith("fleet-"):
        from bench.fleet import fleet_config

        images = int(case.split("-", 1)[1])
        config = fleet_config(images, 5)
        before, cpu = time.perf_counter(), time.process_time()
        run = offline_engine.run("fleet", config)
    else:
        images = 0
        before, cpu = time.perf_counter(), time.process_time()
        run = offline_engine.run(case)
    done, cpu_done = time.perf_counter(), time.process_time()
    del components, imagefactory  # imported for their cost only
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "case": case,
        "images": images or len(run.of_type("azure-native:compute:GalleryImage")),
        "resources": len(run.resources),
        "import_s": imported - start,
        "eval_s": done - before,
        "cpu_s": cpu_done - cpu,
        "rss_mb": peak_kb / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
