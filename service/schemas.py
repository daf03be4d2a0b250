"""Request and response models of the HTTP API (the table in DESIGN.md).

Limits that depend on settings (``max_k``) are checked by the routes and written into the
OpenAPI document by the app factory; the fixed ones (query length) live here.
"""

from __future__ import annotations

from typing import Annotated, Any

from gaitsearch.service.settings import HARD_MAX_K
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_QUERY_CHARS = 1000
MAX_LABELS = 64
MAX_LABEL_CHARS = 200
# Any string with a non-space character: lets schema-driven clients know blank is refused.
NOT_BLANK = r"\S"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


QueryText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        json_schema_extra={"pattern": NOT_BLANK},
        examples=["woman in heels walking briskly"],
    ),
    AfterValidator(_not_blank),
]
Label = Annotated[
    str,
    Field(min_length=1, max_length=MAX_LABEL_CHARS, json_schema_extra={"pattern": NOT_BLANK}),
    AfterValidator(_not_blank),
]
K = Annotated[int, Field(ge=1, le=HARD_MAX_K, description="How many results (1..max_k).")]
# Bounds that keep a filter a filter: SQLite refuses more than a few thousand bound
# variables per statement, and no user types thousands of values (the store chunks anyway).
MAX_FILTER_KEYS = 32
MAX_FILTER_VALUES = 1000
MAX_FILTER_VALUE_CHARS = 200
FilterText = Annotated[str, Field(max_length=MAX_FILTER_VALUE_CHARS)]
FilterValue = FilterText | Annotated[list[FilterText], Field(max_length=MAX_FILTER_VALUES)]
Filters = Annotated[
    dict[str, FilterValue] | None,
    Field(
        max_length=MAX_FILTER_KEYS,
        description="Exact-match filters on metadata: view, source, fps or any attribute "
        "group (e.g. {'footwear': 'heels', 'view': ['side', 'oblique']}).",
        examples=[{"view": "side"}],
    ),
]
# (T, J, 3) keypoints: x, y pixels (y down) and confidence; J = 18 (OpenPose) or 17 (COCO).
Keypoints = list[list[list[float]]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Strict):
    query: QueryText
    k: K = 10
    filters: Filters = None


class BatchSearchRequest(_Strict):
    queries: list[QueryText] = Field(min_length=1, max_length=1024)
    k: K = 10
    filters: Filters = None


class ExampleRequest(_Strict):
    """A walk to find similar walks for: either raw keypoints or the id of an indexed one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)

    keypoints: Keypoints | None = Field(
        default=None,
        description="(T, 18, 3) OpenPose-18 or (T, 17, 3) COCO-17: x, y pixels, confidence.",
    )
    id: str | None = Field(default=None, description="Use this indexed sequence as the example.")
    fps: float = Field(default=25.0, gt=0, le=1000)
    k: K = 10
    filters: Filters = None


class ClassifyRequest(_Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)

    keypoints: Keypoints = Field(description="(T, 18, 3) OpenPose-18 or (T, 17, 3) COCO-17.")
    fps: float = Field(default=25.0, gt=0, le=1000)
    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS)


class SequenceMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    fps: float
    source: str
    attributes: dict[str, Any]
    description: str | None = None


class SearchResult(BaseModel):
    rank: int
    id: str
    score: float = Field(
        description="Higher fits better. Attribute-space checkpoints (the shipped one): the "
        "log-likelihood ratio, in nats, that the walk shows what the query names (> 0: more "
        "likely than a typical walker); text-space checkpoints: cosine similarity."
    )
    metadata: SequenceMetadata


class UnderstoodTerm(BaseModel):
    name: str = Field(description="Attribute group (or measured descriptor) the query names.")
    value: str
    confidence: float = Field(description="Calibrated probability that this reading is right.")
    kind: str = Field(
        default="attribute",
        description="attribute: recognised by the model; measured: computed from the keypoints "
        "(speed, stride, arm swing, lean, head pitch, foot clearance, bounce, sway, evenness).",
    )


class Understood(BaseModel):
    """How the query was read: what it is answered on, and which words were not used."""

    grounded: bool = Field(description="False: the query names nothing this index can search by.")
    terms: list[UnderstoodTerm]
    ignored: list[str] = Field(description="Query words that contributed to no term.")
    detail: str | None = None


class SearchResponse(BaseModel):
    query: str
    k: int
    index_version: str
    took_ms: float
    understood: Understood
    results: list[SearchResult]
    detail: str | None = Field(
        default=None, description="Why there are no results (a query that is not grounded)."
    )


class BatchSearchResponse(BaseModel):
    k: int
    index_version: str
    took_ms: float
    results: list[SearchResponse]


class ExampleResponse(BaseModel):
    k: int
    index_version: str
    took_ms: float
    example_id: str | None = None
    results: list[SearchResult]


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    took_ms: float
    labels: list[LabelScore]


class SequenceResponse(BaseModel):
    id: str
    index_version: str
    fps: float
    frames: int
    metadata: SequenceMetadata
    keypoints: Keypoints = Field(description="(T, 18, 3): x, y pixels (y down), confidence.")


class IndexResponse(BaseModel):
    version: str
    count: int
    dim: int
    filter_keys: list[str]
    manifest: dict[str, Any]


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    ready: bool
    index_version: str | None = None
    count: int | None = None


class ReloadResponse(BaseModel):
    previous: str | None
    version: str
    changed: bool
    took_ms: float


class ErrorResponse(BaseModel):
    """Every 4xx: ``detail`` says what is wrong; ``errors`` lists each field problem."""

    detail: str
    errors: list[dict[str, Any]] | None = None
