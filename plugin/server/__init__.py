"""The aiohttp application: webhook routes, admin routes, metrics and lifecycle."""
