"""Settings: the schema, loading through dynaconf and validation."""
