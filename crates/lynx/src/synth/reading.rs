//! Reading questions: text-only instructions that give a scene's written description and ask
//! one of its questions (the text-only instruction data of paper Section 2.4). Lynx leans on a
//! language model that already answers questions about a passage in its context: the frozen
//! Vicuna finds "the circle" among the words before it and reads off its colour. The world's
//! own "LLaMA" can only learn that from text that asks it, so these records give descriptions
//! of scenes never rendered (their own seed stream) followed by questions about them. They
//! also probe whether a language model reads its context: with `lynx eval loss`, its loss on
//! the answers should rise when each description is swapped for another scene's (see the
//! default plan's `reading_count` for what the default model's LM does).

use rand::Rng;

use super::language::detailed_caption;
use super::paraphrase::Paraphraser;
use super::questions::scene_questions;
use super::writer::{sample_scene, scene_rng, Split, SynthConfig};

/// One reading record: the instruction is the description followed by the question.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub description: String,
    pub question: String,
    pub answer: String,
}

impl Reading {
    /// The instruction text, with `description` in place of the record's own (the control
    /// file gives each question another scene's description).
    pub fn instruction(&self, description: &str) -> String {
        format!("{description} {}", self.question)
    }
}

/// The reading record of scene `index` of the reading split: the scene's description and one
/// of its questions in a training phrasing, answered briefly or, half of the time, with the
/// full sentence that gives the reason. `None` for a scene without questions.
pub fn reading_instruction(cfg: &SynthConfig, index: usize) -> Option<Reading> {
    let scene = sample_scene(cfg, Split::Reading, index);
    let mut rng = scene_rng(cfg.seed, Split::Reading, index, 1);
    let qas = scene_questions(&scene, &mut rng);
    if qas.is_empty() {
        return None;
    }
    let qa = &qas[rng.random_range(0..qas.len())];
    let mut para = Paraphraser::new(
        cfg.paraphrase,
        scene_rng(cfg.seed, Split::Reading, index, 2),
    );
    let question = para.apply(qa, qa.phrase(&mut rng, false));
    let answer = if rng.random_bool(0.5) {
        qa.explanation.clone()
    } else {
        qa.answer.clone()
    };
    Some(Reading {
        description: detailed_caption(&scene),
        question,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::questions::scene_questions;

    #[test]
    fn reading_questions_describe_their_scene_and_are_answered_from_it() {
        let cfg = SynthConfig::default();
        let mut seen = 0;
        for i in 0..40 {
            let Some(r) = reading_instruction(&cfg, i) else {
                continue;
            };
            seen += 1;
            let scene = sample_scene(&cfg, Split::Reading, i);
            let description = detailed_caption(&scene);
            assert_eq!(r.description, description);
            let question = r.instruction(&r.description);
            assert!(question.starts_with(&description), "{question}");
            assert!(question.ends_with(&r.question), "{question}");
            assert!(r.question.len() > 5, "{question}");
            let answer = r.answer;
            // The answer is one of the scene's own answers or explanations.
            let qas = scene_questions(&scene, &mut scene_rng(cfg.seed, Split::Reading, i, 1));
            assert!(
                qas.iter()
                    .any(|q| q.answer == answer || q.explanation == answer),
                "{answer} is not an answer of {question}"
            );
        }
        assert!(seen >= 35, "only {seen} of 40 reading scenes had questions");
        assert_eq!(reading_instruction(&cfg, 3), reading_instruction(&cfg, 3));
        assert_ne!(reading_instruction(&cfg, 3), reading_instruction(&cfg, 4));
    }
}
