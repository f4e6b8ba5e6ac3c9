//! Plain-text tables in kubectl's style: upper-case headers, columns padded with three spaces,
//! no borders. Pure.

/// Renders `rows` under `headers`, each column as wide as its widest cell.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let last = i + 1 == row.len();
                line.push_str(cell);
                if !last {
                    let pad = widths[i] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_with_three_spaces_between() {
        let lines = render(
            &["NAME", "AGE"],
            &[
                vec!["a".into(), "1s".into()],
                vec!["longer".into(), "2s".into()],
            ],
        );
        assert_eq!(lines, ["NAME     AGE", "a        1s", "longer   2s"]);
    }
}
