//! `telnyx-sms`: send assistant SMS from a shell script or a cron job, one or a batch.
//!
//! Built with `--features cli`. See `telnyx-sms --help` and the README's "Command line".
//!
//! `main.rs` holds the entry point and the dispatch to commands; `exit.rs` the exit codes;
//! `args.rs` the parsing every command shares; `send.rs` the `send` command; `batch.rs` the
//! `send-batch` command and `progress.rs` its progress line; `output.rs` every format the
//! tool prints; `logger.rs` the `-v` / `TELNYX_LOG` log lines; `signals.rs` SIGINT and
//! SIGTERM. The rules (validation, keys, duplicates, text made safe to print) are the
//! library's.

// Every write goes through output.rs, whose writes cannot panic; nothing else may panic either.
#![deny(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod args;
mod batch;
mod exit;
mod logger;
mod output;
mod progress;
mod send;
mod signals;

use std::process::ExitCode;
use std::time::Instant;

use args::{Arg, Args};
use output::Failure;

const HELP_HEAD: &str = "\
telnyx-sms: send SMS through a Telnyx AI assistant (Assistant SMS Chat)

USAGE:
    telnyx-sms send --assistant-id ID --from NUMBER --to NUMBER [OPTIONS]
    telnyx-sms send --assistant-id ID --request FILE|- [OPTIONS]
    telnyx-sms send-batch --assistant-id ID --input FILE|- [--from NUMBER] [OPTIONS]
    telnyx-sms help [send|send-batch] | --help | --version

Options go after the command. Each is given at most once, except --meta, --meta-int,
--meta-bool and -v (-v -v is -vv): a repeated option is an error, so an appended --to
cannot silently win.

";

const HELP_TAIL: &str = "
ENVIRONMENT:
    TELNYX_API_KEY            the API key (never pass it as a flag: it would show in ps)
    TELNYX_BASE_URL           the API base URL
    HTTPS_PROXY, ALL_PROXY, NO_PROXY
                              proxy settings, read as curl reads them
    SSL_CERT_FILE, SSL_CERT_DIR
                              certificates to trust instead of the built-in roots (a PEM
                              file; directories of *.pem / *.crt), as OpenSSL and curl
                              read them; --ca-file wins over both
    TELNYX_LOG                info is -v, debug is -vv (also: warn, error, off); -v wins
                              over it; another value is ignored, with a note on stderr

OUTPUT:
    On success the conversation id alone on stdout (an empty line if the server sent none),
    so id=$(telnyx-sms send ...) works. Errors go to stderr as one line; once a send was
    attempted, it names the 'idempotency key: KEY' and whether the SMS may have been sent.
    Only what provably was not performed is retried (see --retry-in-doubt); a re-run under
    the same key is replayed only by a server that honours keys, which this endpoint does
    not declare: --journal (send, send-batch) is what makes a re-run send nothing twice.
    Text from the server or echoed from arguments has control characters escaped; echoed
    arguments are cut at 200 characters, server text at 1,000. With --json every error is
    {\"error\": {kind, message, status, request_id, errors, violations, attempts,
    idempotency_key, may_have_been_sent, retry_after_seconds}} (null or empty where not
    applicable), with at most 100 errors and violations and strings cut at 2,000 characters;
    kind is usage, config, validation, api, transport, decode, output, or in_doubt (send
    --journal with a key the journal shows in doubt).

LOGGING (-v, -vv, TELNYX_LOG):
    The library's records go to stderr, one line each, before any error line:
      [  0.052s] info: retrying in 50ms (asked by the server in retry-after-ms): ...
    the seconds since the tool started, the level (debug: an attempt; info: a retry;
    warn: giving up), the message. With --json each is a JSON object
      {\"t\": 0.052, \"level\": \"info\", \"message\": ..., \"attempt\": 2, \"wait_ms\": 50, ...}
    with the record's fields (numbers as numbers). Records never hold the API key, the
    text, the phone numbers or the metadata. Without -v or TELNYX_LOG, none is printed.

EXIT CODES:
    0  sent (also if stdout could not be written afterwards: a note goes to stderr);
       send-batch: every line sent (a duplicate counts as sent)
    2  usage, configuration or validation error: nothing was sent (send-batch: an invalid
       line without --skip-invalid stops the whole batch before any send)
    3  the API answered with an error status (>= 400, or an unexpected 1xx or 3xx)
    4  transport failure (DNS, connect, TLS, timeout): the message says whether the SMS
       may have been sent
    4  (send --journal) the key is in doubt in the journal: not sent again (see
       --resend-in-doubt)
    5  send-batch ran, but some lines failed, are in doubt, or were skipped as invalid:
       the results say which (re-run the same command with the same journal to send what
       failed and was not sent: nothing sent or in doubt is sent again)
    130  stopped by SIGINT or SIGTERM: the sends in flight finished and were recorded;
       re-run the same command to send the rest
    1  anything else: an unreadable answer to an accepted request, or stdout could not be
       written for --help, --version or --dry-run (nothing was sent)
";

/// The whole help: every command, every option, the environment, output and exit codes.
fn help() -> String {
    [
        HELP_HEAD,
        send::HELP,
        "\n",
        batch::HELP,
        "\n",
        args::CLIENT_HELP,
        HELP_TAIL,
    ]
    .concat()
}

/// The commands, for `help COMMAND`, `COMMAND --help` and typos.
const COMMANDS: [&str; 2] = ["send", "send-batch"];

/// One command's help: its usage and its options only.
fn command_help(command: &str) -> String {
    let (what, usage, options) = match command {
        "send" => (
            "send one SMS through a Telnyx AI assistant",
            "    telnyx-sms send --assistant-id ID --from NUMBER --to NUMBER [OPTIONS]\n    \
             telnyx-sms send --assistant-id ID --request FILE|- [OPTIONS]\n",
            send::HELP,
        ),
        _ => (
            "send many SMS from a JSON Lines file, one result line per input line",
            "    telnyx-sms send-batch --assistant-id ID --input FILE|- [--from NUMBER] \
             [OPTIONS]\n",
            batch::HELP,
        ),
    };
    format!(
        "telnyx-sms {command}: {what}\n\nUSAGE:\n{usage}\n{options}\n{}\nThe environment \
         variables, output formats, logging and exit codes: telnyx-sms --help\n",
        args::CLIENT_HELP
    )
}

fn main() -> ExitCode {
    // The log lines' timestamps count from here.
    let started = Instant::now();
    // Until a command has parsed its options, `--json` anywhere makes usage errors JSON.
    // (`args_os`: `args` would panic on an argument that is not UTF-8.)
    let mut as_json = std::env::args_os().skip(1).any(|a| a == "--json");
    match run(started, &mut as_json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.print(as_json);
            ExitCode::from(f.code())
        }
    }
}

/// Dispatches to the command; `as_json` becomes exact once its options are parsed.
fn run(started: Instant, as_json: &mut bool) -> Result<(), Failure> {
    let mut args = Args::from_env();
    match args.next()? {
        None => Err(Failure::usage(
            "missing command: telnyx-sms send ... or telnyx-sms send-batch ...",
        )),
        Some(Arg::Flag(flag)) => match flag.as_str() {
            "--help" | "-h" => print_help(),
            "--version" | "-V" => {
                let line = format!("telnyx-sms {}\n", env!("CARGO_PKG_VERSION"));
                output::write_stdout(&line).map_err(Failure::stdout)
            }
            f if send::accepts(f) || batch::accepts(f) => Err(Failure::usage(
                match (send::accepts(f), batch::accepts(f)) {
                    (true, true) => format!(
                        "{f} is an option of 'send' and 'send-batch' and goes after the \
                         command: telnyx-sms send ... {f}"
                    ),
                    (true, false) => format!(
                        "{f} is an option of 'send' and goes after it: telnyx-sms send ... {f}"
                    ),
                    _ => format!(
                        "{f} is an option of 'send-batch' and goes after it: telnyx-sms \
                         send-batch ... {f}"
                    ),
                },
            )),
            f => Err(args::unknown_option(f, ["--help", "--version"])),
        },
        Some(Arg::Positional(cmd)) => match cmd.to_str() {
            Some("send") => match send::parse(&mut args)? {
                None => print(&command_help("send")),
                Some(a) => {
                    *as_json = a.client.json;
                    logger::init(started, a.client.verbose, a.client.json);
                    send::run(&a)
                }
            },
            Some("send-batch") => match batch::parse(&mut args)? {
                None => print(&command_help("send-batch")),
                Some(a) => {
                    *as_json = a.client.json;
                    logger::init(started, a.client.verbose, a.client.json);
                    batch::run(&a)
                }
            },
            Some("help") => match args.next()? {
                None => print_help(),
                Some(Arg::Positional(c)) => match c.to_str() {
                    Some(c) if COMMANDS.contains(&c) => print(&command_help(c)),
                    _ => Err(unknown_command(&c)),
                },
                Some(Arg::Flag(f)) => Err(Failure::usage(format!(
                    "unknown option '{}' for help: telnyx-sms help [send|send-batch]",
                    args::shown(&f)
                ))),
            },
            _ => Err(unknown_command(&cmd)),
        },
    }
}

fn unknown_command(cmd: &std::ffi::OsStr) -> Failure {
    let cmd = cmd.to_string_lossy();
    let hint = match args::closest(&cmd, COMMANDS) {
        Some(c) => format!("did you mean '{c}'?"),
        None => "the commands are 'send' and 'send-batch'".to_owned(),
    };
    Failure::usage(format!("unknown command '{}' ({hint})", args::shown(&cmd)))
}

fn print_help() -> Result<(), Failure> {
    print(&help())
}

/// Prints help text to stdout.
fn print(text: &str) -> Result<(), Failure> {
    output::write_stdout(text).map_err(Failure::stdout)
}
