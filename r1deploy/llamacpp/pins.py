"""The llama.cpp pin (pins.json): read by this package and by roles/r1_stack, kept once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PINS_FILE = Path(__file__).with_name("pins.json")


@dataclass(frozen=True)
class Pins:
    version: str  # of the source archive (llama-cpp-python)
    file: str
    url: str
    sha256: str
    llama_cpp_dir: str  # where llama.cpp is inside the archive
    commit: str
    build: int  # llama.cpp's build number: the bNNNNN of its releases and images
    image_repository: str
    image_tag_prefix: str
    gguf_py_version: str
    targets: tuple[str, ...]

    @property
    def build_tag(self) -> str:
        return f"b{self.build}"

    @property
    def image(self) -> str:
        """The llama.cpp server image of the same build (the docker runtime's)."""
        return f"{self.image_repository}:{self.image_tag_prefix}{self.build}"

    @property
    def build_info(self) -> str:
        """What llama-server reports as /props build_info: b<build>-<short commit>."""
        return f"{self.build_tag}-{self.commit[:7]}"


@cache
def load(path: Path = PINS_FILE) -> Pins:
    data = json.loads(path.read_text(encoding="utf-8"))
    source, llama = data["source"], data["llama_cpp"]
    return Pins(
        version=source["version"],
        file=source["file"],
        url=source["url"],
        sha256=source["sha256"],
        llama_cpp_dir=source["llama_cpp_dir"],
        commit=llama["commit"],
        build=int(llama["build"]),
        image_repository=data["image_repository"],
        image_tag_prefix=data["image_tag_prefix"],
        gguf_py_version=data["gguf_py_version"],
        targets=tuple(data["targets"]),
    )


def cache_root() -> Path:
    """Where builds and downloads are kept on this machine, shared by every checkout and CI
    run (the e2e tier's server environments live there too)."""
    return Path(os.environ.get("R1DEPLOY_CACHE", Path.home() / ".cache" / "r1deploy"))
