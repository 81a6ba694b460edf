"""Request and response shapes of the server: OpenAI, Cohere/Jina, TEI and Ollama.

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
    "OllamaEmbedRequest",
    "OllamaEmbeddingsRequest",
    "OllamaShowRequest",
    "RerankDocument",
    "RerankRequest",
    "RerankResponse",
    "RerankResultItem",
    "SimpleToken",
    "SparseValue",
    "TeiDecodeRequest",
    "TeiEmbedRequest",
    "TeiRerankItem",
    "TeiRootRequest",
    "TeiTokenizeRequest",
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
    """text-embeddings-inference's embed request (``/embed``, ``/embed_all``, ``/embed_sparse``)."""

    inputs: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    model: StrictStr | None = Field(None, description="Served model name (default: the one).")
    truncate: StrictBool | None = Field(
        None, description="True: cut over-long input (TEI's default: a 400)."
    )
    truncation_direction: StrictStr = Field(
        "Right", description="`Right` only: the end of an over-long input is cut."
    )
    prompt_name: StrictStr | None = Field(None, description="`query` or `document` prefix.")
    normalize: StrictBool = Field(True, description="`/embed`: unit vectors (TEI's default).")
    dimensions: StrictInt | None = Field(None, description="`/embed`: keep the first N.")


class TeiRootRequest(TeiEmbedRequest):
    """``POST /``: TEI's embed request, or its rerank request when ``query`` is given."""

    inputs: StrictStr | list[StrictStr] | None = Field(  # type: ignore[assignment]
        None, description="Texts to embed."
    )
    query: StrictStr | None = Field(None, description="Rerank: the query.")
    texts: list[StrictStr] | None = Field(None, description="Rerank: the texts to score.")
    raw_scores: StrictBool = Field(False, description="Rerank: logits instead of sigmoid.")
    return_text: StrictBool = Field(False, description="Rerank: echo each text.")


class TeiTokenizeRequest(_Request):
    """``POST /tokenize``: TEI's request."""

    inputs: StrictStr | list[StrictStr]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None
    model: StrictStr | None = None


class TeiDecodeRequest(_Request):
    """``POST /decode``: TEI's request."""

    ids: list[StrictInt] | list[list[StrictInt]]
    skip_special_tokens: StrictBool = True
    model: StrictStr | None = None


class SimpleToken(BaseModel):
    """One token of ``/tokenize``: its id, its text and, where known, its place in the input."""

    id: int
    text: str
    special: bool
    start: int | None = None
    stop: int | None = None


class TeiRerankItem(BaseModel):
    """One scored text of TEI's rerank answer."""

    index: int
    score: float
    text: str | None = None


class OllamaEmbedRequest(_Request):
    """``POST /api/embed``: Ollama's request (``keep_alive`` and ``options`` are accepted)."""

    model: StrictStr | None = Field(None, description="Served model name (default: the one).")
    input: StrictStr | list[StrictStr]
    truncate: StrictBool = True
    dimensions: StrictInt | None = None
    keep_alive: StrictStr | StrictInt | float | None = None
    options: dict[str, Any] | None = None


class OllamaEmbeddingsRequest(_Request):
    """``POST /api/embeddings``: Ollama's older request, one prompt."""

    model: StrictStr | None = Field(None, description="Served model name (default: the one).")
    prompt: StrictStr
    keep_alive: StrictStr | StrictInt | float | None = None
    options: dict[str, Any] | None = None


class OllamaShowRequest(_Request):
    """``POST /api/show``: the model to describe (``name`` is the older field)."""

    model: StrictStr | None = None
    name: StrictStr | None = None
    verbose: StrictBool | None = None


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
