//! Entry point: parse the command line, run the verb, print any error once and choose the exit
//! code. Nothing else happens here, except one dispatch on argv[0]: run as
//! `kubectl_complete-rotate` (or with `__complete`), the binary is kubectl's completion helper.

use std::process::ExitCode;

use kubectl_rotate::cli::completion::{Completion, helper_words};
use kubectl_rotate::cli::invocation::{self, Invocation};
use kubectl_rotate::cli::settings::resolve_color;
use kubectl_rotate::model::environment::Environment;
use kubectl_rotate::ui::Printer;
use kubectl_rotate::ui::printer::ColorChoice;
use kubectl_rotate::{display_name, exit};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(words) = helper_words(&args) {
        return complete_for_kubectl(&words);
    }
    let name = display_name(args.first().map(|a| a.as_os_str()).unwrap_or_default());
    let env = Environment::from_process();

    let presets = kubectl_rotate::cli::command::load_presets(&args, &env);
    let command = kubectl_rotate::cli::command::command(&presets.presets).bin_name(name);
    let invocation = match command
        .try_get_matches_from(&args)
        .and_then(|m| invocation::parse(&m, &presets.presets))
    {
        Ok(invocation) => invocation,
        Err(err) => {
            // clap prints help and version to stdout and usage errors to stderr, kubectl-style.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };

    let color = match &invocation {
        Invocation::Verb(cli) => cli.global.color,
        Invocation::Preset { global, .. } => global.color,
    };
    let mut printer = Printer::stdio(resolve_color(color, &env), env.stderr_is_terminal);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            printer.error(&format!("cannot start the async runtime: {err}"));
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = match runtime.block_on(kubectl_rotate::run(
        invocation,
        &presets,
        &env,
        &mut printer,
    )) {
        Ok(code) => code,
        Err(err) => {
            printer.error(&kubectl_rotate::error_message(&err));
            kubectl_rotate::exit_code_of(&err)
        }
    };
    printer.flush();
    ExitCode::from(code)
}

/// kubectl's completion helper: candidates and a directive on stdout, exit 0, and nothing else,
/// whatever happens. kubectl shows the helper's stderr in the user's terminal, so nothing may
/// go there; on any failure the answer is the directive alone.
fn complete_for_kubectl(words: &[String]) -> ExitCode {
    std::panic::set_hook(Box::new(|_| {}));
    let env = Environment::from_process();
    let lines = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let lines = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(
                    kubectl_rotate::cli::completion::scripts::complete_for_kubectl(words, &env),
                )
            }))
            .unwrap_or_else(|_| Completion::nothing().protocol_lines());
            // A look-up cut off by the time bound may still hold a thread: do not wait for it.
            runtime.shutdown_background();
            lines
        }
        Err(_) => Completion::nothing().protocol_lines(),
    };
    let mut printer = Printer::stdio(ColorChoice::default(), false);
    for line in lines {
        printer.line(&line);
    }
    printer.flush();
    ExitCode::SUCCESS
}
