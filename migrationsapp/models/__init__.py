"""diffmig's models, one module per aggregate."""

from .analysis import AnalysisChange, DifferentialAnalysisResult
from .checkpoint import MigrationCheckpoint
from .connection import Connection
from .log import MigrationExecutionLog
from .mapping import FieldMapping, SchemaMappingDefinition, TransformationFunction, ValidationRule
from .record_map import QuarantinedRecord, RecordEvent, RecordMap
from .schedules import RunSchedule
from .session import MigrationControl, MigrationStatus
from .verify_runs import VerifyEntityReport, VerifyRun

__all__ = [
    "AnalysisChange",
    "Connection",
    "DifferentialAnalysisResult",
    "FieldMapping",
    "MigrationCheckpoint",
    "MigrationControl",
    "MigrationExecutionLog",
    "MigrationStatus",
    "QuarantinedRecord",
    "RecordEvent",
    "RecordMap",
    "RunSchedule",
    "SchemaMappingDefinition",
    "TransformationFunction",
    "ValidationRule",
    "VerifyEntityReport",
    "VerifyRun",
]
