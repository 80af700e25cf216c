//! The bus between nodes, over NATS core publish/subscribe.
//!
//! Each node delivers its own events locally at once and publishes them for the others.
//! NATS core is at-most-once, so every published event carries the publishing node's id and
//! a counter: a receiver that sees a node's counter skip knows it lost something and tells
//! every local socket to resync from the store. A lost bus message therefore costs a
//! resync, never data, and is never silent. After a reconnect the same happens, since
//! anything may have been missed while disconnected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{Bus, Routed};

/// What the bus hands to the local node: an event from another node, or word that events
/// may have been lost (resync every local socket).
pub enum Inbound<E> {
    Event(Arc<E>),
    Lost,
}

/// Where inbound events go (the API decides: merge presence, deliver to sockets).
pub type Sink<E> = Arc<dyn Fn(Inbound<E>) + Send + Sync>;

/// What crosses NATS: the event, who published it, and that node's counter.
#[derive(Deserialize)]
struct Envelope<E> {
    node: String,
    n: u64,
    event: E,
}

#[derive(Serialize)]
struct EnvelopeRef<'a, E> {
    node: &'a str,
    n: u64,
    event: &'a E,
}

pub struct NatsBus<E> {
    local: Sink<E>,
    queue: mpsc::Sender<(u64, Arc<E>)>,
    next: AtomicU64,
}

/// The bus could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {0}")]
pub struct NatsError(String);

impl<E> NatsBus<E>
where
    E: Routed + Serialize + DeserializeOwned,
{
    /// Connects to `url` and starts publishing and receiving on `subject`.
    pub async fn connect(
        url: &str,
        subject: &str,
        node: &str,
        local: Sink<E>,
    ) -> Result<Arc<Self>, NatsError> {
        let reconnected = {
            let local = local.clone();
            move |event: async_nats::Event| {
                let local = local.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS reconnected; local sockets resync");
                            local(Inbound::Lost);
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            }
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("confab {node}"))
            .retry_on_initial_connect()
            .event_callback(reconnected)
            .connect(url)
            .await
            .map_err(|e| NatsError(e.to_string()))?;
        let mut sub = client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| NatsError(e.to_string()))?;
        // With retry_on_initial_connect, connecting returns at once and this flush waits
        // for the server: bound it, so a node whose NATS is missing says so and stops.
        match tokio::time::timeout(std::time::Duration::from_secs(10), client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(NatsError(format!("{url} is not reachable: {e}"))),
            Err(_) => {
                return Err(NatsError(format!(
                    "{url} is not reachable (no answer in 10 s)"
                )))
            }
        }

        let (tx, mut rx) = mpsc::channel::<(u64, Arc<E>)>(65_536);
        let (pub_client, pub_subject, pub_node) =
            (client.clone(), subject.to_owned(), node.to_owned());
        tokio::spawn(async move {
            while let Some((n, event)) = rx.recv().await {
                let env = EnvelopeRef {
                    node: pub_node.as_str(),
                    n,
                    event: &*event,
                };
                match serde_json::to_vec(&env) {
                    Ok(bytes) => {
                        if let Err(e) = pub_client.publish(pub_subject.clone(), bytes.into()).await
                        {
                            // The others will see the counter skip and resync.
                            tracing::warn!(error = %e, "NATS publish failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not serialize a bus event"),
                }
            }
        });

        let (sub_local, me) = (local.clone(), node.to_owned());
        tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            while let Some(msg) = sub.next().await {
                let env: Envelope<E> = match serde_json::from_slice(&msg.payload) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable bus message");
                        continue;
                    }
                };
                if env.node == me {
                    continue;
                }
                if let Some(last) = seen.insert(env.node.clone(), env.n) {
                    if env.n != last + 1 {
                        tracing::warn!(node = %env.node, expected = last + 1, got = env.n, "bus messages lost; local sockets resync");
                        sub_local(Inbound::Lost);
                    }
                }
                sub_local(Inbound::Event(Arc::new(env.event)));
            }
            tracing::error!("NATS subscription ended");
        });
        Ok(Arc::new(Self {
            local,
            queue: tx,
            next: AtomicU64::new(1),
        }))
    }
}

impl<E: Routed> Bus<E> for NatsBus<E> {
    fn publish(&self, event: Arc<E>) {
        (self.local)(Inbound::Event(event.clone()));
        // The counter is taken even if the queue is full, so a drop here shows up at the
        // receivers as a skipped number.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if self.queue.try_send((n, event)).is_err() {
            tracing::warn!("bus queue full; other nodes will resync");
        }
    }
}
