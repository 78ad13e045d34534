"""Independent tasks in this process, in local worker processes or on a Ray cluster.

One backend serves ``slimrl sweep`` (one training run per task) and ``slimrl evaluate --jobs``
(one share of the policies x episodes per task). A task is ``fn(arg)`` with ``fn`` a module-level
function and ``arg`` picklable; results come back in task order.

- ``jobs <= 1`` and no Ray: one after another in this process.
- ``jobs > 1``: a pool of ``jobs`` processes started fresh (``spawn``: nothing of this process's
  threads or torch state is inherited), each limited to one BLAS/OpenMP/torch thread, so that N
  workers use N cores and never N x cores.
- ``ray="auto"`` (the cluster this machine belongs to, or the Ray instance already started in
  this process) or ``ray="HOST:PORT"`` (a head node): every task is a Ray task asking for
  ``num_cpus`` CPUs. Ray is an optional extra: ``pip install 'slimrl[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

from slimrl.errors import SlimrlError

#: variables that cap the threads of numpy's BLAS, OpenMP and torch in a worker
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def require_ray() -> Any:
    """``ray``, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SlimrlError(
            "--ray needs Ray: pip install 'slimrl[ray]' (or pip install 'ray>=2.9')"
        ) from None
    return ray


def one_thread() -> None:
    """Limit this process to one compute thread (torch too, when it is loaded)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@contextmanager
def _thread_env():
    """Worker processes inherit one thread per library through their environment."""
    old = {v: os.environ.get(v) for v in THREAD_VARS}
    for v in THREAD_VARS:
        os.environ[v] = "1"
    try:
        yield
    finally:
        for v, x in old.items():
            if x is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = x


def run_tasks(
    fn: Callable[[Any], Any],
    args: Sequence[Any],
    *,
    jobs: int = 1,
    ray: str | None = None,
    num_cpus: float = 1,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(a) for a in args]`` on the chosen backend (see the module docstring).

    ``on_result(i, result)`` is called as each task finishes (in completion order). An error in
    a task is raised here once the running tasks are done (the remaining ones are cancelled).
    """
    args = list(args)
    if jobs < 1:
        raise SlimrlError(f"--jobs: expected an integer >= 1, got {jobs}")
    results: list[Any] = [None] * len(args)

    def done(i: int, r: Any) -> None:
        results[i] = r
        if on_result is not None:
            on_result(i, r)

    if ray is not None:
        _run_ray(fn, args, ray, num_cpus, done)
    elif jobs == 1 or len(args) <= 1:
        for i, a in enumerate(args):
            done(i, fn(a))
    else:
        _run_pool(fn, args, jobs, done)
    return results


def _run_pool(fn: Callable, args: list, jobs: int, done: Callable[[int, Any], None]) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    with _thread_env():
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(args)),
            mp_context=mp.get_context("spawn"),
            initializer=one_thread,
        )
    with pool:
        futures = {pool.submit(fn, a): i for i, a in enumerate(args)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in finished:
                exc = f.exception()
                if exc is not None:
                    for p in pending:
                        p.cancel()
                    raise exc
                done(futures[f], f.result())


def _run_ray(
    fn: Callable, args: list, address: str, num_cpus: float, done: Callable[[int, Any], None]
) -> None:
    ray = require_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SlimrlError(
                f"--ray {address}: no Ray cluster there ({str(exc).splitlines()[0]}); start one "
                "with 'ray start --head' and pass its address (or 'auto' on one of its nodes)"
            ) from None
    remote = ray.remote(num_cpus=num_cpus)(_ray_call)
    refs = {remote.remote(fn, a): i for i, a in enumerate(args)}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            done(refs[ref], ray.get(ref))


def _ray_call(fn: Callable, arg: Any) -> Any:
    one_thread()
    return fn(arg)


def chunks(items: Iterable[Any], n: int) -> list[list[Any]]:
    """``items`` dealt into at most ``n`` lists of near-equal size, order kept within each."""
    items = list(items)
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for j in range(n):
        end = start + size + (1 if j < extra else 0)
        out.append(items[start:end])
        start = end
    return out
