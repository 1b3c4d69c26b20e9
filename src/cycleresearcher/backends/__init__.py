"""Model backends. `get_backend(spec)` is the entry point; see base.py for the interface."""

from .base import Backend, BackendError, Budget, BudgetExceeded, Usage, get_backend, register_backend

__all__ = ["Backend", "BackendError", "Budget", "BudgetExceeded", "Usage", "get_backend", "register_backend"]
