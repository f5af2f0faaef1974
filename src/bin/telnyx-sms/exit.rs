//! The exit codes, as `--help` and the README document them.

/// Anything else: an unreadable answer to an accepted request; stdout not writable for
/// `--help`, `--version` or `--dry-run`.
pub const OTHER: u8 = 1;
/// Usage, configuration or validation error: nothing was sent.
pub const USAGE: u8 = 2;
/// The API refused it.
pub const API: u8 = 3;
/// Transport failure.
pub const TRANSPORT: u8 = 4;
/// `send-batch` ran, but some lines failed or were skipped as invalid.
pub const BATCH: u8 = 5;
/// Stopped by SIGINT or SIGTERM: 128 + SIGINT, as shells report an interrupted command.
pub const SIGNAL: u8 = 130;
