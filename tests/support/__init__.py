"""Test support: real services started for the integration tests."""
