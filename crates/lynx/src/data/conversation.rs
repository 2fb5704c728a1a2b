//! Token sequences of prompts and dialogs: the release's inference prompt
//! (`[BOS] + tokenize(prompt.format(question).strip())`, last `max_input_tokens` kept) and its
//! training counterpart, where every assistant turn is followed by EOS and carries the loss.

use crate::data::tokenizer::LynxTokenizer;
use crate::Result;

/// How instructions are wrapped (`prompt`, `lower_text` of LYNX.yaml).
#[derive(Debug, Clone)]
pub struct PromptFormat {
    pub template: String,
    pub lower_text: bool,
}

impl PromptFormat {
    /// `template.format(question).strip()`, lowercased when `lower_text` is set.
    pub fn render(&self, question: &str) -> String {
        let text = self.template.replace("{question}", question);
        let text = text.trim();
        if self.lower_text {
            text.to_lowercase()
        } else {
            text.to_string()
        }
    }
}

/// One exchange of a dialog: the user's instruction (before the model prompt wraps it) and
/// the model's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub prompt: String,
    pub response: String,
    /// The short answer an explained reply argues for, when the record gives one: what the
    /// bridge's word tokens should name (`TrainConfig::word_tokens_from_short_answers`).
    pub short_answer: Option<String>,
}

/// A tokenised training example: ids and, per id, whether it is a target of the loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub is_target: Vec<bool>,
}

/// The ids the model reads before answering `question` after the dialog `history`:
/// `[BOS] + (prompt(q_i) + reply_i + EOS)* + prompt(question)`, keeping the last `max_tokens`
/// (a long input loses its beginning, BOS included, as in the release).
pub fn inference_ids(
    tok: &LynxTokenizer,
    fmt: &PromptFormat,
    history: &[Turn],
    question: &str,
    max_tokens: usize,
) -> Result<Vec<u32>> {
    let mut ids = vec![tok.bos_id()];
    for turn in history {
        ids.extend(tok.encode(&fmt.render(&turn.prompt))?);
        ids.extend(tok.encode(turn.response.trim())?);
        ids.push(tok.eos_id());
    }
    ids.extend(tok.encode(&fmt.render(question))?);
    if ids.len() > max_tokens {
        ids.drain(..ids.len() - max_tokens);
    }
    Ok(ids)
}

/// A training sequence with the loss on the replies (and their EOS) only. Sequences longer
/// than `max_tokens` are cut at the end; a cut reply keeps the loss on what remains.
pub fn training_ids(
    tok: &LynxTokenizer,
    fmt: &PromptFormat,
    turns: &[Turn],
    max_tokens: usize,
) -> Result<Tokenized> {
    let mut ids = vec![tok.bos_id()];
    let mut is_target = vec![false];
    for turn in turns {
        let prompt = tok.encode(&fmt.render(&turn.prompt))?;
        is_target.extend(std::iter::repeat_n(false, prompt.len()));
        ids.extend(prompt);
        let mut reply = tok.encode(turn.response.trim())?;
        reply.push(tok.eos_id());
        is_target.extend(std::iter::repeat_n(true, reply.len()));
        ids.extend(reply);
    }
    ids.truncate(max_tokens);
    is_target.truncate(max_tokens);
    Ok(Tokenized { ids, is_target })
}

/// A caption (stage-1 pretraining): the caption itself is the reply to an empty instruction
/// when `fmt` is `None`, i.e. `[BOS] + caption + EOS` with the loss on the caption.
pub fn caption_ids(tok: &LynxTokenizer, caption: &str, max_tokens: usize) -> Result<Tokenized> {
    let mut ids = vec![tok.bos_id()];
    let mut reply = tok.encode(caption.trim())?;
    reply.push(tok.eos_id());
    let mut is_target = vec![false];
    is_target.extend(std::iter::repeat_n(true, reply.len()));
    ids.extend(reply);
    ids.truncate(max_tokens);
    is_target.truncate(max_tokens);
    Ok(Tokenized { ids, is_target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tokenizer::TokenizerSource;
    use std::path::Path;

    fn tiny_tokenizer() -> LynxTokenizer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/vicuna");
        LynxTokenizer::from_dir(&dir, TokenizerSource::Auto).unwrap()
    }

    #[test]
    fn inference_ids_match_the_release_prompts_including_truncation() {
        let tok = tiny_tokenizer();
        let fmt = PromptFormat {
            template: "User: {question}\nBot:".into(),
            lower_text: true,
        };
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/reference/cases.json");
        let cases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let prompts = cases["prompts"].as_object().unwrap();
        assert_eq!(prompts.len(), 6);
        let mut truncated = 0;
        for p in prompts.values() {
            let ids = inference_ids(&tok, &fmt, &[], p["question"].as_str().unwrap(), 40).unwrap();
            let want: Vec<u32> = serde_json::from_value(p["input_ids"].clone()).unwrap();
            assert_eq!(ids, want, "{}", p["question"]);
            truncated += usize::from(p["truncated"].as_bool().unwrap());
        }
        assert_eq!(truncated, 1, "one fixture prompt exercises truncation");
    }

    #[test]
    fn training_ids_mark_only_replies_and_their_eos() {
        let tok = tiny_tokenizer();
        let fmt = PromptFormat {
            template: "User: {question}\nBot:".into(),
            lower_text: true,
        };
        let turns = [
            Turn {
                prompt: "What is it?".into(),
                response: "a car".into(),
                short_answer: None,
            },
            Turn {
                prompt: "Why?".into(),
                response: "it has wheels".into(),
                short_answer: None,
            },
        ];
        let t = training_ids(&tok, &fmt, &turns, 1000).unwrap();
        assert_eq!(t.ids.len(), t.is_target.len());
        let eos_targets = t
            .ids
            .iter()
            .zip(&t.is_target)
            .filter(|(&id, &tgt)| id == tok.eos_id() && tgt)
            .count();
        assert_eq!(eos_targets, 2);
        let reply: Vec<u32> = t
            .ids
            .iter()
            .zip(&t.is_target)
            .filter(|(_, &tgt)| tgt)
            .map(|(&id, _)| id)
            .collect();
        let mut want = tok.encode("a car").unwrap();
        want.push(tok.eos_id());
        want.extend(tok.encode("it has wheels").unwrap());
        want.push(tok.eos_id());
        assert_eq!(reply, want);
        // The history used at inference is the same prefix as in training.
        let ctx = inference_ids(&tok, &fmt, &turns[..1], "Why?", 1000).unwrap();
        assert_eq!(&t.ids[..ctx.len()], &ctx[..]);
        let cut = training_ids(&tok, &fmt, &turns, 5).unwrap();
        assert_eq!(cut.ids.len(), 5);
    }
}
