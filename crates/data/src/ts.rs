//! Reader for the UEA/UCR `.ts` format (as written by sktime and the UEA & UCR archive).
//!
//! # Format
//! Header lines start with `@` (keywords are case-insensitive): `@problemName NAME`,
//! `@timeStamps true|false`, `@missing true|false`, `@univariate true|false`, `@dimensions N`,
//! `@equalLength true|false`, `@seriesLength N`, `@classLabel true L1 L2 ...` or
//! `@classLabel false`, then `@data`. After `@data`, one case per line: each dimension's values
//! comma-separated, dimensions separated by `:`, and, when `@classLabel true`, the class label
//! after the final `:`. Lines starting with `#` are comments; blank lines are skipped anywhere.
//!
//! # Policies
//! - `@classLabel` is required (without it a line's last field is ambiguous). Labels map to
//!   indices in the order the header declares them.
//! - Missing values (`?`, `NaN`) are rejected: widen trains on complete data, and a silent fill
//!   would change the problem. `@missing true` is accepted as a header but any missing value in
//!   the data is still an error.
//! - `@timeStamps true` is rejected as not supported.
//! - Lengths: with `@equalLength true` every series must have `@seriesLength` values (or, without
//!   it, the first series' length). Otherwise lengths may differ between cases and dimensions and
//!   [`LengthPolicy`] decides; its default is [`LengthPolicy::Error`], because padding or cropping
//!   changes what a model sees and should be the caller's explicit choice. `@seriesLength` is
//!   ignored unless `@equalLength true`.
//! - Dimension count: from `@dimensions`, else `1` under `@univariate true`, else the first case;
//!   every case must match.
//!
//! Every error carries the origin and the 1-based line number (see [`DataError`]).

use std::path::Path;

use super::{DataError, Dataset};

/// What to do when series lengths differ (between cases, or between a case's dimensions).
///
/// The default is [`LengthPolicy::Error`]: padding and cropping both change the data a model
/// sees, so the caller chooses them explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthPolicy {
    /// Reject data whose lengths differ ([`DataError::UnequalLengths`], at the first differing
    /// case). Equal-length data passes unchanged.
    #[default]
    Error,
    /// Zero-pad every series at the end: to the longest series (`None`) or to the given length.
    /// A series longer than the given length is an error ([`DataError::TooLong`]) rather than
    /// silently cropped; `Some(0)` is an error ([`DataError::Policy`]).
    PadTo(Option<usize>),
    /// Keep the first `shortest` values of every series, dropping the tails.
    Crop,
}

/// BasicMotions' training split, embedded so the study runs without file access.
const BASIC_MOTIONS_TRAIN: &str = include_str!("../data/BasicMotions/BasicMotions_TRAIN.ts");
/// BasicMotions' test split.
const BASIC_MOTIONS_TEST: &str = include_str!("../data/BasicMotions/BasicMotions_TEST.ts");

/// The UEA BasicMotions data (6 channels: accelerometer x, y, z then gyroscope x, y, z; length
/// 100; classes Standing, Running, Walking, Badminton), as `(train, test)` with 40 cases each.
///
/// Parsed from copies embedded at compile time (see `data/BasicMotions/README.md` for the source
/// and licence), so it needs no file access; an error here would mean the embedded copy is damaged.
pub fn basic_motions() -> Result<(Dataset, Dataset), DataError> {
    let train = parse_ts(
        BASIC_MOTIONS_TRAIN,
        "BasicMotions_TRAIN.ts (embedded)",
        LengthPolicy::Error,
    )?;
    let test = parse_ts(
        BASIC_MOTIONS_TEST,
        "BasicMotions_TEST.ts (embedded)",
        LengthPolicy::Error,
    )?;
    Ok((train, test))
}

/// Reads a `.ts` file; see the [module documentation](self) for the format and policies.
///
/// `policy` applies when lengths differ ([`LengthPolicy::Error`], the default, rejects such
/// data). Errors name the path and the 1-based line.
pub fn read_ts(path: &Path, policy: LengthPolicy) -> Result<Dataset, DataError> {
    let origin = path.display().to_string();
    // The text, plus its values: each takes at least two bytes of text (`1,`) and four as f32.
    let bytes = widen_guard::read_bounded(path, "the .ts file", 3).map_err(|e| match e {
        widen_guard::InputError::Budget(b) => DataError::Budget(b),
        widen_guard::InputError::Io { source, .. } => DataError::Io {
            path: origin.clone(),
            source,
        },
        other => DataError::Io {
            path: origin.clone(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Io {
        path: origin.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({})", e.utf8_error()),
        ),
    })?;
    parse_ts(&text, &origin, policy)
}

/// Parses `.ts` text; `origin` names it in errors (a path, or a name for embedded text).
///
/// See the [module documentation](self) for the format and policies; `policy` applies when
/// lengths differ ([`LengthPolicy::Error`], the default, rejects such data). The result is
/// labelled when the header says `@classLabel true` (indices in the declared order) and
/// unlabelled (empty `labels` and `class_names`) under `@classLabel false`.
pub fn parse_ts(text: &str, origin: &str, policy: LengthPolicy) -> Result<Dataset, DataError> {
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not part of the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Each case and each of its series costs bookkeeping beyond its values (a `Case`, a `Vec`
    // per series): a file of tiny lines costs many times its size, so count them first.
    let pieces = text.bytes().filter(|&b| b == b'\n' || b == b':').count();
    widen_guard::budget().check(
        &format!("parsing {origin} ({} lines and series)", pieces),
        (pieces as u128).saturating_mul(96),
    )?;
    if policy == LengthPolicy::PadTo(Some(0)) {
        return Err(DataError::Policy {
            expected: "a padded length of at least 1".to_string(),
            found: format!("{policy:?}"),
        });
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));

    let mut header = Header::default();
    let mut data_line = None;
    for (n, line) in lines.by_ref() {
        if !line.starts_with('@') {
            return Err(DataError::MissingData {
                origin: origin.to_string(),
                line: n,
                found: "a case".to_string(),
            });
        }
        if header.read_line(origin, n, line)? {
            data_line = Some(n);
            break;
        }
    }
    let Some(data_line) = data_line else {
        return Err(DataError::MissingData {
            origin: origin.to_string(),
            line: text.lines().count().max(1),
            found: "the end of the input".to_string(),
        });
    };
    let Some(labelled) = header.labelled else {
        return Err(header_error(
            origin,
            data_line,
            "`@classLabel true LABELS...` or `@classLabel false` before `@data`",
            "@data",
        ));
    };

    let mut dims: Option<(usize, String)> = match (header.dimensions, header.univariate) {
        (Some(d), _) => Some((d, "@dimensions".to_string())),
        (None, Some(true)) => Some((1, "@univariate true".to_string())),
        (None, _) => None,
    };
    let equal_length = header.equal_length == Some(true);
    let mut series_length: Option<(usize, String)> = if equal_length {
        header
            .series_length
            .map(|l| (l, "@seriesLength".to_string()))
    } else {
        None
    };

    let labels = Labels::new(&header.labels);
    let mut cases = Vec::new();
    for (n, line) in lines {
        if line.starts_with('@') {
            return Err(header_error(
                origin,
                n,
                "a case (headers end at `@data`)",
                snippet(line),
            ));
        }
        let case = parse_case(origin, n, line, labelled, &labels, &mut dims)?;
        if equal_length {
            for (d, values) in case.values.iter().enumerate() {
                let (expected, from) = series_length.get_or_insert_with(|| {
                    (
                        values.len(),
                        "the first case (@equalLength true)".to_string(),
                    )
                });
                if values.len() != *expected {
                    return Err(DataError::Length {
                        origin: origin.to_string(),
                        line: n,
                        dimension: d + 1,
                        expected: *expected,
                        expected_from: from.clone(),
                        found: values.len(),
                    });
                }
            }
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(DataError::NoCases {
            origin: origin.to_string(),
            line: data_line,
        });
    }
    assemble(origin, cases, header.labels, labelled, policy)
}

/// The headers seen so far; `None` means "not given".
#[derive(Debug, Default)]
struct Header {
    problem_name: Option<String>,
    timestamps: Option<bool>,
    missing: Option<bool>,
    univariate: Option<bool>,
    dimensions: Option<usize>,
    equal_length: Option<bool>,
    series_length: Option<usize>,
    labelled: Option<bool>,
    labels: Vec<String>,
}

const KNOWN_HEADERS: &str = "a known header (@problemName, @timeStamps, @missing, @univariate, \
                             @dimensions, @equalLength, @seriesLength, @classLabel, @data)";

impl Header {
    /// Reads one `@` line; `Ok(true)` at `@data`.
    fn read_line(&mut self, origin: &str, n: usize, line: &str) -> Result<bool, DataError> {
        let mut tokens = line.split_whitespace();
        let keyword = tokens.next().unwrap_or_default();
        let rest: Vec<&str> = tokens.collect();
        let err = |expected: &str, found: &str| header_error(origin, n, expected, found);
        match keyword.to_ascii_lowercase().as_str() {
            "@problemname" => {
                if rest.is_empty() {
                    return Err(err("a problem name after @problemName", line));
                }
                set_once(&mut self.problem_name, rest.join(" "), || {
                    err("a single @problemName", line)
                })?;
            }
            "@timestamps" => {
                let value = one_bool(&rest, || err("@timeStamps true|false", line))?;
                if value {
                    return Err(DataError::Unsupported {
                        origin: origin.to_string(),
                        line: n,
                        feature: "`@timeStamps true`".to_string(),
                        expected: "`@timeStamps false` (series of plain values)".to_string(),
                    });
                }
                set_once(&mut self.timestamps, value, || {
                    err("a single @timeStamps", line)
                })?;
            }
            "@missing" => {
                let value = one_bool(&rest, || err("@missing true|false", line))?;
                set_once(&mut self.missing, value, || err("a single @missing", line))?;
            }
            "@univariate" => {
                let value = one_bool(&rest, || err("@univariate true|false", line))?;
                if value && self.dimensions.is_some_and(|d| d != 1) {
                    return Err(err("@univariate true only with @dimensions 1", line));
                }
                set_once(&mut self.univariate, value, || {
                    err("a single @univariate", line)
                })?;
            }
            "@dimensions" => {
                let value = one_count(&rest, || err("@dimensions N with N ≥ 1", line))?;
                if self.univariate == Some(true) && value != 1 {
                    return Err(err("@dimensions 1 after @univariate true", line));
                }
                set_once(&mut self.dimensions, value, || {
                    err("a single @dimensions", line)
                })?;
            }
            "@equallength" => {
                let value = one_bool(&rest, || err("@equalLength true|false", line))?;
                set_once(&mut self.equal_length, value, || {
                    err("a single @equalLength", line)
                })?;
            }
            "@serieslength" => {
                let value = one_count(&rest, || err("@seriesLength N with N ≥ 1", line))?;
                set_once(&mut self.series_length, value, || {
                    err("a single @seriesLength", line)
                })?;
            }
            "@classlabel" => {
                let expected =
                    "@classLabel true LABEL... (at least one label) or @classLabel false";
                let (first, labels) = rest.split_first().ok_or_else(|| err(expected, line))?;
                let value = parse_bool(first).ok_or_else(|| err(expected, line))?;
                if value == labels.is_empty() {
                    return Err(err(expected, line));
                }
                // A set, not a scan per label: a header may declare many labels.
                let mut seen = std::collections::HashSet::with_capacity(labels.len());
                if let Some(label) = labels.iter().find(|l| !seen.insert(**l)) {
                    return Err(err("distinct class labels", label));
                }
                set_once(&mut self.labelled, value, || {
                    err("a single @classLabel", line)
                })?;
                self.labels = labels.iter().map(|l| (*l).to_string()).collect();
            }
            "@data" => {
                if !rest.is_empty() {
                    return Err(err("@data alone on its line", line));
                }
                return Ok(true);
            }
            _ => return Err(err(KNOWN_HEADERS, keyword)),
        }
        Ok(false)
    }
}

fn header_error(origin: &str, line: usize, expected: &str, found: &str) -> DataError {
    DataError::Header {
        origin: origin.to_string(),
        line,
        expected: expected.to_string(),
        found: snippet(found).to_string(),
    }
}

/// The start of a long line, so error messages stay readable.
fn snippet(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: impl FnOnce() -> DataError,
) -> Result<(), DataError> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_bool(token: &str) -> Option<bool> {
    if token.eq_ignore_ascii_case("true") {
        Some(true)
    } else if token.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn one_bool(rest: &[&str], err: impl FnOnce() -> DataError) -> Result<bool, DataError> {
    match rest {
        [token] => parse_bool(token).ok_or_else(err),
        _ => Err(err()),
    }
}

fn one_count(rest: &[&str], err: impl FnOnce() -> DataError) -> Result<usize, DataError> {
    match rest {
        [token] => token
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(err),
        _ => Err(err()),
    }
}

/// The declared labels with an index from name to position, so each case's label is found in
/// constant time whatever the number of classes.
struct Labels<'a> {
    declared: &'a [String],
    index: std::collections::HashMap<&'a str, usize>,
}

impl<'a> Labels<'a> {
    fn new(declared: &'a [String]) -> Self {
        let index = declared
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        Self { declared, index }
    }
}

/// One parsed data line.
#[derive(Debug)]
struct Case {
    line: usize,
    values: Vec<Vec<f32>>,
    label: Option<usize>,
}

/// Parses one data line. `dims` is the dimension count in force and where it came from; the first
/// case sets it when no header did.
fn parse_case(
    origin: &str,
    n: usize,
    line: &str,
    labelled: bool,
    declared: &Labels<'_>,
    dims: &mut Option<(usize, String)>,
) -> Result<Case, DataError> {
    let mut parts: Vec<&str> = line.split(':').map(str::trim).collect();
    let missing_label = |found: &str| DataError::MissingLabel {
        origin: origin.to_string(),
        line: n,
        found: found.to_string(),
    };
    let label = if labelled {
        // A line with no `:` at all is a lone series without its label.
        if parts.len() == 1 {
            return Err(missing_label("only a series"));
        }
        // Exactly the expected number of fields means the last one is a series, not a label.
        let only_series = dims.as_ref().is_some_and(|(d, _)| parts.len() == *d);
        let text = parts.pop().unwrap_or_default();
        if text.is_empty() {
            return Err(missing_label("nothing"));
        }
        match declared.index.get(text) {
            Some(&index) => Some(index),
            // A comma (or a field count that leaves no room for a label) means a series sits
            // where the label should be: the label is missing, not merely misspelt.
            None if only_series || text.contains(',') => {
                return Err(missing_label(&format!("`{}` (a series)", snippet(text))));
            }
            None => {
                return Err(DataError::UndeclaredLabel {
                    origin: origin.to_string(),
                    line: n,
                    found: snippet(text).to_string(),
                    declared: declared
                        .declared
                        .iter()
                        .take(20)
                        .cloned()
                        .chain(
                            (declared.declared.len() > 20)
                                .then(|| format!("… {} more", declared.declared.len() - 20)),
                        )
                        .collect(),
                });
            }
        }
    } else {
        None
    };
    let (expected, from) = dims.get_or_insert_with(|| (parts.len(), "the first case".to_string()));
    if parts.len() != *expected {
        return Err(DataError::Dimensions {
            origin: origin.to_string(),
            line: n,
            expected: *expected,
            expected_from: from.clone(),
            found: parts.len(),
        });
    }
    let mut values = Vec::with_capacity(parts.len());
    for (d, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(DataError::EmptySeries {
                origin: origin.to_string(),
                line: n,
                dimension: d + 1,
            });
        }
        let series = part
            .split(',')
            .enumerate()
            .map(|(p, token)| parse_value(origin, n, d + 1, p + 1, token.trim()))
            .collect::<Result<Vec<f32>, DataError>>()?;
        values.push(series);
    }
    Ok(Case {
        line: n,
        values,
        label,
    })
}

fn parse_value(
    origin: &str,
    line: usize,
    dimension: usize,
    position: usize,
    token: &str,
) -> Result<f32, DataError> {
    if token == "?" || token.eq_ignore_ascii_case("nan") {
        return Err(DataError::MissingValue {
            origin: origin.to_string(),
            line,
            dimension,
            position,
            found: token.to_string(),
        });
    }
    match token.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(DataError::NotNumeric {
            origin: origin.to_string(),
            line,
            dimension,
            position,
            found: snippet(token).to_string(),
        }),
    }
}

/// Applies the length policy and flattens the cases into a [`Dataset`].
fn assemble(
    origin: &str,
    cases: Vec<Case>,
    labels: Vec<String>,
    labelled: bool,
    policy: LengthPolicy,
) -> Result<Dataset, DataError> {
    let series_of = || {
        cases.iter().flat_map(|c| {
            c.values
                .iter()
                .enumerate()
                .map(move |(d, v)| (c.line, d + 1, v.len()))
        })
    };
    let first = series_of().next().map_or(0, |(_, _, len)| len);
    let length = match policy {
        LengthPolicy::Error => {
            if let Some((line, dimension, found)) = series_of().find(|&(_, _, l)| l != first) {
                return Err(DataError::UnequalLengths {
                    origin: origin.to_string(),
                    line,
                    dimension,
                    expected: first,
                    found,
                });
            }
            first
        }
        LengthPolicy::PadTo(None) => series_of().map(|(_, _, l)| l).max().unwrap_or(first),
        LengthPolicy::PadTo(Some(limit)) => {
            if let Some((line, dimension, found)) = series_of().find(|&(_, _, l)| l > limit) {
                return Err(DataError::TooLong {
                    origin: origin.to_string(),
                    line,
                    dimension,
                    limit,
                    found,
                });
            }
            limit
        }
        LengthPolicy::Crop => series_of().map(|(_, _, l)| l).min().unwrap_or(first),
    };
    let channels = cases.first().map_or(0, |c| c.values.len());
    let total = widen_guard::budget().check_elements(
        &format!(
            "{origin}: the dataset [{} cases, {channels} channels, length {length}]",
            cases.len()
        ),
        &[cases.len(), channels, length],
        4,
    )?;
    let mut series = Vec::with_capacity(total);
    let mut case_labels = Vec::with_capacity(if labelled { cases.len() } else { 0 });
    for case in &cases {
        for values in &case.values {
            let kept = values.len().min(length);
            series.extend_from_slice(&values[..kept]);
            series.extend(std::iter::repeat_n(0.0, length - kept));
        }
        if let Some(label) = case.label {
            case_labels.push(label);
        }
    }
    Dataset::new(series, cases.len(), channels, length, case_labels, labels)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const HEADER: &str = "@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n\
                          @dimensions 2\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n";
    // HEADER occupies lines 1-9; cases start on line 10.

    fn parse(text: &str) -> Result<Dataset, DataError> {
        parse_ts(text, "toy.ts", LengthPolicy::Error)
    }

    fn toy(cases: &str) -> String {
        format!("{HEADER}{cases}")
    }

    #[test]
    fn basic_motions_parses_exactly() {
        let (train, test) = basic_motions().unwrap();
        let names = ["Standing", "Running", "Walking", "Badminton"];
        for split in [&train, &test] {
            assert_eq!(split.shape(), [40, 6, 100]);
            assert_eq!(split.series.len(), 40 * 6 * 100);
            assert_eq!(split.labels.len(), 40);
            assert_eq!(split.class_names, names);
            assert_eq!(split.class_counts(), vec![10, 10, 10, 10]);
            assert!(split.series.iter().all(|v| v.is_finite()));
        }
        assert_eq!(train.cases + test.cases, 80);
    }

    #[test]
    fn basic_motions_values_match_raw_text() {
        let (train, test) = basic_motions().unwrap();
        for (raw, parsed) in [(BASIC_MOTIONS_TRAIN, &train), (BASIC_MOTIONS_TEST, &test)] {
            // Independently of the reader: the first line after `@data`.
            let first_case = raw
                .split('\n')
                .skip_while(|l| !l.trim().eq_ignore_ascii_case("@data"))
                .nth(1)
                .unwrap()
                .trim();
            let dims: Vec<&str> = first_case.split(':').collect();
            assert_eq!(dims.len(), 7);
            let first: f32 = dims[0].split(',').next().unwrap().parse().unwrap();
            assert_eq!(parsed.series[0].to_bits(), first.to_bits());
            let last: f32 = dims[5].split(',').next_back().unwrap().parse().unwrap();
            assert_eq!(parsed.series[6 * 100 - 1].to_bits(), last.to_bits());
            let label = parsed.labels[0];
            assert_eq!(parsed.class_names[label], dims[6]);
        }
    }

    #[test]
    fn parses_a_toy_file_with_comments_blank_lines_and_crlf() {
        let text = "# comment\r\n@ProblemName Toy\r\n@CLASSLABEL True b a\r\n\r\n@data\r\n\
                    1,2:3,4:a\r\n# between\r\n\r\n 5 , 6 : 7,8 : b \r\n";
        let d = parse(text).unwrap();
        assert_eq!(d.shape(), [2, 2, 2]);
        assert_eq!(d.series, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        // Declared order: b = 0, a = 1.
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.class_names, vec!["b", "a"]);
    }

    #[test]
    fn unlabelled_files_give_no_labels() {
        let d = parse("@classLabel false\n@data\n1,2:3,4\n5,6:7,8\n").unwrap();
        assert_eq!(d.shape(), [2, 2, 2]);
        assert!(d.labels.is_empty());
        assert!(d.class_names.is_empty());
    }

    #[test]
    fn bad_headers_are_rejected_with_their_line() {
        for (text, line) in [
            (
                "@problemName T\n@colour blue\n@classLabel false\n@data\n1\n",
                2,
            ),
            ("@univariate maybe\n@classLabel false\n@data\n1\n", 1),
            ("# c\n@dimensions two\n@classLabel false\n@data\n1\n", 2),
            ("@dimensions 0\n@classLabel false\n@data\n1\n", 1),
            ("@classLabel true\n@data\n1:a\n", 1),
            ("@classLabel false a\n@data\n1\n", 1),
            ("@classLabel true a a\n@data\n1:a\n", 1),
            (
                "@seriesLength 3\n@seriesLength 3\n@classLabel false\n@data\n1\n",
                2,
            ),
            (
                "@univariate true\n@dimensions 2\n@classLabel false\n@data\n1\n",
                2,
            ),
            // @classLabel is required: reported at @data.
            ("@problemName T\n\n@data\n1\n", 3),
            // A header after @data.
            ("@classLabel false\n@data\n1\n@dimensions 1\n", 4),
        ] {
            match parse(text) {
                Err(DataError::Header { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: expected a header error, got {other:?}"),
            }
        }
    }

    #[test]
    fn timestamps_are_not_supported() {
        let err =
            parse("@problemName T\n@timeStamps true\n@classLabel false\n@data\n").unwrap_err();
        assert!(
            matches!(err, DataError::Unsupported { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("not supported"));
    }

    #[test]
    fn missing_data_line() {
        // A case before @data: reported at the case.
        let err = parse("@classLabel true a\n1,2:a\n").unwrap_err();
        assert!(
            matches!(err, DataError::MissingData { line: 2, .. }),
            "{err:?}"
        );
        // No @data at all: reported at the last line.
        let err = parse("@problemName T\n@classLabel true a\n# end\n").unwrap_err();
        assert!(
            matches!(err, DataError::MissingData { line: 3, .. }),
            "{err:?}"
        );
        assert!(matches!(
            parse(""),
            Err(DataError::MissingData { line: 1, .. })
        ));
    }

    #[test]
    fn empty_data_is_rejected_at_the_data_line() {
        let err = parse(&toy("\n# nothing\n")).unwrap_err();
        assert!(matches!(err, DataError::NoCases { line: 9, .. }), "{err:?}");
    }

    #[test]
    fn wrong_dimension_count() {
        // Against @dimensions 2.
        let err = parse(&toy("1,2,3:4,5,6:a\n1,2,3:4,5,6:7,8,9:b\n")).unwrap_err();
        match err {
            DataError::Dimensions {
                line,
                expected,
                found,
                ref expected_from,
                ..
            } => {
                assert_eq!((line, expected, found), (11, 2, 3));
                assert_eq!(expected_from, "@dimensions");
            }
            other => panic!("{other:?}"),
        }
        // Against the first case when no header says.
        let text = "@classLabel true a\n@data\n1:2:3:a\n\n1:2:a\n";
        match parse(text).unwrap_err() {
            DataError::Dimensions {
                line,
                expected,
                found,
                ..
            } => assert_eq!((line, expected, found), (5, 3, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_numeric_value() {
        let err = parse(&toy("1,2,3:4,5,6:a\n1,2,3:4,x5,6:b\n")).unwrap_err();
        match err {
            DataError::NotNumeric {
                line,
                dimension,
                position,
                ref found,
                ..
            } => {
                assert_eq!((line, dimension, position), (11, 2, 2));
                assert_eq!(found, "x5");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&toy("1,inf,3:4,5,6:a\n")),
            Err(DataError::NotNumeric { line: 10, .. })
        ));
        assert!(matches!(
            parse(&toy("1,2,3::a\n")),
            Err(DataError::EmptySeries {
                line: 10,
                dimension: 2,
                ..
            })
        ));
    }

    #[test]
    fn missing_values_are_rejected() {
        for marker in ["?", "NaN", "nan"] {
            let err = parse(&toy(&format!("1,2,3:4,5,6:a\n1,2,{marker}:4,5,6:b\n"))).unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::MissingValue {
                        line: 11,
                        dimension: 1,
                        position: 3,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains("complete data"));
        }
    }

    #[test]
    fn missing_label() {
        for (cases, line) in [("1,2,3:4,5,6:a\n1,2,3:4,5,6\n", 11), ("1,2,3:4,5,6:\n", 10)] {
            let err = parse(&toy(cases)).unwrap_err();
            match err {
                DataError::MissingLabel { line: l, .. } => assert_eq!(l, line, "{cases:?}"),
                other => panic!("{cases:?}: {other:?}"),
            }
        }
        // Without @dimensions, the first case's missing label shows as a series in its place.
        let err = parse("@classLabel true a\n@data\n1,2:3,4\n").unwrap_err();
        assert!(
            matches!(err, DataError::MissingLabel { line: 3, .. }),
            "{err:?}"
        );
        let err = parse("@classLabel true a\n@data\n1,2\n").unwrap_err();
        assert!(
            matches!(err, DataError::MissingLabel { line: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn undeclared_label() {
        let err = parse(&toy("1,2,3:4,5,6:a\n\n1,2,3:4,5,6:c\n")).unwrap_err();
        match &err {
            DataError::UndeclaredLabel {
                line,
                found,
                declared,
                ..
            } => {
                assert_eq!(*line, 12);
                assert_eq!(found, "c");
                assert_eq!(declared, &["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(message.starts_with("toy.ts:12:"), "{message}");
    }

    #[test]
    fn wrong_length_under_equal_length() {
        // Against @seriesLength 3.
        match parse(&toy("1,2,3:4,5,6:a\n1,2,3:4,5:b\n")).unwrap_err() {
            DataError::Length {
                line,
                dimension,
                expected,
                found,
                ref expected_from,
                ..
            } => {
                assert_eq!((line, dimension, expected, found), (11, 2, 3, 2));
                assert_eq!(expected_from, "@seriesLength");
            }
            other => panic!("{other:?}"),
        }
        // Against the first case when @seriesLength is absent.
        let text = "@equalLength true\n@classLabel false\n@data\n1,2\n1,2,3\n";
        assert!(matches!(
            parse(text),
            Err(DataError::Length {
                line: 5,
                expected: 2,
                found: 3,
                ..
            })
        ));
    }

    const UNEQUAL: &str = "@equalLength false\n@classLabel true a b\n@data\n\
                           1,2,3:4,5,6:a\n1,2:3,4:b\n1,2,3,4:5,6,7,8:a\n";

    #[test]
    fn unequal_lengths_error_policy() {
        match parse_ts(UNEQUAL, "u.ts", LengthPolicy::default()).unwrap_err() {
            DataError::UnequalLengths {
                line,
                dimension,
                expected,
                found,
                ..
            } => assert_eq!((line, dimension, expected, found), (5, 1, 3, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unequal_lengths_pad_to_longest() {
        let d = parse_ts(UNEQUAL, "u.ts", LengthPolicy::PadTo(None)).unwrap();
        assert_eq!(d.shape(), [3, 2, 4]);
        assert_eq!(&d.series[..8], &[1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0]);
        assert_eq!(&d.series[8..16], &[1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(&d.series[16..], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(d.labels, vec![0, 1, 0]);
    }

    #[test]
    fn unequal_lengths_pad_to_given() {
        let d = parse_ts(UNEQUAL, "u.ts", LengthPolicy::PadTo(Some(6))).unwrap();
        assert_eq!(d.shape(), [3, 2, 6]);
        assert_eq!(&d.series[..6], &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
        assert!(matches!(
            parse_ts(UNEQUAL, "u.ts", LengthPolicy::PadTo(Some(3))),
            Err(DataError::TooLong {
                line: 6,
                dimension: 1,
                limit: 3,
                found: 4,
                ..
            })
        ));
        assert!(matches!(
            parse_ts(UNEQUAL, "u.ts", LengthPolicy::PadTo(Some(0))),
            Err(DataError::Policy { .. })
        ));
    }

    #[test]
    fn unequal_lengths_crop_to_shortest() {
        let d = parse_ts(UNEQUAL, "u.ts", LengthPolicy::Crop).unwrap();
        assert_eq!(d.shape(), [3, 2, 2]);
        assert_eq!(
            d.series,
            vec![1.0, 2.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0]
        );
    }

    #[test]
    fn equal_lengths_pass_every_policy() {
        let text = toy("1,2,3:4,5,6:a\n7,8,9:1,2,3:b\n");
        for policy in [
            LengthPolicy::Error,
            LengthPolicy::PadTo(None),
            LengthPolicy::Crop,
        ] {
            assert_eq!(parse_ts(&text, "t", policy).unwrap().shape(), [2, 2, 3]);
        }
    }

    #[test]
    fn read_ts_reads_files_and_names_them_in_errors() {
        let dir = std::env::temp_dir().join(format!("widen-ts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.ts");
        std::fs::write(&good, toy("1,2,3:4,5,6:a\n")).unwrap();
        assert_eq!(
            read_ts(&good, LengthPolicy::Error).unwrap().shape(),
            [1, 2, 3]
        );
        let bad = dir.join("bad.ts");
        std::fs::write(&bad, toy("1,2,3:4,5,6:z\n")).unwrap();
        let message = read_ts(&bad, LengthPolicy::Error).unwrap_err().to_string();
        assert!(message.contains("bad.ts:10:"), "{message}");
        let absent = dir.join("absent.ts");
        assert!(matches!(
            read_ts(&absent, LengthPolicy::Error),
            Err(DataError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let plain = parse(&toy("1,2,3:4,5,6:a\n")).unwrap();
        let bom = parse(&format!("\u{feff}{}", toy("1,2,3:4,5,6:a\n"))).unwrap();
        assert_eq!(plain, bom);
    }

    /// 100 000 declared labels: a per-label scan of the earlier ones would take ~5·10⁹ string
    /// comparisons; a set takes 10⁵. Every case still finds its own label's index.
    #[test]
    fn many_declared_labels_parse_and_index_correctly() {
        let labels: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let mut text = format!(
            "@problemName Many\n@univariate true\n@equalLength true\n@classLabel true {}\n@data\n",
            labels.join(" ")
        );
        for i in (0..100_000).step_by(997) {
            text.push_str(&format!("{i},1,2:c{i}\n"));
        }
        let d = parse(&text).unwrap();
        assert_eq!(d.class_names.len(), 100_000);
        for (case, &label) in d.labels.iter().enumerate() {
            assert_eq!(label, case * 997);
            assert_eq!(d.series[case * 3], (case * 997) as f32);
        }
        let dup = text.replacen(" c5 ", " c4 ", 1);
        assert!(matches!(parse(&dup), Err(DataError::Header { .. })));
    }

    /// A test file declaring the labels in another order scores against the training file's
    /// classes by name.
    #[test]
    fn labels_are_matched_by_name_across_files() {
        let train = parse(&toy("1,2,3:4,5,6:a\n7,8,9:1,2,3:b\n")).unwrap();
        let other = toy("1,2,3:4,5,6:b\n7,8,9:1,2,3:a\n")
            .replace("@classLabel true a b", "@classLabel true b a");
        let test = parse(&other).unwrap();
        assert_eq!(
            test.labels,
            vec![0, 1],
            "indices in the test file's own order"
        );
        let mapped = test
            .clone()
            .relabel_to(&train.class_names, "test.ts")
            .unwrap();
        assert_eq!(
            mapped.labels,
            vec![1, 0],
            "b is train's class 1, a its class 0"
        );
        assert_eq!(mapped.class_names, train.class_names);
        let unknown = toy("1,2,3:4,5,6:c\n").replace("@classLabel true a b", "@classLabel true c");
        let err = parse(&unknown)
            .unwrap()
            .relabel_to(&train.class_names, "test.ts")
            .unwrap_err();
        assert!(err.to_string().contains("`c` (used by 1 case(s))"), "{err}");
    }
}
