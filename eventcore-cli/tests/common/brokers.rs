//! The broker buses the tool reaches with `--redis URL` / `--nats URL`: their URLs from the
//! environment, a bus under a prefix of its own, the tool's arguments for it, and its removal.

use std::time::Duration;

use eventcore::bus::{Broker as Bus, EventBus, NatsOptions, RedisOptions};

/// Partitions of the tests' buses.
pub const PARTITIONS: u32 = 2;

/// A broker the tool can reach.
#[derive(Debug, Clone, Copy)]
pub enum Broker {
    Redis,
    Nats,
}

impl Broker {
    /// Its name as the tool prints it (`redis`, `nats`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }

    /// Its URL, or `None` (the test is skipped) when its variable is unset.
    pub fn url(self) -> Option<String> {
        eventcore_testing::service_url(match self {
            Self::Redis => "EVENTCORE_REDIS_URL",
            Self::Nats => "EVENTCORE_NATS_URL",
        })
    }

    /// The tool's arguments for the bus at `url` under `prefix`.
    pub fn cli_args(self, url: &str, prefix: &str) -> Vec<String> {
        let mut args = vec![format!("--{}", self.name()), url.to_owned()];
        args.extend(["--bus-prefix".to_owned(), prefix.to_owned()]);
        if let Self::Redis = self {
            // NATS finds its partitions itself.
            args.extend(["--partitions".to_owned(), PARTITIONS.to_string()]);
        }
        args
    }

    /// The bus at `url` under `prefix`, with short waits for tests.
    pub async fn bus(self, url: &str, prefix: &str) -> EventBus<Bus> {
        match self {
            Self::Redis => {
                let options = RedisOptions::default()
                    .prefix(prefix)
                    .partitions(PARTITIONS)
                    .block(Duration::from_millis(50));
                EventBus::redis_with(url, options).await.unwrap()
            }
            Self::Nats => {
                let options = NatsOptions::default()
                    .prefix(prefix)
                    .partitions(PARTITIONS)
                    .fetch_wait(Duration::from_millis(100));
                EventBus::nats_with(url, options).await.unwrap()
            }
        }
    }

    /// Removes what the bus under `prefix` left on the broker.
    pub async fn cleanup(self, url: &str, prefix: &str) {
        match self {
            Self::Redis => {
                use redis::AsyncCommands;
                let client = redis::Client::open(url).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
                if !keys.is_empty() {
                    let _: () = connection.del(keys).await.unwrap();
                }
            }
            Self::Nats => {
                let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
                let name = prefix.to_uppercase();
                let _ = jetstream.delete_stream(&name).await;
                let _ = jetstream.delete_key_value(format!("{name}_letters")).await;
            }
        }
    }
}
