//! The LLaMA tokenizer: tokenizer.json or tokenizer.model (sentencepiece BPE).
