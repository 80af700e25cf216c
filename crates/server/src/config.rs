//! Configuration: defaults, then a TOML file, then `CONFAB_SECTION__KEY` environment
//! variables. `confab print-config` writes the example below with the values in force.

use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub database: Database,
    pub nats: Nats,
    pub log: Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nats {
    /// A NATS URL (nats://host:4222). When set, this node shares real-time events,
    /// presence and typing with the other nodes through it. Needs database.url.
    pub url: Option<String>,
    /// The NATS subject the nodes share. Every node of one deployment uses the same one;
    /// two deployments on one NATS server need different ones.
    pub subject: String,
    /// This node's name in logs and on the bus; random when empty.
    pub node_id: Option<String>,
}

impl Default for Nats {
    fn default() -> Self {
        Self {
            url: None,
            subject: "confab.events".into(),
            node_id: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address to listen on. Port 0 picks a free port (printed at start-up).
    pub listen: String,
    /// The public origin users reach Confab at (scheme://host[:port]). Defaults to
    /// http://<listen>. Used for the embed snippet and origin checks.
    pub public_url: Option<String>,
    /// Extra origins allowed to use the agent API and socket.
    pub agent_origins: Vec<String>,
    /// Mark cookies Secure; set when Confab is served over https.
    pub secure_cookies: bool,
    /// How long an agent stays signed in, in hours.
    pub session_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// The folder for the SQLite file and attachments.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://user@host/db). When set, Confab keeps its data there
    /// instead of the SQLite file (attachments stay under data_dir: share that folder, or
    /// use one node per folder and a shared filesystem).
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A tracing filter, e.g. "info" or "confab_api=debug,info".
    pub filter: String,
    /// Write JSON lines instead of text.
    pub json: bool,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            agent_origins: vec![],
            secure_cookies: false,
            session_hours: 24 * 14,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("confab-data"),
            url: None,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            json: false,
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    path.display()
                ))));
            }
            f = f.merge(Toml::file(path));
        }
        f.merge(
            Env::prefixed("CONFAB_")
                // Only CONFAB_SECTION__KEY is configuration; other CONFAB_* variables
                // (CONFAB_CONFIG, CONFAB_PASSWORD, test runners' own) are not.
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        )
        .extract()
        .map_err(Box::new)
    }

    /// The example configuration, with this config's values.
    pub fn example(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        let mut out = String::from(
            "# Confab configuration. Every key is optional; these are the values in force.\n\
             # Each can also be set as CONFAB_<SECTION>__<KEY>, e.g. CONFAB_SERVER__LISTEN=0.0.0.0:8080.\n\
             #\n\
             # [server] listen: address to listen on (port 0 picks a free one).\n\
             # [server] public_url: the origin users reach Confab at; defaults to http://<listen>.\n\
             # [server] agent_origins: extra origins allowed to use the agent API and socket.\n\
             # [server] secure_cookies: mark cookies Secure (serve over https).\n\
             # [server] session_hours: how long an agent stays signed in.\n\
             # [database] data_dir: the folder for the SQLite file and attachments.\n\
             # [database] url: a PostgreSQL URL; when set, data lives there instead of SQLite.\n\
             # [nats] url: a NATS URL; when set, this node shares events with the others (needs database.url).\n\
             # [nats] subject: the NATS subject the nodes share; deployments sharing one NATS need different ones.\n\
             # [nats] node_id: this node's name on the bus; random when unset.\n\
             # [log] filter: a tracing filter such as \"info\"; json: JSON lines.\n\n",
        );
        out.push_str(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_example_is_current() {
        let committed = include_str!("../../../confab.example.toml");
        assert_eq!(
            committed,
            Config::default().example(),
            "run `confab print-config > confab.example.toml`"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile_dir();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\nsession_hours = 5\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_SERVER__LISTEN", "127.0.0.1:9100");
            // Not configuration: must not be read as (unknown) keys.
            jail.set_env("CONFAB_BIN", "/usr/bin/confab");
            jail.set_env("CONFAB_PASSWORD", "secret");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.server.listen, "127.0.0.1:9100");
            assert_eq!(c.server.session_hours, 5);
            assert_eq!(c.database.data_dir, PathBuf::from("confab-data"));
            Ok(())
        });
        std::fs::write(&file, "[server]\nlisen = \"typo\"\n").unwrap();
        assert!(
            Config::load(Some(&file)).is_err(),
            "unknown keys are errors"
        );
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("confab-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
