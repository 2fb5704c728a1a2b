//! The rating page in a real headless browser (Debian's chromium through chromedriver, WebDriver
//! via fantoccini) on the 6 published OwlEval answer files: log in, score, hit the shared-score
//! rule of the paper's Section 3.1 and see the server's error, save, reload, see the scores.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install -y chromium chromium-driver`);
//! `LYNX_CHROMIUM` / `LYNX_CHROMEDRIVER` override where they are. Missing ones fail the test.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{owleval, real_config, start};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const INSTALL: &str = "the browser test needs Debian's chromium and chromedriver: \
                       apt-get install -y chromium chromium-driver \
                       (or point LYNX_CHROMIUM / LYNX_CHROMEDRIVER at them)";

/// `env` if set, else the first of `names` on PATH.
fn program(env: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env}={} does not exist; {INSTALL}",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("none of {names:?} is on PATH; {INSTALL}"))
}

/// chromedriver, killed when the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver(chromedriver: &Path) -> (Driver, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", chromedriver.display()));
    let mut driver = Driver(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Wait until it listens; stop waiting if it exits.
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = driver.0.try_wait().unwrap() {
            panic!("chromedriver exited with {status} before listening on {addr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (driver, format!("http://{addr}"))
}

/// Reads `document.body.dataset.KEY`.
async fn body_data(c: &Client, key: &str) -> String {
    let v = c
        .execute(
            &format!("return document.body.dataset.{key} || '';"),
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap().to_string()
}

/// Waits until the page has finished action number `seq` and returns its state.
async fn settled(c: &Client, seq: u64) -> String {
    c.wait()
        .forever()
        .for_element(Locator::Css(&format!("body[data-seq='{seq}']")))
        .await
        .unwrap();
    body_data(c, "state").await
}

async fn seq(c: &Client) -> u64 {
    body_data(c, "seq").await.parse().unwrap()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn choose(c: &Client, scores: &[(&str, u8)]) {
    for (label, score) in scores {
        click(c, &format!("input[name='score-{label}'][value='{score}']")).await;
    }
}

/// The checked score of each label, in label order.
async fn checked(c: &Client) -> Vec<Value> {
    c.execute(
        "return Array.from(document.querySelectorAll('.answer')).map(card => {
             const on = card.querySelector('input:checked');
             return [card.dataset.label, on ? Number(on.value) : null];
         });",
        vec![],
    )
    .await
    .unwrap()
    .as_array()
    .unwrap()
    .clone()
}

fn stored_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM ratings", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_rating_page_in_headless_chromium() {
    let chromium = program(
        "LYNX_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = program("LYNX_CHROMEDRIVER", &["chromedriver"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ratings.sqlite");
    let server = start(&real_config(&db));
    let base = server.url();
    let (_driver, driver_url) = start_driver(&chromedriver);
    let profile = dir.path().join("chromium-profile");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&driver_url)
            .await
            .expect("chromedriver cannot start chromium");

        c.goto(&base).await.unwrap();
        let ready = c.execute("return typeof act;", vec![]).await.unwrap();
        assert_eq!(ready, "function", "the page script did not run");
        assert_eq!(settled(&c, 1).await, "ready");
        assert!(c.find(Locator::Css("#rate")).await.unwrap().attr("hidden").await.unwrap().is_some());
        // The rules are on the page, with the server's numbers.
        let rules = text(&c, "#rules").await;
        assert!(rules.contains("Correctness comes first") && rules.contains("richness"), "{rules}");
        assert_eq!(text(&c, "#rules .r-ties").await, "10");
        assert_eq!(text(&c, "#rules .r-forced").await, "1");

        // Log in.
        c.find(Locator::Css("#name")).await.unwrap().send_keys("Browser Tester").await.unwrap();
        click(&c, "#login-btn").await;
        assert_eq!(settled(&c, 2).await, "ready");
        assert_eq!(body_data(&c, "question").await, "1");
        assert_eq!(text(&c, "#who").await, "Annotator: Browser Tester");
        assert_eq!(text(&c, "#question").await, "What is funny about this image? Describe it panel by panel.");
        assert_eq!(c.find_all(Locator::Css(".answer")).await.unwrap().len(), 6);
        let page_text = text(&c, "body").await;
        for model in ["BLIP2", "MMreact", "llava-13b", "mPLUG_Owl_7b", "minigpt4_13b", "openflanmingo"] {
            assert!(!page_text.contains(model), "the page names model {model}");
        }
        // The image is served and decodes (cases/1.jpg is 1292 x 1296).
        let width = loop {
            let w = c
                .execute("const i = document.getElementById('image'); return i.complete ? i.naturalWidth : -1;", vec![])
                .await
                .unwrap();
            if w != -1 {
                break w;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(width, 1292, "image of question 1 ({})", owleval().join("cases/1.jpg").display());

        // Three answers with one score: the server refuses, the page shows why, nothing is stored.
        choose(&c, &[("A", 3), ("B", 3), ("C", 3), ("D", 1), ("E", 2), ("F", 5)]).await;
        let n = seq(&c).await;
        click(&c, "#submit").await;
        assert_eq!(settled(&c, n + 1).await, "error");
        let error = text(&c, "#error").await;
        assert!(
            error.contains("answers A, B and C all have score 3") && error.contains("at most 2 answers"),
            "{error}"
        );
        assert_eq!(body_data(&c, "question").await, "1");
        assert_eq!(stored_rows(&db), 0);

        // Fix it: one shared pair is what 6 answers on 5 levels must have, so no tie is used.
        choose(&c, &[("C", 4)]).await;
        let n = seq(&c).await;
        click(&c, "#submit").await;
        assert_eq!(settled(&c, n + 1).await, "ready");
        assert!(text(&c, "#status").await.contains("Saved question 1"));
        assert_eq!(body_data(&c, "question").await, "2", "the page moves on to the next unrated question");
        assert_eq!(text(&c, "#progress").await, "Rated 1 of 82");
        assert_eq!(text(&c, "#ties").await, "Ties used 0 of 10");
        assert_eq!(stored_rows(&db), 6);

        // Reload without the #q= hash: the saved name logs in again at the first unrated question.
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(settled(&c, 1).await, "ready");
        assert_eq!(body_data(&c, "question").await, "2");
        assert_eq!(text(&c, "#progress").await, "Rated 1 of 82");
        assert!(checked(&c).await.iter().all(|p| p[1].is_null()), "question 2 has no scores yet");
        // Back to question 1: the stored scores are shown under the same labels.
        click(&c, "#prev").await;
        assert_eq!(settled(&c, 2).await, "ready");
        assert_eq!(body_data(&c, "question").await, "1");
        let want = json!([["A", 3], ["B", 3], ["C", 4], ["D", 1], ["E", 2], ["F", 5]]);
        assert_eq!(Value::Array(checked(&c).await), want);
        // A browser reload (with the hash) shows the same.
        c.refresh().await.unwrap();
        assert_eq!(settled(&c, 1).await, "ready");
        assert_eq!(body_data(&c, "question").await, "1");
        assert_eq!(Value::Array(checked(&c).await), want);

        // Another person on the same browser: the name is forgotten and the login form is back.
        click(&c, "#logout").await;
        // The old document is also at step 1, so wait for what only the new one shows.
        c.wait()
            .forever()
            .for_element(Locator::Css("body[data-seq='1'][data-state='ready'] #login:not([hidden])"))
            .await
            .unwrap();
        assert!(c.find(Locator::Css("#rate")).await.unwrap().attr("hidden").await.unwrap().is_some());
        assert_eq!(c.find(Locator::Css("#name")).await.unwrap().prop("value").await.unwrap().as_deref(), Some(""));

        c.close().await.unwrap();
    });
}
