"""Tamper evidence and history: hash chains, signed checkpoints, a witness,
verification of live tenants and exported files, and replay as of an instant.

See docs/audit.md for what each check proves and what it cannot.
"""
