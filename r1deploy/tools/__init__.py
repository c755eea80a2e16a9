"""The tools.json plugin contract: validate and export."""

from r1deploy.tools.export import export, to_openai, to_openapi
from r1deploy.tools.validate import Report, ToolsFileError, load_plugins, validate_files

__all__ = [
    "Report",
    "ToolsFileError",
    "export",
    "load_plugins",
    "to_openai",
    "to_openapi",
    "validate_files",
]
