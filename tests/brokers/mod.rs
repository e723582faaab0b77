//! The brokers the bus tests run on: a bus under a fresh prefix, and its removal.
#![cfg(any(feature = "redis", feature = "nats"))]
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use eventcore::bus::{Broker, EventBus};

/// A broker transport.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "nats")]
    Nats,
}

impl Transport {
    /// The variable holding the broker's URL.
    pub fn url_var(self) -> &'static str {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => "EVENTCORE_REDIS_URL",
            #[cfg(feature = "nats")]
            Self::Nats => "EVENTCORE_NATS_URL",
        }
    }

    /// The broker's URL from its variable; `None` (the test is skipped) when it is unset.
    pub fn url(self) -> Option<String> {
        eventcore_testing::service_url(self.url_var())
    }

    /// A fresh prefix for one test's streams, keys and consumers.
    pub fn fresh_prefix() -> String {
        format!("test-{}", eventcore::uuid::Uuid::now_v7().simple())
    }

    /// A bus with `partitions` partitions under `prefix`, polling briefly when idle.
    pub async fn bus(self, url: &str, prefix: &str, partitions: u32) -> EventBus<Broker> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => {
                let options = eventcore::bus::RedisOptions::default()
                    .prefix(prefix)
                    .partitions(partitions)
                    .block(Duration::from_millis(20));
                EventBus::redis_with(url, options).await.unwrap()
            }
            #[cfg(feature = "nats")]
            Self::Nats => {
                let options = eventcore::bus::NatsOptions::default()
                    .prefix(prefix)
                    .partitions(partitions)
                    .fetch_wait(Duration::from_millis(100));
                EventBus::nats_with(url, options).await.unwrap()
            }
        }
    }

    /// Removes everything the bus under `prefix` left on the broker.
    pub async fn cleanup(self, url: &str, prefix: &str) {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => {
                use redis::AsyncCommands;
                let client = redis::Client::open(url).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
                if !keys.is_empty() {
                    let _: () = connection.del(keys).await.unwrap();
                }
            }
            #[cfg(feature = "nats")]
            Self::Nats => {
                let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
                let name = prefix.to_uppercase();
                jetstream.delete_stream(&name).await.unwrap();
                jetstream
                    .delete_key_value(format!("{name}_letters"))
                    .await
                    .unwrap();
            }
        }
    }
}
