"""The stores behind one protocol: the durable in-memory store and the Redis store (``redis/``)."""
