"""The pure core: the normalized model, the status ladder, the record codec, periods, options,
the manager, sessions, tombstones, the memory bound and state export/import.

Standard library only: no web framework, no Redis client, no plugin system.
"""
