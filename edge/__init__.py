"""The Envoy edge: its configuration template and what renders it."""
