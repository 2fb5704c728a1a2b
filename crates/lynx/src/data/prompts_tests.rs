//! Tests of prompt templates: validation, sampling, the meta-prompt, reply parsing, and
//! expansion against a stand-in OpenAI-compatible server on 127.0.0.1.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const GOOD: &str = "\
vqa:
  - \"{question}\"
  - \"Answer the question: {question}\"
  - \"{question} Answer briefly.\"
caption:
  - Describe the image briefly.
  - Write a short caption for the image.
  - What does the image show? Answer in one sentence.
";

#[test]
fn loads_and_validates_templates() {
    let p = PromptTemplates::from_yaml(GOOD, "p.yaml").unwrap();
    assert_eq!(p.tasks().len(), 2);
    assert!(p.task("vqa").unwrap().has_question);
    assert!(!p.task("caption").unwrap().has_question);
    assert_eq!(p.tasks()[0].name, "vqa", "file order kept");

    let two = "ocr:\n  - Read the text.\n  - What is written?\n";
    let e = PromptTemplates::from_yaml(two, "p.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p.yaml") && e.contains("`ocr`") && e.contains("at least 3"),
        "{e}"
    );

    let lacks = "vqa:\n  - \"Q: {question}\"\n  - Answer it.\n  - \"{question}?\"\n";
    let e = PromptTemplates::from_yaml(lacks, "p.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`vqa`") && e.contains("template 2") && e.contains("Answer it."),
        "{e}"
    );

    let typo = "vqa:\n  - \"Q: {question}\"\n  - \"{questoin}\"\n  - \"{question}?\"\n";
    let e = PromptTemplates::from_yaml(typo, "p.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("{questoin}"), "{e}");

    assert!(PromptTemplates::from_yaml("- a\n- b\n", "p.yaml").is_err());
    assert!(PromptTemplates::from_yaml("vqa: 3\n", "p.yaml")
        .unwrap_err()
        .to_string()
        .contains("`vqa`"));
}

#[test]
fn sampling_is_uniform_deterministic_and_switchable() {
    let p = PromptTemplates::from_yaml(GOOD, "p.yaml").unwrap();
    let mut rng = TrainRng::new(3, 0);
    let mut counts = HashMap::new();
    for _ in 0..3000 {
        *counts
            .entry(p.render("vqa", Some("what color?"), &mut rng).unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3);
    assert!(
        counts.values().all(|&c| (850..1150).contains(&c)),
        "{counts:?}"
    );
    assert!(counts.contains_key("Answer the question: what color?"));

    let draw = |seed| {
        let mut r = TrainRng::new(seed, 0);
        (0..20)
            .map(|_| p.render("caption", None, &mut r).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(5), draw(5));

    let first = p.clone().with_diverse(false);
    for _ in 0..20 {
        assert_eq!(
            first.render("caption", None, &mut rng).unwrap(),
            "Describe the image briefly."
        );
    }
    assert!(
        p.render("vqa", None, &mut rng).is_err(),
        "question task without question"
    );
    assert!(p
        .render("nope", None, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn meta_prompt_is_the_papers() {
    let ex = vec!["A.".to_string(), "B?".to_string(), "C".to_string()];
    assert_eq!(
        meta_prompt(&ex),
        "Here are some instructions that define a visual-language task. Continue to write 15 \
         instructions with the same meaning: 1) A.; 2) B?; 3) C;"
    );
}

#[test]
fn parses_numbered_lists_in_many_formats() {
    let want = vec![
        "Say what you see.",
        "Describe the picture.",
        "What is shown?",
    ];
    let formats = [
        "4) Say what you see.; 5) Describe the picture.; 6) What is shown?;",
        "1. Say what you see.\n2. Describe the picture.\n3. What is shown?\n",
        "Sure! Here they are:\n\n1) \"Say what you see.\"\n2) \"Describe the picture.\"\n3) \"What is shown?\"\n\nHope this helps.",
        "- Say what you see.\n- Describe the picture.\n- What is shown?",
        "Say what you see.; Describe the picture.; What is shown?",
        "(1) Say what you see. (2) Describe the picture. (3) What is shown?",
    ];
    for f in formats {
        assert_eq!(parse_numbered_list(f), want, "format {f:?}");
    }
    // Numbers inside an item are not markers unless they continue the sequence.
    let tricky = "1) Count the 2 dogs. 3. Or more; 2) Is 3.5 the answer?";
    assert_eq!(
        parse_numbered_list(tricky),
        vec!["Count the 2 dogs. 3. Or more", "Is 3.5 the answer?"]
    );
}

#[test]
fn selection_dedups_and_keeps_question_validity() {
    let existing = vec!["{question}".to_string(), "Answer: {question}".to_string()];
    let generated: Vec<String> = [
        "answer:   {question}.",    // duplicate of an input after normalising
        "Please answer {Question}", // fixed spelling
        "Please answer {question}", // duplicate of the previous one
        "Answer without the question.",
        "Reply to {question} using {context}",
        "Respond to this: {question}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = select_new_templates(&existing, &generated, true);
    assert_eq!(
        got,
        vec!["Please answer {question}", "Respond to this: {question}"]
    );
    let got = select_new_templates(
        &[],
        &["Describe {question}".into(), "Describe it.".into()],
        false,
    );
    assert_eq!(got, vec!["Describe it."]);
    let many: Vec<String> = (0..30)
        .map(|i| format!("Variant number {i}: {{question}}"))
        .collect();
    assert_eq!(
        select_new_templates(&existing, &many, true).len(),
        NEW_PER_TASK
    );
}

/// One request the stand-in server saw.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

/// Serves exactly `replies.len()` requests on 127.0.0.1 (status, body per request), recording them.
fn stand_in_server(
    replies: Vec<(u16, String)>,
) -> (String, Arc<Mutex<Vec<Seen>>>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handle = std::thread::spawn(move || {
        for (status, reply) in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen {
                request_line: request_line.trim_end().to_string(),
                headers,
                body: serde_json::from_slice(&body).unwrap(),
            });
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
    });
    (base, seen, handle)
}

fn chat_reply(content: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}).to_string()
}

fn options(url: String) -> ExpandOptions {
    ExpandOptions {
        url,
        model: "stand-in-model".into(),
        api_key: Some("sk-test".into()),
        task: None,
        temperature: None,
        retries: 2,
        retry_backoff: Duration::from_millis(1),
        timeout: Duration::from_secs(30),
    }
}

#[test]
fn expansion_sends_the_meta_prompt_and_merges_replies() {
    let p = PromptTemplates::from_yaml(GOOD, "p.yaml").unwrap();
    let vqa_reply =
        "4) Please answer: {question}; 5) {question}; 6) Reply to {question} now; 7) Tell me.";
    let caption_reply = "1. Describe the image briefly\n2. Give a caption for the image.\n3. Summarise the picture.";
    let (base, seen, server) = stand_in_server(vec![
        (500, "{\"error\":\"busy\"}".into()),
        (200, chat_reply(vqa_reply)),
        (200, chat_reply(caption_reply)),
    ]);
    let mut progress = Vec::new();
    let (out, reports) =
        expand_templates(&p, &options(base), |r| progress.push(r.task.clone())).unwrap();
    server.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "one retry after the 500, then one request per task"
    );
    for s in &seen {
        assert_eq!(s.request_line, "POST /v1/chat/completions HTTP/1.1");
        assert!(s
            .headers
            .contains(&("authorization".into(), "Bearer sk-test".into())));
        assert_eq!(s.body["model"], "stand-in-model");
    }
    let vqa_prompt = "Here are some instructions that define a visual-language task. Continue to write 15 \
                      instructions with the same meaning: 1) {question}; 2) Answer the question: {question}; \
                      3) {question} Answer briefly.;";
    assert_eq!(seen[1].body["messages"][0]["content"], vqa_prompt);
    assert_eq!(seen[1].body["messages"][0]["role"], "user");
    assert!(seen[2].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .ends_with("1) Describe the image briefly.; 2) Write a short caption for the image.; 3) What does the image show? Answer in one sentence.;"));

    assert_eq!(progress, vec!["vqa", "caption"]);
    assert_eq!(
        reports[0],
        ExpandReport {
            task: "vqa".into(),
            returned: 4,
            added: 2
        }
    );
    assert_eq!(
        reports[1],
        ExpandReport {
            task: "caption".into(),
            returned: 3,
            added: 2
        }
    );
    let vqa = &out.task("vqa").unwrap().templates;
    assert_eq!(
        &vqa[3..],
        ["Please answer: {question}", "Reply to {question} now"]
    );
    let cap = &out.task("caption").unwrap().templates;
    assert_eq!(
        &cap[3..],
        ["Give a caption for the image.", "Summarise the picture."]
    );

    // The written YAML reads back as the same templates.
    let back = PromptTemplates::from_yaml(&out.to_yaml().unwrap(), "out.yaml").unwrap();
    assert_eq!(back.tasks(), out.tasks());
}

#[test]
fn expansion_of_one_task_and_error_statuses() {
    let p = PromptTemplates::from_yaml(GOOD, "p.yaml").unwrap();
    let (base, seen, server) = stand_in_server(vec![(200, chat_reply("1) Caption this image."))]);
    let mut opts = options(base);
    opts.task = Some("caption".into());
    opts.api_key = None;
    let (out, reports) = expand_templates(&p, &opts, |_| {}).unwrap();
    server.join().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(out.task("vqa").unwrap().templates.len(), 3);
    assert_eq!(out.task("caption").unwrap().templates.len(), 4);
    assert!(seen.lock().unwrap()[0]
        .headers
        .iter()
        .all(|(k, _)| k != "authorization"));

    opts.task = Some("nope".into());
    assert!(expand_templates(&p, &opts, |_| {})
        .unwrap_err()
        .to_string()
        .contains("nope"));

    let (base, _, server) = stand_in_server(vec![(401, "{\"error\":\"bad key\"}".into())]);
    let mut opts = options(base);
    opts.task = Some("vqa".into());
    let e = expand_templates(&p, &opts, |_| {}).unwrap_err().to_string();
    server.join().unwrap();
    assert!(
        e.contains("401") && e.contains("bad key") && e.contains("/v1/chat/completions"),
        "{e}"
    );
}
