//! What this build of kiln can talk to: the providers and the state backends (each behind the
//! root package's cargo feature of its name) the binary wires in. The engine names none of them.

use std::sync::Arc;

use kiln_core::ProviderRegistry;
use kiln_ops::Backends;

pub fn registry() -> ProviderRegistry {
    let mut r = ProviderRegistry::new();
    r.register(Arc::new(kiln_provider_builtin::BuiltinFactory));
    r.register(Arc::new(kiln_provider_local::LocalFactory));
    #[cfg(feature = "aws")]
    r.register(Arc::new(kiln_provider_aws::AwsFactory));
    #[cfg(feature = "onprem")]
    r.register(Arc::new(kiln_provider_onprem::OnpremFactory));
    #[cfg(feature = "slurm")]
    r.register(Arc::new(kiln_provider_slurm::SlurmFactory));
    r
}

/// The state backends: `local` always; `s3` and `postgres` with their features, else their
/// blocks are refused with a hint naming the feature.
pub fn backends() -> Backends {
    let mut b = Backends::new();
    b.register(Arc::new(kiln_state::LocalFactory));
    #[cfg(feature = "s3")]
    b.register(Arc::new(kiln_state_s3::S3Factory));
    #[cfg(not(feature = "s3"))]
    b.not_built("s3", "s3");
    #[cfg(feature = "postgres")]
    b.register(Arc::new(kiln_state_postgres::PgFactory));
    #[cfg(not(feature = "postgres"))]
    b.not_built("postgres", "postgres");
    b
}
