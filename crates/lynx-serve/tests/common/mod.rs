//! Shared helpers of the rating server tests: the real OwlEval files, small answer files, an
//! in-process server on 127.0.0.1:0 and a blocking JSON client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lynx_serve::rating::{RatingApp, RunningServer, ServeConfig};
use serde_json::{json, Value};

pub const LABELS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

pub fn owleval() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/owleval")
}

/// The six published OwlEval answer files, sorted by name.
pub fn answer_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(owleval().join("answer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        6,
        "expected the 6 OwlEval answer files under {}",
        owleval().display()
    );
    files
}

/// A rating run over the real OwlEval answers, questions and images.
pub fn real_config(db: &Path) -> ServeConfig {
    ServeConfig {
        answers: answer_files(),
        questions: Some(owleval().join("questions.jsonl")),
        images: Some(owleval().join("cases")),
        db: db.to_path_buf(),
    }
}

/// Writes `models` answer files for questions 1..=n into `dir` (answer text "MODEL on ID").
pub fn small_answers(dir: &Path, models: &[&str], n: i64) -> Vec<PathBuf> {
    models
        .iter()
        .map(|m| {
            let path = dir.join(format!("{m}.jsonl"));
            let lines: Vec<String> = (1..=n)
                .map(|id| {
                    json!({"image": format!("{id}.jpg"), "question_id": id, "question": format!("Question {id}?"),
                           "answer": format!("{m} on {id}"), "model_id": m})
                    .to_string()
                })
                .collect();
            std::fs::write(&path, lines.join("\n")).unwrap();
            path
        })
        .collect()
}

pub fn start(config: &ServeConfig) -> RunningServer {
    RatingApp::open(config)
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .unwrap()
}

/// A blocking JSON client that returns every status instead of failing on 4xx.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &RunningServer) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: server.url(),
            agent,
        }
    }

    fn finish(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub fn get_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        (status, ctype, bytes)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::finish(
            self.agent
                .post(format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::finish(
            self.agent
                .put(format!("{}{path}", self.base))
                .send_json(body),
        )
    }

    pub fn put_raw(&self, path: &str, body: &str) -> (u16, Value) {
        Self::finish(
            self.agent
                .put(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    /// Logs in and returns the response body.
    pub fn login(&self, name: &str) -> Value {
        let (status, body) = self.post("/api/login", &json!({ "name": name }));
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn question(&self, name: &str, id: i64) -> Value {
        let (status, body) = self.get(&format!("/api/questions/{id}?annotator={name}"));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Submits `scores` for answers A, B, ... in order.
    pub fn rate(&self, name: &str, id: i64, scores: &[u8]) -> (u16, Value) {
        let map: serde_json::Map<String, Value> = LABELS
            .iter()
            .zip(scores)
            .map(|(l, s)| (l.to_string(), json!(s)))
            .collect();
        self.put(
            &format!("/api/ratings/{id}"),
            &json!({"annotator": name, "scores": map}),
        )
    }
}

/// Asserts a 4xx JSON refusal with `code`, returning its message.
pub fn refused(resp: (u16, Value), status: u16, code: &str) -> String {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"], code, "{}", resp.1);
    let msg = resp.1["message"].as_str().unwrap().to_string();
    assert!(!msg.is_empty());
    msg
}
