"""Request and response shapes of the server (OpenAI embeddings, Cohere/Jina/TEI rerank).

Types are strict, so a number where a string belongs is a 422, not a silent coercion.
Values that parse but make no sense (an unknown ``encoding_format``, ``dimensions`` out
of range) are checked by the routes and answered with 400, as OpenAI does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorDetail",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
    "RerankDocument",
    "RerankRequest",
    "RerankResponse",
    "RerankResultItem",
    "SparseValue",
    "TeiEmbedRequest",
    "Usage",
    "error_body",
]

EmbeddingInput = StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]


class _Request(BaseModel):
    # Unknown fields are ignored: clients send their own extras (OpenAI's SDK, LangChain).
    model_config = ConfigDict(extra="ignore")


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``: OpenAI's request, plus ``input_type`` and ``truncate``."""

    input: EmbeddingInput = Field(
        description="A text, a list of texts, a list of token ids or a list of id lists."
    )
    model: StrictStr | None = Field(None, description="Served model name (default: the one).")
    encoding_format: StrictStr = Field("float", description="`float` or `base64` (float32 LE).")
    dimensions: StrictInt | None = Field(None, description="Keep the first N, re-normalised.")
    user: StrictStr | None = None
    input_type: StrictStr | None = Field(None, description="`query` or `document` prefix.")
    prompt_name: StrictStr | None = Field(None, description="Same as input_type.")
    truncate: StrictBool = Field(True, description="False: over-long input is a 400.")


class TeiEmbedRequest(_Request):
    """``POST /embed_sparse`` and ``/embed_colbert``: text-embeddings-inference's request."""

    inputs: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    model: StrictStr | None = Field(None, description="Served model name (default: the one).")
    truncate: StrictBool = Field(
        False, description="True: cut over-long input (TEI's default: a 400)."
    )
    prompt_name: StrictStr | None = Field(None, description="`query` or `document` prefix.")


class SparseValue(BaseModel):
    """One token's learned weight: ``index`` is the token id in the model's vocabulary."""

    index: int
    value: float


class Usage(BaseModel):
    """Tokens the request ran (special tokens included)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingData(BaseModel):
    """One embedding, at the position of its input."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    """OpenAI's embeddings response."""

    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class RerankDocument(BaseModel):
    """A document given as an object (Cohere's and Jina's form)."""

    text: StrictStr


class RerankRequest(_Request):
    """``POST /v1/rerank``: Cohere's / Jina's request; TEI's ``texts`` is taken too."""

    query: StrictStr
    documents: list[StrictStr | RerankDocument] | None = None
    texts: list[StrictStr] | None = Field(None, description="TEI's name for documents.")
    model: StrictStr | None = None
    top_n: StrictInt | None = Field(None, description="Only the N best.")
    return_documents: StrictBool = False
    return_text: StrictBool = Field(False, description="TEI's name for return_documents.")
    raw_scores: StrictBool = Field(False, description="Logits instead of sigmoid scores.")


class RerankResultItem(BaseModel):
    """One scored document."""

    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    """Results sorted best first."""

    id: str
    model: str
    results: list[RerankResultItem]
    usage: Usage


class ModelCard(BaseModel):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llamaembed"
    kind: Literal["embedding", "rerank"]
    dimensions: int | None = None
    max_tokens: int


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the server answers with."""

    error: ErrorDetail


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Return an error in OpenAI's shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
