//! A secret setting (a root key, a token, an SMTP URL with its password):
//! read from a flag or its `CUSTOS_*` variable like any other, but never
//! shown — `Debug` and `--show-config` print `***`, `--help` does not print
//! its variable's value (`hide_env_values`), and it is zeroized on drop.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

/// See the module.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    /// The value, for the one place that uses it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(Zeroizing::new(s.to_owned())))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_secret_never_prints() {
        let s: super::Secret = "hunter2".parse().unwrap_or_else(|e| match e {});
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
