from hypothesis import settings

# The machine is shared with servers under test: wall-clock deadlines would be noise.
settings.register_profile("r1deploy", deadline=None)
settings.load_profile("r1deploy")

# Session fixtures of the gateway's e2e tests (real Open WebUI, gateway, vLLM) and of the
# llama.cpp stack; they start nothing unless a test asks for them.
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.llamacpp_fixtures"]
