"""A separate Pulumi project that deploys a scale set from an imagefactory stack's images."""
