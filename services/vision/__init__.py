"""The vision service: image analysis through the prompts and llm services."""
