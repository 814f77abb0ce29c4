"""One protocol for every long engine job (prep, train, listen, export...).

    states    the one set of job states (active / final) and how a dead process shows
    schema    every event type of every job, validated (`validate`), version-1 files upgraded
    process   process.json: spawn detached (PYTHONPATH handled once), alive, stop
    job       a job's files (`JobFiles`), the running job's side (`Job`), `summarize`, `find_jobs`

docs/events.md describes the events, with a section per job.
"""

from engine.jobs.job import Job, JobFiles, find_jobs, stop_job, summarize
from engine.jobs.process import engine_cmd, engine_env, spawn_detached, stop

__all__ = ["Job", "JobFiles", "engine_cmd", "engine_env", "find_jobs", "spawn_detached", "stop", "stop_job", "summarize"]
