//! First-run set-up over the real HTTP API: the owner, agents (signed in, available) and
//! the demo site's key.

use anyhow::{anyhow, bail};
use serde_json::{json, Value};

use crate::worker::AgentCred;

const PASSWORD: &str = "bench-password-1234";

pub struct Setup {
    pub site_key: String,
    pub agents: Vec<AgentCred>,
}

fn cookie_of(r: &reqwest::Response) -> anyhow::Result<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("confab_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no session cookie"))
}

async fn json_ok(r: reqwest::Response) -> anyhow::Result<(String, Value)> {
    let cookie = cookie_of(&r).unwrap_or_default();
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok((cookie, serde_json::from_str(&text)?))
}

fn cred(cookie: String, me: &Value) -> anyhow::Result<AgentCred> {
    Ok(AgentCred {
        id: me["agent"]["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no agent id"))?,
        cookie,
        csrf: me["csrf_token"]
            .as_str()
            .ok_or_else(|| anyhow!("no csrf token"))?
            .to_owned(),
    })
}

fn with(rb: reqwest::RequestBuilder, base: &str, a: &AgentCred) -> reqwest::RequestBuilder {
    rb.header("origin", base)
        .header("cookie", &a.cookie)
        .header("x-csrf-token", &a.csrf)
}

/// Creates the owner and `n_agents` more agents (full access), all available.
pub async fn run(base: &str, n_agents: usize) -> anyhow::Result<Setup> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (cookie, me) = json_ok(
        http.post(format!("{base}/api/v1/setup"))
            .header("origin", base)
            .json(&json!({"email": "owner@bench.example", "name": "Owner", "password": PASSWORD}))
            .send()
            .await?,
    )
    .await?;
    let owner = cred(cookie, &me)?;
    let (_, sites) = json_ok(
        with(http.get(format!("{base}/api/v1/sites")), base, &owner)
            .send()
            .await?,
    )
    .await?;
    let site_key = sites
        .as_array()
        .and_then(|a| a.first())
        .and_then(|s| s["public_key"].as_str().or(s["site_key"].as_str()))
        .ok_or_else(|| anyhow!("no site key in {sites}"))?
        .to_owned();
    let mut agents = Vec::new();
    for i in 0..n_agents {
        let email = format!("agent{i}@bench.example");
        json_ok(
            with(http.post(format!("{base}/api/v1/agents")), base, &owner)
                .json(&json!({"email": email, "name": format!("Agent {i}"), "password": PASSWORD, "role": "agent", "access": "full"}))
                .send()
                .await?,
        )
        .await?;
        let (cookie, me) = json_ok(
            http.post(format!("{base}/api/v1/auth/login"))
                .header("origin", base)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await?,
        )
        .await?;
        let a = cred(cookie, &me)?;
        json_ok(
            with(http.put(format!("{base}/api/v1/me/availability")), base, &a)
                .json(&json!({"available": true}))
                .send()
                .await?,
        )
        .await?;
        agents.push(a);
    }
    Ok(Setup { site_key, agents })
}
