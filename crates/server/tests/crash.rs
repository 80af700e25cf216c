//! S3: the server is killed with SIGKILL while clients are sending; after a restart every
//! acknowledged message is there, once, and no conversation's sequence has a gap.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start confab");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("confab exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Option<(u16, Value)> {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let r = r.send().await.ok()?;
    let st = r.status().as_u16();
    Some((st, r.json().await.ok()?))
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server not healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut server = start(dir.path());
    wait_healthy(&http, &server.base).await;
    // The demo site created on first start; its allowed origin is the server itself, and
    // requests without an Origin header are not a foreign page's.
    post(
        &http,
        format!("{}/api/v1/setup", server.base),
        None,
        json!({"email": "o@example.com", "name": "O", "password": "password123"}),
    )
    .await
    .unwrap();
    let sites: Value = {
        let login = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        login
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&json!({"email": "o@example.com", "password": "password123"}))
            .send()
            .await
            .unwrap();
        login
            .get(format!("{}/api/v1/sites", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let key = sites[0]["public_key"].as_str().unwrap().to_owned();

    // Eight visitors, each with a conversation, sending as fast as they can.
    let mut visitors = Vec::new();
    for _ in 0..8 {
        let (_, s) = post(
            &http,
            format!("{}/api/v1/widget/sessions", server.base),
            None,
            json!({"site_key": key}),
        )
        .await
        .unwrap();
        let token = s["token"].as_str().unwrap().to_owned();
        let (_, c) = post(
            &http,
            format!("{}/api/v1/widget/conversations", server.base),
            Some(&token),
            json!({}),
        )
        .await
        .unwrap();
        visitors.push((token, c["id"].as_i64().unwrap()));
    }
    // client id → (conversation, visible seq) of every acknowledged message.
    let acked: Arc<Mutex<HashMap<String, (i64, i64)>>> = Default::default();
    let sent: Arc<Mutex<Vec<(String, i64, String)>>> = Default::default();
    let mut tasks = Vec::new();
    for (i, (token, conv)) in visitors.clone().into_iter().enumerate() {
        let (http, base, acked, sent) = (
            http.clone(),
            server.base.clone(),
            acked.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("c{i}-{n}");
                let body = format!("message {n} from visitor {i}");
                sent.lock().unwrap().push((token.clone(), conv, id.clone()));
                let url = format!("{base}/api/v1/widget/conversations/{conv}/messages");
                match post(
                    &http,
                    url,
                    Some(&token),
                    json!({"client_id": id, "body": body}),
                )
                .await
                {
                    Some((201 | 200, m)) => {
                        acked.lock().unwrap().insert(
                            id,
                            (
                                m["conversation_id"].as_i64().unwrap(),
                                m["seq"].as_i64().unwrap(),
                            ),
                        );
                    }
                    _ => return,
                }
            }
        }));
    }
    // Let them write for a while, then kill the server mid-stream.
    while acked.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    println!("acknowledged before the kill: {}", acked.len());

    let mut server = start(dir.path());
    wait_healthy(&http, &server.base).await;
    let mut stored_ids: HashMap<i64, Vec<String>> = HashMap::new();
    for (token, conv) in &visitors {
        let r = http
            .get(format!(
                "{}/api/v1/widget/conversations/{conv}/messages?limit=1000",
                server.base
            ))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let msgs: Vec<Value> = r.json().await.unwrap();
        let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "conversation {conv} has a gap"
        );
        for m in &msgs {
            if let Some(id) = m["client_id"].as_str() {
                stored_ids.entry(*conv).or_default().push(id.to_owned());
                if let Some((c, seq)) = acked.get(id) {
                    assert_eq!(
                        (*c, *seq),
                        (*conv, m["seq"].as_i64().unwrap()),
                        "{id} moved"
                    );
                }
            }
        }
    }
    let all: HashSet<String> = stored_ids.values().flatten().cloned().collect();
    for id in acked.keys() {
        assert!(all.contains(id), "acknowledged message {id} was lost");
    }
    assert_eq!(
        all.len(),
        stored_ids.values().map(Vec::len).sum::<usize>(),
        "no message stored twice"
    );
    // Retrying everything that was sent (acknowledged or not) duplicates nothing.
    let sent = sent.lock().unwrap().clone();
    for (token, conv, id) in sent.iter().rev().take(16) {
        let url = format!(
            "{}/api/v1/widget/conversations/{conv}/messages",
            server.base
        );
        let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        let i: usize = id[1..].split('-').next().unwrap().parse().unwrap();
        let (st, _) = post(
            &http,
            url,
            Some(token),
            json!({"client_id": id, "body": format!("message {n} from visitor {i}")}),
        )
        .await
        .unwrap();
        assert!(st == 200 || st == 201, "{st}");
        if acked.contains_key(id) {
            assert_eq!(st, 200, "an acknowledged message is recognised on retry");
        }
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}
