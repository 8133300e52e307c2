//! [`Dur`]: a duration field in config, parsed by [`crate::units::parse_duration`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::units::{human_duration, parse_duration};

/// A duration in config: one or more `<number><unit>` terms, units `us`, `ms`,
/// `s`, `m`, `h`, `d`. Fractions are allowed (`1.5s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Dur(pub(crate) Duration);

impl Dur {
    pub(crate) fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 500ms, 10s or 1m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// In the JSON Schema a duration is a string of `<number><unit>` terms (or
/// a `${VAR}` reference, interpolated before parsing).
impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": r"^\s*(([0-9]+(\.[0-9]*)?|\.[0-9]+)(us|µs|ms|s|m|h|d))+\s*$|\$\{",
            "description": "A duration: one or more <number><unit> terms, units us, ms, s, m, h, d (500ms, 1m30s, 1.5s)."
        })
    }
}
