//! The driver: argument parsing, the per-target child processes, the case loop with its
//! oracles, findings on disk and the summary.
//!
//! Each target runs in a child process (the same test binary with `--child`), because two
//! oracles end a process: an allocation over the cap aborts (the allocator may not unwind),
//! and a hung case is aborted by a watchdog. Before every case the child writes the input to
//! `current-<target>.bin`; when a child dies, the parent files that input as a finding and
//! starts a fresh child for the rest of the target's time. Panics, property violations,
//! allocations over the readers' budget and slow cases are caught in the child, minimised
//! and filed there.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use widen_guard::{MemoryBudget, set_budget};

use crate::mutate::{self, Grammar, Mutation, Rng};
use crate::targets::{self, Context, Outcome, TARGETS, Target};

/// The memory budget set for the readers: a request over it should be refused by their
/// checks, so any single allocation over it is a finding.
pub const READER_BUDGET: u64 = 256 << 20;
/// Total seconds when `--seconds` is not given (short enough for `cargo xtask test-all`).
pub const DEFAULT_SECONDS: f64 = 12.0;
/// A case slower than this is a finding (quadratic work or a near-hang).
pub const CASE_LIMIT: Duration = Duration::from_secs(2);
/// A case still running after this is aborted by the watchdog.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);
/// Corpus entries beyond the seeds, and the largest input kept as one.
const MAX_CORPUS: usize = 512;
const MAX_CORPUS_INPUT: usize = 256 << 10;
/// Fresh children after crashes, per target, before giving up on it.
const MAX_RESTARTS: usize = 8;
/// Time and attempts spent shrinking one finding.
const MINIMIZE_TIME: Duration = Duration::from_millis(1500);
const MINIMIZE_RUNS: usize = 400;

const USAGE: &str = "usage: cargo test -p widen-fuzz --test fuzz -- [options]

  --seconds N     total time, split evenly across the targets (default 12)
  --target NAME   fuzz only NAME (repeatable, or comma-separated)
  --seed S        the run's seed (default 0); a run is reproducible from it
  --execs N       stop each target after N cases (alone: the time limit becomes 30 min)
  --replay FILE   run one input (a finding) through its target and print the outcome
  -h, --help      this text

targets: npy, ts, model_json, safetensors, burnpack";

/// What the test binary provides: the allocator's counter lives there.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The largest single allocation request since the previous call (resets it).
    pub take_largest_alloc: fn() -> usize,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Total seconds (the parent) or this target's seconds (a child).
    pub seconds: f64,
    /// Targets chosen; empty means all.
    pub targets: Vec<String>,
    /// The run's seed.
    pub seed: u64,
    /// Cases per target, when bounded by count.
    pub execs: Option<u64>,
    /// An input to replay.
    pub replay: Option<PathBuf>,
    /// Set in the child processes the parent starts.
    pub child: bool,
    /// `target/widen-fuzz`: scratch space, current inputs and findings.
    pub work: PathBuf,
}

enum Parsed {
    Run(Options),
    Help,
    List,
}

impl Options {
    fn parse(args: &[String], work: PathBuf) -> Result<Parsed, String> {
        let mut o = Options {
            seconds: DEFAULT_SECONDS,
            targets: Vec::new(),
            seed: 0,
            execs: None,
            replay: None,
            child: false,
            work,
        };
        let mut seconds_given = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--seconds" => {
                    seconds_given = true;
                    let v = value(arg)?;
                    o.seconds = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| format!("--seconds `{v}` is not a number of seconds"))?;
                }
                "--target" => {
                    for name in value(arg)?.split(',').filter(|n| !n.is_empty()) {
                        if targets::find(name).is_none() {
                            return Err(format!("unknown target `{name}`"));
                        }
                        o.targets.push(name.to_string());
                    }
                }
                "--seed" => {
                    let v = value(arg)?;
                    o.seed = v
                        .parse()
                        .map_err(|_| format!("--seed `{v}` is not an unsigned integer"))?;
                }
                "--execs" => {
                    let v = value(arg)?;
                    o.execs = Some(
                        v.parse()
                            .map_err(|_| format!("--execs `{v}` is not a count"))?,
                    );
                }
                "--replay" => o.replay = Some(PathBuf::from(value(arg)?)),
                "--child" => o.child = true,
                "-h" | "--help" => return Ok(Parsed::Help),
                // libtest's listing protocol (IDEs, nextest): this binary has no unit tests.
                "--list" => return Ok(Parsed::List),
                // Flags cargo or a user may pass to every test binary (`--nocapture`).
                other => eprintln!("fuzz: ignoring argument `{other}`"),
            }
        }
        // A case count alone is the whole budget: time is then only a safety net, so a loaded
        // machine runs the same cases as an idle one.
        if o.execs.is_some() && !seconds_given {
            o.seconds = EXECS_SAFETY_SECONDS;
        }
        Ok(Parsed::Run(o))
    }
}

/// The time limit of an `--execs` run without `--seconds`, for all targets together.
const EXECS_SAFETY_SECONDS: f64 = 1800.0;

/// The test binary's `main`: `args` are those after `--`, `work` is `target/widen-fuzz`.
pub fn main_with(args: &[String], work: PathBuf, hooks: Hooks) -> ExitCode {
    let opts = match Options::parse(args, work) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::List) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fuzz: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.replay.is_some() {
        replay(&opts, hooks)
    } else if opts.child {
        child(&opts, hooks)
    } else {
        parent(&opts)
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

/// The last panic's message and location, kept by the quiet hook.
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Replaces the default hook, which would print every caught panic of the run.
fn install_quiet_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info.location().map_or("unknown location".to_string(), |l| {
            format!("{}:{}:{}", l.file(), l.line(), l.column())
        });
        let message = payload_text(info.payload());
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some((message, location));
        }
    }));
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic payload that is not a string)".to_string())
}

/// Milliseconds since [`BASE`] plus one at which the running case started; 0 when idle.
static CASE_STARTED: AtomicU64 = AtomicU64::new(0);
static BASE: OnceLock<Instant> = OnceLock::new();

fn now_ms() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Aborts the process when one case runs past [`HANG_LIMIT`]: a hang cannot be caught in
/// the thread that hangs. The parent files the current input.
fn start_watchdog(input: PathBuf) -> Result<(), String> {
    now_ms();
    std::thread::Builder::new()
        .name("widen-fuzz-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let started = CASE_STARTED.load(Ordering::Relaxed);
                if started != 0 && now_ms().saturating_sub(started) > HANG_LIMIT.as_millis() as u64
                {
                    eprintln!(
                        "widen-fuzz: a case ran for more than {} s (hang); its input is {}",
                        HANG_LIMIT.as_secs(),
                        input.display()
                    );
                    std::process::abort();
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the watchdog: {e}"))
}

enum Verdict {
    Outcome(Outcome),
    Panic { message: String, location: String },
}

struct CaseResult {
    verdict: Verdict,
    elapsed: Duration,
    largest: usize,
}

/// The input of the running case on disk, so that it survives an abort. The file exists only
/// once a case has started: a child that dies without one died in its setup.
struct Current {
    path: PathBuf,
    file: Option<File>,
    companion_path: PathBuf,
    companion: Option<usize>,
}

impl Current {
    fn open(work: &Path, target: &str) -> Result<Self, String> {
        let path = work.join(format!("current-{target}.bin"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", path.display()));
            }
            _ => {}
        }
        Ok(Self {
            companion_path: work.join(format!("current-{target}.companion.bin")),
            path,
            file: None,
            companion: None,
        })
    }

    fn write(&mut self, data: &[u8], companion_id: usize, companion: &[u8]) -> Result<(), String> {
        let failed = |e: io::Error| format!("{}: {e}", self.path.display());
        // The companion first: the input file's existence says a case has begun. These are the
        // fuzzer's own crash-survival scratch under target/widen-fuzz, rewritten every case: a
        // plain write is the point (a rename per case would cost more than the case), and a
        // torn file there only means the crash happened while writing it.
        if self.companion != Some(companion_id) {
            fs::write(&self.companion_path, companion)
                .map_err(|e| format!("{}: {e}", self.companion_path.display()))?;
            self.companion = Some(companion_id);
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(&self.path)
                    .map_err(failed)?,
            ),
        };
        // In place (no truncation to zero), which ext4 does not flush on close.
        file.seek(SeekFrom::Start(0)).map_err(failed)?;
        file.write_all(data).map_err(failed)?;
        file.set_len(data.len() as u64).map_err(failed)
    }
}

struct Runner<'a> {
    target: &'static Target,
    ctx: &'a Context,
    hooks: Hooks,
    current: Current,
}

impl Runner<'_> {
    fn run(
        &mut self,
        data: &[u8],
        companion_id: usize,
        companion: &[u8],
    ) -> Result<CaseResult, String> {
        self.current.write(data, companion_id, companion)?;
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = None;
        }
        (self.hooks.take_largest_alloc)();
        let start = Instant::now();
        CASE_STARTED.store(now_ms(), Ordering::Relaxed);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            (self.target.run)(self.ctx, data, companion)
        }));
        CASE_STARTED.store(0, Ordering::Relaxed);
        let elapsed = start.elapsed();
        let largest = (self.hooks.take_largest_alloc)();
        let verdict = match result {
            Ok(outcome) => Verdict::Outcome(outcome),
            Err(payload) => {
                let caught = LAST_PANIC.lock().ok().and_then(|mut last| last.take());
                let (message, location) =
                    caught.unwrap_or_else(|| (payload_text(&*payload), "unknown location".into()));
                Verdict::Panic { message, location }
            }
        };
        Ok(CaseResult {
            verdict,
            elapsed,
            largest,
        })
    }
}

/// The finding in a case, if any: its signature (what deduplicates findings) and a
/// description. Panics first, then properties, allocations and time.
fn judge(r: &CaseResult) -> Option<(String, String)> {
    match &r.verdict {
        Verdict::Panic { message, location } => {
            return Some((
                format!("panic at {location}"),
                format!("panic at {location}: {}", one_line(message, 300)),
            ));
        }
        Verdict::Outcome(Outcome::Violation(v)) => {
            return Some((
                format!("violation: {}", normalize(v)),
                format!("property violated: {}", one_line(v, 300)),
            ));
        }
        Verdict::Outcome(_) => {}
    }
    if r.largest as u64 > READER_BUDGET {
        return Some((
            "allocation over the reader budget".into(),
            format!(
                "one allocation of {} ({} bytes), over the {} budget set for the readers",
                human(r.largest as u64),
                r.largest,
                human(READER_BUDGET)
            ),
        ));
    }
    if r.elapsed > CASE_LIMIT {
        return Some((
            "slow".into(),
            format!(
                "one case took {:.2} s (limit {} s)",
                r.elapsed.as_secs_f64(),
                CASE_LIMIT.as_secs()
            ),
        ));
    }
    None
}

/// A message's reason: cut where quoted input begins and with numbers blanked, so that two
/// inputs refused for the same reason give the same key (the corpus' stand-in for coverage).
fn normalize(message: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        // A quoted name ('descr', '<f4') is part of the reason; anything else quoted is input.
        if c == '\'' {
            let rest: String = chars.clone().take(17).collect();
            let name = rest.find('\'').map(|end| &rest[..end]).filter(|n| {
                n.chars()
                    .all(|d| d.is_ascii_alphanumeric() || matches!(d, '_' | '<' | '>' | '|'))
            });
            if let Some(name) = name {
                out.push('\'');
                out.push_str(&name.replace(|d: char| d.is_ascii_digit(), "#"));
                out.push('\'');
                for _ in 0..=name.len() {
                    chars.next();
                }
                last_digit = false;
                continue;
            }
        }
        if matches!(c, '`' | '"' | '[' | '{' | '\'') || out.len() >= 120 {
            out.push('…');
            break;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn human(bytes: u64) -> String {
    widen_guard::format_size(u128::from(bytes))
}

// ---------------------------------------------------------------------------------------------
// Findings

/// One finding, before it is written.
struct Finding<'a> {
    signature: String,
    what: String,
    data: &'a [u8],
    companion: &'a [u8],
    origin: String,
    mutations: String,
}

/// `findings/<target>-<n>.bin` (the input), `.companion.bin` (the unmutated other file of a
/// checkpoint) and `.txt` (what happened, a hex dump, how to replay). One per signature.
struct Findings {
    dir: PathBuf,
    target: &'static str,
    known: HashSet<String>,
}

impl Findings {
    fn open(dir: &Path, target: &'static str) -> Result<Self, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut known = HashSet::new();
        for (_, note) in finding_notes(dir, target) {
            if let Some(sig) = note_field(&note, "signature") {
                known.insert(sig.to_string());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            target,
            known,
        })
    }

    fn is_known(&self, signature: &str) -> bool {
        self.known.contains(signature)
    }

    /// Writes the finding unless its signature is already filed; returns its file stem.
    fn record(&mut self, f: &Finding) -> Result<Option<String>, String> {
        if !self.known.insert(f.signature.clone()) {
            return Ok(None);
        }
        let n = (0..)
            .find(|n| !self.dir.join(format!("{}-{n}.txt", self.target)).exists())
            .unwrap_or(0);
        let stem = format!("{}-{n}", self.target);
        let write = |name: String, bytes: &[u8]| {
            let path = self.dir.join(name);
            widen_guard::write_file_atomically(&path, bytes).map_err(|e| e.to_string())
        };
        write(format!("{stem}.bin"), f.data)?;
        if !f.companion.is_empty() {
            write(format!("{stem}.companion.bin"), f.companion)?;
        }
        let bin = self.dir.join(format!("{stem}.bin"));
        let note = format!(
            "target: {}\nsignature: {}\nwhat: {}\ninput: {} bytes\nfrom: {}\nmutations: {}\n\
             replay: cargo test -p widen-fuzz --test fuzz -- --target {} --replay {}\n\n{}",
            self.target,
            f.signature,
            f.what,
            f.data.len(),
            f.origin,
            f.mutations,
            self.target,
            bin.display(),
            hex_dump(f.data, 1024),
        );
        write(format!("{stem}.txt"), note.as_bytes())?;
        Ok(Some(stem))
    }
}

/// `(n, note text)` of every finding of `target`, in order.
fn finding_notes(dir: &Path, target: &str) -> Vec<(u64, String)> {
    let mut notes: Vec<(u64, String)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let n = name
                .strip_prefix(target)?
                .strip_prefix('-')?
                .strip_suffix(".txt")?
                .parse()
                .ok()?;
            Some((n, fs::read_to_string(entry.path()).ok()?))
        })
        .collect();
    notes.sort_by_key(|&(n, _)| n);
    notes
}

fn note_field<'a>(note: &'a str, key: &str) -> Option<&'a str> {
    note.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// Removes the findings of `target` from an earlier run.
fn clear_findings(dir: &Path, target: &str) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name
            .strip_prefix(target)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
        if ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn hex_dump(data: &[u8], max: usize) -> String {
    let mut out = String::new();
    for (row, chunk) in data[..data.len().min(max)].chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  {ascii}\n",
            row * 16,
            hex.join(" ")
        ));
    }
    if data.len() > max {
        out.push_str(&format!("... {} more bytes\n", data.len() - max));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Statistics, passed from a child to the parent through a file

#[derive(Debug, Default, Clone)]
struct Stats {
    execs: u64,
    accepted: u64,
    refused: u64,
    finding_cases: u64,
    flaky_slow: u64,
    fuzz_secs: f64,
    corpus: u64,
    outcomes: u64,
    largest: u64,
    refusals: BTreeMap<String, u64>,
}

impl Stats {
    fn write(&self, path: &Path) {
        let mut text = format!(
            "execs {}\naccepted {}\nrefused {}\nfinding_cases {}\nflaky_slow {}\nfuzz_secs {}\n\
             corpus {}\noutcomes {}\nlargest {}\n",
            self.execs,
            self.accepted,
            self.refused,
            self.finding_cases,
            self.flaky_slow,
            self.fuzz_secs,
            self.corpus,
            self.outcomes,
            self.largest
        );
        for (message, count) in &self.refusals {
            text.push_str(&format!("refusal {count} {message}\n"));
        }
        // Best effort: the numbers are for the summary only. Atomic, so a child killed while
        // writing never leaves the parent a half file to read.
        let _ = widen_guard::write_file_atomically(path, text.as_bytes());
    }

    fn read(path: &Path) -> Option<Stats> {
        let text = fs::read_to_string(path).ok()?;
        let mut s = Stats::default();
        for line in text.lines() {
            let (key, rest) = line.split_once(' ')?;
            let number = || rest.parse::<u64>().unwrap_or(0);
            match key {
                "execs" => s.execs = number(),
                "accepted" => s.accepted = number(),
                "refused" => s.refused = number(),
                "finding_cases" => s.finding_cases = number(),
                "flaky_slow" => s.flaky_slow = number(),
                "fuzz_secs" => s.fuzz_secs = rest.parse().unwrap_or(0.0),
                "corpus" => s.corpus = number(),
                "outcomes" => s.outcomes = number(),
                "largest" => s.largest = number(),
                "refusal" => {
                    let (count, message) = rest.split_once(' ')?;
                    s.refusals
                        .insert(message.to_string(), count.parse().unwrap_or(0));
                }
                _ => {}
            }
        }
        Some(s)
    }

    fn add(&mut self, o: &Stats) {
        self.execs += o.execs;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.finding_cases += o.finding_cases;
        self.flaky_slow += o.flaky_slow;
        self.fuzz_secs += o.fuzz_secs;
        self.corpus = self.corpus.max(o.corpus);
        self.outcomes = self.outcomes.max(o.outcomes);
        self.largest = self.largest.max(o.largest);
        for (message, count) in &o.refusals {
            *self.refusals.entry(message.clone()).or_default() += count;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child: one target's case loop

fn child(opts: &Options, hooks: Hooks) -> ExitCode {
    let [name] = opts.targets.as_slice() else {
        eprintln!("fuzz: --child needs exactly one --target");
        return ExitCode::from(2);
    };
    let Some(target) = targets::find(name) else {
        eprintln!("fuzz: unknown target `{name}`");
        return ExitCode::from(2);
    };
    match fuzz_target(target, opts, hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("widen-fuzz: {}: {e}", target.name);
            ExitCode::from(1)
        }
    }
}

/// Sets what every in-process run needs: the quiet panic hook and the readers' budget.
fn prepare_process() {
    install_quiet_hook();
    set_budget(MemoryBudget::new(
        READER_BUDGET,
        "the widen-fuzz budget for readers",
    ));
}

struct Entry {
    data: Vec<u8>,
    companion: usize,
}

fn fuzz_target(target: &'static Target, opts: &Options, hooks: Hooks) -> Result<(), String> {
    prepare_process();
    let ctx = Context::new(opts.work.join("scratch").join(target.name))?;
    let current = Current::open(&opts.work, target.name)?;
    start_watchdog(current.path.clone())?;
    let seeds = (target.seeds)(&ctx)?;
    if seeds.is_empty() {
        return Err("the target has no seeds".into());
    }
    let companions: Vec<Vec<u8>> = seeds.iter().map(|s| s.companion.clone()).collect();
    let mut corpus: Vec<Entry> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            data: s.data.clone(),
            companion: i,
        })
        .collect();
    let mut findings = Findings::open(&opts.work.join("findings"), target.name)?;
    let mut runner = Runner {
        target,
        ctx: &ctx,
        hooks,
        current,
    };
    let mut rng = Rng::new(opts.seed);
    let mut stats = Stats::default();
    let mut seen: HashSet<String> = HashSet::new();
    let stats_path = opts.work.join(format!("stats-{}.txt", target.name));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(opts.seconds);
    let mut flushed = start;

    for case in 0u64.. {
        // Every seed runs first: a seed that fails is a finding too, and the baseline.
        let seeding = (case as usize) < seeds.len();
        let done = Instant::now() >= deadline || opts.execs.is_some_and(|n| case >= n);
        if !seeding && done {
            break;
        }
        let (data, companion, mutations, origin) = if seeding {
            let s = &seeds[case as usize];
            (
                s.data.clone(),
                case as usize,
                Vec::new(),
                format!("seed `{}`", s.name),
            )
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())].data;
            let (data, mutations) = mutate_case(&mut rng, target, &base.data, other);
            let origin = format!(
                "case {case} of --seed {} (from seed `{}`)",
                opts.seed, seeds[base.companion].name
            );
            (data, base.companion, mutations, origin)
        };
        let companion_bytes = &companions[companion];
        let result = runner.run(&data, companion, companion_bytes)?;
        stats.execs += 1;
        stats.largest = stats.largest.max(result.largest as u64);

        let mut finding = judge(&result);
        if finding.as_ref().is_some_and(|(sig, _)| sig == "slow") {
            // A loaded machine (two cores, a build beside us) can stall one case: confirm.
            let again = runner.run(&data, companion, companion_bytes)?;
            if again.elapsed <= CASE_LIMIT {
                stats.flaky_slow += 1;
                finding = judge(&again);
            }
        }
        if let Some((signature, what)) = finding {
            stats.finding_cases += 1;
            if !findings.is_known(&signature) {
                let (small, what) = if signature == "slow" {
                    (data.clone(), what)
                } else {
                    minimize(&mut runner, &data, companion, companion_bytes, &signature)?
                        .unwrap_or((data.clone(), what))
                };
                findings.record(&Finding {
                    signature,
                    what,
                    data: &small,
                    companion: companion_bytes,
                    origin,
                    mutations: mutation_names(&mutations),
                })?;
            }
        } else {
            let key = match &result.verdict {
                Verdict::Outcome(Outcome::Accepted) => {
                    stats.accepted += 1;
                    "accepted".to_string()
                }
                Verdict::Outcome(Outcome::Refused(message)) => {
                    stats.refused += 1;
                    let key = normalize(message);
                    *stats.refusals.entry(key.clone()).or_default() += 1;
                    key
                }
                _ => String::new(),
            };
            // A new behaviour joins the corpus; so, now and then, does another valid input
            // (replacing an earlier mutant), which keeps the valid part of the corpus varied.
            // Once the corpus is full, new entries replace earlier mutants (never the seeds).
            let fits = !seeding && data.len() <= MAX_CORPUS_INPUT;
            let novel = seen.insert(key.clone());
            let keep = novel || (key == "accepted" && rng.one_in(8));
            if fits && keep {
                if corpus.len() < seeds.len() + MAX_CORPUS {
                    corpus.push(Entry { data, companion });
                } else {
                    let slot = seeds.len() + rng.below(corpus.len() - seeds.len());
                    corpus[slot] = Entry { data, companion };
                }
            }
        }
        if flushed.elapsed() > Duration::from_millis(500) {
            flushed = Instant::now();
            stats.fuzz_secs = start.elapsed().as_secs_f64();
            stats.corpus = corpus.len() as u64;
            stats.outcomes = seen.len() as u64;
            stats.write(&stats_path);
        }
    }
    stats.fuzz_secs = start.elapsed().as_secs_f64();
    stats.corpus = corpus.len() as u64;
    stats.outcomes = seen.len() as u64;
    stats.write(&stats_path);
    Ok(())
}

fn mutation_names(mutations: &[Mutation]) -> String {
    if mutations.is_empty() {
        return "(none: a seed)".into();
    }
    mutations
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Half the time, a framed format has only its header mutated and its length prefix
/// rewritten, so the container stays consistent and the mutant reaches the header's parser.
fn mutate_case(
    rng: &mut Rng,
    target: &Target,
    base: &[u8],
    other: &[u8],
) -> (Vec<u8>, Vec<Mutation>) {
    if let Some(frame) = target.frame
        && rng.one_in(2)
        && let Some(range) = (frame.header)(base)
    {
        let other_header = (frame.header)(other).map_or(&[][..], |r| &other[r]);
        let grammar = Grammar {
            text: frame.text,
            ..target.grammar
        };
        let (header, mutations) = mutate::mutate(rng, &base[range], other_header, &grammar);
        if let Some(data) = (frame.rebuild)(base, &header) {
            return (data, mutations);
        }
    }
    mutate::mutate(rng, base, other, &target.grammar)
}

/// Shrinks a finding's input by deleting chunks (halving their size) while the same
/// signature reproduces. Returns the smallest input and its description, or `None` if the
/// finding did not reproduce at all.
fn minimize(
    runner: &mut Runner,
    data: &[u8],
    companion: usize,
    companion_bytes: &[u8],
    signature: &str,
) -> Result<Option<(Vec<u8>, String)>, String> {
    let start = Instant::now();
    let reproduce = |runner: &mut Runner, input: &[u8]| -> Result<Option<String>, String> {
        let r = runner.run(input, companion, companion_bytes)?;
        Ok(judge(&r)
            .filter(|(sig, _)| sig == signature)
            .map(|(_, what)| what))
    };
    let Some(mut what) = reproduce(runner, data)? else {
        return Ok(None);
    };
    let mut runs = 1;
    let mut best = data.to_vec();
    let mut chunk = best.len().div_ceil(2).max(1);
    'outer: loop {
        let mut at = 0;
        let mut shrunk = false;
        while at < best.len() {
            if start.elapsed() > MINIMIZE_TIME || runs >= MINIMIZE_RUNS {
                break 'outer;
            }
            let mut candidate = best.clone();
            candidate.drain(at..(at + chunk).min(best.len()));
            runs += 1;
            match reproduce(runner, &candidate)? {
                Some(w) => {
                    best = candidate;
                    what = w;
                    shrunk = true;
                }
                None => at += chunk,
            }
        }
        if !shrunk {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    Ok(Some((best, what)))
}

// ---------------------------------------------------------------------------------------------
// Replay

fn replay(opts: &Options, hooks: Hooks) -> ExitCode {
    let Some(given) = &opts.replay else {
        return ExitCode::from(2);
    };
    // `cargo test` runs this binary in the package directory: a relative path the user gave
    // from the workspace root (where `target/` is) is tried there too.
    let root = opts.work.parent().and_then(Path::parent);
    let path = &match root {
        Some(root) if given.is_relative() && !given.exists() => root.join(given),
        _ => given.clone(),
    };
    // `npy-3.bin` or `current-npy.bin` name their target.
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default();
    let inferred = stem
        .strip_prefix("current-")
        .or_else(|| stem.rsplit_once('-').map(|(t, _)| t))
        .unwrap_or(stem);
    let name = opts.targets.first().map_or(inferred, String::as_str);
    let Some(target) = targets::find(name) else {
        eprintln!(
            "fuzz: cannot tell the target of {}; pass --target",
            path.display()
        );
        return ExitCode::from(2);
    };
    let companion_path = path.with_file_name(format!("{stem}.companion.bin"));
    let run = || -> Result<bool, String> {
        prepare_process();
        let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let companion = fs::read(&companion_path).unwrap_or_default();
        let ctx = Context::new(
            opts.work
                .join("scratch")
                .join(format!("replay-{}", target.name)),
        )?;
        let mut runner = Runner {
            target,
            ctx: &ctx,
            hooks,
            current: Current::open(&opts.work, &format!("replay-{}", target.name))?,
        };
        let r = runner.run(&data, 0, &companion)?;
        let verdict = match &r.verdict {
            Verdict::Outcome(Outcome::Accepted) => "accepted".to_string(),
            Verdict::Outcome(Outcome::Refused(m)) => format!("refused: {m}"),
            Verdict::Outcome(Outcome::Violation(m)) => format!("PROPERTY VIOLATED: {m}"),
            Verdict::Panic { message, location } => format!("PANIC at {location}: {message}"),
        };
        println!(
            "{} ({} bytes) on {}: {verdict}\n  {:.3} s, largest allocation {}",
            path.display(),
            data.len(),
            target.name,
            r.elapsed.as_secs_f64(),
            human(r.largest as u64)
        );
        Ok(judge(&r).is_some())
    };
    match run() {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per target, crashes filed, the summary

enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

fn exit_of(status: ExitStatus) -> Exit {
    if let Some(code) = status.code() {
        return Exit::Code(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Exit::Signal(signal);
        }
    }
    Exit::Code(-1)
}

fn wait_with_timeout(cmd: &mut Command, limit: Duration) -> io::Result<Exit> {
    let mut child = cmd.spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(exit_of(status));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Exit::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A per-target, per-restart seed: `--target X --seed S` replays the cases X gets in a full
/// run with `--seed S`.
fn derive_seed(seed: u64, name: &str, restart: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h ^ (restart as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Report {
    stats: Stats,
    setup_error: Option<String>,
    wall: f64,
}

fn parent(opts: &Options) -> ExitCode {
    let selected: Vec<&'static Target> = if opts.targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        opts.targets
            .iter()
            .filter_map(|n| targets::find(n))
            .collect()
    };
    let findings_dir = opts.work.join("findings");
    if let Err(e) = fs::create_dir_all(&findings_dir) {
        eprintln!("fuzz: {}: {e}", findings_dir.display());
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("fuzz: cannot find this test binary to start children: {e}");
            return ExitCode::FAILURE;
        }
    };
    let per = opts.seconds / selected.len().max(1) as f64;
    let budget = match opts.execs {
        Some(n) => format!("{n} cases each"),
        None => format!("{per:.1} s each"),
    };
    println!(
        "widen-fuzz: {} target(s), {budget}, --seed {}; findings in {}",
        selected.len(),
        opts.seed,
        findings_dir.display()
    );
    let (mut passed, mut failed) = (0, 0);
    for target in selected {
        clear_findings(&findings_dir, target.name);
        let report = run_target(&exe, target, per, opts);
        let notes = finding_notes(&findings_dir, target.name);
        print_report(target, &report, &notes);
        if notes.is_empty() && report.setup_error.is_none() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("fuzz: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_target(exe: &Path, target: &'static Target, per: f64, opts: &Options) -> Report {
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut setup_error = None;
    let stats_path = opts.work.join(format!("stats-{}.txt", target.name));
    let err_path = opts.work.join(format!("child-{}.stderr", target.name));
    for restart in 0..=MAX_RESTARTS {
        let seconds = per - started.elapsed().as_secs_f64();
        if restart > 0 && seconds < 0.25 {
            break;
        }
        let _ = fs::remove_file(&stats_path);
        // The child's stderr, captured for the summary: scratch, never an output of widen's.
        let stderr = match File::create(&err_path) {
            Ok(f) => f,
            Err(e) => {
                setup_error = Some(format!("{}: {e}", err_path.display()));
                break;
            }
        };
        let seed = derive_seed(opts.seed, target.name, restart);
        let mut cmd = Command::new(exe);
        cmd.args(["--child", "--target", target.name])
            .args(["--seconds", &format!("{:.3}", seconds.max(0.0))])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(n) = opts.execs {
            cmd.args(["--execs", &n.to_string()]);
        }
        // Seeds are built before the clock starts, and a hang takes the watchdog's time.
        let limit =
            Duration::from_secs_f64(seconds.max(0.0)) + HANG_LIMIT + Duration::from_secs(120);
        let exit = wait_with_timeout(&mut cmd, limit);
        if let Some(s) = Stats::read(&stats_path) {
            stats.add(&s);
        }
        let note = fs::read_to_string(&err_path).unwrap_or_default();
        let last_line = note
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        let what = match exit {
            Ok(Exit::Code(0)) => break,
            Err(e) => {
                setup_error = Some(format!("cannot start the child: {e}"));
                break;
            }
            Ok(Exit::Code(1 | 2)) => {
                setup_error = Some(note.trim().to_string());
                break;
            }
            Ok(Exit::Code(code)) => format!("the child exited with code {code}: {last_line}"),
            Ok(Exit::Signal(signal)) => format!("the child died of signal {signal}: {last_line}"),
            Ok(Exit::TimedOut) => "the child stopped making progress and was killed".to_string(),
        };
        if let Err(e) = file_crash(opts, target, &what, &last_line) {
            setup_error = Some(e);
            break;
        }
    }
    Report {
        stats,
        setup_error,
        wall: started.elapsed().as_secs_f64(),
    }
}

/// Files the input a child was running when it died; an error when it died in its setup.
fn file_crash(
    opts: &Options,
    target: &'static Target,
    what: &str,
    note: &str,
) -> Result<(), String> {
    let current = opts.work.join(format!("current-{}.bin", target.name));
    let data = match fs::read(&current) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("the child died before its first case: {what}"));
        }
        Err(e) => return Err(format!("{}: {e}", current.display())),
    };
    let companion = fs::read(
        opts.work
            .join(format!("current-{}.companion.bin", target.name)),
    )
    .unwrap_or_default();
    let reason = if note.is_empty() { what } else { note };
    let mut findings = Findings::open(&opts.work.join("findings"), target.name)?;
    findings.record(&Finding {
        signature: format!("crash: {}", normalize(reason)),
        what: what.to_string(),
        data: &data,
        companion: &companion,
        origin: format!("the child's current input (parent --seed {})", opts.seed),
        mutations: "(unknown: the process died)".into(),
    })?;
    Ok(())
}

fn print_report(target: &Target, report: &Report, notes: &[(u64, String)]) {
    let s = &report.stats;
    let rate = if s.fuzz_secs > 0.0 {
        s.execs as f64 / s.fuzz_secs
    } else {
        0.0
    };
    println!(
        "  {:<12} {} execs in {:.1} s ({rate:.0}/s; {:.1} s with setup): {} ok, {} refused; \
         {} distinct outcomes, corpus {}; largest allocation {}; {} finding(s)",
        target.name,
        s.execs,
        s.fuzz_secs,
        report.wall,
        s.accepted,
        s.refused,
        s.outcomes,
        s.corpus,
        human(s.largest),
        notes.len()
    );
    let mut top: Vec<(&String, &u64)> = s.refusals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    if s.refused > 0 {
        let shown: Vec<String> = top
            .iter()
            .take(3)
            .map(|(m, c)| {
                format!(
                    "{:.0}% {}",
                    **c as f64 * 100.0 / s.refused as f64,
                    one_line(m, 90)
                )
            })
            .collect();
        println!("               top refusals: {}", shown.join(" | "));
    }
    if s.flaky_slow > 0 {
        println!(
            "               {} case(s) were slow once but not on a rerun (machine load)",
            s.flaky_slow
        );
    }
    if let Some(e) = &report.setup_error {
        println!("               SETUP FAILED: {}", one_line(e, 400));
    }
    for (n, note) in notes {
        println!(
            "               FINDING {}-{n}: {} [{}]",
            target.name,
            note_field(note, "what").unwrap_or("?"),
            note_field(note, "input").unwrap_or("?"),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::mutate::Grammar;

    /// Panics on any input holding `!`; refuses the rest.
    fn fragile(_: &Context, data: &[u8], _: &[u8]) -> Outcome {
        if data.contains(&b'!') {
            panic!("found a bang");
        }
        Outcome::Refused(format!("{} bytes", data.len()))
    }

    static FRAGILE: Target = Target {
        name: "fragile",
        about: "a test target",
        grammar: Grammar {
            tokens: &[],
            length_fields: &[],
            text: true,
            json: false,
        },
        frame: None,
        seeds: |_| Ok(Vec::new()),
        run: fragile,
    };

    #[test]
    fn a_panic_is_caught_named_and_minimised() {
        let work = std::env::temp_dir().join(format!("widen-fuzz-unit-{}", std::process::id()));
        let ctx = Context::new(work.join("scratch")).unwrap();
        let mut runner = Runner {
            target: &FRAGILE,
            ctx: &ctx,
            hooks: Hooks {
                take_largest_alloc: || 0,
            },
            current: Current::open(&work, "fragile").unwrap(),
        };
        install_quiet_hook();
        let input = b"some text! and more";
        let r = runner.run(input, 0, b"").unwrap();
        let (signature, what) = judge(&r).unwrap();
        assert!(
            signature.starts_with("panic at ") && signature.contains("driver.rs"),
            "{signature}"
        );
        assert!(what.contains("found a bang"), "{what}");
        let (small, _) = minimize(&mut runner, input, 0, b"", &signature)
            .unwrap()
            .unwrap();
        let _ = panic::take_hook();
        assert_eq!(small, b"!");
        let r = runner.run(b"fine", 0, b"").unwrap();
        assert!(judge(&r).is_none());
        // The input of the last case is on disk, as a crash would leave it.
        assert_eq!(fs::read(work.join("current-fragile.bin")).unwrap(), b"fine");
        let _ = fs::remove_dir_all(&work);
    }

    #[test]
    fn messages_normalize_to_their_reason() {
        assert_eq!(
            normalize("fuzz.ts:12: expected 3 values, found `abc`"),
            normalize("fuzz.ts:7: expected 41 values, found `x`y`")
        );
        assert_eq!(normalize("a: Str(\"<c4\")"), "a: Str(…");
        assert_eq!(
            normalize("key 'descr' bad, 'a long piece of input' x"),
            "key 'descr' bad, …"
        );
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(human(3 << 20), "3.00 MiB");
        assert_ne!(derive_seed(0, "npy", 0), derive_seed(0, "ts", 0));
    }
}
