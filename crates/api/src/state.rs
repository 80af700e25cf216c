//! The one application state, built once and cloned cheaply into every handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use confab_domain::{Agent, AgentId, Site, SiteId};
use confab_realtime::{Bus, LocalBus, Presence, Registry, Viewers};
use confab_store::{ConversationCounts, FolderCounts, Store};
use tokio_util::sync::CancellationToken;

use crate::events::HubEvent;

/// Where time comes from; tests plug in their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The settings the API needs (the binary's config maps onto this).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where attachments live.
    pub data_dir: PathBuf,
    /// The server's public origin, e.g. `https://chat.example.com`; pages served from it
    /// (the inbox, `/demo`) are always allowed.
    pub public_origin: Option<String>,
    /// Extra origins allowed to use the agent API and socket.
    pub agent_origins: Vec<String>,
    /// Mark cookies `Secure` (serve over https).
    pub secure_cookies: bool,
    pub session_ttl: chrono::Duration,
    /// How many events a socket may have queued before it is told to resync.
    pub socket_queue: usize,
    /// Heartbeat interval for sockets; a socket silent for three of these is closed.
    pub heartbeat: Duration,
    /// This node's name on the bus (random per start unless configured).
    pub node_id: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("confab-data"),
            public_origin: None,
            agent_origins: vec![],
            secure_cookies: false,
            session_ttl: chrono::Duration::days(14),
            socket_queue: 1024,
            heartbeat: Duration::from_secs(25),
            node_id: format!("node-{}", &crate::auth::new_token()[..10]),
        }
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry<HubEvent>>,
    pub bus: Arc<dyn Bus<HubEvent>>,
    pub presence: Arc<Presence>,
    pub viewers: Arc<Viewers>,
    pub clock: Arc<dyn Clock>,
    pub settings: ApiSettings,
    /// Cancelled on shutdown: sockets close with 1001 and background jobs stop.
    pub shutdown: CancellationToken,
    agents: RwLock<Option<(Instant, Arc<Vec<Agent>>)>>,
    /// Held while the agent list is read again, so that callers arriving meanwhile wait for
    /// that read instead of making their own; and how many changes dropped the list, so
    /// that a read begun before a change is not kept.
    agents_refresh: tokio::sync::Mutex<()>,
    agents_changes: std::sync::atomic::AtomicU64,
    sites: Mutex<HashMap<SiteId, (Instant, Site)>>,
    /// Site keys seen lately, to their sites' ids.
    site_keys: Mutex<HashMap<String, (Instant, SiteId)>>,
    /// Every agent's folder counts, from one count of the conversations, and when that
    /// count began (see [`App::folder_counts_after`]).
    counts: tokio::sync::Mutex<Option<(Instant, ConversationCounts)>>,
}

/// How long a cached agent list or site is used. A change made on this node drops the
/// cached copy at once; other nodes see it within this time.
const CACHE_FOR: Duration = Duration::from_secs(2);

/// A cheap handle on [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Builds the state; tests swap the clock or the bus.
pub struct AppBuilder {
    store: Arc<dyn Store>,
    settings: ApiSettings,
    clock: Arc<dyn Clock>,
}

impl AppBuilder {
    pub fn new(store: Arc<dyn Store>, settings: ApiSettings) -> Self {
        Self {
            store,
            settings,
            clock: Arc::new(SystemClock),
        }
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// One node: events go straight to this node's sockets.
    pub fn build(self) -> AppState {
        let registry = Registry::new(self.settings.socket_queue);
        let bus: Arc<dyn Bus<HubEvent>> = Arc::new(LocalBus::new(registry.clone()));
        self.finish(
            registry,
            bus,
            Arc::new(Presence::default()),
            Arc::new(Viewers::default()),
        )
    }

    /// One node of many: events cross NATS at `nats_url` on `subject` (every node of one
    /// deployment uses the same subject); presence and viewers are merged across nodes
    /// (see [`crate::cluster`]).
    pub async fn build_clustered(
        self,
        nats_url: &str,
        subject: &str,
    ) -> Result<AppState, confab_realtime::nats::NatsError> {
        let registry = Registry::new(self.settings.socket_queue);
        let presence = Arc::new(Presence::default());
        let viewers = Arc::new(Viewers::default());
        let sink = crate::cluster::inbound(
            registry.clone(),
            presence.clone(),
            viewers.clone(),
            self.settings.node_id.clone(),
        );
        let bus = confab_realtime::nats::NatsBus::connect(
            nats_url,
            subject,
            &self.settings.node_id,
            sink,
        )
        .await?;
        Ok(self.finish(registry, bus, presence, viewers))
    }

    fn finish(
        self,
        registry: Arc<Registry<HubEvent>>,
        bus: Arc<dyn Bus<HubEvent>>,
        presence: Arc<Presence>,
        viewers: Arc<Viewers>,
    ) -> AppState {
        AppState(Arc::new(App {
            store: self.store,
            registry,
            bus,
            presence,
            viewers,
            clock: self.clock,
            settings: self.settings,
            shutdown: CancellationToken::new(),
            agents: RwLock::new(None),
            agents_refresh: tokio::sync::Mutex::new(()),
            agents_changes: Default::default(),
            sites: Mutex::new(HashMap::new()),
            site_keys: Mutex::new(HashMap::new()),
            counts: tokio::sync::Mutex::new(None),
        }))
    }
}

impl App {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Publishes an event to every node.
    pub fn publish(&self, event: HubEvent) {
        self.bus.publish(Arc::new(event));
    }

    /// All agents, cached for a few seconds (notifications need them on every message).
    pub async fn agents(&self) -> Result<Arc<Vec<Agent>>, confab_store::StoreError> {
        if let Some(list) = self.cached_agents() {
            return Ok(list);
        }
        let _refresh = self.agents_refresh.lock().await;
        if let Some(list) = self.cached_agents() {
            return Ok(list);
        }
        let changes = self.agents_changes.load(Ordering::Acquire);
        let list = Arc::new(self.store.list_agents().await?);
        if self.agents_changes.load(Ordering::Acquire) == changes {
            *self.agents.write().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), list.clone()));
        }
        Ok(list)
    }

    fn cached_agents(&self) -> Option<Arc<Vec<Agent>>> {
        match self
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some((at, list)) if at.elapsed() < CACHE_FOR => Some(list.clone()),
            _ => None,
        }
    }

    /// Forget the cached agents after a change to one.
    pub fn agents_changed(&self) {
        self.agents_changes.fetch_add(1, Ordering::AcqRel);
        *self.agents.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The agent's folder counts as of some time after `after`. Open inboxes refresh their
    /// counts after every change; they share one count of the conversations, made at most
    /// once at a time, instead of each scanning them.
    pub async fn folder_counts_after(
        &self,
        agent: &Agent,
        after: Instant,
    ) -> Result<FolderCounts, confab_store::StoreError> {
        let mut cached = self.counts.lock().await;
        if let Some((began, counts)) = cached.as_ref() {
            if *began >= after {
                return Ok(counts.for_agent(agent));
            }
        }
        let began = Instant::now();
        let counts = self.store.conversation_counts().await?;
        let mine = counts.for_agent(agent);
        *cached = Some((began, counts));
        Ok(mine)
    }

    /// A site, cached briefly: every visitor request and every reply reads its site.
    pub async fn site(&self, id: SiteId) -> Result<Site, confab_store::StoreError> {
        if let Some((at, site)) = self.sites_lock().get(&id) {
            if at.elapsed() < CACHE_FOR {
                return Ok(site.clone());
            }
        }
        let site = self.store.site(id).await?;
        self.sites_lock().insert(id, (Instant::now(), site.clone()));
        Ok(site)
    }

    /// The site with this public key, cached like [`App::site`]: every widget load and
    /// socket opens with it. Unknown keys are not remembered.
    pub async fn site_by_key(&self, key: &str) -> Result<Option<Site>, confab_store::StoreError> {
        let known = self
            .site_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, id)| *id);
        if let Some(id) = known {
            match self.site(id).await {
                Ok(site) if site.public_key == key => return Ok(Some(site)),
                Ok(_) | Err(confab_store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let site = self.store.site_by_key(key).await?;
        if let Some(site) = &site {
            let now = Instant::now();
            let mut keys = self.site_keys.lock().unwrap_or_else(|e| e.into_inner());
            // Keys of sites gone or changed would otherwise stay for good.
            keys.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
            keys.insert(key.to_owned(), (now, site.id));
            self.sites_lock().insert(site.id, (now, site.clone()));
        }
        Ok(site)
    }

    /// Forget a cached site after a change to it.
    pub fn site_changed(&self, id: SiteId) {
        self.sites_lock().remove(&id);
        self.site_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, site)| *site != id);
    }

    fn sites_lock(&self) -> std::sync::MutexGuard<'_, HashMap<SiteId, (Instant, Site)>> {
        self.sites.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn agent_by_id(&self, id: AgentId) -> Option<Agent> {
        self.agents()
            .await
            .ok()?
            .iter()
            .find(|a| a.id == id)
            .cloned()
    }
}
