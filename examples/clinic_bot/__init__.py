"""A clinic's aiohttp bot that enables the plugin and sends appointment reminders."""
