"""Prompts of a fixed token length: random text (unique per request, so the server's prefix
cache cannot shorten prefill) or prompts read from a dataset file.

Lengths are made exact with the server's own tokenizer (vLLM's ``/tokenize`` and
``/detokenize``), like `vllm bench serve` re-aligns its prompts. A server without those (Open
WebUI) gets a length calibrated from ``usage.prompt_tokens``; the token counts reported are
always the server's ``usage``.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from r1deploy import modelserver
from r1deploy.bench.target import Target


class WorkloadError(Exception):
    """The dataset or the prompt length cannot be used; the message says where and the fix."""


@dataclass
class Prompt:
    text: str
    tokens: int | None  # as the server's tokenizer counts the text alone; None if unknown


def random_text(rng: random.Random, words: int) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(words)
    )


def read_dataset(path: Path) -> list[str]:
    """Prompts from ``.jsonl`` (objects with a string ``prompt``) or text (a line each)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorkloadError(
            f"{path}: cannot read ({exc.strerror}). Fix: check --dataset."
        ) from None
    prompts: list[str] = []
    is_jsonl = path.suffix in (".jsonl", ".json")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not is_jsonl:
            prompts.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(
                f"{path}:{number}: not valid JSON ({exc.msg}). Fix: one JSON object a line, "
                'e.g. {"prompt": "..."}.'
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise WorkloadError(
                f'{path}:{number}: /prompt must be a string. Fix: {{"prompt": "..."}} a line.'
            )
        prompts.append(record["prompt"])
    if not prompts:
        raise WorkloadError(f"{path}: no prompts. Fix: one prompt a line (.txt) or .jsonl records.")
    return prompts


class TokenizerClient:
    """The server's tokenizer through its ``/tokenize`` and ``/detokenize``, asked in the
    server's own words (vLLM's or llama.cpp's: the kind the bench read from /v1/models)."""

    def __init__(self, session: aiohttp.ClientSession, target: Target) -> None:
        self.session = session
        self.target = target
        # Behind a front door (which hides /tokenize): the model server itself, with its key.
        self.base = (target.inside_url or target.base_url).rstrip("/")
        self.headers = target.inside_headers() if target.inside_url else target.headers()
        self.kind = target.extra.get("server_kind", modelserver.VLLM)
        self._limit = asyncio.Semaphore(16)

    async def _post(self, path: str, body: dict) -> dict:
        async with (
            self._limit,
            self.session.post(self.base + path, json=body, headers=self.headers) as response,
        ):
            if response.status != 200:
                raise WorkloadError(f"{self.base}{path}: HTTP {response.status}")
            return await response.json()

    async def tokenize(self, text: str) -> list[int]:
        body = modelserver.tokenize_request(self.kind, self.target.model, text)
        return (await self._post("/tokenize", body))["tokens"]

    async def detokenize(self, tokens: list[int]) -> str:
        body = modelserver.detokenize_request(self.kind, self.target.model, tokens)
        return modelserver.detokenized_text(self.kind, await self._post("/detokenize", body))

    async def available(self) -> bool:
        # A tokenizer that answers with no tokens (llama.cpp given vLLM's words) would make
        # fit() extend its text forever: only one that counts a word counts.
        try:
            return len(await self.tokenize("probe")) > 0
        except (WorkloadError, aiohttp.ClientError, KeyError, ValueError):
            return False

    async def fit(self, text: str, length: int, rng: random.Random) -> Prompt:
        """Cut (or extend with random words) ``text`` to ``length`` tokens."""
        tokens = await self.tokenize(text)
        while len(tokens) < length:
            text = f"{text} {random_text(rng, length - len(tokens))}"
            tokens = await self.tokenize(text)
        fitted = await self.detokenize(tokens[:length])
        # Decode/encode can merge across the cut; count again rather than assume.
        return Prompt(fitted, len(await self.tokenize(fitted)))


async def calibrate_tokens_per_word(
    session: aiohttp.ClientSession, target: Target, rng: random.Random
) -> float:
    """Tokens per random word, from ``usage.prompt_tokens`` of two one-token requests."""
    counts = []
    for words in (64, 128):
        body = {
            "model": target.model,
            "max_tokens": 1,
            "stream": False,
            "messages": [{"role": "user", "content": random_text(rng, words)}],
        }
        async with session.post(target.chat_url, json=body, headers=target.headers()) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(data, dict) or "usage" not in data:
                raise WorkloadError(
                    f"{target.chat_url}: calibrating prompt length failed (HTTP {resp.status}). "
                    "Fix: use a vLLM endpoint (it has /tokenize) or check the server."
                )
            counts.append(data["usage"]["prompt_tokens"])
    return max((counts[1] - counts[0]) / 64, 0.1)


async def build_prompts(
    session: aiohttp.ClientSession,
    target: Target,
    count: int,
    input_len: int | None,
    dataset: list[str] | None,
    seed: int,
) -> tuple[list[Prompt], str]:
    """``count`` prompts and a note on how their length was made."""
    rng = random.Random(seed)
    sources = (
        [dataset[i % len(dataset)] for i in range(count)]
        if dataset
        else [random_text(rng, input_len) for _ in range(count)]
    )
    if input_len is None:
        return [Prompt(text, None) for text in sources], "dataset prompts as written"
    tokenizer = TokenizerClient(session, target)
    if await tokenizer.available():
        prompts = await asyncio.gather(*(tokenizer.fit(t, input_len, rng) for t in sources))
        return list(prompts), "exact, server /tokenize"
    if dataset:
        raise WorkloadError(
            f"--input-len with --dataset needs the server's /tokenize, which {target.base_url} "
            "does not offer. Fix: drop --input-len to send the dataset's prompts as written, "
            "or point at the vLLM endpoint."
        )
    per_word = await calibrate_tokens_per_word(session, target, rng)
    words = max(1, round(input_len / per_word))
    return (
        [Prompt(random_text(rng, words), None) for _ in range(count)],
        f"approximate ({per_word:.2f} tokens/word from usage)",
    )
