"""LoadGen harness for the nano agent workloads (Offline, Server, SingleStream).

Not built yet: the QSL, SUT adapters, watchdog and `make submission` land with the harness
issue. Until then this package is empty on purpose, and nothing imports it.
"""
