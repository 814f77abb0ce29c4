"""The training engine: coqui's GPTTrainer in its own process, with an event stream (docs/events.md)."""
