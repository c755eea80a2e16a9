"""The rules of ``r1deploy compose validate``, one module a family: schema (the Compose
specification, duplicate keys), images, gpu, vllm (flags), webui (Open WebUI's wiring),
secrets, exposure (public ports). Each has ``check(compose, found)``; the rules themselves are
declared in r1deploy/compose/registry.py."""
