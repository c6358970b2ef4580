"""The LLM providers, each behind the `Provider` protocol in `base`."""
