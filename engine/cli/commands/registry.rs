//! What this build of kiln can talk to: the providers (each behind the root package's cargo
//! feature) the binary wires in.

use std::sync::Arc;

use kiln_core::ProviderRegistry;

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
