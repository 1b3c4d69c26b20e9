"""Model backends. `get_backend(spec)` is the entry point; base.py is the interface, registry.py the specs."""

from .base import Backend, BackendError, BackendSpecError, Budget, BudgetExceeded, Usage
from .registry import available_backends, get_backend, register_backend, release_backends, release_models

__all__ = ["Backend", "BackendError", "BackendSpecError", "Budget", "BudgetExceeded", "Usage", "available_backends",
           "get_backend", "register_backend", "release_backends", "release_models"]
