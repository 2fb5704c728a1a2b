//! A decoding session over the Lynx LLM: the KV cache and attention mask that generation
//! (HF 4.28 `generate` semantics) drives one token at a time.

use candle_core::{DType, Tensor};

use crate::generation::StepModel;
use crate::model::llm::llama::{KvCache, Llama};
use crate::Result;

/// The LLM plus a growing cache; rows can be reordered for beam search.
pub struct LlmSession<'a> {
    llm: &'a Llama,
    cache: KvCache,
}

impl<'a> LlmSession<'a> {
    pub fn new(llm: &'a Llama) -> Self {
        Self {
            cache: llm.new_cache(),
            llm,
        }
    }

    fn last_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let t = hidden.dim(1)?;
        self.llm.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
    }
}

impl StepModel for LlmSession<'_> {
    fn prefill(&mut self, inputs_embeds: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.cache = self.llm.new_cache();
        let hidden =
            self.llm
                .forward_hidden(inputs_embeds, attention_mask, Some(&mut self.cache))?;
        self.last_logits(&hidden)
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let dev = self.llm.device();
        let ids = Tensor::from_vec(tokens.to_vec(), (tokens.len(), 1), dev)?;
        let embeds = self.llm.embed(&ids)?;
        let mask = Tensor::ones((tokens.len(), 1), DType::U32, dev)?;
        let hidden = self
            .llm
            .forward_hidden(&embeds, &mask, Some(&mut self.cache))?;
        self.last_logits(&hidden)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), self.llm.device())?;
        self.cache.select_rows(&idx)
    }
}
