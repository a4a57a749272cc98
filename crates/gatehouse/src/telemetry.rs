//! Logging through `tracing`: human-readable by default, JSON lines with
//! `GATEHOUSE_LOG_FORMAT=json`. Request logging itself lives in gatehouse-http.

use std::io::IsTerminal;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Where log lines go.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// The server's log stream.
    Stdout,
    /// For commands whose stdout is their result (`keys list --json`, `migrate`).
    Stderr,
}

pub fn init(config: &Config, output: Output) {
    // The filter was validated with the rest of the configuration.
    let filter =
        EnvFilter::try_new(&config.logging.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, terminal) = match output {
        Output::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        Output::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match config.logging.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).with_ansi(terminal).try_init(),
    };
}
