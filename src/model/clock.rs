//! The clock: timestamps as records and backups write them, run ids, and durations as a
//! person typed them.

use std::time::Duration;

/// Now, to the millisecond (UTC), as backups record their creation so that two taken within
/// one second keep their order.
pub fn now_rfc3339_millis() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Now, in the RFC 3339 form records use (UTC, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A run id: UTC time to the second plus 16 random bits, lower-case so it fits object names.
pub fn new_rotation_id() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 2];
    let _ = rand::rngs::OsRng.try_fill_bytes(&mut bytes);
    format!(
        "{}-{:02x}{:02x}",
        jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"),
        bytes[0],
        bytes[1]
    )
}

pub fn humanize(duration: Duration) -> String {
    let ms = duration.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms >= 60_000 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_flag_the_user_typed() {
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
        assert_eq!(humanize(Duration::from_secs(300)), "5m");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
    }
}
