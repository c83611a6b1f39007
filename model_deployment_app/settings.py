"""Server settings from the environment (`MDA_*`, and `PORT`), one class per concern.

docs/reference/settings.md lists these with their defaults; keep the two in step.
"""

from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MDA_", extra="ignore", frozen=True)


class ServerSettings(_Env):
    port: int = Field(
        default=8080, ge=1, le=65535, validation_alias=AliasChoices("PORT", "MDA_PORT")
    )
    """TCP port to listen on."""
    grpc_port: int = Field(default=8081, ge=0, le=65535)
    """TCP port of the V2 gRPC service; 0 turns it off."""
    host: str = "0.0.0.0"
    """Address to bind; 0.0.0.0 in a pod, 127.0.0.1 for local runs."""
    config_path: str = "/etc/config/config.yaml"
    """The model configuration (the mounted ConfigMap)."""
    root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*/?$")
    """A prefix every route also answers under (e.g. /iris-classifier, the model's ingress
    path), so no router needs to rewrite paths; routes answer without it too."""
    track: str = Field(default="stable", pattern=r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
    """Which track this server is (stable, canary): in every answer's `model-track` header
    and in `mda_model_info`, so a canary's traffic is told apart."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes; the model is loaded once, before they fork."""
    load_timeout_seconds: float = Field(default=240.0, gt=0)
    """Longest the model may take to fetch and load (retries included) before start-up fails."""
    download_dir: str | None = None
    """Where GCS artifacts are downloaded (default: a temporary directory)."""
    progress_seconds: float = Field(default=5.0, gt=0)
    """How often a model download logs its progress (bytes, percent, rate)."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger is 413."""
    max_rows: int = Field(default=10_000, ge=1)
    """Most rows in one request; more is 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request head (request line and headers) accepted; larger is 431."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection must send a request's headers within this; else 408 and it is closed."""
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """A request's body must arrive within this; else 408."""
    max_connections: int = Field(default=2048, ge=1)
    """Open connections per worker; past it a new one gets 503 and is closed."""
    skops_trusted_types: str = ""
    """Comma-separated extra types an operator vouches for when loading skops artifacts."""
    graceful_shutdown_seconds: float = Field(default=25.0, ge=0)
    """On SIGTERM, how long requests in flight may finish; then they get a JSON 503."""
    playground: bool = True
    """Serve the playground page at / (a form to try the model in a browser)."""
    log_level: str = "info"
    """uvicorn log level."""
    access_log: bool = False
    """Log every request (off by default: it costs throughput)."""


class CacheSettings(_Env):
    cache_enabled: bool = True
    """Cache predictions per row, keyed by the artifact's sha256 and the row's bytes."""
    redis_url: str | None = None
    """Use Redis (shared by all replicas) instead of the in-process cache, e.g. redis://redis:6379/0."""
    cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    """How long a cached prediction lives."""
    cache_max_entries: int = Field(default=100_000, ge=1)
    """Rows kept by the in-process LRU cache (per worker)."""
    cache_max_bytes: int | None = Field(default=None, ge=1024)
    """Memory the in-process cache may hold (per worker); default a quarter of the container's
    memory limit divided among the workers, at most 256 MiB."""
    redis_timeout_ms: float = Field(default=50.0, gt=0)
    """Socket timeout for Redis; past it the request is served without the cache."""
    redis_retry_seconds: float = Field(default=2.0, gt=0)
    """After a Redis failure, how long to serve without it before trying again."""


class BatchingSettings(_Env):
    max_batch_size: int = Field(default=256, ge=1)
    """Most rows merged into one model call."""
    max_batch_delay_ms: float = Field(default=0.0, ge=0)
    """How long a batch may wait for more rows; 0 merges only what is already queued."""


class CompileSettings(_Env):
    """Compiled inference (docs: explanations/speed.md#compiled-inference)."""

    compile: Literal["exact", "approx", "off"] = "exact"
    """Answer scikit-learn models with ONNX Runtime once converted and verified: exact (within
    1e-9 of scikit-learn), approx (within 1e-6, the same classes: tree ensembles), off."""
    compile_timeout_seconds: float = Field(default=60.0, gt=0)
    """A conversion and verification that takes longer leaves the model on scikit-learn."""


class PoolSettings(_Env):
    """A model pool (a config of `models:`; docs: guides/pools.md)."""

    memory_budget: int | None = None
    """Memory the pool's loaded models may hold together, in bytes or with Ki, Mi, Gi
    (e.g. 1536Mi); past it the least recently used is unloaded. Default: half the container's
    memory limit (the rest is the server, its cache and its requests); no limit without one."""

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _a_size(cls, value: object) -> object:
        if isinstance(value, str):
            from model_deployment_app.memory import parse_bytes

            if not value.strip():
                return None
            size = parse_bytes(value)
            if size <= 0:
                raise ValueError("a budget must be more than 0 bytes")
            return size
        return value


class PayloadLogSettings(_Env):
    """What each model received and answered (docs: guides/watching.md)."""

    payload_log: str | None = None
    """Where to write one record per request: stdout, file:///path, gs://bucket/prefix/, or an
    http(s):// URL that takes CloudEvents; unset: off."""
    payload_log_sample: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of requests recorded, 0 to 1."""
    payload_log_redact: str = ""
    """Input names whose values are masked (`***`) in the records, comma-separated."""
    payload_log_flush_seconds: float = Field(default=10.0, gt=0)
    """gs://: records are written at least this often (and at shutdown)."""
    payload_log_queue: int = Field(default=10_000, ge=1)
    """Records waiting for the writer at most; past it a record is dropped and counted."""
    payload_log_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    """file://: the file is rotated past this size (5 older files kept)."""

    @field_validator("payload_log", mode="before")
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def redacted(self) -> frozenset[str]:
        return frozenset(
            filter(None, (name.strip() for name in self.payload_log_redact.split(",")))
        )


class TextModelSettings(_Env):
    """How a transformers text model runs (`modelType: transformers`)."""

    text_max_length: int | None = Field(default=None, ge=2)
    """Tokens kept per text (longer texts are truncated); default the model's own maximum."""
    text_token_budget: int = Field(default=8192, ge=16)
    """Most tokens (padded) in one forward pass: a merged batch is cut into chunks of this."""
    torch_device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs: auto takes CUDA when present."""
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Weights' precision; float16 and bfloat16 only on CUDA."""
    torch_threads: int | None = Field(default=None, ge=1, le=256)
    """Torch threads per worker; default the container's CPU limit divided among workers."""


class AccessSettings(_Env):
    """Who may call the model: tokens, the admin route, rate limits (docs: guides/securing.md)."""

    api_tokens_file: str | None = None
    """A file of accepted bearer tokens, one a line (a mounted Secret); unset: no tokens."""
    admin_tokens_file: str | None = None
    """A file of admin tokens, for the repository load route; unset: that route is off (403)."""
    metrics_auth: bool = False
    """Ask /metrics for a prediction token too (Prometheus then sends one)."""
    rate_limit: str | None = None
    """Requests per caller (its token, else its address), e.g. 100/second or 5000/minute."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (CIDR) whose X-Forwarded-For is believed."""

    @field_validator("rate_limit")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value:
            from model_deployment_app.ratelimit import parse_rate

            parse_rate(value)
        return value or None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or a network (CIDR)") from None
        return value


class Settings:
    """All settings, read from the environment once at start-up."""

    def __init__(
        self,
        server: ServerSettings | None = None,
        cache: CacheSettings | None = None,
        batching: BatchingSettings | None = None,
        text: TextModelSettings | None = None,
        access: AccessSettings | None = None,
        compiling: CompileSettings | None = None,
        pool: PoolSettings | None = None,
        payload_log: PayloadLogSettings | None = None,
    ) -> None:
        self.server = server or ServerSettings()
        self.cache = cache or CacheSettings()
        self.batching = batching or BatchingSettings()
        self.text = text or TextModelSettings()
        self.access = access or AccessSettings()
        self.compiling = compiling or CompileSettings()
        self.pool = pool or PoolSettings()
        self.payload_log = payload_log or PayloadLogSettings()
