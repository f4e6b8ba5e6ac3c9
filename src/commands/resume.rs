//! `kubectl rotate resume SECRET`: finish the Secret's unfinished run (one that a crash,
//! Ctrl-C, an API fault or `--no-rollback` left), from the step it stopped in. Safe to run
//! twice; its counterpart that undoes the run is `kubectl rotate rollback SECRET --run ID`.

use anyhow::Result;

use crate::cluster;
use crate::cluster::connect::ConnectionSettings;
use crate::engine::pipeline::{self, Continue, RunOptions};
use crate::ui::Printer;

pub async fn run(
    connection: &ConnectionSettings,
    secret: String,
    options: RunOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect::connect(connection).await?;
    pipeline::continue_run(&cluster, &secret, Continue::Finish, &options, printer).await
}
