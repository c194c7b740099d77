//! Helpers: a provider pointed at the shared moto server, configuration values filled the way
//! the engine fills them, the engine's plan → create/update sequence, and SDK clients for
//! checking results through the AWS API itself.

pub mod moto;

use std::time::Duration;

pub use kiln_provider::testing::*;
use kiln_provider_aws::{AwsProvider, Clients, Settings};

pub fn settings() -> Settings {
    Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(moto::server().endpoint()),
        static_credentials: Some(("test".into(), "test".into())),
        initial_backoff: Duration::from_millis(20),
        ..Settings::default()
    }
}

pub async fn provider() -> AwsProvider {
    AwsProvider::connect(settings()).await.expect("provider connects")
}

/// SDK clients for checking what exists, independent of the provider under test.
pub async fn aws() -> Clients {
    Clients::connect(&settings()).await.expect("clients")
}
