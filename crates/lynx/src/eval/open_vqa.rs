//! Open-VQA inputs (paper Section 3.1; official release `data/Open_VQA_*.jsonl`): the
//! annotation JSONL (`index`, `question`, `answer` alternatives, `class`) and a predictions JSONL
//! (`index`, `text_output`), with errors naming file and line.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A sample's `index`: the release uses integers, other tools sometimes strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SampleIndex {
    Int(i64),
    Str(String),
}

impl fmt::Display for SampleIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleIndex::Int(i) => write!(f, "{i}"),
            SampleIndex::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl SampleIndex {
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().map(SampleIndex::Int),
            Value::String(s) => Some(SampleIndex::Str(s.clone())),
            _ => None,
        }
    }
}

/// One Open-VQA question with its ground-truth alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    pub index: SampleIndex,
    pub question: String,
    /// The `answer` list (a plain string is taken as a one-element list).
    pub answers: Vec<String>,
    pub class: String,
    /// 1-based line in the annotation file.
    pub line: usize,
}

/// One model answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub index: SampleIndex,
    pub text: String,
    /// 1-based line in the predictions file.
    pub line: usize,
}

/// Reads a JSONL file into (1-based line, object) pairs; blank lines are skipped.
pub fn read_jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Map<String, Value>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| Error::parse(&file, Some(i + 1), format!("invalid JSON: {e}")))?;
        match value {
            Value::Object(map) => out.push((i + 1, map)),
            _ => {
                return Err(Error::parse(
                    &file,
                    Some(i + 1),
                    "expected a JSON object per line",
                ))
            }
        }
    }
    Ok(out)
}

fn field_index(
    file: &str,
    line: usize,
    obj: &serde_json::Map<String, Value>,
) -> Result<SampleIndex> {
    let v = obj
        .get("index")
        .ok_or_else(|| Error::parse(file, Some(line), "missing field `index`"))?;
    SampleIndex::from_json(v).ok_or_else(|| {
        Error::parse(
            file,
            Some(line),
            format!("field `index` must be an integer or a string, found {v}"),
        )
    })
}

fn field_str(
    file: &str,
    line: usize,
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(Error::parse(
            file,
            Some(line),
            format!("field `{key}` must be a string, found {v}"),
        )),
        None => Err(Error::parse(
            file,
            Some(line),
            format!("missing field `{key}`"),
        )),
    }
}

/// Loads the official annotation JSONL (`index`, `question`, `answer`, `class`).
/// Duplicate indices are an error: the scores would be ambiguous.
pub fn load_annotations(path: &Path) -> Result<Vec<Annotation>> {
    let file = path.display().to_string();
    let mut seen: HashMap<SampleIndex, usize> = HashMap::new();
    let mut out = Vec::new();
    for (line, obj) in read_jsonl(path)? {
        let index = field_index(&file, line, &obj)?;
        let question = field_str(&file, line, &obj, "question")?;
        let class = field_str(&file, line, &obj, "class")?;
        let answers = match obj.get("answer") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Error::parse(
                        &file,
                        Some(line),
                        format!("field `answer` must hold strings, found {v}"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(v) => {
                return Err(Error::parse(
                    &file,
                    Some(line),
                    format!("field `answer` must be a non-empty list of strings, found {v}"),
                ))
            }
            None => return Err(Error::parse(&file, Some(line), "missing field `answer`")),
        };
        if let Some(first) = seen.insert(index.clone(), line) {
            return Err(Error::parse(
                &file,
                Some(line),
                format!("duplicate index {index} (first on line {first})"),
            ));
        }
        out.push(Annotation {
            index,
            question,
            answers,
            class,
            line,
        });
    }
    if out.is_empty() {
        return Err(Error::parse(&file, None, "no annotations"));
    }
    Ok(out)
}

/// Loads a predictions JSONL (`index`, `text_output`, other fields ignored).
pub fn load_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let file = path.display().to_string();
    read_jsonl(path)?
        .into_iter()
        .map(|(line, obj)| {
            Ok(Prediction {
                index: field_index(&file, line, &obj)?,
                text: field_str(&file, line, &obj, "text_output")?,
                line,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ann.jsonl");
        std::fs::write(
            &p,
            "{\"index\": 1, \"question\": \"q\", \"answer\": [\"a\"], \"class\": \"OCR\"}\n\n{oops\n",
        )
        .unwrap();
        let e = load_annotations(&p).unwrap_err().to_string();
        assert!(e.contains("ann.jsonl:3: invalid JSON"), "{e}");

        std::fs::write(
            &p,
            "{\"index\": 1, \"question\": \"q\", \"class\": \"OCR\"}\n",
        )
        .unwrap();
        let e = load_annotations(&p).unwrap_err().to_string();
        assert!(e.contains("ann.jsonl:1: missing field `answer`"), "{e}");

        let line = "{\"index\": 7, \"question\": \"q\", \"answer\": \"a\", \"class\": \"OCR\"}\n";
        std::fs::write(&p, format!("{line}{line}")).unwrap();
        let e = load_annotations(&p).unwrap_err().to_string();
        assert!(
            e.contains("ann.jsonl:2: duplicate index 7 (first on line 1)"),
            "{e}"
        );

        std::fs::write(&p, "{\"index\": [1], \"text_output\": \"a\"}\n").unwrap();
        let e = load_predictions(&p).unwrap_err().to_string();
        assert!(e.contains("ann.jsonl:1: field `index` must be"), "{e}");
        std::fs::write(&p, "{\"index\": \"a1\", \"text_output\": null}\n").unwrap();
        let e = load_predictions(&p).unwrap_err().to_string();
        assert!(e.contains("field `text_output` must be a string"), "{e}");
    }

    #[test]
    fn string_indices_round_trip() {
        let s: SampleIndex = serde_json::from_str("\"v12\"").unwrap();
        assert_eq!(s, SampleIndex::Str("v12".into()));
        let i: SampleIndex = serde_json::from_str("12").unwrap();
        assert_eq!(serde_json::to_string(&i).unwrap(), "12");
    }
}
