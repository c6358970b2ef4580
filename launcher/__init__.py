"""The launcher behind `make run` (`python -m launcher`): starts every service and the Envoy edge, supervises,
stops cleanly.

It is not a service: it runs the services (`python -m services.<name>`) and Envoy as child processes.

- `config`: the only reader of the environment for the launcher; what to start and where.
- `ports`: every port it will bind is checked before anything starts, naming what holds a taken one.
- `banner`: one block at start saying how the suite is configured (access mode, store, providers, admin, edge).
- `children`: one child process, and the argv and environment of each service and of Envoy.
- `supervision`: start in order, wait for health, restart with backoff, stop edge first.
"""
