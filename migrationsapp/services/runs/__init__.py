"""Migration sessions: the use-cases behind `diffmig run`, the web's launch and the demo.

One module per job:

* ``launch``: the options, the entities a session covers, the checks, its control rows;
* ``start``: ``start_run`` / ``resume_run``, the one place that chooses where a session
  executes (the workers, a thread, or here);
* ``control``: pause and cancel requests, and resume's preparation;
* ``execute``: the in-process executor, entity after entity;
* ``entity_steps``: one entity's analysis, upserts, partitions and deletes, shared with the
  units the workers run (``services.units``), built on ``entity_runner`` and ``context``;
* ``failures`` and ``finish``: an entity that fails, and how a session ends;
* ``results``: ``UnitResult``, how a step or a unit ended.

Every batch is checkpointed; a paused, cancelled or crashed session resumes from its
checkpoints with the same change sets.
"""

from migrationsapp.services.runs.context import RunContext, RunObserver, session_context
from migrationsapp.services.runs.control import (
    lease_is_fresh,
    prepare_resume,
    request_cancel,
    request_pause,
)
from migrationsapp.services.runs.entity_steps import run_entity_step, run_partition_step
from migrationsapp.services.runs.execute import execute_session, run_session
from migrationsapp.services.runs.failures import fail_entity, fail_unopened
from migrationsapp.services.runs.finish import finish_session
from migrationsapp.services.runs.launch import (
    LaunchRefusedError,
    RunOptions,
    entities_with_dependencies,
    launch_session,
)
from migrationsapp.services.runs.results import UnitResult
from migrationsapp.services.runs.start import (
    Executor,
    StartedRun,
    resume_run,
    start_run,
    wait_until_stopped,
)

__all__ = [
    "Executor",
    "LaunchRefusedError",
    "RunContext",
    "RunObserver",
    "RunOptions",
    "StartedRun",
    "UnitResult",
    "entities_with_dependencies",
    "execute_session",
    "fail_entity",
    "fail_unopened",
    "finish_session",
    "launch_session",
    "lease_is_fresh",
    "prepare_resume",
    "request_cancel",
    "request_pause",
    "resume_run",
    "run_entity_step",
    "run_partition_step",
    "run_session",
    "session_context",
    "start_run",
    "wait_until_stopped",
]
