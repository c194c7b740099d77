//! What the optimizer is asked: the request and its placement constraints ([`Need`]), and what
//! it chooses among ([`Candidate`]).

use kiln_catalog::matching::model_of;
use kiln_provider::offerings::Offering;
use kiln_provider::portable::accelerators::Model;
use kiln_provider::portable::request::Request;
use kiln_value::Decimal;

/// Which market to price a machine in (`spot = false | true | "auto"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpotMode {
    /// On-demand prices only (`spot = false`, the default).
    #[default]
    Never,
    /// Spot prices only (`spot = true`): an offering without a spot price is left out.
    Always,
    /// Spot where a spot price is known, else on-demand; per offering the cheaper of the two,
    /// spot on a tie (`spot = "auto"`).
    Auto,
}

impl std::fmt::Display for SpotMode {
    /// As the configuration writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpotMode::Never => "spot = false",
            SpotMode::Always => "spot = true",
            SpotMode::Auto => "spot = \"auto\"",
        })
    }
}

/// Where a job's data lives, so that moving it to each candidate is priced (data gravity).
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// What names it in the configuration (`bucket.corpus`), for notes.
    pub name: String,
    pub origin: Origin,
    pub size_gb: Decimal,
}

/// Where data leaves from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A cloud (`aws`) and its region (`None` where it has none): moves out of it are priced
    /// by the egress table ([`kiln_catalog::egress`]); a cloud the table lacks is unknown.
    Cloud { cloud: String, region: Option<String> },
    /// Owned hardware (or a provider that publishes no place) of this provider instance
    /// (`onprem`): free to that provider's own machines; elsewhere unknown, since kiln knows no
    /// price for leaving it.
    Owned { provider: String },
    /// The machine running kiln (the `local` provider): free to every candidate, as clouds
    /// charge nothing to receive data and kiln knows no price for this machine's own network;
    /// the decision's notes say so.
    ThisMachine,
}

impl std::fmt::Display for Origin {
    /// `aws us-east-1`, `onprem`, `this machine`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Cloud { cloud, region: Some(r) } => write!(f, "{cloud} {r}"),
            Origin::Cloud { cloud, region: None } => f.write_str(cloud),
            Origin::Owned { provider } => f.write_str(provider),
            Origin::ThisMachine => f.write_str("this machine"),
        }
    }
}

/// One placement question: a request for `nodes` machines and where they may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    /// What each node needs (`accelerators`, `cpus`, `memory`).
    pub request: Request,
    /// How many machines (at least 1).
    pub nodes: u64,
    pub spot: SpotMode,
    /// The most one node may cost per hour, USD, in the market it is priced in.
    pub max_price: Option<Decimal>,
    /// The provider instances allowed (`aws`, `aws.west`, `onprem`; a cloud's name, `lambda`,
    /// admits every instance of that cloud); `None`: every candidate.
    pub providers: Option<Vec<String>>,
    /// `providers` is a preference order: an offering of an earlier provider wins over any of
    /// a later one, whatever the prices; the price decides within one provider.
    pub prefer_order: bool,
    /// The regions allowed; `None`: any. An offering without a region (RunPod's rows, owned
    /// hardware) is in every region.
    pub regions: Option<Vec<String>>,
    /// Instance types, regions, clouds or provider keys to leave out.
    pub exclude: Vec<String>,
    /// The data the jobs on it read, each moved once to the chosen offering (their egress is
    /// summed); empty: no data to move.
    pub data: Vec<Data>,
    /// Offerings a restart leaves (`recovery.strategy`: the offering, or the region, spot took
    /// a job's capacity back in); empty for a plan's own decisions.
    pub avoid: Vec<Avoid>,
}

/// An offering, or every offering of a region, that a restart leaves: each given part must
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avoid {
    pub provider: Option<String>,
    pub instance_type: Option<String>,
    pub region: Option<String>,
}

impl Avoid {
    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        let o = c.offering;
        self.provider.as_deref().is_none_or(|p| p == c.provider)
            && self.instance_type.as_ref().is_none_or(|t| *t == o.instance_type)
            && self.region.as_ref().is_none_or(|r| o.region.as_ref() == Some(r))
    }
}

impl std::fmt::Display for Avoid {
    /// `g4dn.xlarge in us-east-2 (aws.ohio)`, `us-east-2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            self.instance_type.clone(),
            self.region.as_ref().map(|r| if self.instance_type.is_some() { format!("in {r}") } else { r.clone() }),
            self.provider.as_ref().map(|p| format!("({p})")),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(" "))
    }
}

impl Need {
    /// One node of `request`, on-demand, anywhere, no limit.
    pub fn new(request: Request) -> Need {
        Need {
            request,
            nodes: 1,
            spot: SpotMode::Never,
            max_price: None,
            providers: None,
            prefer_order: false,
            regions: None,
            exclude: Vec::new(),
            data: Vec::new(),
            avoid: Vec::new(),
        }
    }
}

/// One offering a configured provider instance can launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The provider instance key (`aws`, `aws.west`, `onprem`). Never `local`: the local
    /// provider is not a placement candidate.
    pub provider: &'a str,
    pub offering: &'a Offering,
    /// The row's entry in the accelerator table ([`model_of`]), read once per row: a caller
    /// deciding many requests over the same rows keeps it with them ([`Candidate::new`]).
    pub model: Option<&'static Model>,
}

impl<'a> Candidate<'a> {
    /// `offering` of provider instance `provider`, its accelerator read from the table.
    pub fn new(provider: &'a str, offering: &'a Offering) -> Self {
        Candidate { provider, offering, model: model_of(offering) }
    }
}
