//! What the log says and how: the `tracing` filter and the output format. The subscriber
//! itself is set up in `crate::telemetry`.

use clap::Args;

use super::redact::Entry;
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log format: pretty or json.
    #[arg(
        long,
        env = "GATEHOUSE_LOG_FORMAT",
        global = true,
        default_value = "pretty"
    )]
    log_format: String,
    /// Log filter, in tracing's EnvFilter syntax (e.g. info, debug, info,gatehouse=debug).
    #[arg(
        long,
        env = "GATEHOUSE_LOG",
        global = true,
        default_value = "info,sqlx=warn"
    )]
    log: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The validated logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A filter `EnvFilter` accepts.
    pub filter: String,
}

impl LogSettings {
    pub(super) fn from_args(args: &LoggingArgs) -> Result<Self, ConfigError> {
        let format = match args.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "GATEHOUSE_LOG_FORMAT",
                    "log-format",
                    format!("{other:?} is not a log format; use pretty or json"),
                ))
            }
        };
        tracing_subscriber::EnvFilter::try_new(&args.log).map_err(|e| {
            err(
                "GATEHOUSE_LOG",
                "log",
                format!("{:?} is not a log filter: {e}", args.log),
            )
        })?;
        Ok(Self {
            format,
            filter: args.log.clone(),
        })
    }

    pub(super) fn redacted_entries(&self) -> Vec<Entry> {
        vec![
            (
                "GATEHOUSE_LOG_FORMAT",
                match self.format {
                    LogFormat::Pretty => "pretty",
                    LogFormat::Json => "json",
                }
                .to_owned(),
            ),
            ("GATEHOUSE_LOG", self.filter.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;
    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn the_defaults_are_those_of_the_product_spec() {
        let logging = parse(&[]).unwrap().logging;
        assert_eq!(logging.format, LogFormat::Pretty);
        assert_eq!(logging.filter, "info,sqlx=warn");
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--log-format", "xml"], "GATEHOUSE_LOG_FORMAT"),
            (&["--log", "gatehouse=loud"], "GATEHOUSE_LOG"),
        ]);
    }
}
