"""A dispatch's arguments bound to its task's signature, once per call.

Two things need the binding, and they share it so that it is computed once per dispatch:

- **The dispatch check.** A call that can never run (``push("a", "b", "c")`` on a one-argument
  task, a misspelt keyword, a missing argument) is a ``TypeError`` at ``push``, naming the task,
  and nothing is enqueued, as Celery does with ``typing=True``. Otherwise it would be accepted,
  recorded, and dead-lettered later with the same ``TypeError``.
- **The idempotency key.** ``pay('acct', 5)``, ``pay('acct', amount=5)``,
  ``pay(account='acct', amount=5)`` and ``pay('acct')`` (with ``amount=5`` as its default) are
  one call, so they must give one key. The key is therefore hashed over the bound arguments,
  a mapping of parameter name to value with the defaults applied, never over how the caller
  happened to spell the call.

The ``ctx`` parameter of a task that takes a ``TaskContext`` is supplied by the runtime
(``fn(*args, **kwargs, ctx=...)``): the check binds a stand-in for it exactly the way the
runtime passes it, so a call is accepted exactly when the runtime can make it, and ``ctx`` is
never part of the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["CallBinder"]

#: The runtime passes the task context under this keyword (see ``runtime.accepts_ctx``).
CTX = "ctx"


class _Injected:
    """Stands in for the ``TaskContext`` the runtime injects; never part of a key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<TaskContext supplied by Relier>"


_INJECTED = _Injected()


class CallBinder:
    """Binds calls of one task to its signature (the ``inspect.Signature`` is read once).

    Attributes:
        task_name: The registered task name (for error messages).
        signature: The function's signature, or None when Python cannot inspect it (some
            builtins and C callables); then calls are not checked and the key is built from
            the positional and keyword arguments as given.
        injects_ctx: The runtime passes ``ctx=`` to this function.
    """

    __slots__ = ("_ctx_kind", "_defaults", "_keywords", "_positional", "injects_ctx",
                 "signature", "task_name")

    def __init__(self, task_name: str, fn: Callable[..., Any], injects_ctx: bool) -> None:
        self.task_name = task_name
        self.injects_ctx = injects_ctx
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        param = self.signature.parameters.get(CTX) if self.signature else None
        self._ctx_kind = param.kind if param is not None and injects_ctx else None
        self._fast_path()

    def _fast_path(self) -> None:
        """Precompute the common shape (named parameters only) for ``bind``.

        ``Signature.bind`` costs several microseconds a call, more than the rest of dispatch's
        Python work; the common shape is bound here in a fraction of that.

        Only signatures without ``/``, ``*args`` and ``**kwargs`` qualify, and only calls that
        bind cleanly take it: anything else (an error included) goes through
        ``Signature.bind``, which stays the reference (a property test compares the two).
        """
        self._positional: tuple[str, ...] | None = None
        self._keywords: frozenset[str] = frozenset()
        self._defaults: tuple[tuple[str, Any], ...] = ()
        if self.signature is None:
            return
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = list(self.signature.parameters.values())
        if any(p.kind not in named for p in params):
            return
        positional: list[str] = []
        for p in params:
            if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
                break
            if self._ctx_kind is not None and p.name == CTX:
                break  # the runtime passes ctx by name: nothing after it can be positional
            positional.append(p.name)
        keep = [p for p in params if not (self._ctx_kind is not None and p.name == CTX)]
        self._positional = tuple(positional)
        self._keywords = frozenset(p.name for p in keep)
        self._defaults = tuple((p.name, p.default) for p in keep)

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call as a mapping of parameter name to value, defaults applied, ``ctx`` left out.

        A ``*args`` parameter maps to a list of the extra positional values, a ``**kwargs``
        parameter to a dict of the extra keyword values, so that the mapping is a JSON object
        with one deterministic shape per call.

        Raises:
            TypeError: the task cannot be called with these arguments (the message names the
                task, the problem and the signature); or the caller passed ``ctx``.
        """
        if self.signature is None:
            return {"*": list(args), "**": dict(kwargs)}
        if self._positional is not None and len(args) <= len(self._positional):
            arguments = dict(zip(self._positional, args, strict=False))
            clean = True
            for name, value in kwargs.items():
                if name in arguments or name not in self._keywords:
                    clean = False  # a duplicate, an unknown name, or ctx: let bind say so
                    break
                arguments[name] = value
            if clean and len(arguments) < len(self._defaults):
                for name, default in self._defaults:
                    if name not in arguments:
                        if default is inspect.Parameter.empty:
                            clean = False  # missing: let bind say so
                            break
                        arguments[name] = default
            if clean:
                return arguments
        return self._bind(args, kwargs)

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``bind`` through ``Signature.bind``: every shape, and the error messages."""
        assert self.signature is not None
        if self.injects_ctx:
            if CTX in kwargs:
                raise TypeError(
                    f"{self.task_name}: do not pass {CTX}=; Relier supplies the TaskContext "
                    "when the task runs. Nothing was enqueued."
                )
            kwargs = {**kwargs, CTX: _INJECTED}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            why = str(exc)
            if self.injects_ctx and repr(CTX) in why:
                why += f" ({CTX} is supplied by Relier when the task runs, not by the caller)"
            raise TypeError(
                f"{self.task_name} cannot be called with these arguments: {why}. It takes "
                f"{self._shown()}; nothing was enqueued. Fix the call to match the task's "
                "signature."
            ) from None
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                arguments[name] = list(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                arguments[name] = {k: v for k, v in value.items() if v is not _INJECTED}
            elif value is not _INJECTED:
                arguments[name] = value
        return arguments

    def _shown(self) -> str:
        """The signature as the caller sees it (without the injected ``ctx``, no annotations)."""
        assert self.signature is not None
        params = [p.replace(annotation=inspect.Parameter.empty)
                  for p in self.signature.parameters.values()
                  if not (self._ctx_kind is not None and p.name == CTX
                          and p.kind is not inspect.Parameter.VAR_KEYWORD)]
        return str(self.signature.replace(parameters=params,
                                          return_annotation=inspect.Signature.empty))
