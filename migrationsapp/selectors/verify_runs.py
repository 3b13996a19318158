"""Reads of stored verifications and schedules for the pages (history, report, dashboard)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from migrationsapp.models import RunSchedule, VerifyEntityReport, VerifyRun

HISTORY_ROWS = 50


@dataclass(frozen=True)
class VerifyRow:
    run: VerifyRun
    entities: list[str]
    compared: int
    mismatched_entities: list[str]


def verify_history(*, limit: int = HISTORY_ROWS) -> list[VerifyRow]:
    """The latest verifications, newest first, with what each compared and where it differed."""
    runs = list(VerifyRun.objects.order_by("-created_at", "-id")[:limit])
    reports: dict[uuid.UUID, list[VerifyEntityReport]] = {run.id: [] for run in runs}
    for report in VerifyEntityReport.objects.filter(run_id__in=list(reports)).order_by("position"):
        reports[report.run_id].append(report)
    return [
        VerifyRow(
            run=run,
            entities=[r.entity_type for r in reports[run.id]] or run.entities,
            compared=sum(r.compared for r in reports[run.id]),
            mismatched_entities=[r.entity_type for r in reports[run.id] if not r.equal],
        )
        for run in runs
    ]


def verify_reports(run: VerifyRun) -> list[VerifyEntityReport]:
    return list(run.reports.order_by("position"))


def latest_verify_of_session(session_id: uuid.UUID) -> VerifyRun | None:
    return VerifyRun.objects.filter(session_id=session_id).order_by("-created_at").first()


def schedules_overview() -> list[RunSchedule]:
    """Every schedule, the next to run first (paused ones last)."""
    return list(RunSchedule.objects.order_by("paused", "next_run_at", "name"))
