//! OwlEval (paper Section 3.1, the mPLUG-Owl test set the paper rates by hand): the questions
//! file, its dialogues, the answer format `{image, question_id, question, answer, model_id}` of
//! `OwlEval/answer/*.jsonl`, and the paper's 8-pixel padding of every image.
//!
//! The paper pads "each image in the OwlEval with 8 pixels as shown in Fig. 3(b)" to hide that
//! the set came with mPLUG-Owl. It gives neither the sides nor the colour; we pad all four sides
//! (a 10×10 image becomes 26×26) with white, the border the figure's framed examples suggest.
//! Both are options of the runner.

use std::collections::HashMap;
use std::path::Path;

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::conversation::Turn;
use crate::data::image::load_image;
use crate::pipeline::{Media, Request};
use crate::{Error, Result};

/// The paper's border width in pixels.
pub const DEFAULT_PAD: u32 = 8;
/// White: our reading of the paper's Fig. 3(b).
pub const DEFAULT_PAD_COLOR: [u8; 3] = [255, 255, 255];

/// One line of `questions.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwlQuestion {
    /// The image's file name in the `cases/` folder.
    pub image: String,
    pub question_id: i64,
    pub question: String,
    /// Ability letters, e.g. "a,b,e" (empty when the line has none).
    pub ability: String,
    /// `single_turn` and/or `multi_turn` (the file gives a list; a single string is accepted).
    pub category: Vec<String>,
    /// 1-based line in the questions file.
    pub line: usize,
}

impl OwlQuestion {
    /// A later turn of a dialogue: `multi_turn` without `single_turn` (the first turn of a
    /// dialogue carries both, since it can also be asked alone).
    pub fn is_follow_up(&self) -> bool {
        self.category.iter().any(|c| c == "multi_turn")
            && !self.category.iter().any(|c| c == "single_turn")
    }
}

/// One answer line, in the field order of the published answer files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwlAnswer {
    pub image: String,
    pub question_id: i64,
    pub question: String,
    pub answer: String,
    pub model_id: String,
}

/// The questions asked in one conversation about one image, in order. A single-turn question
/// is a dialogue of one turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialogue {
    pub image: String,
    pub turns: Vec<OwlQuestion>,
}

#[derive(Deserialize)]
struct RawQuestion {
    image: String,
    question_id: i64,
    question: String,
    #[serde(default)]
    ability: Option<Value>,
    #[serde(default)]
    category: Option<Value>,
}

fn strings(v: Option<Value>) -> std::result::Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Ok(s),
                other => Err(format!("expected strings, found {other}")),
            })
            .collect(),
        Some(other) => Err(format!("expected a string or a list, found {other}")),
    }
}

/// Reads `questions.jsonl`; every malformed line, duplicate id or empty field is an error that
/// names the file and line.
pub fn load_questions(path: &Path) -> Result<Vec<OwlQuestion>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file = path.display().to_string();
    let mut out: Vec<OwlQuestion> = Vec::new();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawQuestion = serde_json::from_str(line)
            .map_err(|e| Error::parse(&file, Some(n), format!("bad question: {e}")))?;
        if raw.image.trim().is_empty() || raw.question.trim().is_empty() {
            return Err(Error::parse(&file, Some(n), "empty `image` or `question`"));
        }
        if let Some(first) = seen.insert(raw.question_id, n) {
            return Err(Error::parse(
                &file,
                Some(n),
                format!(
                    "question_id {} again (first at line {first})",
                    raw.question_id
                ),
            ));
        }
        let category = strings(raw.category)
            .map_err(|m| Error::parse(&file, Some(n), format!("`category`: {m}")))?;
        let ability = strings(raw.ability)
            .map_err(|m| Error::parse(&file, Some(n), format!("`ability`: {m}")))?
            .join(",");
        out.push(OwlQuestion {
            image: raw.image,
            question_id: raw.question_id,
            question: raw.question,
            ability,
            category,
            line: n,
        });
    }
    if out.is_empty() {
        return Err(Error::parse(&file, None, "no questions"));
    }
    Ok(out)
}

/// Groups questions into dialogues, in file order: a follow-up (see
/// [`OwlQuestion::is_follow_up`]) continues the dialogue of the question just before it, which
/// must be on the same image with the id one less (how OwlEval lays out its conversations).
/// A follow-up without its earlier turn is an error: it cannot be asked as the set intends.
pub fn dialogues(questions: &[OwlQuestion], file: &str) -> Result<Vec<Dialogue>> {
    let mut out: Vec<Dialogue> = Vec::new();
    for q in questions {
        if q.is_follow_up() {
            let prev = out.last_mut().and_then(|d| {
                let last = d.turns.last()?;
                (last.question_id + 1 == q.question_id && d.image == q.image).then_some(d)
            });
            match prev {
                Some(d) => d.turns.push(q.clone()),
                None => {
                    return Err(Error::parse(
                        file,
                        Some(q.line),
                        format!(
                            "question_id {} is a multi_turn follow-up, but the line before it is \
                             not question_id {} on {} (keep a dialogue's questions together and \
                             in order)",
                            q.question_id,
                            q.question_id - 1,
                            q.image
                        ),
                    ))
                }
            }
        } else {
            out.push(Dialogue {
                image: q.image.clone(),
                turns: vec![q.clone()],
            });
        }
    }
    Ok(out)
}

/// The request for turn `k` of a dialogue: the question, after the earlier turns with the
/// model's own answers to them (`answers`, by question id), about `media`.
pub fn dialogue_request(
    dialogue: &Dialogue,
    k: usize,
    answers: &HashMap<i64, String>,
    media: Option<Media>,
) -> Result<Request> {
    let turn = dialogue.turns.get(k).ok_or_else(|| {
        Error::Invalid(format!(
            "the dialogue on {} has {} turns, not {}",
            dialogue.image,
            dialogue.turns.len(),
            k + 1
        ))
    })?;
    let history = dialogue.turns[..k]
        .iter()
        .map(|q| {
            let response = answers.get(&q.question_id).ok_or_else(|| {
                Error::Invalid(format!(
                    "question_id {} needs the answer to question_id {} first",
                    turn.question_id, q.question_id
                ))
            })?;
            Ok(Turn {
                prompt: q.question.clone(),
                response: response.clone(),
                short_answer: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Request {
        media,
        history,
        question: turn.question.clone(),
    })
}

/// Surrounds an image with a border of `pad` pixels of `color` on every side.
pub fn pad_image(img: &RgbImage, pad: u32, color: [u8; 3]) -> RgbImage {
    if pad == 0 {
        return img.clone();
    }
    let mut out = RgbImage::from_pixel(img.width() + 2 * pad, img.height() + 2 * pad, Rgb(color));
    image::imageops::replace(&mut out, img, i64::from(pad), i64::from(pad));
    out
}

/// Decodes an OwlEval image and pads it (before the model's resize and crop).
pub fn load_padded(path: &Path, pad: u32, color: [u8; 3]) -> Result<RgbImage> {
    Ok(pad_image(&load_image(path)?, pad, color))
}

/// Parses a pad colour: `white`, `black`, `gray`, `#rrggbb` or `r,g,b`.
pub fn parse_color(s: &str) -> Result<[u8; 3]> {
    let bad = || {
        Error::config(
            "pad color",
            format!("{s:?}: use white, black, gray, #rrggbb or r,g,b (0-255)"),
        )
    };
    match s.trim().to_ascii_lowercase().as_str() {
        "white" => return Ok([255; 3]),
        "black" => return Ok([0; 3]),
        "gray" | "grey" => return Ok([128; 3]),
        _ => {}
    }
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut c = [0u8; 3];
        for (i, v) in c.iter_mut().enumerate() {
            *v = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        return Ok(c);
    }
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [r, g, b] = parts.as_slice() else {
        return Err(bad());
    };
    let p = |x: &str| x.parse::<u8>().map_err(|_| bad());
    Ok([p(r)?, p(g)?, p(b)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn owleval() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/owleval")
    }

    #[test]
    fn the_real_questions_form_one_dialogue_per_image() {
        let path = owleval().join("questions.jsonl");
        let qs = load_questions(&path).unwrap();
        assert_eq!(qs.len(), 82);
        let ds = dialogues(&qs, "questions.jsonl").unwrap();
        assert_eq!(ds.len(), 50);
        let floor_plan = ds.iter().find(|d| d.image == "10.jpg").unwrap();
        let ids: Vec<i64> = floor_plan.turns.iter().map(|q| q.question_id).collect();
        assert_eq!(ids, (15..=22).collect::<Vec<_>>());
        let turns: usize = ds.iter().map(|d| d.turns.len()).sum();
        assert_eq!(turns, 82);
        assert_eq!(ds.iter().filter(|d| d.turns.len() > 1).count(), 20);
        assert_eq!(qs[3].category, ["single_turn", "multi_turn"]);
        assert_eq!(qs[3].ability, "a,c");
        assert!(!qs[3].is_follow_up() && qs[4].is_follow_up());
    }

    #[test]
    fn bad_question_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        let check = |text: &str, want: &str| {
            std::fs::write(&p, text).unwrap();
            let e = load_questions(&p)
                .and_then(|q| dialogues(&q, "q.jsonl"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        };
        let a = r#"{"image": "1.jpg", "question_id": 1, "question": "Hi?", "category": ["single_turn"]}"#;
        check(
            &format!("{a}\n\n{{\"image\": \"1.jpg\", \"question\": \"x\"}}\n"),
            "q.jsonl:3: bad question: missing field `question_id`",
        );
        check(
            &format!("{a}\n{a}\n"),
            "q.jsonl:2: question_id 1 again (first at line 1)",
        );
        check(
            r#"{"image": "1.jpg", "question_id": 1, "question": "Hi?", "category": 3}"#,
            "q.jsonl:1: `category`: expected a string or a list",
        );
        // a follow-up whose first turn is missing, or on another image
        let f = r#"{"image": "1.jpg", "question_id": 2, "question": "And?", "category": ["multi_turn"]}"#;
        check(f, "q.jsonl:1: question_id 2 is a multi_turn follow-up");
        let other = a.replace("1.jpg", "9.jpg");
        check(
            &format!("{other}\n{f}\n"),
            "q.jsonl:2: question_id 2 is a multi_turn",
        );
        check("\n", "q.jsonl: no questions");
    }

    #[test]
    fn requests_carry_the_dialogue_so_far() {
        let qs = load_questions(&owleval().join("questions.jsonl")).unwrap();
        let ds = dialogues(&qs, "q").unwrap();
        let frisbee = ds.iter().find(|d| d.image == "5.jpg").unwrap();
        let mut answers = HashMap::new();
        answers.insert(6, "In the air.".to_string());
        let e = dialogue_request(frisbee, 2, &answers, None).unwrap_err();
        assert!(e.to_string().contains("needs the answer to question_id 7"));
        answers.insert(7, "On the grass.".to_string());
        let r = dialogue_request(frisbee, 2, &answers, None).unwrap();
        assert_eq!(r.question, qs[7].question);
        assert_eq!(
            r.history,
            [
                Turn {
                    prompt: "Where is the frisbee in the image?".into(),
                    response: "In the air.".into(),
                    short_answer: None,
                },
                Turn {
                    prompt: "Where is the man in the image?".into(),
                    response: "On the grass.".into(),
                    short_answer: None,
                }
            ]
        );
        assert!(dialogue_request(frisbee, 0, &HashMap::new(), None)
            .unwrap()
            .history
            .is_empty());
        assert!(dialogue_request(frisbee, 3, &answers, None).is_err());
    }

    #[test]
    fn padding_frames_the_image() {
        let img = RgbImage::from_fn(10, 6, |x, y| Rgb([x as u8, y as u8, 7]));
        let p = pad_image(&img, 8, [255, 255, 255]);
        assert_eq!(p.dimensions(), (26, 22));
        assert_eq!(p.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(p.get_pixel(7, 10), &Rgb([255, 255, 255]));
        assert_eq!(p.get_pixel(25, 21), &Rgb([255, 255, 255]));
        assert_eq!(p.get_pixel(8, 8), &Rgb([0, 0, 7]));
        assert_eq!(p.get_pixel(17, 13), &Rgb([9, 5, 7]));
        assert_eq!(p.get_pixel(18, 13), &Rgb([255, 255, 255]));
        assert_eq!(pad_image(&img, 0, [0; 3]), img);
    }

    #[test]
    fn colors_parse() {
        assert_eq!(parse_color("white").unwrap(), [255; 3]);
        assert_eq!(parse_color("Black").unwrap(), [0; 3]);
        assert_eq!(parse_color("#ff8001").unwrap(), [255, 128, 1]);
        assert_eq!(parse_color("1, 2,3").unwrap(), [1, 2, 3]);
        for bad in ["#ff80", "1,2", "1,2,300", "blue", "#gg0000"] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }
}
