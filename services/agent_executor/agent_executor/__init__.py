"""agent_executor: executes LLM agent requests delivered as CloudEvents over NATS JetStream."""

__version__ = "0.1.0"
