"""Settings of the desk, read from the environment (pydantic-settings).

`DeskSettings` holds what every service shares (database, keys, limits); each service
subclasses it with its own env prefix for what is its own (port, peers). Shared fields
keep their `DESK_` names whatever the subclass, so one `.env` configures all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _shared(name: str, *more: str) -> AliasChoices:
    return AliasChoices(f"DESK_{name}", *more)


class DeskSettings(BaseSettings):
    """What the three services share. Every field is read from `DESK_<NAME>`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Literal["local", "production", "test"] = Field("local", validation_alias=_shared("ENVIRONMENT"))
    database_url: str | None = Field(
        None,
        validation_alias=_shared("DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL; when unset the desk starts an embedded server (pgserver).",
    )
    data_dir: Path = Field(
        REPO_ROOT / ".desk",
        validation_alias=_shared("DATA_DIR"),
        description="Local state: embedded PostgreSQL data and the generated signing key.",
    )
    db_pool_size: int = Field(10, validation_alias=_shared("DB_POOL_SIZE"))
    db_max_overflow: int = Field(5, validation_alias=_shared("DB_MAX_OVERFLOW"))
    db_statement_cache: bool = Field(
        True,
        validation_alias=_shared("DB_STATEMENT_CACHE"),
        description="Turn off behind PgBouncer in transaction mode.",
    )
    db_generic_plans: bool = Field(
        False,
        description="Plan the ORM's prepared statements once (plan_cache_mode=force_generic_plan); on "
        "for intake only (see IntakeSettings).",
    )
    signing_key: SecretStr | None = Field(
        None,
        validation_alias=_shared("SIGNING_KEY"),
        description="Ed25519 private key (PEM) signing access tokens and receipts; generated in local mode.",
    )
    token_issuer: str = Field("regional-desk", validation_alias=_shared("TOKEN_ISSUER"))
    access_token_ttl_seconds: int = Field(900, validation_alias=_shared("ACCESS_TOKEN_TTL_SECONDS"))
    revocation_refresh_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        validation_alias=_shared("REVOCATION_REFRESH_SECONDS"),
        description="Each process re-reads the list of revoked API clients at most this often (on the first "
        "authenticated request after it went stale): a revoked client's tokens are refused everywhere "
        "within this many seconds, at once by the intake process that revoked it. 0 reads it on "
        "every request.",
    )
    max_body_bytes: int = Field(1_048_576, validation_alias=_shared("MAX_BODY_BYTES"))
    http_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=_shared("HTTP_HEADER_TIMEOUT_SECONDS"),
        description="A request's whole header must arrive within this time (from the connection's opening or "
        "the request's first byte), or the connection is answered 408 and closed.",
    )
    http_body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias=_shared("HTTP_BODY_TIMEOUT_SECONDS"),
        description="A request's whole body must arrive within this time of its header (time the service "
        "itself spends not reading does not count), or the connection is answered 408 and closed.",
    )
    http_max_connections: int = Field(
        1000,
        ge=1,
        validation_alias=_shared("HTTP_MAX_CONNECTIONS"),
        description="Open client connections per server process; one more is answered 503 and closed at once. "
        "Lowered at start to what the process's open-file limit allows.",
    )
    page_size_default: int = Field(20, validation_alias=_shared("PAGE_SIZE_DEFAULT"))
    page_size_max: int = Field(100, validation_alias=_shared("PAGE_SIZE_MAX"))
    idempotency_retention_hours: int = Field(48, validation_alias=_shared("IDEMPOTENCY_RETENTION_HOURS"))
    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))
    access_log: bool = Field(True, validation_alias=_shared("ACCESS_LOG"))
    opentelemetry: bool = Field(
        False,
        validation_alias=_shared("OPENTELEMETRY"),
        description="FastAPI's native OpenTelemetry instrumentation (spans, metrics and logs through the global "
        "providers an OpenTelemetry SDK sets up). Off, requests skip its per-request look at the providers; the "
        "desk's own metrics (/metrics) and structured logs do not depend on it.",
    )
    rate_limit_token_per_minute: int = Field(
        30, validation_alias=_shared("RATE_LIMIT_TOKEN_PER_MINUTE"), description="Token requests per client; 0 = off."
    )
    rate_limit_write_per_minute: int = Field(
        1200,
        validation_alias=_shared("RATE_LIMIT_WRITE_PER_MINUTE"),
        description="POST/PUT/PATCH/DELETE per client; 0 = off.",
    )
    rate_limit_write_burst: int = Field(300, validation_alias=_shared("RATE_LIMIT_WRITE_BURST"))
    webhook_timeout_seconds: float = Field(5.0, validation_alias=_shared("WEBHOOK_TIMEOUT_SECONDS"))
    webhook_max_attempts: int = Field(
        12,
        validation_alias=_shared("WEBHOOK_MAX_ATTEMPTS"),
        description="Attempts before a delivery is dead-lettered.",
    )
    webhook_backoff_base_seconds: float = Field(2.0, validation_alias=_shared("WEBHOOK_BACKOFF_BASE_SECONDS"))
    webhook_backoff_max_seconds: float = Field(3600.0, validation_alias=_shared("WEBHOOK_BACKOFF_MAX_SECONDS"))
    worker_poll_seconds: float = Field(0.5, validation_alias=_shared("WORKER_POLL_SECONDS"))
    worker_batch: int = Field(50, validation_alias=_shared("WORKER_BATCH"))
    internal_batch_size: int = Field(
        200,
        ge=1,
        le=200,
        validation_alias=_shared("INTERNAL_BATCH_SIZE"),
        description="Events the worker sends to a desk service in one request (POST /v1/internal/events/batch).",
    )
    pacing_submits_per_second: float = Field(
        10.0,
        ge=0,
        validation_alias=_shared("PACING_SUBMITS_PER_SECOND"),
        description="While new application.submitted events arrive faster than this, the fan-out and the "
        "deliveries (to the desk's services and to partners) wait, so intake goes first; 0 = never wait.",
    )
    pacing_window_seconds: float = Field(
        2.0, gt=0, validation_alias=_shared("PACING_WINDOW_SECONDS"), description="The window the rate is measured on."
    )
    pacing_max_lag_seconds: float = Field(
        15.0,
        ge=0,
        validation_alias=_shared("PACING_MAX_LAG_SECONDS"),
        description="The longest the fan-out and the deliveries wait during a burst before they go out anyway "
        "(the polling feed shows a burst's events that much later at most).",
    )
    webhook_connections_per_host: int = Field(
        4,
        ge=1,
        validation_alias=_shared("WEBHOOK_CONNECTIONS_PER_HOST"),
        description="Kept-alive connections (and so concurrent deliveries) per checked webhook address.",
    )
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias=_shared("INTAKE_URL"))
    evaluation_url: str = Field("http://127.0.0.1:8002", validation_alias=_shared("EVALUATION_URL"))
    monitoring_url: str = Field("http://127.0.0.1:8003", validation_alias=_shared("MONITORING_URL"))

    service_name: str = "desk"
    host: str = "127.0.0.1"
    port: int = 8000


class IntakeSettings(DeskSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_file=".env", extra="ignore", populate_by_name=True)
    service_name: str = "intake"
    port: int = 8001
    db_generic_plans: bool = Field(
        True,
        description="Plan the ORM's statements once (plan_cache_mode=force_generic_plan): intake's are small "
        "parameterised lookups run thousands of times on click day, whose custom re-planning "
        "costs more than running them. The other services keep PostgreSQL's default.",
    )
    submit_pool_size: int = Field(
        4,
        description="Connections of the click-day submit path (an asyncpg pool beside the ORM's, plus one "
        "for the shared durability barrier); 0 serves submits through the ordinary route. Keep it "
        "small: submits of one call queue on its protocol counter, and more connections only "
        "lengthen that queue inside PostgreSQL.",
    )

    signature_trust_roots: list[Path] = Field(
        default_factory=list,
        description="PEM (or DER) files of the certificates a signed application form's signer must chain to: in "
        "production the qualified CAs of the EU trusted lists; none configured, no signed form is accepted.",
    )


class EvaluationSettings(DeskSettings):
    model_config = SettingsConfigDict(env_prefix="EVALUATION_", env_file=".env", extra="ignore", populate_by_name=True)
    service_name: str = "evaluation"
    port: int = 8002


class MonitoringSettings(DeskSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", env_file=".env", extra="ignore", populate_by_name=True)
    service_name: str = "monitoring"
    port: int = 8003
    evidence_max_bytes: int = Field(10 * 1024 * 1024, description="Largest evidence file accepted (413 beyond).")
    storage_backend: Literal["disk", "s3"] = Field("disk", description="Where evidence files are kept.")
    storage_dir: Path = Field(REPO_ROOT / ".desk" / "evidence", description="Evidence folder of the disk backend.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph...); None: AWS.")
    s3_bucket: str = Field("desk-evidence", description="Bucket of the s3 backend.")
    s3_prefix: str = Field("evidence/", description="Key prefix inside the bucket.")
    s3_region: str = Field("eu-south-1")
    s3_access_key_id: str | None = Field(None)
    s3_secret_access_key: SecretStr | None = Field(None)
    reminders_interval_seconds: float = Field(
        86400.0,
        description="How often the deadline reminders run (project.reminder events); 0 = off. "
        "Always off when DESK_ENVIRONMENT=test.",
    )
    stats_cache_seconds: float = Field(
        60.0,
        description="Longest a computed statistics view is served again (none if the facts changed, after "
        "stats_cache_min_fresh_seconds); 0 = no cache.",
    )
    stats_cache_min_fresh_seconds: float = Field(
        2.0,
        description="A statistics view this young is served whatever changed: under a stream of writes each "
        "view is recomputed at most this often.",
    )
