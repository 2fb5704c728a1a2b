//! Instruction templates per training task (paper Section 2.4: at least three hand-written
//! prompts per task, then more variants in the spirit of the paper's meta-prompt expansion),
//! written to `train/prompts.yaml` as `{TASK: [template, ...]}`.

/// Templates that wrap a question and ask for a short answer.
const SHORT_QA: &[&str] = &[
    "{question}",
    "{question} Answer briefly.",
    "Answer the question about the image in a few words. {question}",
    // Variants.
    "Look at the picture and answer: {question}",
    "Question: {question} Short answer:",
    "{question} Reply with a word, a number or a short phrase.",
    "Based on the image, {question}",
    "Give a short answer. {question}",
];

const EXPLAIN: &[&str] = &[
    "{question} Explain your answer.",
    "{question} Please answer in a full sentence and say why.",
    "Look at the image. {question} Give a reason for your answer.",
    "{question} Describe how you worked it out.",
    "Answer in detail and explain your reasoning: {question}",
    "{question} Why? Explain.",
];

const VIDEO_QA: &[&str] = &[
    "{question}",
    "Watch the video and answer briefly: {question}",
    "{question} Answer based on the video.",
    "Question about the clip: {question} Short answer:",
    "After watching the video, answer in a few words. {question}",
];

/// Every training task with its templates (tasks with questions use `{question}`).
pub fn task_templates() -> Vec<(&'static str, Vec<&'static str>)> {
    let short = |extra: &[&'static str]| -> Vec<&'static str> {
        SHORT_QA.iter().chain(extra.iter()).copied().collect()
    };
    vec![
        (
            "caption",
            vec![
                "Describe the image briefly.",
                "Write a short caption for this picture.",
                "What does the image show? Answer in one sentence.",
                "Give a one-sentence description of the picture.",
                "Caption this image.",
                "Summarize the picture in a single sentence.",
            ],
        ),
        (
            "caption_detailed",
            vec![
                "Describe the image in detail.",
                "Give a detailed description of everything in the picture.",
                "Explain what you see in this image, including positions and colors.",
                "Describe every object in the picture and where it is.",
                "Write a detailed paragraph about this image.",
            ],
        ),
        (
            "video_caption",
            vec![
                "Describe what happens in the video.",
                "What happens in this clip? Describe it.",
                "Write a description of this video.",
                "Explain what goes on in the video.",
                "Tell me what the video shows and what changes in it.",
            ],
        ),
        (
            "place",
            vec![
                "What place is shown in the image?",
                "Where was this picture taken? Answer with the name of the place.",
                "Classify the scene: which kind of place is it?",
                "Name the location in the picture.",
                "Which place does this image show? Answer in one or two words.",
                "What is the setting of this picture?",
            ],
        ),
        ("vqa_ocr", short(&["{question} Read the text carefully."])),
        ("vqa_count", short(&["{question} Answer with a number."])),
        (
            "vqa_reasoning",
            short(&["Think about the picture, then answer briefly: {question}"]),
        ),
        ("vqa_place", short(&[])),
        ("vqa_color", short(&["{question} Answer with a color."])),
        ("vqa_spatial", short(&[])),
        ("vqa_action", short(&[])),
        ("vqa_shape", short(&[])),
        ("vqa_explain", EXPLAIN.to_vec()),
        (
            "video_action",
            VIDEO_QA
                .iter()
                .copied()
                .chain(["{question} Answer yes or no."])
                .collect(),
        ),
        ("video_qa", VIDEO_QA.to_vec()),
        (
            "dialog",
            vec![
                "{question}",
                "{question} Please answer in detail.",
                "I have a question about this picture. {question}",
                "{question} Tell me what you see.",
            ],
        ),
        (
            "text_instruct",
            vec![
                "{question}",
                "Please help me with this: {question}",
                "Answer the following. {question}",
                "{question} Thank you!",
                "I have a question. {question}",
            ],
        ),
    ]
}

/// YAML text of `train/prompts.yaml`.
pub fn prompts_yaml() -> String {
    let mut out = String::from(
        "# Instruction templates per task (lynx data synth). The first three of each task are\n\
         # the hand-written ones; the rest are variants. `{question}` is replaced by the record's\n\
         # question; the result goes into the model prompt \"User: {question}\\nBot:\".\n",
    );
    for (task, list) in task_templates() {
        out.push_str(&format!("{task}:\n"));
        for t in list {
            out.push_str(&format!("  - {}\n", yaml_str(t)));
        }
    }
    out
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.replace('"', "'")))
}

/// YAML text of a `{kind: [phrasing, ...]}` map of question phrasings.
pub fn phrasings_yaml(heldout: bool) -> String {
    let mut out = if heldout {
        String::from(
            "# Held-out question phrasings: never used in train/; used by test/*_unseen.jsonl.\n",
        )
    } else {
        String::from(
            "# Question phrasings used in train/ (slots in braces are filled from the scene).\n",
        )
    };
    for p in super::phrasings::PHRASINGS {
        out.push_str(&format!("{}:\n", p.kind));
        for t in if heldout { p.heldout } else { p.train } {
            out.push_str(&format!("  - {}\n", yaml_str(t)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn yaml_parses_with_three_or_more_templates_each() {
        let map: BTreeMap<String, Vec<String>> = serde_yaml::from_str(&prompts_yaml()).unwrap();
        assert!(map.len() >= 15);
        for (task, list) in &map {
            assert!(list.len() >= 3, "{task}");
            let with_q = list.iter().filter(|t| t.contains("{question}")).count();
            assert!(
                with_q == 0 || with_q == list.len(),
                "{task} mixes templates with and without a question"
            );
        }
        let held: BTreeMap<String, Vec<String>> =
            serde_yaml::from_str(&phrasings_yaml(true)).unwrap();
        assert_eq!(held.len(), super::super::phrasings::PHRASINGS.len());
    }
}
