"""An audit-log plugin: session and delivery events as JSON lines."""
