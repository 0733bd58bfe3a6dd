//! The six families the soak drives, and what tells their operations'
//! states apart.

use serde_json::Value;

/// A family of the app's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    DataApi,
    Typesense,
    Mixpeek,
    Timescale,
    Sanity,
    Qovery,
}

/// Every family, in the order the soak starts them.
pub const ALL: [Family; 6] = [
    Family::DataApi,
    Family::Typesense,
    Family::Mixpeek,
    Family::Timescale,
    Family::Sanity,
    Family::Qovery,
];

impl Family {
    /// Its place in [`ALL`] (per-family arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::DataApi => "data-api",
            Family::Typesense => "typesense",
            Family::Mixpeek => "mixpeek",
            Family::Timescale => "timescale",
            Family::Sanity => "sanity",
            Family::Qovery => "qovery",
        }
    }

    /// The route label of its status read (the per-route table's key).
    pub fn status_route(self) -> &'static str {
        match self {
            Family::DataApi => "GET data operations/{id}",
            Family::Typesense => "GET typesense cloning-operations/{id}",
            Family::Mixpeek => "GET mixpeek tasks/{id}",
            Family::Timescale => "GET timescale services/{id}",
            Family::Sanity => "GET sanity jobs/{id}",
            Family::Qovery => "GET qovery database/{id}/status",
        }
    }

    /// An operation's state in its status read.
    pub fn state_of(self, v: &Value) -> String {
        let k = match self {
            Family::DataApi | Family::Typesense | Family::Mixpeek | Family::Timescale => "status",
            Family::Sanity | Family::Qovery => "state",
        };
        v[k].as_str().unwrap_or("?").to_string()
    }

    /// Whether `state` is one its operations end in.
    pub fn is_terminal(self, state: &str) -> bool {
        let ends: &[&str] = match self {
            Family::DataApi | Family::Typesense => &["succeeded", "failed", "canceled"],
            Family::Mixpeek => &["COMPLETED", "FAILED", "CANCELED"],
            Family::Timescale => &["READY", "UNSTABLE", "DELETED", "ERROR"],
            Family::Sanity => &["completed", "failed"],
            Family::Qovery => &["DEPLOYED", "DEPLOYMENT_ERROR"],
        };
        ends.contains(&state)
    }
}
