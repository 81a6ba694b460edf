"""An independent numpy forward pass of a Hugging Face BERT checkpoint (the test oracle).

It reads the safetensors weights directly and follows transformers' BertModel: exact
(erf) GELU, post-layer-norm, absolute positions; no batching or padding, one text at a
time, float64 throughout. Nothing here touches llama.cpp or llamaembed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf (Numerical Recipes' erfc, fractional error below 1.2e-7)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class BertReference:
    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        raw = {}
        for file in sorted(folder.glob("*.safetensors")):
            raw.update(load_file(file))
        self.w = {
            k.removeprefix("bert.").removeprefix("roberta."): v.astype(np.float64)
            for k, v in raw.items()
        }
        # RoBERTa counts positions from pad_token_id + 1.
        roberta = self.config.get("model_type") in ("roberta", "xlm-roberta")
        self.position_offset = int(self.config.get("pad_token_id", 1)) + 1 if roberta else 0
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.n_heads = int(self.config["num_attention_heads"])
        self.n_layers = int(self.config["num_hidden_layers"])

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def hidden_states(self, ids: list[int], token_types: list[int] | None = None) -> np.ndarray:
        """Return the last hidden state, (n_tokens, hidden), of one unpadded sequence."""
        ids_arr = np.asarray(ids)
        types = np.zeros_like(ids_arr) if token_types is None else np.asarray(token_types)
        x = (
            self.w["embeddings.word_embeddings.weight"][ids_arr]
            + self.w["embeddings.position_embeddings.weight"][
                np.arange(len(ids_arr)) + self.position_offset
            ]
            + self.w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        n, hidden = x.shape
        d = hidden // self.n_heads
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            q = self._lin(x, p + "attention.self.query").reshape(n, self.n_heads, d)
            k = self._lin(x, p + "attention.self.key").reshape(n, self.n_heads, d)
            v = self._lin(x, p + "attention.self.value").reshape(n, self.n_heads, d)
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            context = np.einsum("hqk,khd->qhd", probs, v).reshape(n, hidden)
            x = self._ln(x + self._lin(context, p + "attention.output.dense"),
                         p + "attention.output.LayerNorm")
            ffn = self._lin(gelu(self._lin(x, p + "intermediate.dense")), p + "output.dense")
            x = self._ln(x + ffn, p + "output.LayerNorm")
        return x

    def embed(self, ids: list[int], pooling: str = "mean") -> np.ndarray:
        h = self.hidden_states(ids)
        if pooling == "mean":
            return h.mean(0)
        if pooling == "cls":
            return h[0]
        if pooling == "last":
            return h[-1]
        raise ValueError(pooling)

    def classify(self, ids: list[int], token_types: list[int] | None = None) -> np.ndarray:
        """Return the classifier logits: classifier(tanh(pooler(h_cls)))."""
        h = self.hidden_states(ids, token_types)[0]
        if "classifier.dense.weight" in self.w:  # RobertaClassificationHead
            return self._lin(np.tanh(self._lin(h, "classifier.dense")), "classifier.out_proj")
        pooled = np.tanh(self._lin(h, "pooler.dense"))
        return self._lin(pooled, "classifier")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
