"""Helpers shared by the test tiers (stub servers, ports)."""
