"""`r1deploy bench`: a serving benchmark with the metric definitions of `vllm bench serve`.

Modules: ``sse`` (stream parsing), ``metrics`` (TTFT/TPOT/ITL/E2EL, percentiles, goodput),
``target`` (endpoint, model and key from a stack dir or flags; server facts), ``workload``
(prompts of a fixed token length), ``client`` (the async load generator), ``roofline``
(GPU bandwidth ceiling), ``report`` (tables, JSON, compare), ``plot`` (PNG).
"""
