"""Examples of whatsapp-session-plugin, each run by a test (tests/test_examples.py)."""
