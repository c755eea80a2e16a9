"""Exports of a stack for other deployers: `r1deploy export helm` (docs/kubernetes.md)."""
