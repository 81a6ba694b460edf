"""Tiny random decoder-era models built with transformers and sentence-transformers.

Qwen3 as an embedder (last-token pooling, the Qwen3-Embedding query instruction), Qwen3
as a yes/no reranker (Qwen3-Reranker: a causal LM whose folder llama.cpp's converter
recognises by name), Qwen2 (gte-Qwen2's shape) and Gemma3 as EmbeddingGemma (bidirectional,
mean pooling, two Dense projections, its query/document prompts). Each folder is what the
published checkpoint holds: configs, safetensors, tokenizer and the sentence-transformers
modules. The BPE vocabulary is trained here on Qwen2's pre-tokenizer, so llama.cpp splits
text as Hugging Face does once the converter registers it as ``qwen2``; Gemma's is a
SentencePiece BPE model with byte fallback, as Gemma's is.
"""

from __future__ import annotations

import json
from pathlib import Path

from texts import HARD_CASES, stdlib_sentences

QWEN_TASK = "Given a web search query, retrieve relevant passages that answer the query"
QWEN_QUERY_PROMPT = f"Instruct: {QWEN_TASK}\nQuery:"
GEMMA_QUERY_PROMPT = "task: search result | query: "
GEMMA_DOCUMENT_PROMPT = "title: none | text: "

# Qwen2's pre-tokenizer regex (its tokenizer.json), which llama.cpp implements as "qwen2".
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def _corpus() -> list[str]:
    # "yes" and "no" open lines so the BPE learns them as whole tokens (the reranker's
    # labels), as does "|" (llama.cpp's converter looks it up too).
    labels = ["yes", "no", "yes it is", "no it is not", "| a | b |"] * 300
    return [t for t in HARD_CASES if t.strip()] * 3 + stdlib_sentences(3000) + labels


def build_qwen_tokenizer(folder: Path, vocab_size: int = 700) -> int:
    """Write a Qwen2-style byte-level BPE tokenizer (adds <|endoftext|>); return its size."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    eos = tokenizer.token_to_id("<|endoftext|>")
    # Qwen3-Embedding's tokenizer appends <|endoftext|> to every text (a post-processor).
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A:0 <|endoftext|>:0",
        pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", eos)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    fast.padding_side = "left"
    fast.save_pretrained(folder)
    return int(tokenizer.get_vocab_size())


def _qwen_config(kind: str, n_vocab: int, seed: int):  # type: ignore[no-untyped-def]
    from transformers import Qwen2Config, Qwen3Config

    common = dict(
        vocab_size=n_vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        eos_token_id=0,
        bos_token_id=None,
        pad_token_id=0,
    )
    if kind == "qwen2":
        return Qwen2Config(**common, architectures=["Qwen2Model"])
    return Qwen3Config(**common, head_dim=16, tie_word_embeddings=kind == "qwen3-embed")


def _scale_weights(model, seed: int) -> None:  # type: ignore[no-untyped-def]
    # Random init at std 0.02 leaves a 2-layer model near the identity; wider weights make
    # the layers matter, so a wrong mask or position shows in the vectors.
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.15 * torch.randn(param.shape, generator=generator))


def build_qwen_embedder(folder: Path, kind: str = "qwen3", seed: int = 0) -> Path:
    """Write a tiny Qwen3 (or Qwen2, gte-Qwen2's shape) last-token embedder; return it."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_vocab = build_qwen_tokenizer(folder)
    config = _qwen_config("qwen2" if kind == "qwen2" else "qwen3-embed", n_vocab, seed)
    model = AutoModel.from_config(config)
    _scale_weights(model, seed)
    model.save_pretrained(folder)
    transformer = models.Transformer(str(folder))
    pooling = models.Pooling(64, pooling_mode="lasttoken")
    st = SentenceTransformer(
        modules=[transformer, pooling, models.Normalize()],
        prompts={"query": QWEN_QUERY_PROMPT, "document": ""},
        device="cpu",
    )
    st.save(str(folder))
    return folder


def build_qwen3_reranker(folder: Path, seed: int = 1) -> Path:
    """Write a tiny Qwen3-Reranker (a causal LM scored by P(yes)); ``folder`` names it."""
    import torch
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_vocab = build_qwen_tokenizer(folder)
    model = Qwen3ForCausalLM(_qwen_config("qwen3-rerank", n_vocab, seed))
    _scale_weights(model, seed)
    model.save_pretrained(folder)
    (folder / "README.md").write_text("# Qwen3-Reranker (tiny, random)\n", encoding="utf-8")
    return folder


def build_gemma_tokenizer(folder: Path, vocab_size: int = 600) -> int:
    """Write a Gemma-style SentencePiece BPE tokenizer (byte fallback); return its size."""
    import sentencepiece as spm
    from transformers import GemmaTokenizer

    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in _corpus()), encoding="utf-8")
    prefix = folder / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        allow_whitespace_only_pieces=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    # As EmbeddingGemma's tokenizer: <bos> text <eos>.
    tokenizer = GemmaTokenizer.from_pretrained(folder, add_bos_token=True, add_eos_token=True)
    tokenizer.save_pretrained(folder)
    return int(spm.SentencePieceProcessor(model_file=str(prefix.with_suffix(".model"))).vocab_size())


def build_embedding_gemma(folder: Path, seed: int = 2) -> Path:
    """Write a tiny EmbeddingGemma: bidirectional Gemma3, mean pooling, two Dense layers."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import Gemma3TextConfig, Gemma3TextModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_vocab = build_gemma_tokenizer(folder)
    config = Gemma3TextConfig(
        vocab_size=n_vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=6,  # EmbeddingGemma's pattern: five sliding layers, one full
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=8,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
        use_bidirectional_attention=True,
        query_pre_attn_scalar=16,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        architectures=["Gemma3TextModel"],
    )
    model = Gemma3TextModel(config)
    _scale_weights(model, seed)
    model.save_pretrained(folder)
    transformer = models.Transformer(str(folder))
    dense = [
        models.Dense(64, 128, bias=False, activation_function=torch.nn.Identity()),
        models.Dense(128, 64, bias=False, activation_function=torch.nn.Identity()),
    ]
    for layer in dense:
        torch.nn.init.normal_(layer.linear.weight, std=0.15)
    st = SentenceTransformer(
        modules=[transformer, models.Pooling(64, pooling_mode="mean"), *dense, models.Normalize()],
        prompts={"query": GEMMA_QUERY_PROMPT, "document": GEMMA_DOCUMENT_PROMPT},
        device="cpu",
    )
    st.save(str(folder))
    return folder


def write_config_note(folder: Path, **fields: object) -> None:
    """Record how a tiny model was built (for a reader of the cache)."""
    (folder / "llamaembed-test.json").write_text(json.dumps(fields), encoding="utf-8")
