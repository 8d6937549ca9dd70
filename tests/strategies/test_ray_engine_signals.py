"""Starting the ray engine leaves the process's SIGTERM handling as it was (clicloop's: stop as
Ctrl-C does, give the lease back, exit 143)."""

import signal

import pytest

pytestmark = pytest.mark.slow


def test_starting_ray_keeps_the_sigterm_handler_it_found(monkeypatch):
    """Found 2026-12-07 (review): ray.init put its own handler (sys.exit(15)) in place, so with
    loop.engine ray a SIGTERM no longer gave the resume hint or exit 143."""
    import ray

    from clicloop.strategies.ray_engine import RayEngine

    if ray.is_initialized():
        pytest.fail("a Ray left running by another test: this test must start its own")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    def mine(signum, frame):  # noqa: ANN001, ANN202
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        RayEngine(num_workers=1, init_kwargs={"_node_ip_address": "127.0.0.1"}).check()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, before)
