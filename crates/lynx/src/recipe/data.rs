//! Training data the recipe derives from the world's `train/*.jsonl` (issue 4, paper 2.4):
//! the questions about one image or video packed into multi-turn dialogs, each turn's
//! instruction drawn from its task's prompt templates (the diversified prompts). One image's
//! vision tokens then serve several questions, so a CPU update teaches several answers for the
//! price of one pass through the vision encoder and bridge; LLaVA-style data has the same shape.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::data::prompts::{render_template, PromptTemplates};
use crate::train::rng::TrainRng;
use crate::{Error, Result};

/// The task files whose records are packed (question + short or explained answer per line).
pub const PACKED_TASKS: [&str; 12] = [
    "vqa_ocr",
    "vqa_count",
    "vqa_reasoning",
    "vqa_place",
    "vqa_color",
    "vqa_spatial",
    "vqa_action",
    "vqa_shape",
    "vqa_explain",
    "video_action",
    "video_qa",
    "place",
];

/// Writes `out` (a dialog JSONL file in `train_dir`) with the records of `tasks` grouped by
/// their medium, shuffled with `seed`, and cut into dialogs of at most `turns` turns. Returns
/// the number of dialogs.
pub fn write_packed_dialogs(
    train_dir: &Path,
    prompts: &PromptTemplates,
    tasks: &[&str],
    turns: usize,
    seed: u64,
    out: &Path,
) -> Result<usize> {
    let turns = turns.max(1);
    let mut rng = TrainRng::new(seed, 0xd1a1);
    // medium ("image"/"video", path) -> (instruction, answer, short answer) turns, in file order.
    type Qa = (String, String, Option<String>);
    let mut by_media: BTreeMap<(String, String), Vec<Qa>> = BTreeMap::new();
    for task in tasks {
        let path = train_dir.join(format!("{task}.jsonl"));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let templates = prompts
            .task(task)
            .ok_or_else(|| Error::config("prompts", format!("no templates for task `{task}`")))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |m: String| Error::parse(path.display().to_string(), Some(i + 1), m);
            let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let media = ["image", "video"].iter().find_map(|k| {
                v.get(*k)
                    .and_then(Value::as_str)
                    .map(|p| (k.to_string(), p.to_string()))
            });
            let Some(media) = media else { continue };
            let answer = match v.get("answer") {
                Some(Value::String(a)) => a.clone(),
                Some(Value::Array(a)) => a
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            };
            if answer.trim().is_empty() {
                return Err(bad("no answer".into()));
            }
            let question = v.get("question").and_then(Value::as_str);
            let tpl = &templates.templates[rng.index(templates.templates.len())];
            let prompt = render_template(tpl, question);
            let short = v
                .get("short_answer")
                .and_then(Value::as_str)
                .map(str::to_string);
            by_media
                .entry(media)
                .or_default()
                .push((prompt, answer, short));
        }
    }
    let tmp = out.with_extension("jsonl.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut dialogs = 0;
    for ((kind, path), mut qa) in by_media {
        rng.shuffle(&mut qa);
        for chunk in qa.chunks(turns) {
            let conversations: Vec<Value> = chunk
                .iter()
                .flat_map(|(q, a, short)| {
                    let mut reply = json!({"from": "gpt", "value": a});
                    if let Some(short) = short {
                        reply["short_answer"] = json!(short);
                    }
                    [json!({"from": "human", "value": q}), reply]
                })
                .collect();
            let rec = json!({"task": "dialog", kind.clone(): path, "conversations": conversations});
            writeln!(w, "{rec}").map_err(|e| Error::io(&tmp, e))?;
            dialogs += 1;
        }
    }
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(dialogs)
}

/// Writes `out` with each turn of the dialogs in `input` (the world's `dialog.jsonl`) as a
/// dialog of its own: the same image or video, one question and its reply (with its
/// `short_answer`, if any), keeping the turns whose reply has at least `min_words` words (0:
/// all). Returns the number of records written.
///
/// Why: a question-reading bridge reads only a record's first question, and the world's
/// dialogs never open with a story request; alone, every turn's question is read by the
/// bridge that has to answer it, as it is when a user asks it first (docs/lm-lookup.md,
/// section 12).
pub fn write_dialog_turns(input: &Path, min_words: usize, out: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
    let mut lines = String::new();
    let mut n = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |m: String| Error::parse(input.display().to_string(), Some(i + 1), m);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let turns = v
            .get("conversations")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `conversations` list".into()))?;
        if turns.len() % 2 != 0 {
            return Err(bad(format!(
                "`conversations` has {} entries, not question-reply pairs",
                turns.len()
            )));
        }
        for (j, pair) in turns.chunks(2).enumerate() {
            let from = |t: &Value| t.get("from").and_then(Value::as_str).map(str::to_string);
            if from(&pair[0]).as_deref() != Some("human")
                || from(&pair[1]).as_deref() != Some("gpt")
            {
                return Err(bad(format!(
                    "conversations[{}..{}]: expected a `human` turn then a `gpt` turn",
                    2 * j,
                    2 * j + 2
                )));
            }
            let text = |k: usize| pair[k].get("value").and_then(Value::as_str);
            let (Some(_), Some(reply)) = (text(0), text(1)) else {
                return Err(bad(format!(
                    "conversations[{}..{}]: each turn needs a text `value`",
                    2 * j,
                    2 * j + 2
                )));
            };
            if reply.split_whitespace().count() < min_words {
                continue;
            }
            let mut rec = v.clone();
            rec["conversations"] = json!(pair);
            lines.push_str(&rec.to_string());
            lines.push('\n');
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}: no dialog turns with a reply of at least {min_words} words to write",
            input.display()
        )));
    }
    crate::train::atomic::write_atomic(out, lines.as_bytes())?;
    Ok(n)
}

/// Writes `out` with the records of `input` (a task JSONL file) whose answer is one of
/// `names` and nothing else, e.g. the `vqa_shape` questions answered by a shape's name.
/// Returns how many were kept. Stage 2's first part trains on these alone (see
/// `RecipePlan::stage2_shapes`).
pub fn write_name_answers(input: &Path, names: &[&str], out: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
    let mut kept = String::new();
    let mut n = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::parse(input.display().to_string(), Some(i + 1), e.to_string()))?;
        let answer = v.get("answer").and_then(Value::as_str).unwrap_or_default();
        let answer = answer.trim().trim_end_matches('.').to_lowercase();
        if names.contains(&answer.as_str()) {
            kept.push_str(line);
            kept.push('\n');
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}: no record is answered by one of {names:?}",
            input.display()
        )));
    }
    crate::train::atomic::write_atomic(out, kept.as_bytes())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_questions_per_medium_with_templates() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("vqa_color.jsonl"),
            (0..5)
                .map(|i| format!("{{\"task\":\"vqa_color\",\"image\":\"a.png\",\"question\":\"Q{i}?\",\"answer\":\"red\"}}\n"))
                .collect::<String>()
                + "{\"task\":\"vqa_color\",\"image\":\"b.png\",\"question\":\"Qb?\",\"answer\":\"blue\"}\n",
        )
        .unwrap();
        let prompts = PromptTemplates::from_yaml(
            "vqa_color: [\"{question}\", \"{question} Answer briefly.\", \"Look: {question}\"]",
            "test",
        )
        .unwrap();
        let out = d.join("packed.jsonl");
        let n = write_packed_dialogs(d, &prompts, &["vqa_color"], 2, 7, &out).unwrap();
        assert_eq!(n, 4, "a.png: 5 questions in 3 dialogs, b.png: 1");
        let text = std::fs::read_to_string(&out).unwrap();
        let again = {
            let out2 = d.join("again.jsonl");
            write_packed_dialogs(d, &prompts, &["vqa_color"], 2, 7, &out2).unwrap();
            std::fs::read_to_string(out2).unwrap()
        };
        assert_eq!(text, again, "deterministic");
        let mut seen = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let conv = v["conversations"].as_array().unwrap();
            assert!(conv.len() <= 4 && conv.len().is_multiple_of(2));
            for pair in conv.chunks(2) {
                let q = pair[0]["value"].as_str().unwrap();
                assert!(q.contains('Q'), "{q}");
                let want = if v["image"] == "b.png" { "blue" } else { "red" };
                assert_eq!(pair[1]["value"], want);
                seen += 1;
            }
        }
        assert_eq!(seen, 6);
    }

    #[test]
    fn a_packed_explanation_keeps_its_short_answer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("vqa_explain.jsonl"),
            "{\"task\":\"vqa_explain\",\"image\":\"a.png\",\"question\":\"Q?\",\"answer\":\"It is red, as it looks.\",\"short_answer\":\"red\"}\n\
             {\"task\":\"vqa_explain\",\"image\":\"b.png\",\"question\":\"Q?\",\"answer\":\"Two, as counted.\"}\n",
        )
        .unwrap();
        let prompts = PromptTemplates::from_yaml(
            "vqa_explain: [\"{question}\", \"Q: {question}\", \"{question} Why?\"]",
            "test",
        )
        .unwrap();
        let out = d.join("packed.jsonl");
        assert_eq!(
            write_packed_dialogs(d, &prompts, &["vqa_explain"], 1, 3, &out).unwrap(),
            2
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let replies: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["conversations"][1].clone())
            .collect();
        assert_eq!(replies[0]["short_answer"], "red");
        assert_eq!(replies[0]["value"], "It is red, as it looks.");
        assert!(replies[1].get("short_answer").is_none(), "{}", replies[1]);
    }

    #[test]
    fn every_dialog_turn_becomes_a_record_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("dialog.jsonl");
        std::fs::write(
            &input,
            concat!(
                r#"{"task":"dialog","image":"a.png","conversations":["#,
                r#"{"from":"human","value":"What is it?"},{"from":"gpt","value":"A star."},"#,
                r#"{"from":"human","value":"Why?"},{"from":"gpt","value":"It is a star: five points.","short_answer":"star"}]}"#,
                "\n\n",
                r#"{"task":"dialog","video":"v.json","conversations":["#,
                r#"{"from":"human","value":"Write a short story."},{"from":"gpt","value":"Once upon a time."}]}"#,
                "\n"
            ),
        )
        .unwrap();
        let out = dir.path().join("dialog_turns.jsonl");
        assert_eq!(write_dialog_turns(&input, 0, &out).unwrap(), 3);
        let recs: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let turn =
            |r: &Value, i: usize| r["conversations"][i]["value"].as_str().unwrap().to_string();
        assert_eq!(recs[0]["image"], "a.png");
        assert_eq!(
            (turn(&recs[0], 0), turn(&recs[0], 1)),
            ("What is it?".into(), "A star.".into())
        );
        assert_eq!(recs[1]["conversations"].as_array().unwrap().len(), 2);
        assert_eq!(turn(&recs[1], 0), "Why?");
        assert_eq!(recs[1]["conversations"][1]["short_answer"], "star");
        assert_eq!(recs[2]["video"], "v.json");
        assert_eq!(turn(&recs[2], 0), "Write a short story.");

        // A floor on the reply's words keeps the long turns only, in their order.
        assert_eq!(write_dialog_turns(&input, 4, &out).unwrap(), 2);
        let text = std::fs::read_to_string(&out).unwrap();
        let long: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(turn(&long[0], 0), "Why?");
        assert_eq!(turn(&long[1], 0), "Write a short story.");
        let err = write_dialog_turns(&input, 50, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dialog.jsonl") && err.contains("50 words"),
            "{err}"
        );

        // A reply without its question is refused, naming the file and line.
        std::fs::write(
            &input,
            "\n{\"task\":\"dialog\",\"image\":\"a.png\",\"conversations\":[{\"from\":\"gpt\",\"value\":\"x\"},{\"from\":\"human\",\"value\":\"y\"}]}\n",
        )
        .unwrap();
        let err = write_dialog_turns(&input, 0, &out).unwrap_err().to_string();
        assert!(
            err.contains("dialog.jsonl") && err.contains('2') && err.contains("human"),
            "{err}"
        );
        // So is a reply without its text.
        std::fs::write(
            &input,
            "{\"task\":\"dialog\",\"image\":\"a.png\",\"conversations\":[{\"from\":\"human\",\"value\":\"y\"},{\"from\":\"gpt\"}]}\n",
        )
        .unwrap();
        let err = write_dialog_turns(&input, 0, &out).unwrap_err().to_string();
        assert!(
            err.contains("dialog.jsonl")
                && err.contains("conversations[0..2]")
                && err.contains("value"),
            "{err}"
        );
    }

    #[test]
    fn keeps_only_records_answered_by_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("vqa_shape.jsonl");
        std::fs::write(
            &input,
            "{\"image\":\"a.png\",\"question\":\"Which shape?\",\"answer\":\"Star.\"}\n\n\
             {\"image\":\"a.png\",\"question\":\"Is there a star?\",\"answer\":\"yes\"}\n\
             {\"image\":\"b.png\",\"question\":\"List them.\",\"answer\":\"a red star\"}\n\
             {\"image\":\"b.png\",\"question\":\"Which shape?\",\"answer\":\"circle\"}\n",
        )
        .unwrap();
        let out = d.join("names.jsonl");
        assert_eq!(
            write_name_answers(&input, &["star", "circle"], &out).unwrap(),
            2
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let answers: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["answer"].to_string())
            .collect();
        assert_eq!(answers, ["\"Star.\"", "\"circle\""]);

        let err = write_name_answers(&input, &["hexagon"], &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("vqa_shape.jsonl") && err.contains("hexagon"),
            "{err}"
        );
        std::fs::write(&input, "{\"answer\":\"star\"}\nnot json\n").unwrap();
        let err = write_name_answers(&input, &["star"], &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("vqa_shape.jsonl") && err.contains('2'),
            "{err}"
        );
    }
}
