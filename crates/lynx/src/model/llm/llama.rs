//! LLaMA decoder (HF transformers LlamaForCausalLM) with KV cache and left padding.
