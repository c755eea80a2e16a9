"""The rendered compose file: validation against the Compose spec and this stack's rules."""

from r1deploy.compose.validate import Report, validate_file, validate_text

__all__ = ["Report", "validate_file", "validate_text"]
