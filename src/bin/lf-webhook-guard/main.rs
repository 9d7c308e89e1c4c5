//! `lf-webhook-guard`: sign, verify, explain and diagnose Linksfield notifications with the same
//! core as the filter, and check plugin / Envoy configurations.
//!
//! Exit status: 0 success/accepted; 2 usage or input error; `verify`: 10.. per rejection
//! category (`Reason::exit_code`), 3 not a protected route; `diagnose`: 1 no variant matches,
//! 3 only variants the filter cannot be configured for; `check-config`: 1 problems found.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

mod check_config;
mod diagnose;
mod explain;
mod input;
mod sign;
mod verify;

use input::CliError;

#[derive(Parser)]
#[command(
    name = "lf-webhook-guard",
    version,
    about = "Sign, verify, explain and diagnose Linksfield webhook notifications",
    after_help = "Exit status: 0 ok/accepted, 2 usage or input error; see each subcommand's --help."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the signature header value for a notification body (`x-lf-md5`, or with
    /// `--scheme cube` the `x-lf-signature`), all headers (--headers), or a curl command (--curl).
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard sign --secret-env LF_WEBHOOK_SECRET --body notification.json\n  \
        echo -n 'sim_id=8986&text_message=hi' | lf-webhook-guard sign --secret s3cret --body -\n  \
        lf-webhook-guard sign --scheme cube --key-id Ou8a5lyzPjN86ikmLeFC --secret-env LF_CUBE_KEY --timestamp 12345648444 --body n.json --headers\n  \
        lf-webhook-guard sign --secret-env LF_WEBHOOK_SECRET --body n.json --curl http://127.0.0.1:10000/linksfield/sms | sh")]
    Sign(sign::SignArgs),
    /// Print the verdict the filter would give for a captured request.
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard verify --request captured.http --config envoy/lf-webhook-guard.json\n  \
        lf-webhook-guard verify --request captured.http --secret-env LF_WEBHOOK_SECRET\n  \
        lf-webhook-guard verify -H 'content-type: application/json' -H \"x-lf-md5: $SIG\" --body n.json --secret-env LF_WEBHOOK_SECRET --json\n\n\
        Exit status: 0 accepted; 10 missing_signature, 11 invalid_signature, 12 malformed_body,\n\
        13 unsupported_media_type, 14 method_not_allowed, 15 body_too_large, 16 partner_not_allowed,\n\
        17 stale_notification, 18 internal_error; 3 no protected route matches the path; 2 usage or input error.")]
    Verify(verify::VerifyArgs),
    /// Print the exact text the filter signs for a body (secret redacted) and every
    /// canonicalisation decision that applied.
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard explain --body notification.json\n  \
        lf-webhook-guard explain --body body.txt --content-type form --skip-empty\n  \
        lf-webhook-guard explain --request captured.http --config envoy/lf-webhook-guard.json --json\n\n\
        Exit status: 0; the verify exit code of the rejection when the filter rejects the body; 2 usage or input error.")]
    Explain(explain::ExplainArgs),
    /// Find which variant of the signing rules a genuine request was signed with, and the filter
    /// configuration that accepts it.
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard diagnose --request rejected.http --secret-env LF_WEBHOOK_SECRET\n  \
        lf-webhook-guard diagnose --request cube.http --secret-env LF_CUBE_KEY --key-id Ou8a5lyzPjN86ikmLeFC --json\n\n\
        Exit status: 0 a variant matches that the filter accepts (as configured or with the printed option);\n\
        3 only variants the filter cannot be configured for; 1 no variant matches (wrong key?); 2 usage or input error.")]
    Diagnose(diagnose::DiagnoseArgs),
    /// Validate a plugin configuration (JSON) or every lf_webhook_guard filter in an Envoy YAML.
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard check-config envoy/lf-webhook-guard.json\n  \
        lf-webhook-guard check-config envoy/envoy.yaml --no-env --json\n\n\
        Exit status: 0 no problem; 1 problems found (each with its field path); 2 usage or input error.")]
    CheckConfig(check_config::CheckConfigArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard completions bash > /etc/bash_completion.d/lf-webhook-guard\n  \
        lf-webhook-guard completions zsh > \"${fpath[1]}/_lf-webhook-guard\"\n  \
        lf-webhook-guard completions fish > ~/.config/fish/completions/lf-webhook-guard.fish")]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Sign(args) => sign::run(args).map(|()| 0),
        Command::Verify(args) => verify::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lf-webhook-guard", &mut out);
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| CliError::new(format!("cannot write output: {e}")))?;
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lf-webhook-guard: error: {}", e.message);
            if let Some(hint) = e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}
