"""Images are pinned: a version tag or a digest, never a tag that moves."""

from __future__ import annotations

from r1deploy.compose.registry import RULES
from r1deploy.compose.services import ComposeFile
from r1deploy.diagnostics import Findings

IMAGE_PINNED = RULES["image-pinned"]
UNPINNED_TAGS = frozenset({"latest", "main", "nightly", "master", "dev"})


def check(compose: ComposeFile, found: Findings) -> None:
    for name, service in compose.services.items():
        image = service.get("image")
        if image is None:
            if "build" not in service:
                found.add(
                    ("services", name),
                    IMAGE_PINNED,
                    f"service {name} has neither image nor build",
                    "give it a pinned image (name:version) or a build section",
                )
            continue
        if not isinstance(image, str) or "$" in image:
            continue
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        if tag is None:
            found.add(
                ("services", name, "image"),
                IMAGE_PINNED,
                f"image {image} of service {name} has no tag, so it floats to latest",
                f"pin a version: {image}:<version> (or a @sha256: digest)",
            )
        elif tag.lower() in UNPINNED_TAGS:
            found.add(
                ("services", name, "image"),
                IMAGE_PINNED,
                f"image {image} of service {name} is not pinned: '{tag}' moves",
                f"pin a version tag or digest instead of '{tag}'",
            )
