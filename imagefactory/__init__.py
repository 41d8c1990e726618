"""Pure building blocks of the image factory: settings, names, scripts, the output contract.

Nothing in this package registers a resource; ``components/`` does that.
"""
