"""The Redis store: the manager's semantics in Lua scripts, shared by every replica."""
