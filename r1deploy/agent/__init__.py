"""The agent loop from the command line: vLLM with the tools, calls run through the gateway."""

from r1deploy.agent.loop import AgentError, AgentResult, Endpoint, run_agent

__all__ = ["AgentError", "AgentResult", "Endpoint", "run_agent"]
