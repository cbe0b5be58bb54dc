"""Worker process: imports one framework once, then checks targets sent as JSON lines.

Protocol (one JSON object per line): the worker first writes {"ready": version} or
{"fatal": reason}; then for each request {"target": ..., "options": ...} it writes
{"result": ...}, preceded by {"checked": ...} (the result without a suggestion) when it goes
on to verify a suggestion, which has its own time limit. The protocol uses a private copy of
stdout; the user's prints and the framework's chatter go to stderr, which the pool keeps away
from the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import IO, Any


def _protocol_stream() -> IO[str]:
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    return os.fdopen(fd, "w", buffering=1)


def _send(stream: IO[str], payload: dict[str, Any]) -> None:
    stream.write(json.dumps(payload) + "\n")
    stream.flush()


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    framework = argv[0]
    # Keras 3 reads its backend once, at import: each worker runs `keras.ops` code on its
    # own framework (the numpy lane keeps Keras on TensorFlow, which it never imports)
    os.environ["KERAS_BACKEND"] = framework if framework in ("torch", "jax") else "tensorflow"
    out = _protocol_stream()
    # gradsafe's modules load only now: KERAS_BACKEND is read at import, and what a
    # framework prints while loading must go to the redirected stream
    from gradsafe.discover.load import LoadError, one_line
    from gradsafe.model.types import TargetResult
    from gradsafe.run import codec

    try:
        from gradsafe.backends import get_backend

        backend = get_backend(framework)
    except ImportError as exc:
        _send(out, {"fatal": f"{framework} is not installed ({exc}); "
                             f"install it with: pip install 'gradsafe[{framework}]'"})
        return 1
    from gradsafe.backends.base import NotATarget, TargetError
    from gradsafe.check.sweep import check_target as check
    from gradsafe.run import interrupt
    from gradsafe.suggest.policy import wanted

    interrupt.install()
    _send(out, {"ready": backend.version()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        target = codec.target(request["target"])
        options = codec.options(request["options"])
        if request.get("op") == "sample":
            _send(out, {"result": _sample(backend, target, request["xs"])})
            continue
        if target.domain is not None:  # the target's own domain (config) or --domain
            options = dataclasses.replace(options, domain=target.domain)
        seen: dict[str, Any] = {}  # forward values of the sweep, for the suggestion
        try:
            device_note = backend.use_device(options.device)
            res = check(backend, target, options, lambda done, total: _send(
                out, {"progress": [done, total]}), seen)
            if device_note:
                res = dataclasses.replace(res, notes=(*res.notes, device_note))
            res = inside(res, options.domain)
        except KeyboardInterrupt:
            res = TargetResult(target.label, target.file, target.line, framework, "error",
                               interrupt.INTERRUPTED, variant=target.variant)
            _send(out, {"result": codec.encode(res)})
            return 130
        except NotATarget as exc:
            res = TargetResult(target.label, target.file, target.line, framework,
                               "error" if target.explicit else "skipped",
                               str(exc) if target.explicit else None,
                               variant=target.variant,
                               reason=None if target.explicit else str(exc))
        except (LoadError, TargetError) as exc:
            res = TargetResult(target.label, target.file, target.line, framework, "error",
                               str(exc), variant=target.variant)
        except Exception as exc:
            user = os.path.realpath(target.file) if target.file else None
            res = TargetResult(target.label, target.file, target.line, framework, "error",
                               f"raised {one_line(exc, user)}", variant=target.variant)
        if options.suggest and wanted(res) and not options.exhaustive:
            # libcst (about 0.1 s to import) only for targets that get a suggestion
            from gradsafe.suggest.propose import attach

            # the check is done: the pool's time limit restarts for the suggestion, and a
            # suggestion that hangs or crashes still leaves this result
            _send(out, {"checked": codec.encode(res)})
            try:
                res = attach(backend, target, options, res, seen)
            except KeyboardInterrupt:
                _send(out, {"result": codec.encode(res)})
                return 130
            except Exception as exc:
                res = dataclasses.replace(
                    res, notes=(*res.notes, f"no suggestion: {one_line(exc)}"))
        _send(out, {"result": codec.encode(res)})
    return 0


def inside(res: Any, domain: tuple[float, float] | None) -> Any:
    """Findings whose bad inputs lie outside the domain are not reported; ranges that
    cross its edges are cut there (the exhaustive sweep covers every float32 value). The
    status follows from the findings left: the engine's filters decide it for every result."""
    if domain is None or not res.findings:
        return res
    low, high = domain
    kept = []
    for f in res.findings:
        if f.range.high < low or f.range.low > high:
            continue
        if f.range.low < low or f.range.high > high:
            r = dataclasses.replace(f.range, low=max(f.range.low, low),
                                    high=min(f.range.high, high))
            f = dataclasses.replace(f, range=r, boundary=min(max(f.boundary, r.low), r.high))
        kept.append(f)
    return dataclasses.replace(res, findings=tuple(kept))


def _sample(backend: Any, target: Any, xs: dict[str, str]) -> dict[str, Any]:
    """Forward and gradient of a target at given inputs per dtype (compare, plots).
    Imports here for the reason main gives (they are loaded by then)."""
    from gradsafe.backends.base import TargetError
    from gradsafe.check.sweep import sample
    from gradsafe.discover.load import LoadError, one_line
    from gradsafe.run import codec

    try:
        values = sample(backend, target, {d: codec.decode_array(v) for d, v in xs.items()})
    except (LoadError, TargetError) as exc:
        return {"error": str(exc)}
    except Exception as exc:
        user = os.path.realpath(target.file) if target.file else None
        return {"error": f"raised {one_line(exc, user)}"}
    return {"error": None, "samples": {
        d: {"forward": codec.encode_array(f), "gradient": None if g is None
            else codec.encode_array(g), "note": note}
        for d, (f, g, note) in values.items()}}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
