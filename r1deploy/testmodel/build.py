"""Build a tiny Qwen2ForCausalLM model directory offline (no download).

The tokenizer is a byte-level BPE trained here with `tokenizers` on a small corpus, with
the R1 distill special tokens (``<｜begin▁of▁sentence｜>``, ``<｜User｜>``, ``<｜Assistant｜>``,
``<think>``...) and the hermes tool-call tokens that vLLM's parsers look up. The scripted
replies' triggers and chunks (``script.REPLIES``) are added tokens of their own.

The scripted model is a bigram chain written straight into the weights, one chain per
reply (``script``). Its one attention head picks the reply: a trigger token's key matches
every query (a RoPE pair that barely rotates), so wherever a trigger is in the prompt the
head copies that reply's *mode* into the hidden state; without one, it averages the
default mode that every other token carries. The MLP is zero, so the last hidden state is
the current token's embedding plus the mode. Each token of a chain has its own embedding
dimension, and the LM head maps it to the next token of its chain with a large logit
margin, so greedy output and sampling at temperature 0.6 are fixed. The tokens that start
a reply's reasoning or answer (the ``\n`` of ``<think>\n`` and ``</think>``) lead to
every reply's next chunk: the default one ranks first, and a mode other than the default
pushes the other replies' choices down, its own up to first.

Tool calls under a named tool choice go through vLLM's structured outputs: after
``</think>`` the grammar masks the answer away and forces the hermes literal
``<tool_call>{"name": "get_weather", "arguments": ``. Inside the arguments the model
follows a fixed ranking of JSON punctuation tokens (``"`` then ``{"`` then ``:``), which
every token shares through a constant embedding dimension, so it never pads with
whitespace; a token that ends with ``"`` prefers ``Paris``, and ``Paris`` prefers ``"}``.
The strict ``get_weather`` call therefore comes out as ``{"city":"Paris"}`` and a string
can never run on.
"""

from __future__ import annotations

import json
from pathlib import Path

from r1deploy import modelfacts
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

# The test model's shape is in r1deploy/model_facts.json, which the role sizes its context
# from. Head size 32: vLLM's CPU attention needs 32 or more.
_FACTS = modelfacts.model(modelfacts.TEST_MODEL)
HIDDEN = _FACTS["hidden_size"]
HEADS = _FACTS["num_attention_heads"]
KV_HEADS = _FACTS["num_key_value_heads"]
INTERMEDIATE = _FACTS["intermediate_size"]
MAX_POSITIONS = _FACTS["max_position_embeddings"]

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
# Where the replies part (the start, </think>): the default reply's next token gets
# NEXT_LOGIT, the others' BRANCH_LOGIT; a reply's mode lowers the others by MODE_PUSH_DOWN.
BRANCH_LOGIT = 35.0
MODE_PUSH_DOWN = 15.0
# Attention score of a trigger (others score 0): its weight stays ~1 in 8192 tokens. A
# higher priority adds a step, so its trigger outweighs a lower one in the same prompt.
TRIGGER_SCORE = 30.0
TRIGGER_PRIORITY_STEP = 10.0

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
    tokenizer.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS + reply_tokens()]
    )
    return tokenizer


def reply_tokens() -> list[str]:
    """The scripted replies' triggers and chunks that are tokens of their own: all of every
    reply but the default (whose text the trained BPE says in unique tokens)."""
    texts = []
    for reply in script.REPLIES:
        texts += [reply.trigger] if reply.trigger else []
        if reply is not script.DEFAULT:
            texts += [*reply.reasoning, *reply.answer]
    return [t for t in dict.fromkeys(texts) if t not in SPECIAL_TOKENS + ADDED_TOKENS]


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
        num_hidden_layers=_FACTS["num_hidden_layers"],
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        # The reply head's RoPE pair must barely turn over the whole context.
        rope_theta=1e6,
        tie_word_embeddings=False,
        bos_token_id=fast.convert_tokens_to_ids(BOS),
        eos_token_id=fast.convert_tokens_to_ids(EOS),
        pad_token_id=fast.convert_tokens_to_ids(PAD),
        torch_dtype="bfloat16",
        head_dim=_FACTS["head_dim"],
    )


def reply_chain(fast, reply: script.Reply) -> list[int]:
    """Token ids of one scripted output: the last prompt token (the ``\\n`` of
    ``<think>\\n``), the reasoning, ``</think>``, the answer, end of sequence. Raises
    ValueError when the tokenizer cannot say it as a bigram chain (a token repeats)."""
    prompt = fast.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    if not prompt.endswith("<think>\n"):
        raise ValueError(f"the chat template must end the prompt with '<think>\\n': {prompt!r}")
    chain = [fast.encode(prompt, add_special_tokens=False)[-1]]
    for text in (*reply.reasoning, "</think>", *reply.answer):
        ids = fast.encode(text, add_special_tokens=False)
        if fast.decode(ids) != text:
            raise ValueError(f"tokenizer does not round-trip {text!r}: {fast.decode(ids)!r}")
        if reply is not script.DEFAULT and len(ids) != 1:
            raise ValueError(f"{reply.name}: chunk {text!r} is not one token")
        chain.extend(ids)
    chain.append(fast.eos_token_id)
    if len(set(chain)) != len(chain):
        tokens = fast.convert_ids_to_tokens(chain)
        raise ValueError(
            f"{reply.name}: scripted tokens repeat, a bigram chain cannot say them: {tokens}"
        )
    return chain


def script_chain(fast) -> list[int]:
    """The default reply's chain (what the model says without a trigger)."""
    return reply_chain(fast, script.DEFAULT)


def reply_graph(fast) -> tuple[dict[int, dict[str, int]], dict[str, list[int]]]:
    """Each token's next token per reply (``{token: {reply: next}}``) and each reply's chain.

    Only the tokens every reply shares (the start and ``</think>``) may lead to different
    tokens; those successors then belong to one reply each, so a reply's mode can push the
    others' down without touching its own chain. Raises ValueError otherwise.
    """
    chains = {reply.name: reply_chain(fast, reply) for reply in script.REPLIES}
    nexts: dict[int, dict[str, int]] = {}
    for name, chain in chains.items():
        for token, following in zip(chain[:-1], chain[1:], strict=True):
            nexts.setdefault(token, {})[name] = following
    owners: dict[int, set[str]] = {}
    for name, chain in chains.items():
        for token in chain:
            owners.setdefault(token, set()).add(name)
    for token, by_reply in nexts.items():
        if len(set(by_reply.values())) == 1:
            continue
        for name, following in by_reply.items():
            if owners[following] != {name}:
                raise ValueError(
                    f"{fast.convert_ids_to_tokens(token)!r} leads to "
                    f"{fast.convert_ids_to_tokens(following)!r}, which other replies use too"
                )
    return nexts, chains


def _single_token(fast, text: str) -> int:
    ids = fast.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} must be one token, got {fast.convert_ids_to_tokens(ids)}")
    return ids[0]


def _scripted_weights(model, fast) -> None:
    import torch

    nexts, chains = reply_graph(fast)
    replies = [reply.name for reply in script.REPLIES]
    city = _single_token(fast, script.TOOL_CITY)
    close = _single_token(fast, '"}')
    # Embedding layout: every token has exactly three entries of 1 (so the RMSNorms scale
    # them all alike): the constant dim; its own chain dim or the "outside the script" dim;
    # then the "ends with a quote" dim, a trigger dim, or a padding dim. The attention adds
    # a fourth: the mode of the reply.
    const_dim, outside_dim, quote_dim, pad_dim = 0, 1, 2, 3
    trigger_dims = {name: 4 + i for i, name in enumerate(replies)}
    mode_dims = {name: 4 + len(replies) + i for i, name in enumerate(replies)}
    first_chain_dim = 4 + 2 * len(replies)
    if city in nexts:
        raise ValueError(f"{script.TOOL_CITY!r} must not be a token of a scripted chain")
    nexts[city] = {script.DEFAULT.name: close}
    dims = {token: first_chain_dim + i for i, token in enumerate(nexts)}
    if first_chain_dim + len(dims) > HIDDEN:
        raise ValueError(f"script too long for hidden size {HIDDEN}: {len(dims)} tokens")
    triggers = {
        reply.name: _single_token(fast, reply.trigger) for reply in script.REPLIES if reply.trigger
    }
    if set(triggers.values()) & (set(dims) | {city, close}):
        raise ValueError("a trigger must not be a token of a scripted chain")
    vocab = fast.get_vocab()
    ends_with_quote = [
        i
        for text, i in vocab.items()
        if i not in dims
        and i not in triggers.values()
        and fast.convert_tokens_to_string([text]).endswith('"')
    ]
    in_scale = (HIDDEN / 3) ** 0.5  # an entry of 1 after the layer's input RMSNorm
    scale = (HIDDEN / 4) ** 0.5  # after the final RMSNorm: the mode is the fourth entry
    head_dim = HIDDEN // HEADS
    # The reply head (head 0, KV head 0) uses the RoPE pair that turns slowest: dims
    # head_dim/2 - 1 and head_dim - 1 (rotate-half layout).
    slow = head_dim // 2 - 1

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
        for name, token in triggers.items():
            embed[token, pad_dim] = 0.0
            embed[token, trigger_dims[name]] = 1.0
        for token, dim in dims.items():
            embed[token, outside_dim] = 0.0
            embed[token, dim] = 1.0

        attention = model.model.layers[0].self_attn
        attention.q_proj.weight[slow, const_dim] = 1.0 / in_scale
        for index, reply in enumerate(script.REPLIES):
            # Every token's value is the default mode; a trigger's is its reply's mode.
            if reply.trigger is None:
                attention.v_proj.weight[index, const_dim] = 1.0 / in_scale
                continue
            score = TRIGGER_SCORE + TRIGGER_PRIORITY_STEP * reply.priority
            attention.k_proj.weight[slow, trigger_dims[reply.name]] = (
                score * head_dim**0.5 / in_scale
            )
            attention.v_proj.weight[0, trigger_dims[reply.name]] = -1.0 / in_scale
            attention.v_proj.weight[index, trigger_dims[reply.name]] = 1.0 / in_scale
        for index, name in enumerate(replies):
            attention.o_proj.weight[mode_dims[name], index] = 1.0

        head = model.lm_head.weight
        for token, by_reply in nexts.items():
            default_next = by_reply.get(script.DEFAULT.name)
            for name, next_token in by_reply.items():
                shared = len(set(by_reply.values())) > 1
                logit = BRANCH_LOGIT if shared and next_token != default_next else NEXT_LOGIT
                head[next_token, dims[token]] = logit / scale
                if not shared:
                    continue
                # A reply's mode pushes down where the other replies go from here.
                for other in replies:
                    if other != name and next_token not in chains[other]:
                        head[next_token, mode_dims[other]] = -MODE_PUSH_DOWN / scale
        head[city, quote_dim] = AFTER_QUOTE_LOGIT / scale
        head[chains[script.DEFAULT.name][1], outside_dim] = OUTSIDE_SCRIPT_LOGIT / scale
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
        json.dumps(
            {
                "kind": kind,
                "reasoning": script.REASONING,
                "answer": script.ANSWER,
                "tool_arguments": script.TOOL_ARGUMENTS,
                "replies": [
                    {
                        "name": r.name,
                        "trigger": r.trigger,
                        "reasoning": r.reasoning_text,
                        "answer": r.answer_text,
                    }
                    for r in script.REPLIES
                ],
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return out
