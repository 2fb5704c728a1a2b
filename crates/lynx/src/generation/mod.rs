//! Generation with the semantics of HF transformers 4.28.1 `generate` on `inputs_embeds`.
