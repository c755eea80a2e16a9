"""The model's files, fetched from the Hugging Face hub as a step of its own, before any
service starts: ``r1deploy model fetch`` (docs/model-fetch.md, r1deploy/model/fetch.py)."""
