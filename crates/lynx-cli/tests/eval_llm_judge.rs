//! `lynx eval open-vqa --judge llm` end to end against an OpenAI-protocol stand-in server run
//! by the test on 127.0.0.1: prompt text, temperature, auth header, cache (a rerun sends
//! nothing), unparseable replies, retries on 5xx and timeouts, a down server, and the agreement
//! table of both judges.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{class_score, fixture, lynx_with_key, read_json, run_open_vqa_fixture, text};
use serde_json::{json, Value};

/// One request the stand-in received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    auth: Option<String>,
    body: Value,
}

type Rule = dyn Fn(usize, &str) -> (u16, String, Duration) + Send + Sync;

/// An OpenAI-protocol chat server on 127.0.0.1: answers each request with `rule(n, prompt)`
/// (n counts requests from 0) and records what it got. Stops when dropped.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

fn chat_reply(content: &str) -> String {
    json!({"id": "x", "object": "chat.completion",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop"}]})
    .to_string()
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(stream);
    let mut start = String::new();
    r.read_line(&mut start).ok()?;
    let path = start.split_whitespace().nth(1)?.to_string();
    let (mut len, mut auth) = (0, None);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().ok()?,
            "authorization" => auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        path,
        auth,
        body: serde_json::from_slice(&body).ok()?,
    })
}

impl StandIn {
    fn start(rule: Box<Rule>) -> Self {
        let rule: Arc<Rule> = Arc::from(rule);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let (seen, rule) = (seen2.clone(), rule.clone());
                // one thread per connection, so a slow reply does not hold up the others
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    let prompt = req.body["messages"][0]["content"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let n = {
                        let mut s = seen.lock().unwrap();
                        s.push(req);
                        s.len() - 1
                    };
                    let (status, body, delay) = rule(n, &prompt);
                    std::thread::sleep(delay);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes());
                });
            }
        });
        StandIn {
            url: format!("http://{addr}/v1"),
            seen,
            stop,
            addr,
            thread: Some(thread),
        }
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The judge's replies for the fixture, by question (index 4 gets an unparseable reply).
fn fixture_reply(prompt: &str) -> &'static str {
    for (q, r) in [
        ("What does the sign say?", " Yes, it does."),
        ("Who wrote this book?", "YES"),
        ("How many dogs", "Yes"),
        ("How many cats", "Maybe, it is hard to say."),
        ("Is this dog driving", "No."),
        ("What is in the image?", "yes"),
        ("What is the man doing?", "Yes"),
        ("What kind of animals", "**Yes**"),
        ("What is on the plate?", "Yes"),
    ] {
        if prompt.contains(q) {
            return r;
        }
    }
    "No"
}

fn ok_rule() -> Box<Rule> {
    Box::new(|_, p| (200, chat_reply(fixture_reply(p)), Duration::ZERO))
}

fn llm_args<'a>(url: &'a str, cache: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "open-vqa",
        "--judge",
        "llm",
        "--judge-url",
        url,
        "--judge-model",
        "stand-in",
        "--cache",
        cache,
        "--out",
        out,
        "--backoff-ms",
        "1",
        "--name",
        "fixture",
    ]
}

fn expected_prompts() -> Vec<String> {
    let ann = fixture("eval").join("open_vqa_ann.jsonl");
    let pred = fixture("eval").join("open_vqa_pred.jsonl");
    let answers: std::collections::HashMap<i64, String> = std::fs::read_to_string(pred)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev() // the first of duplicate indices wins
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["index"].as_i64().unwrap(),
                v["text_output"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for l in std::fs::read_to_string(ann).unwrap().lines() {
        let a: Value = serde_json::from_str(l).unwrap();
        let Some(p) = answers.get(&a["index"].as_i64().unwrap()) else {
            continue;
        };
        if p.trim().is_empty() {
            continue;
        }
        let gt: Vec<&str> = a["answer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        out.push(format!(
            "Given the question \"{}\", does the answer \"{}\" imply the answer \"{}\"? Answer with Yes or No.",
            a["question"].as_str().unwrap(),
            p,
            gt.join(" or ")
        ));
    }
    out.sort();
    out
}

#[test]
fn llm_judge_prompts_auth_cache_and_agreement() {
    let server = StandIn::start(ok_rule());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.jsonl");
    let out = dir.path().join("llm.json");
    let (c, o) = (cache.to_str().unwrap(), out.to_str().unwrap());
    let res = run_open_vqa_fixture(&llm_args(&server.url, c, o), Some("sk-test-123"));
    assert!(res.status.success(), "{}", text(&res.stderr));

    let seen = server.seen();
    // 11 annotations - 1 missing - 1 empty; the extra and the duplicate are not sent
    assert_eq!(seen.len(), 9);
    let mut prompts = Vec::new();
    for s in &seen {
        assert_eq!(s.path, "/v1/chat/completions");
        assert_eq!(s.auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(s.body["model"], "stand-in");
        assert_eq!(s.body["temperature"].as_f64(), Some(0.0));
        let msgs = s.body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0]["role"], "user");
        prompts.push(msgs[0]["content"].as_str().unwrap().to_string());
    }
    prompts.sort();
    assert_eq!(prompts, expected_prompts());
    assert!(prompts.contains(
        &"Given the question \"What is on the plate?\", does the answer \"A cake with strawberries.\" imply the answer \"cake with strawberry or strawberry cake\"? Answer with Yes or No."
            .to_string()
    ));

    let r = read_json(&out);
    assert_eq!(r["judge"], "llm");
    assert_eq!(r["judge_model"], "stand-in");
    // yes: 1 2 3 6 9 10 11; no: 5; unparseable: 4
    assert_eq!(class_score(&r, "OCR"), (2, 2));
    assert_eq!(class_score(&r, "Counting"), (1, 2));
    assert_eq!(class_score(&r, "Reasoning"), (0, 1));
    assert_eq!(class_score(&r, "Action"), (1, 1));
    assert_eq!(class_score(&r, "Others"), (2, 2));
    assert_eq!(
        (r["judged"].as_u64(), r["unparseable"].as_u64()),
        (Some(8), Some(1))
    );
    assert!((r["overall"].as_f64().unwrap() - 700.0 / 11.0).abs() < 1e-9);
    let v4 = &r["verdicts"].as_array().unwrap()[3];
    assert_eq!(v4["status"], "unparseable");
    assert_eq!(v4["reply"], "Maybe, it is hard to say.");
    assert!(text(&res.stderr).contains("index 4: judge reply is neither yes nor no"));
    assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 9);

    // a rerun is answered from the cache: nothing is sent, the report is the same
    let out2 = dir.path().join("llm2.json");
    let res = run_open_vqa_fixture(
        &llm_args(&server.url, c, out2.to_str().unwrap()),
        Some("sk-test-123"),
    );
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(server.seen().len(), 9);
    assert_eq!(read_json(&out2), r);

    // both judges on the same predictions: one table, and their agreement
    let rule = dir.path().join("rule.json");
    let res = run_open_vqa_fixture(
        &[
            "eval",
            "open-vqa",
            "--judge",
            "rule",
            "--name",
            "fixture",
            "--out",
            rule.to_str().unwrap(),
        ],
        None,
    );
    assert!(res.status.success());
    let md = dir.path().join("cmp.md");
    let res = lynx_with_key(
        &[
            "eval",
            "open-vqa",
            "--compare",
            rule.to_str().unwrap(),
            o,
            "--markdown",
            md.to_str().unwrap(),
        ],
        None,
    );
    assert!(res.status.success(), "{}", text(&res.stderr));
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(
        table
            .contains("| fixture (rule) | 2/2 | 1/2 | 1/1 | 1/1 | 0/1 | 0/1 | 0/1 | 1/2 | 54.55 |"),
        "{table}"
    );
    assert!(
        table.contains(
            "| fixture (llm stand-in) | 2/2 | 1/2 | 0/1 | 1/1 | 0/1 | 0/1 | 1/1 | 2/2 | 63.64 |"
        ),
        "{table}"
    );
    // both judged 1 2 3 5 6 9 10 11; same on 1 2 3 6 10: 62.5 %;
    // rule yes 6/8, llm yes 7/8: pe = 0.6875, kappa = (0.625 - 0.6875) / 0.3125 = -0.2
    assert!(
        table.contains("| fixture | rule vs llm stand-in | 8 | 62.50% | -0.200 |"),
        "{table}"
    );
    assert_eq!(text(&res.stdout), table);
}

#[test]
fn llm_judge_without_key_sends_no_auth_and_retries_500s() {
    // the first three requests fail with 500, then the server answers
    let server = StandIn::start(Box::new(|n, p| {
        if n < 3 {
            (500, "{\"error\": \"overloaded\"}".into(), Duration::ZERO)
        } else {
            (200, chat_reply(fixture_reply(p)), Duration::ZERO)
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.jsonl");
    let out = dir.path().join("r.json");
    let mut args = llm_args(&server.url, cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--retries", "3", "--concurrency", "1"]);
    let res = run_open_vqa_fixture(&args, None);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let seen = server.seen();
    assert_eq!(seen.len(), 9 + 3);
    assert!(seen.iter().all(|s| s.auth.is_none()));
    // the retried prompt is the same one three more times
    let first = &seen[0].body["messages"][0]["content"];
    assert!(seen[..4]
        .iter()
        .all(|s| &s.body["messages"][0]["content"] == first));
    assert!((read_json(&out)["overall"].as_f64().unwrap() - 700.0 / 11.0).abs() < 1e-9);
}

#[test]
fn slow_server_times_out_then_retry_succeeds() {
    let server = StandIn::start(Box::new(|n, p| {
        let delay = if n == 0 {
            Duration::from_secs(4)
        } else {
            Duration::ZERO
        };
        (200, chat_reply(fixture_reply(p)), delay)
    }));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.jsonl");
    let out = dir.path().join("r.json");
    let mut args = llm_args(&server.url, cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--timeout-s", "1", "--concurrency", "1", "--retries", "2"]);
    let res = run_open_vqa_fixture(&args, Some("k"));
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(server.seen().len(), 10);
    assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 9);
}

#[test]
fn failures_keep_the_verdicts_obtained() {
    // answers four requests, then fails every one
    let server = StandIn::start(Box::new(|n, p| {
        if n < 4 {
            (200, chat_reply(fixture_reply(p)), Duration::ZERO)
        } else {
            (503, "unavailable".into(), Duration::ZERO)
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.jsonl");
    let out = dir.path().join("r.json");
    let mut args = llm_args(&server.url, cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--retries", "2", "--concurrency", "1"]);
    let res = run_open_vqa_fixture(&args, Some("k"));
    assert!(!res.status.success());
    let err = text(&res.stderr);
    assert!(
        err.contains(&format!("{}/chat/completions", server.url)),
        "{err}"
    );
    assert!(
        err.contains("HTTP 503") && err.contains("gave up after 3 attempts"),
        "{err}"
    );
    assert!(
        err.contains("the 4 verdicts received before the error are kept in"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(server.seen().len(), 4 + 3);
    assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 4);
    drop(server);

    // a healthy server is then asked only for the five verdicts still missing
    let server = StandIn::start(ok_rule());
    let args = llm_args(&server.url, cache.to_str().unwrap(), out.to_str().unwrap());
    let res = run_open_vqa_fixture(&args, Some("k"));
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(server.seen().len(), 5);
    assert!((read_json(&out)["overall"].as_f64().unwrap() - 700.0 / 11.0).abs() < 1e-9);
}

#[test]
fn down_server_and_rejected_key_are_clear_errors() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.jsonl");
    let out = dir.path().join("r.json");
    let mut args = llm_args(&url, cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--retries", "2"]);
    let res = run_open_vqa_fixture(&args, Some("k"));
    assert!(!res.status.success());
    let err = text(&res.stderr);
    assert!(
        err.contains(&format!("error: {url}/chat/completions: request failed")),
        "{err}"
    );
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(!out.exists());

    // 401 is not retried, and no further prompt is sent after it
    let server = StandIn::start(Box::new(|_, _| {
        (401, "{\"error\": \"bad key\"}".into(), Duration::ZERO)
    }));
    let mut args = llm_args(&server.url, cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--concurrency", "1"]);
    let res = run_open_vqa_fixture(&args, Some("wrong"));
    assert!(!res.status.success());
    assert!(
        text(&res.stderr).contains("HTTP 401"),
        "{}",
        text(&res.stderr)
    );
    assert_eq!(server.seen().len(), 1);
}
