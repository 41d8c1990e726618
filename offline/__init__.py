"""The offline tooling: it runs the program from the outside, with no cloud and no CLI.

    engine     the real `__main__.py` under Pulumi's mock engine, options recorded
    plan       what `pulumi up` would build, as a tree, markdown or JSON
    plandiff   two plans compared: image-level summary and resource-level actions
    changes    what the engine would do to each resource between two runs
    refusals   Azure's refusal rules, each with its source, applied to those actions
    schedule   estimated `pulumi up` wall time over the registered graph
    latency    the per-resource duration model the schedule uses
    bump       the next patch version of an image, written into a stack file

The program itself (`__main__.py`, `components/`) imports only `imagefactory/`, the
library; nothing here is imported by it.
"""
