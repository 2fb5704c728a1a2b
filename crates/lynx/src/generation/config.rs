//! Generation parameters: the official LYNX.yaml inference settings as defaults, validated the way
//! HF transformers 4.28.1 `generate` validates them, and the decoding mode they select.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// When beam search stops (HF `early_stopping`: `false`, `true` or `"never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `false`: HF's heuristic, done when the best running score, normalised by the current
    /// length, cannot beat the worst kept hypothesis (the release's setting).
    #[default]
    Heuristic,
    /// `true`: done as soon as `num_beams` hypotheses are finished.
    Enough,
    /// `"never"`: done only when no running beam can improve (canonical beam search).
    Never,
}

impl Serialize for EarlyStopping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::Heuristic => s.serialize_bool(false),
            EarlyStopping::Enough => s.serialize_bool(true),
            EarlyStopping::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(EarlyStopping::Heuristic),
            Raw::Bool(true) => Ok(EarlyStopping::Enough),
            Raw::Str(s) if s == "never" => Ok(EarlyStopping::Never),
            Raw::Str(s) => Err(serde::de::Error::custom(format!(
                "early_stopping must be true, false or \"never\", got \"{s}\""
            ))),
        }
    }
}

/// Parameters of [`generate`](super::generate). Field names follow HF `GenerationConfig`; the
/// defaults are the official LYNX.yaml inference parameters (`use_nucleus_sampling` = `do_sample`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// New tokens at most; the HF sequence (with its BOS placeholder) is at most 1 + this long.
    pub max_new_tokens: usize,
    /// Minimum length of the HF sequence, placeholder included: EOS is banned while it is shorter.
    pub min_length: usize,
    pub num_beams: usize,
    /// Exponent of the hypothesis length (placeholder included, EOS excluded) that divides a
    /// finished beam's summed log-probabilities.
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    /// Multinomial sampling (num_beams 1) or beam sampling (num_beams > 1).
    pub do_sample: bool,
    /// Sampling only; 1.0 disables it.
    pub temperature: f64,
    /// Sampling only; 0 disables it.
    pub top_k: usize,
    /// Sampling only; 1.0 disables it.
    pub top_p: f64,
    /// 1.0 disables it.
    pub repetition_penalty: f64,
    /// 0 disables it.
    pub no_repeat_ngram_size: usize,
    /// Sequences returned per input row.
    pub num_return_sequences: usize,
    /// The id of the placeholder that starts every HF sequence (never fed to the model).
    pub bos_token_id: u32,
    /// `None`: generation only stops at `max_new_tokens`.
    pub eos_token_id: Option<u32>,
    /// HF feeds it to rows that have finished; here finished rows leave the model batch instead
    /// (`StepModel::select_rows`), so it never reaches the model or the result. Kept for
    /// compatibility with HF configs.
    pub pad_token_id: Option<u32>,
    /// Seed of the ChaCha random generator used by sampling.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            min_length: 2,
            num_beams: 5,
            length_penalty: -2.0,
            early_stopping: EarlyStopping::Heuristic,
            do_sample: true,
            temperature: 1.0,
            top_k: 3,
            top_p: 0.9,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 2,
            num_return_sequences: 1,
            bos_token_id: 1,
            eos_token_id: Some(2),
            pad_token_id: None,
            seed: 42,
        }
    }
}

/// The decoding loop a configuration selects (HF `generate`'s mode flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Greedy,
    Sample,
    BeamSearch,
    BeamSample,
}

impl GenerationConfig {
    /// The HF `max_length`: the placeholder plus `max_new_tokens`.
    pub fn max_length(&self) -> usize {
        1 + self.max_new_tokens
    }

    /// The decoding mode, as HF picks it from `num_beams` and `do_sample`.
    pub fn mode(&self) -> Mode {
        match (self.num_beams > 1, self.do_sample) {
            (false, false) => Mode::Greedy,
            (false, true) => Mode::Sample,
            (true, false) => Mode::BeamSearch,
            (true, true) => Mode::BeamSample,
        }
    }

    /// Checks every value HF 4.28.1 would reject (and a few it would silently mishandle).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("generation.{key}"), msg));
        if self.max_new_tokens == 0 {
            // HF still runs one step with max_new_tokens 0 and returns a token; refuse instead.
            return bad("max_new_tokens", "must be at least 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams", "must be at least 1".into());
        }
        if self.num_return_sequences == 0 {
            return bad("num_return_sequences", "must be at least 1".into());
        }
        if self.min_length > self.max_length() {
            return bad(
                "min_length",
                format!(
                    "{} is larger than the maximum length 1 + max_new_tokens = {}",
                    self.min_length,
                    self.max_length()
                ),
            );
        }
        match self.mode() {
            Mode::Greedy if self.num_return_sequences > 1 => {
                return bad(
                    "num_return_sequences",
                    format!(
                        "must be 1 for greedy search, got {}",
                        self.num_return_sequences
                    ),
                )
            }
            Mode::BeamSearch if self.num_return_sequences > self.num_beams => {
                return bad(
                    "num_return_sequences",
                    format!(
                        "{} is larger than num_beams {}",
                        self.num_return_sequences, self.num_beams
                    ),
                )
            }
            _ => {}
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(
                "repetition_penalty",
                format!("must be a positive number, got {}", self.repetition_penalty),
            );
        }
        if !self.length_penalty.is_finite() {
            return bad(
                "length_penalty",
                format!("must be finite, got {}", self.length_penalty),
            );
        }
        if self.do_sample {
            if !(self.temperature > 0.0 && self.temperature.is_finite()) {
                return bad(
                    "temperature",
                    format!("must be a positive number, got {}", self.temperature),
                );
            }
            if !(0.0..=1.0).contains(&self.top_p) {
                return bad(
                    "top_p",
                    format!("must be between 0 and 1, got {}", self.top_p),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_official_inference_parameters() {
        let c = GenerationConfig::default();
        assert_eq!(c.max_new_tokens, 64);
        assert_eq!(c.min_length, 2);
        assert_eq!(c.num_beams, 5);
        assert_eq!(c.length_penalty, -2.0);
        assert_eq!((c.top_p, c.top_k), (0.9, 3));
        assert_eq!(c.no_repeat_ngram_size, 2);
        assert!(c.do_sample);
        assert_eq!((c.temperature, c.repetition_penalty), (1.0, 1.0));
        assert_eq!(c.early_stopping, EarlyStopping::Heuristic);
        assert_eq!(c.num_return_sequences, 1);
        assert_eq!(c.mode(), Mode::BeamSample);
        assert_eq!(c.max_length(), 65);
        c.validate().unwrap();
    }

    #[test]
    fn serde_round_trip_and_early_stopping_forms() {
        let c: GenerationConfig = serde_json::from_str(
            r#"{"num_beams": 1, "do_sample": false, "early_stopping": "never"}"#,
        )
        .unwrap();
        assert_eq!(c.mode(), Mode::Greedy);
        assert_eq!(c.early_stopping, EarlyStopping::Never);
        assert_eq!(c.max_new_tokens, 64);
        let back: GenerationConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let t: GenerationConfig = serde_json::from_str(r#"{"early_stopping": true}"#).unwrap();
        assert_eq!(t.early_stopping, EarlyStopping::Enough);
        let e = serde_json::from_str::<GenerationConfig>(r#"{"early_stopping": "sometimes"}"#);
        assert!(e.unwrap_err().to_string().contains("early_stopping"));
        let e = serde_json::from_str::<GenerationConfig>(r#"{"num_beam": 3}"#);
        assert!(e.unwrap_err().to_string().contains("num_beam"));
    }

    #[test]
    fn validation_names_the_field() {
        let check = |c: GenerationConfig, key: &str| {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err} should name {key}");
        };
        let base = GenerationConfig::default();
        check(
            GenerationConfig {
                min_length: 66,
                ..base.clone()
            },
            "generation.min_length",
        );
        check(
            GenerationConfig {
                max_new_tokens: 0,
                ..base.clone()
            },
            "generation.max_new_tokens",
        );
        check(
            GenerationConfig {
                num_beams: 1,
                do_sample: false,
                num_return_sequences: 2,
                ..base.clone()
            },
            "generation.num_return_sequences",
        );
        check(
            GenerationConfig {
                do_sample: false,
                num_return_sequences: 6,
                ..base.clone()
            },
            "generation.num_return_sequences",
        );
        check(
            GenerationConfig {
                temperature: 0.0,
                ..base.clone()
            },
            "generation.temperature",
        );
        check(
            GenerationConfig {
                top_p: 1.5,
                ..base.clone()
            },
            "generation.top_p",
        );
        check(
            GenerationConfig {
                repetition_penalty: -1.0,
                ..base.clone()
            },
            "generation.repetition_penalty",
        );
        // Beam sampling with several return sequences is allowed (HF runs independent groups).
        GenerationConfig {
            num_return_sequences: 7,
            ..base
        }
        .validate()
        .unwrap();
    }
}
