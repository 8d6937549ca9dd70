"""Registers the built-in crowd backends through the same hook third-party plugins use."""

from backends.simulated import SimulatedCrowd
from orchestrator.hookspecs import Register, hookimpl


@hookimpl
def clicloop_register_backends(register: Register) -> None:
    register("simulated", SimulatedCrowd)
    from backends.file_exchange import FileExchange  # stdlib only
    from backends.prolific import ProlificBackend  # stdlib only (urllib)

    register("file-exchange", FileExchange)
    register("prolific", ProlificBackend)
    from backends.labelstudio import LabelStudioBackend  # light: httpx is imported on first call

    register("labelstudio", LabelStudioBackend)
