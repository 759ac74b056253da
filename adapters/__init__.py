"""Provider adapters: pure functions from a raw webhook request to normalized events.

No web framework is imported here: each adapter takes (method, url, headers, query, raw body)
and returns receipts and inbound messages, or raises a clear error.
"""
