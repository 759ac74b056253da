"""Failure triage: decide what to do about a failed message from its failure kind."""
