"""The fake world: devices, lines and a platform, speaking the real protocols.

Suppliers run these in their own CI, so they are a product with a CLI (`station-sim`) and a Python API,
not test scaffolding. They may use the wire codecs in `drivers/` (the same protocol, the other side),
never anything from `agent/`.
"""
