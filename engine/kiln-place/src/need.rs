//! What the optimizer is asked: the request and its placement constraints ([`Need`]), and what
//! it chooses among ([`Candidate`]).

use kiln_provider::offerings::Offering;
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
    /// The bucket's cloud (`aws`), or its owned provider's name.
    pub cloud: String,
    /// The bucket's region; `None` where it has none.
    pub region: Option<String>,
    pub size_gb: Decimal,
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
    /// Where the data is, to price moving it; `None`: no data to move.
    pub data: Option<Data>,
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
            data: None,
        }
    }
}

/// One offering a configured provider instance can launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The provider instance key (`aws`, `aws.west`, `onprem`). Never `local`: the local
    /// provider is not a placement candidate.
    pub provider: String,
    pub offering: &'a Offering,
}
