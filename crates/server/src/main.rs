//! `confab`: one binary. `serve` runs on an embedded SQLite file with no configuration.

mod config;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confab_api::{auth, ApiSettings, AppBuilder};
use confab_domain::{Access, Role, SiteSettings};
use confab_store::{AgentPatch, NewAgent, NewSite, Store};
use confab_store_sqlite::SqliteStore;

use config::Config;

/// jemalloc rather than the system's malloc: with glibc's per-thread arenas, what each
/// handshake and each busy spell frees stays resident as fragments. With `confab-bench` on
/// 2 cores: an idle visitor socket 10–14 KB (glibc 9–17 KB, varying from run to run), and a
/// busy day of 3,000 conversations peaks at 70 MiB (glibc 228 MiB).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "confab",
    version,
    about = "Live chat and customer messaging, self-hosted"
)]
struct Cli {
    /// A TOML config file (see `confab print-config`).
    #[arg(long, short, global = true, env = "CONFAB_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API, sockets, web UI).
    Serve {
        /// Overrides server.listen.
        #[arg(long)]
        listen: Option<String>,
        /// Overrides database.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides database.url: keep data in PostgreSQL.
        #[arg(long)]
        database_url: Option<String>,
        /// Overrides nats.url: share events with other nodes.
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Create or upgrade the database, then exit.
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the configuration in force as an example TOML file.
    PrintConfig,
    /// Administration.
    Admin {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: Admin,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Create the owner account, or reset the owner's password if one exists.
    Owner {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Owner")]
        name: String,
        /// The password; read from CONFAB_PASSWORD if not given.
        #[arg(long, env = "CONFAB_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg =
        Config::load(cli.config.as_deref()).context("could not read the configuration")?;
    if let Command::PrintConfig = cli.command {
        print!("{}", cfg.example());
        return Ok(());
    }
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve {
                listen,
                data_dir,
                database_url,
                nats_url,
            } => {
                if let Some(l) = listen {
                    cfg.server.listen = l;
                }
                if let Some(d) = data_dir {
                    cfg.database.data_dir = d;
                }
                if database_url.is_some() {
                    cfg.database.url = database_url;
                }
                if nats_url.is_some() {
                    cfg.nats.url = nats_url;
                }
                serve(cfg).await
            }
            Command::Migrate { data_dir } => {
                if let Some(d) = data_dir {
                    cfg.database.data_dir = d;
                }
                open_store(&cfg).await?;
                println!("the database is up to date");
                Ok(())
            }
            Command::Admin {
                data_dir,
                action:
                    Admin::Owner {
                        email,
                        name,
                        password,
                    },
            } => {
                if let Some(d) = data_dir {
                    cfg.database.data_dir = d;
                }
                let store = open_store(&cfg).await?;
                admin_owner(&*store, &email, &name, &password).await
            }
            Command::PrintConfig => unreachable!("handled above"),
        }
    })
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The embedded SQLite file by default; PostgreSQL when `database.url` is set.
async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let dir = &cfg.database.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the data folder {}", dir.display()))?;
    match &cfg.database.url {
        Some(url) => {
            let store = confab_store_postgres::PgStore::connect(url)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "could not open the PostgreSQL database at {}: {e}",
                        redact(url)
                    )
                })?;
            Ok(Arc::new(store))
        }
        None => {
            let store = SqliteStore::open(&dir.join("confab.db"))
                .await
                .map_err(|e| anyhow::anyhow!("could not open the database: {e}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// A URL with its password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

async fn admin_owner(
    store: &dyn Store,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    let email = confab_domain::text::email("email", email).map_err(|e| anyhow::anyhow!("{e}"))?;
    auth::validate_password(password).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let hash = auth::hash_password(password).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let owner = store
        .list_agents()
        .await?
        .into_iter()
        .find(|a| a.role == Role::Owner);
    match owner {
        Some(o) => {
            store.set_password(o.id, &hash).await?;
            store
                .update_agent(
                    o.id,
                    AgentPatch {
                        deactivated: Some(false),
                        ..Default::default()
                    },
                )
                .await?;
            store.delete_agent_sessions(o.id).await?;
            println!("reset the password of the owner {}", o.email);
        }
        None => {
            let name = confab_domain::text::short_text("name", name)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .create_agent(NewAgent {
                    email: email.clone(),
                    display_name: name.clone(),
                    name,
                    password_hash: hash,
                    role: Role::Owner,
                    access: Access::Full,
                    now: chrono::Utc::now(),
                })
                .await?;
            println!("created the owner {email}");
        }
    }
    Ok(())
}

/// Connections the kernel may hold for us before we accept them; it caps this at
/// `net.core.somaxconn` (4096 on Debian).
const BACKLOG: u32 = 65_535;

/// Binds the listening socket with a deep backlog. tokio's `TcpListener::bind` asks for
/// 1,024: when thousands of widgets reconnect at once (a deploy, a network blip) the queue
/// overflows, the kernel drops their handshakes, and each retries after 1, 2, 4, 8… s —
/// the reconnect storm benchmark saw catch-up times swing from 7 s to 57 s.
async fn listen(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("{addr} names no address"), Into::into))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let listener = listen(&cfg.server.listen)
        .await
        .with_context(|| format!("could not listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let public_origin = cfg
        .server
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_lowercase())
        .unwrap_or_else(|| format!("http://{addr}"));
    ensure_demo_site(&*store, &public_origin).await?;
    let settings = ApiSettings {
        data_dir: cfg.database.data_dir.clone(),
        public_origin: Some(public_origin.clone()),
        agent_origins: cfg.server.agent_origins.clone(),
        secure_cookies: cfg.server.secure_cookies,
        session_ttl: chrono::Duration::hours(i64::from(cfg.server.session_hours.max(1))),
        ..ApiSettings::default()
    };
    let settings = match &cfg.nats.node_id {
        Some(n) => ApiSettings {
            node_id: n.clone(),
            ..settings
        },
        None => settings,
    };
    let builder = AppBuilder::new(store, settings);
    let state = match &cfg.nats.url {
        Some(url) => {
            if cfg.database.url.is_none() {
                anyhow::bail!(
                    "nats.url needs database.url: nodes must share one PostgreSQL database"
                );
            }
            builder
                .build_clustered(url, &cfg.nats.subject)
                .await
                .map_err(|e| anyhow::anyhow!("could not join the cluster through {url}: {e}"))?
        }
        None => builder.build(),
    };
    // This line is read by tests and scripts; keep its shape.
    println!("listening on http://{addr}");
    if state.store.count_agents().await? == 0 {
        println!("first run: open {public_origin}/ to create the owner account; {public_origin}/demo chats with yourself");
    }
    tracing::info!(%addr, node = %state.settings.node_id, data_dir = %cfg.database.data_dir.display(), postgres = cfg.database.url.is_some(), nats = cfg.nats.url.is_some(), "confab serving");
    confab_api::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// O2: a first start gets a demo site whose widget the `/demo` page embeds.
async fn ensure_demo_site(store: &dyn Store, origin: &str) -> anyhow::Result<()> {
    if !store.list_sites().await?.is_empty() {
        return Ok(());
    }
    let settings = SiteSettings {
        allowed_origins: vec![origin.to_owned()],
        ..SiteSettings::default()
    };
    store
        .create_site(NewSite {
            name: "Demo site".into(),
            public_key: auth::new_token(),
            identity_secret: auth::new_token(),
            settings,
            now: chrono::Utc::now(),
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
