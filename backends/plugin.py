"""Registers the built-in crowd backends through the same hook third-party plugins use."""

from clicloop.backends.simulated import SimulatedCrowd
from clicloop.orchestrator.hookspecs import Register, hookimpl


@hookimpl
def clicloop_register_backends(register: Register) -> None:
    register("simulated", SimulatedCrowd)
    from clicloop.backends.des import EventCrowd  # numpy only

    register("event-crowd", EventCrowd)
    from clicloop.backends.file_exchange import FileExchange  # stdlib only
    from clicloop.backends.prolific import ProlificBackend  # stdlib only (urllib)

    register("file-exchange", FileExchange)
    register("prolific", ProlificBackend)
    from clicloop.backends.labelstudio import LabelStudioBackend  # light: httpx is imported on first call

    register("labelstudio", LabelStudioBackend, requires=("httpx",), extra="labelstudio")
