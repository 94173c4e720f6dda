"""Reference implementations of the nano agent workloads."""
