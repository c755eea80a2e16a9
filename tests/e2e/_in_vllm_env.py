"""Run inside the cached vLLM env (it has torch/transformers): the checks of
test_testmodel.py that need a real tokenizer and model. Prints one JSON object."""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

scripted_dir, random_dir, template_path, messages_json = sys.argv[1:5]
request = json.loads(messages_json)
out = {}
tokenizer = AutoTokenizer.from_pretrained(scripted_dir)
with open(template_path, encoding="utf-8") as handle:
    template = handle.read()
out["rendered"] = tokenizer.apply_chat_template(
    request["messages"],
    tools=request["tools"],
    chat_template=template,
    tokenize=False,
    add_generation_prompt=True,
)
# Every scripted reply, from a prompt that holds its trigger, rendered with the tools
# template as vLLM renders it.
tok = AutoTokenizer.from_pretrained(scripted_dir)
model = AutoModelForCausalLM.from_pretrained(scripted_dir)
out["replies"] = {}
for name, messages in request["reply_prompts"].items():
    inputs = tok.apply_chat_template(
        messages,
        tools=request["tools"],
        chat_template=template,
        return_tensors="pt",
        return_dict=True,
        add_generation_prompt=True,
    )
    generated = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    new = generated[0][inputs["input_ids"].shape[1] :]
    out["replies"][name] = tok.decode(new, skip_special_tokens=True)
for kind, directory in (("scripted", scripted_dir), ("random", random_dir)):
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    inputs = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}],
        return_tensors="pt",
        return_dict=True,
        add_generation_prompt=True,
    )
    torch.manual_seed(0)
    generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new = generated[0][inputs["input_ids"].shape[1] :]
    out[kind] = {
        "architecture": model.config.architectures[0],
        "hidden_size": model.config.hidden_size,
        "head_dim": model.config.hidden_size // model.config.num_attention_heads,
        "new_tokens": len(new),
        "text": tok.decode(new, skip_special_tokens=True),
    }
print(json.dumps(out))
