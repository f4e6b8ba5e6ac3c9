//! The pure part of the downtime benchmark: what one request's outcome was, per-second counts,
//! the longest failure window and the printed table. Unit-tested below (`cargo test --bench
//! downtime`, which `cargo test` runs too).

use std::collections::BTreeMap;

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer, read to the end.
    Ok(u16),
    /// Any other status.
    Status(u16),
    /// No answer within the request timeout (connect included).
    Timeout,
    /// The connection or the exchange failed (refused, reset, closed early...).
    Error(String),
    /// The Endpoints object listed no ready address when the request was due.
    NoEndpoint,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// A short label for the failure breakdown.
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok(code) => format!("HTTP {code}"),
            Outcome::Status(code) => format!("HTTP {code}"),
            Outcome::Timeout => "timeout".to_string(),
            Outcome::Error(what) => what.clone(),
            Outcome::NoEndpoint => "no ready endpoint".to_string(),
        }
    }
}

/// One request: when it was due, in milliseconds from the start of the procedure (negative
/// before it), and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    pub outcome: Outcome,
}

/// Successful and failed requests due within one second `[second, second + 1)` (seconds from
/// the start of the procedure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub second: i64,
    pub ok: usize,
    pub failed: usize,
}

/// The second a sample falls in (floor, also for negative times).
fn second_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(1000)
}

/// One bucket for every second of `[from, to)` (seconds), empty ones included, so that panels
/// share their x axis; samples outside the range are left out.
pub fn per_second(samples: &[Sample], from: i64, to: i64) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = (from..to)
        .map(|second| Bucket {
            second,
            ok: 0,
            failed: 0,
        })
        .collect();
    for sample in samples {
        let second = second_of(sample.at_ms);
        if second < from || second >= to {
            continue;
        }
        let bucket = &mut buckets[(second - from) as usize];
        if sample.outcome.is_ok() {
            bucket.ok += 1;
        } else {
            bucket.failed += 1;
        }
    }
    buckets
}

/// The whole seconds (from the start of the procedure) the chart shows, as `[from, to)`, from
/// each round's (load started, load stopped) in seconds: from when every round had load (the
/// partial first second left out) to when the longest one stopped, so a long procedure is shown
/// whole; a shorter round's bars end where its load stopped.
pub fn chart_seconds(loads: &[(f64, f64)]) -> (i64, i64) {
    let from = loads.iter().map(|l| l.0.ceil() as i64).max().unwrap_or(0);
    let to = loads.iter().map(|l| l.1.floor() as i64).max().unwrap_or(0);
    (from, to.max(from))
}

/// The longest time during which every request failed, in milliseconds: for each run of
/// consecutive failed requests (in the order they were due), from the first failure of the run
/// to the next successful request (or to the last failure of the run when none followed).
/// 0 when nothing failed; a lone failure between two successes counts as the gap to the next
/// request (1/rate).
pub fn longest_failure_window_ms(samples: &[Sample]) -> i64 {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at_ms);
    let mut longest = 0;
    let mut run_start: Option<i64> = None;
    let mut last_failure = 0;
    for sample in sorted {
        match (sample.outcome.is_ok(), run_start) {
            (false, None) => {
                run_start = Some(sample.at_ms);
                last_failure = sample.at_ms;
            }
            (false, Some(_)) => last_failure = sample.at_ms,
            (true, Some(start)) => {
                longest = longest.max(sample.at_ms - start);
                run_start = None;
            }
            (true, None) => {}
        }
    }
    if let Some(start) = run_start {
        longest = longest.max(last_failure - start);
    }
    longest
}

/// How many requests failed, by kind, most frequent first.
pub fn failure_kinds(samples: &[Sample]) -> Vec<(String, usize)> {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for sample in samples.iter().filter(|s| !s.outcome.is_ok()) {
        *kinds.entry(sample.outcome.label()).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
}

/// One run of a procedure under load: its requests and its wall time.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    pub samples: Vec<Sample>,
    pub wall_s: f64,
}

/// One line of the printed table: a procedure over its rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub secret: String,
    pub procedure: String,
    pub requests: usize,
    pub failed: usize,
    /// The longest of the rounds' failure windows.
    pub longest_window_ms: i64,
    /// Each round's wall time.
    pub wall_s: Vec<f64>,
}

impl Row {
    pub fn new(secret: &str, procedure: &str, rounds: &[Round]) -> Row {
        let all = rounds.iter().flat_map(|r| &r.samples);
        Row {
            secret: secret.to_string(),
            procedure: procedure.to_string(),
            requests: all.clone().count(),
            failed: all.filter(|s| !s.outcome.is_ok()).count(),
            longest_window_ms: rounds
                .iter()
                .map(|r| longest_failure_window_ms(&r.samples))
                .max()
                .unwrap_or(0),
            wall_s: rounds.iter().map(|r| r.wall_s).collect(),
        }
    }
}

/// `median [min-max]` with one decimal, or the one value.
pub fn spread(xs: &[f64]) -> String {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.as_slice() {
        [] => "-".to_string(),
        [one] => format!("{one:.1}"),
        [lo, .., hi] => format!("{:.1} [{lo:.1}-{hi:.1}]", sorted[(sorted.len() - 1) / 2]),
    }
}

const HEADER: [&str; 6] = [
    "secret",
    "procedure",
    "requests",
    "failed",
    "longest failure window (ms)",
    "procedure wall time (s)",
];

/// The rows as a Markdown table with padded columns (text left, numbers right), readable on a
/// terminal and pasted as is into the README.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.secret.clone(),
                r.procedure.clone(),
                r.requests.to_string(),
                r.failed.to_string(),
                r.longest_window_ms.to_string(),
                spread(&r.wall_s),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric = |column: usize| column >= 2;
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths[i];
                if numeric(i) {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&HEADER.map(String::from));
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &width)| {
            let dashes = "-".repeat(width + 1);
            if numeric(i) {
                format!("{dashes}:")
            } else {
                format!("{dashes}-")
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for cells in &cells {
        out.push_str(&line(cells));
    }
    out
}

pub fn tests() -> Vec<(&'static str, fn())> {
    vec![
        (
            "figures::buckets_count_per_second",
            buckets_count_per_second,
        ),
        (
            "figures::buckets_cover_empty_seconds_and_drop_outside",
            buckets_cover_empty_seconds_and_drop_outside,
        ),
        (
            "figures::chart_seconds_are_whole_and_reach_the_longest_round",
            chart_seconds_are_whole_and_reach_the_longest_round,
        ),
        ("figures::no_failure_no_window", no_failure_no_window),
        (
            "figures::window_runs_from_first_failure_to_next_success",
            window_runs_from_first_failure_to_next_success,
        ),
        (
            "figures::window_follows_the_order_requests_were_due",
            window_follows_the_order_requests_were_due,
        ),
        (
            "figures::window_open_at_the_end_ends_at_the_last_failure",
            window_open_at_the_end_ends_at_the_last_failure,
        ),
        (
            "figures::kinds_are_counted_most_frequent_first",
            kinds_are_counted_most_frequent_first,
        ),
        ("figures::row_counts", row_counts),
        (
            "figures::spread_is_median_and_range",
            spread_is_median_and_range,
        ),
        (
            "figures::table_is_aligned_markdown",
            table_is_aligned_markdown,
        ),
    ]
}

fn ok(at_ms: i64) -> Sample {
    Sample {
        at_ms,
        outcome: Outcome::Ok(200),
    }
}

fn fail(at_ms: i64, outcome: Outcome) -> Sample {
    Sample { at_ms, outcome }
}

fn buckets_count_per_second() {
    let samples = [
        ok(-1000),
        fail(-1, Outcome::Timeout),
        ok(0),
        ok(999),
        fail(1000, Outcome::Status(503)),
        ok(1500),
    ];
    let buckets = per_second(&samples, -1, 2);
    let expected = [(-1, 1, 1), (0, 2, 0), (1, 1, 1)];
    let got: Vec<(i64, usize, usize)> =
        buckets.iter().map(|b| (b.second, b.ok, b.failed)).collect();
    assert_eq!(got, expected);
}

fn buckets_cover_empty_seconds_and_drop_outside() {
    let samples = [ok(-5000), ok(2500), ok(9000)];
    let buckets = per_second(&samples, -2, 4);
    assert_eq!(buckets.len(), 6);
    assert_eq!(buckets[0].second, -2);
    let total: usize = buckets.iter().map(|b| b.ok + b.failed).sum();
    assert_eq!(total, 1, "only the sample at 2.5 s is inside [-2, 4)");
    assert_eq!(buckets[4].ok, 1);
    assert!(per_second(&[], 0, 0).is_empty());
}

fn chart_seconds_are_whole_and_reach_the_longest_round() {
    assert_eq!(chart_seconds(&[(-5.02, 7.4), (-5.001, 6.9)]), (-5, 7));
    assert_eq!(chart_seconds(&[(-5.0, 7.4), (-5.0, 35.2)]), (-5, 35));
    assert_eq!(chart_seconds(&[(-4.0, 8.0)]), (-4, 8));
    assert_eq!(chart_seconds(&[(0.5, 0.7)]), (1, 1), "nothing whole: empty");
    assert_eq!(chart_seconds(&[]), (0, 0));
}

fn no_failure_no_window() {
    assert_eq!(longest_failure_window_ms(&[ok(0), ok(50), ok(100)]), 0);
    assert_eq!(longest_failure_window_ms(&[]), 0);
}

fn window_runs_from_first_failure_to_next_success() {
    let samples = [
        ok(0),
        fail(50, Outcome::NoEndpoint),
        ok(100),
        fail(1000, Outcome::Error("connect: connection refused".into())),
        fail(1050, Outcome::Timeout),
        fail(1100, Outcome::Status(503)),
        ok(1150),
        ok(1200),
    ];
    assert_eq!(longest_failure_window_ms(&samples), 150);
    // A lone failure: the gap to the next request.
    assert_eq!(longest_failure_window_ms(&samples[..3]), 50);
}

fn window_follows_the_order_requests_were_due() {
    // Recorded in completion order: the timeout finished last but was due first.
    let samples = [
        ok(100),
        ok(150),
        fail(0, Outcome::Timeout),
        fail(50, Outcome::Timeout),
    ];
    assert_eq!(longest_failure_window_ms(&samples), 100);
}

fn window_open_at_the_end_ends_at_the_last_failure() {
    let samples = [
        ok(0),
        fail(50, Outcome::Timeout),
        fail(400, Outcome::Timeout),
    ];
    assert_eq!(longest_failure_window_ms(&samples), 350);
    assert_eq!(longest_failure_window_ms(&[fail(10, Outcome::Timeout)]), 0);
}

fn kinds_are_counted_most_frequent_first() {
    let samples = [
        ok(0),
        fail(1, Outcome::Timeout),
        fail(2, Outcome::NoEndpoint),
        fail(3, Outcome::NoEndpoint),
        fail(4, Outcome::Status(503)),
    ];
    let kinds = failure_kinds(&samples);
    let expected = [("no ready endpoint", 2), ("HTTP 503", 1), ("timeout", 1)];
    let got: Vec<(&str, usize)> = kinds.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(got, expected);
}

fn row_counts() {
    let rounds = [
        Round {
            samples: vec![ok(0), fail(50, Outcome::Timeout), ok(100), ok(150)],
            wall_s: 3.25,
        },
        Round {
            // Times overlap the first round's: each round's window is its own.
            samples: vec![fail(0, Outcome::NoEndpoint), ok(100), ok(150)],
            wall_s: 1.5,
        },
    ];
    let row = Row::new("openai-api-key", "plugin", &rounds);
    assert_eq!(
        (row.requests, row.failed, row.longest_window_ms),
        (7, 2, 100)
    );
    assert_eq!(row.wall_s, [3.25, 1.5]);
    let none = Row::new("openai-api-key", "plugin", &[]);
    assert_eq!(
        (none.requests, none.failed, none.longest_window_ms),
        (0, 0, 0)
    );
}

fn spread_is_median_and_range() {
    assert_eq!(spread(&[2.34]), "2.3");
    assert_eq!(spread(&[2.3, 0.5, 1.44]), "1.4 [0.5-2.3]");
    // An even count takes the lower middle value.
    assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), "2.0 [1.0-4.0]");
    assert_eq!(spread(&[]), "-");
}

fn table_is_aligned_markdown() {
    let rows = [
        Row {
            secret: "openai-api-key".into(),
            procedure: "runbook (kubectl)".into(),
            requests: 412,
            failed: 3,
            longest_window_ms: 150,
            wall_s: vec![7.04],
        },
        Row {
            secret: "openai-api-key".into(),
            procedure: "kubectl rotate openai".into(),
            requests: 398,
            failed: 0,
            longest_window_ms: 0,
            wall_s: vec![6.96, 2.3, 0.5],
        },
    ];
    let text = table(&rows);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("| secret         | procedure             | requests |"));
    assert!(lines[1].starts_with("|----------------|-----------------------|---------:|"));
    assert!(
        lines[2].ends_with("|      3 |                         150 |                     7.0 |")
    );
    assert!(lines[3].contains("| kubectl rotate openai |      398 |"));
    assert!(lines[3].ends_with("|           2.3 [0.5-7.0] |"), "{text}");
    let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{text}");
}
