"""Build a tiny Qwen2ForCausalLM model directory offline (no download).

The tokenizer is a byte-level BPE trained here with `tokenizers` on a small corpus, with
the R1 distill special tokens (``<｜begin▁of▁sentence｜>``, ``<｜User｜>``, ``<｜Assistant｜>``,
``<think>``...) and the hermes tool-call tokens that vLLM's parsers look up.

The scripted model is a bigram chain written straight into the weights: the attention and
MLP outputs are zero, so the last hidden state is the current token's embedding; each
token of the script has its own embedding dimension, and the LM head maps it to the next
token of the script with a large logit margin, so greedy output and sampling at
temperature 0.6 are fixed (see ``script``).

Tool calls go through vLLM's structured outputs: after ``</think>`` the grammar masks the
answer away and forces the hermes literal ``<tool_call>{"name": "get_weather",
"arguments": ``. Inside the arguments the model follows a fixed ranking of JSON
punctuation tokens (``"`` then ``{"`` then ``:``), which every token shares through a
constant embedding dimension, so it never pads with whitespace; a token that ends with
``"`` prefers ``Paris``, and ``Paris`` prefers ``"}``. The strict
``get_weather`` call therefore comes out as ``{"city":"Paris"}`` and a string can never
run on.
"""

from __future__ import annotations

import json
from pathlib import Path

from r1deploy.testmodel import script

TEMPLATE_FILE = Path(__file__).with_name("r1_distill_chat_template.jinja")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
SPECIAL_TOKENS = [
    EOS,
    BOS,
    PAD,
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>",
    "<｜tool▁outputs▁end｜>",
    "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>",
    "<｜tool▁sep｜>",
]
# Not special (they stay in the decoded text), as in the real tokenizer: the reasoning
# parser and the hermes tool parser find them there.
ADDED_TOKENS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]

HIDDEN = 128
HEADS = 4  # head size 32: vLLM's CPU attention needs 32 or more
KV_HEADS = 2
INTERMEDIATE = 256
MAX_POSITIONS = 8192

# Logit levels of the scripted head (after the final RMSNorm); every other token gets 0.
NEXT_LOGIT = 40.0  # the next token of the script
AFTER_QUOTE_LOGIT = 30.0  # a token ending with '"' (opens a string): the city
OUTSIDE_SCRIPT_LOGIT = 25.0  # any other token: start the script
# Shared by every token, so they decide wherever a grammar masks the script away.
# Each wins where JSON needs it and nothing better is allowed: '"' closes a key and opens a
# string value (then the city follows), '{"' opens the arguments object, ':' follows a key.
PUNCTUATION_RANKING = ['"', '{"', ":", "}"]
PUNCTUATION_TOP_LOGIT = 20.0
STOP_LOGIT = 5.0  # end of sequence, when nothing better is allowed

# Qwen2's split pattern: transformers loads any qwen2 model's tokenizer with it, whatever
# tokenizer.json says, so the tokenizer is trained with it too.
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS_TEXT = [
    script.REASONING,
    script.ANSWER,
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "What is the weather in Paris, Berlin, Tokyo or Lima today? Reason step by step.",
    "Find the maximum and the minimum of f(x) = x^3 - 3x^2 + 2 on [-1, 3].",
    '{"name": "get_weather", "arguments": {"city": "Paris"}} {"type": "function"}',
    "You may call one or more functions to assist with the user query.",
    "0 1 2 3 4 5 6 7 8 9 10 100 2024 3.14 -2 + - * / = ( ) [ ] { } < > , ; : ! ?",
    "Hello! How can I help you today? Sure, here is the answer.",
]


def _train_tokenizer():
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repetition makes whole words of the script single tokens.
    tokenizer.train_from_iterator([line for line in CORPUS_TEXT for _ in range(20)], trainer)
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    return tokenizer


def _wrap_tokenizer(tokenizer):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )
    fast.add_bos_token = False
    fast.chat_template = TEMPLATE_FILE.read_text(encoding="utf-8")
    return fast


def _config(vocab_size: int, fast):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=1,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=fast.convert_tokens_to_ids(BOS),
        eos_token_id=fast.convert_tokens_to_ids(EOS),
        pad_token_id=fast.convert_tokens_to_ids(PAD),
        torch_dtype="bfloat16",
    )


def script_chain(fast) -> list[int]:
    """Token ids of the scripted output: the last prompt token (the ``\\n`` of
    ``<think>\\n``), the reasoning, ``</think>``, the answer, end of sequence. Raises
    ValueError when the tokenizer cannot say it as a bigram chain (a token repeats)."""
    prompt = fast.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    if not prompt.endswith("<think>\n"):
        raise ValueError(f"the chat template must end the prompt with '<think>\\n': {prompt!r}")
    chain = [fast.encode(prompt, add_special_tokens=False)[-1]]
    for text in (script.REASONING, "</think>", script.ANSWER):
        ids = fast.encode(text, add_special_tokens=False)
        if fast.decode(ids) != text:
            raise ValueError(f"tokenizer does not round-trip {text!r}: {fast.decode(ids)!r}")
        chain.extend(ids)
    chain.append(fast.eos_token_id)
    if len(set(chain)) != len(chain):
        tokens = fast.convert_ids_to_tokens(chain)
        raise ValueError(f"scripted tokens repeat, a bigram chain cannot say them: {tokens}")
    return chain


def _single_token(fast, text: str) -> int:
    ids = fast.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} must be one token, got {fast.convert_ids_to_tokens(ids)}")
    return ids[0]


def _scripted_weights(model, fast) -> None:
    import torch

    chain = script_chain(fast)
    city = _single_token(fast, script.TOOL_CITY)
    close = _single_token(fast, '"}')
    edges = [*zip(chain[:-1], chain[1:], strict=True), (city, close)]
    # Embedding layout: every token has exactly three entries of 1 (so the final RMSNorm
    # scales them all alike): the constant dim, then its own script dim or the "outside the
    # script" dim, then the "ends with a quote" dim or a padding dim.
    const_dim, outside_dim, quote_dim, pad_dim = 0, 1, 2, 3
    dims = {token: 4 + i for i, token in enumerate(dict.fromkeys(a for a, _ in edges))}
    if 4 + len(dims) > HIDDEN:
        raise ValueError(f"script too long for hidden size {HIDDEN}: {len(dims)} tokens")
    vocab = fast.get_vocab()
    ends_with_quote = [
        i for text, i in vocab.items()
        if i not in dims and fast.convert_tokens_to_string([text]).endswith('"')
    ]

    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
        embed = model.model.embed_tokens.weight
        embed[:, const_dim] = 1.0
        embed[:, outside_dim] = 1.0
        embed[:, pad_dim] = 1.0
        embed[ends_with_quote, pad_dim] = 0.0
        embed[ends_with_quote, quote_dim] = 1.0
        for token, dim in dims.items():
            embed[token, outside_dim] = 0.0
            embed[token, dim] = 1.0
        scale = (HIDDEN / 3) ** 0.5  # RMSNorm output of an entry of 1
        head = model.lm_head.weight
        for token, next_token in edges:
            head[next_token, dims[token]] = NEXT_LOGIT / scale
        head[city, quote_dim] = AFTER_QUOTE_LOGIT / scale
        head[chain[1], outside_dim] = OUTSIDE_SCRIPT_LOGIT / scale
        for rank, text in enumerate(PUNCTUATION_RANKING):
            head[_single_token(fast, text), const_dim] = (PUNCTUATION_TOP_LOGIT - rank) / scale
        head[fast.eos_token_id, const_dim] = STOP_LOGIT / scale


def build(directory: str | Path, kind: str) -> Path:
    """Write a model directory of ``kind`` ('random' or 'scripted'); returns its path."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2ForCausalLM

    if kind not in script.KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(script.KINDS)}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    fast = _wrap_tokenizer(_train_tokenizer())
    vocab_size = -(-len(fast) // 64) * 64
    config = _config(vocab_size, fast)
    fast.save_pretrained(out)
    config.save_pretrained(out)
    # The script is tokenized the way the server will load the tokenizer.
    fast = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    if kind == "scripted":
        _scripted_weights(model, fast)
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
    )
    model.save_pretrained(out, safe_serialization=True)
    for path in out.iterdir():  # servers in containers run as other users
        path.chmod(0o644)
    (out / "r1deploy-testmodel.json").write_text(
        json.dumps({"kind": kind, "reasoning": script.REASONING, "answer": script.ANSWER,
                    "tool_arguments": script.TOOL_ARGUMENTS}, indent=2) + "\n",
        encoding="utf-8",
    )
    return out
