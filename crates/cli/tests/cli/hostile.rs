//! Hostile inputs through the real `widen` binary, one table of cases.
//!
//! Every case builds its inputs in a fresh directory, runs `widen` under a 4 GiB address-space
//! cap (`ulimit -v`) and a time limit, then checks the invariants every command must keep:
//!
//! - it ends by itself: exit 1 with a message (or exit 0 where the input is hostile but valid),
//!   never a panic (101), a signal (an allocation abort is SIGABRT) or a timeout;
//! - stderr starts with `error: `, holds the case's substrings, no `panicked` and no raw control
//!   character but `\n` (a hostile name must not reach the terminal as escape codes);
//! - every file that was there before is byte-identical afterwards, and nothing was created but
//!   what the case allows (no `*.widen-tmp-*` leftovers). The process runs in the case directory,
//!   so a relative default output path would be caught too.
//!
//! All failing cases are reported together at the end.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use serde_json::{Value, json};
use widen::layers::{Sequential, WeightFormat, keras_ex1};
use widen_cli::npy;

use crate::{path_str, temp_dir};

// ---------------------------------------------------------------------------------------------
// The table's shape and the runner.
// ---------------------------------------------------------------------------------------------

/// What a case must end with.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exit 1; stderr starts with `error: ` and holds every needle (`a||b`: either).
    Fail(&'static [&'static str]),
    /// A command line the argument parser refuses: exit 2 (clap's convention) or 1, otherwise as
    /// `Fail`.
    Usage(&'static [&'static str]),
    /// Exit 0.
    Succeed,
    /// Exit 0, or a clean exit 1 (`error: ` first): the point is that it ends in time.
    Finish,
}

/// One hostile input.
struct Case {
    /// Also the temp directory's tag: `[a-z0-9-]` only.
    name: &'static str,
    /// Builds the inputs in the (empty) case directory and returns the arguments.
    setup: fn(&Path) -> Vec<String>,
    expect: Expect,
    /// Extra environment variables.
    env: &'static [(&'static str, &'static str)],
    /// Paths (relative to the case directory) the command may create or replace; a directory
    /// covers everything under it.
    writes: &'static [&'static str],
    /// Substrings stderr must not hold.
    forbid: &'static [&'static str],
    /// stdout must hold no raw control character but `\n` and `\t`.
    clean_stdout: bool,
    limit: Duration,
}

const LIMIT: Duration = Duration::from_secs(60);

fn case(name: &'static str, expect: Expect, setup: fn(&Path) -> Vec<String>) -> Case {
    Case {
        name,
        setup,
        expect,
        env: &[],
        writes: &[],
        forbid: &[],
        clean_stdout: false,
        limit: LIMIT,
    }
}

fn fail(
    name: &'static str,
    needles: &'static [&'static str],
    setup: fn(&Path) -> Vec<String>,
) -> Case {
    case(name, Expect::Fail(needles), setup)
}

fn usage(
    name: &'static str,
    needles: &'static [&'static str],
    setup: fn(&Path) -> Vec<String>,
) -> Case {
    case(name, Expect::Usage(needles), setup)
}

fn succeed(
    name: &'static str,
    writes: &'static [&'static str],
    setup: fn(&Path) -> Vec<String>,
) -> Case {
    case(name, Expect::Succeed, setup).writes(writes)
}

fn finish(
    name: &'static str,
    writes: &'static [&'static str],
    setup: fn(&Path) -> Vec<String>,
) -> Case {
    case(name, Expect::Finish, setup).writes(writes)
}

impl Case {
    fn env(mut self, env: &'static [(&'static str, &'static str)]) -> Self {
        self.env = env;
        self
    }
    fn writes(mut self, writes: &'static [&'static str]) -> Self {
        self.writes = writes;
        self
    }
    fn forbid(mut self, forbid: &'static [&'static str]) -> Self {
        self.forbid = forbid;
        self
    }
    fn clean_stdout(mut self) -> Self {
        self.clean_stdout = true;
        self
    }
    fn limit(mut self, secs: u64) -> Self {
        self.limit = Duration::from_secs(secs);
        self
    }
}

/// A file system entry as seen before and after a run.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File { len: u64, hash: u64 },
    Link(PathBuf),
    Other,
}

fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, Entry>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) -> Result<(), String> {
        let entries =
            fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let rel = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_path_buf();
            let meta = fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                out.insert(rel, Entry::Link(target));
            } else if kind.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let bytes =
                    fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mut h = std::hash::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(
                    rel,
                    Entry::File {
                        len: bytes.len() as u64,
                        hash: h.finish(),
                    },
                );
            } else {
                out.insert(rel, Entry::Other);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

struct Run {
    status: Option<ExitStatus>,
    timed_out: bool,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs `widen args` in `dir` under `ulimit -v 4 GiB`, killed after `limit`.
fn execute(dir: &Path, args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -v 4194304; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_widen"))
        .args(args)
        .current_dir(dir)
        .env_remove("WIDEN_BACKEND")
        .env_remove("WIDEN_MAX_MEMORY")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("sh starts");
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (Some(status), false),
            Ok(None) if start.elapsed() > limit => {
                // `exec` made the child widen itself.
                let _ = child.kill();
                break (child.wait().ok(), true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break (None, false),
        }
    };
    let elapsed = start.elapsed();
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Run {
        status,
        timed_out,
        elapsed,
        stdout: text(out),
        stderr: text(err),
    }
}

fn raw_controls(text: &str, allowed: &[char]) -> Vec<String> {
    let mut found: Vec<String> = text
        .chars()
        .filter(|c| c.is_control() && !allowed.contains(c))
        .map(|c| format!("{c:?}"))
        .collect();
    found.dedup();
    found
}

fn holds(text: &str, needle: &str) -> bool {
    needle.split("||").any(|alt| text.contains(alt))
}

/// What went wrong in `run` for `case`, if anything.
fn problems(
    case: &Case,
    run: &Run,
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
) -> Vec<String> {
    let mut bad = Vec::new();
    let code = run.status.and_then(|s| s.code());
    if run.timed_out {
        bad.push(format!("timed out after {:?} (killed)", case.limit));
    } else if let Some(sig) = run.status.and_then(|s| s.signal()) {
        bad.push(format!("killed by signal {sig}"));
    } else if code == Some(101) {
        bad.push("exit 101 (a Rust panic)".to_string());
    }
    let err = &run.stderr;
    if err.contains("panicked") {
        bad.push("stderr says `panicked`".into());
    }
    let controls = raw_controls(err, &['\n']);
    if !controls.is_empty() {
        bad.push(format!(
            "raw control characters in stderr: {}",
            controls.join(" ")
        ));
    }
    if case.clean_stdout {
        let controls = raw_controls(&run.stdout, &['\n', '\t']);
        if !controls.is_empty() {
            bad.push(format!(
                "raw control characters in stdout: {}",
                controls.join(" ")
            ));
        }
    }
    let needles: &[&str] = match case.expect {
        Expect::Fail(n) | Expect::Usage(n) => n,
        Expect::Succeed | Expect::Finish => &[],
    };
    let codes: &[i32] = match case.expect {
        Expect::Fail(_) => &[1],
        Expect::Usage(_) => &[2, 1],
        Expect::Succeed => &[0],
        Expect::Finish => &[0, 1],
    };
    if !run.timed_out && !code.is_some_and(|c| codes.contains(&c)) {
        bad.push(format!("exit {code:?}, expected one of {codes:?}"));
    }
    let failed = code.is_some_and(|c| c != 0);
    if failed && !err.starts_with("error: ") {
        bad.push("stderr does not start with `error: `".into());
    }
    if matches!(case.expect, Expect::Fail(_) | Expect::Usage(_)) {
        for n in needles {
            if !holds(err, n) {
                bad.push(format!("stderr lacks `{n}`"));
            }
        }
    }
    for f in case.forbid {
        if err.contains(f) {
            bad.push(format!("stderr holds `{f}`"));
        }
    }
    let may_write = |p: &Path| case.writes.iter().any(|w| p.starts_with(w));
    for (path, entry) in before {
        match after.get(path) {
            Some(now) if now == entry => {}
            _ if may_write(path) => {}
            Some(now) => bad.push(format!(
                "input changed: {} ({entry:?} → {now:?})",
                path.display()
            )),
            None => bad.push(format!("input removed: {}", path.display())),
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) && !may_write(path) {
            bad.push(format!("created: {}", path.display()));
        }
    }
    bad
}

fn tail(text: &str, max: usize) -> &str {
    match text.char_indices().rev().nth(max) {
        Some((i, _)) => &text[i..],
        None => text,
    }
}

/// Runs one case; `Err` holds the report.
fn check(case: &Case) -> Result<Duration, String> {
    let dir = temp_dir(&format!("hostile-{}", case.name));
    let args = (case.setup)(&dir);
    let before = snapshot(&dir).map_err(|e| format!("{}: setup: {e}", case.name))?;
    let run = execute(&dir, &args, case.env, case.limit);
    let after = snapshot(&dir).unwrap_or_else(|e| {
        let mut m = BTreeMap::new();
        m.insert(PathBuf::from(format!("<{e}>")), Entry::Other);
        m
    });
    let bad = problems(case, &run, &before, &after);
    if std::env::var_os("WIDEN_HOSTILE_SHOW").is_some() {
        // Every case's outcome, to review the wording: WIDEN_HOSTILE_SHOW=1 cargo test ... hostile -- --nocapture
        println!(
            "[{}] {} {:?}: {:?}",
            if bad.is_empty() { "ok" } else { "FAIL" },
            case.name,
            run.status.and_then(|s| s.code()),
            tail(&run.stderr.replace(path_str(&dir), "$DIR"), 400)
        );
    }
    if bad.is_empty() {
        let _ = fs::remove_dir_all(&dir);
        return Ok(run.elapsed);
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.replace(path_str(&dir), "$DIR"))
        .map(|a| {
            if a.len() > 120 {
                format!("{}…", &a[..a.floor_char_boundary(120)])
            } else {
                a
            }
        })
        .collect();
    Err(format!(
        "── {} ({:.1} s, dir {})\n   args: {:?}{}\n   status: {}\n   {}\n   stderr: {:?}\n   stdout: {:?}",
        case.name,
        run.elapsed.as_secs_f64(),
        dir.display(),
        shown,
        if case.env.is_empty() {
            String::new()
        } else {
            format!("\n   env: {:?}", case.env)
        },
        match (run.timed_out, run.status) {
            (true, _) => "timed out".to_string(),
            (false, Some(s)) => s.to_string(),
            (false, None) => "unknown".to_string(),
        },
        bad.join("\n   "),
        tail(&run.stderr, 1500),
        tail(&run.stdout, 300),
    ))
}

/// Runs the cases on `workers` threads; panics once, listing every failure.
fn run_table(cases: Vec<Case>, workers: usize) {
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let dup = names.windows(2).find(|w| w[0] == w[1]);
    assert!(dup.is_none(), "duplicate case name {dup:?}");
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let slowest = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)))
                            .unwrap_or_else(|_| {
                                Err(format!("── {}: the test's own setup panicked", case.name))
                            });
                    match result {
                        Ok(t) => slowest.lock().unwrap().push((t, case.name)),
                        Err(report) => failures.lock().unwrap().push((i, report)),
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(i, _)| *i);
    let mut slowest = slowest.into_inner().unwrap();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let slow: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(t, n)| format!("{n} {:.1} s", t.as_secs_f64()))
        .collect();
    println!(
        "hostile: {} cases, {} failed, {:.1} s (slowest passing: {})",
        cases.len(),
        failures.len(),
        start.elapsed().as_secs_f64(),
        slow.join(", ")
    );
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(i, _)| cases[*i].name).collect();
        let reports: Vec<String> = failures.into_iter().map(|(_, r)| r).collect();
        panic!(
            "{} of {} hostile cases failed: {}\n\n{}",
            reports.len(),
            cases.len(),
            names.join(", "),
            reports.join("\n\n")
        );
    }
}

#[test]
fn hostile_inputs_fail_cleanly() {
    run_table(cases(), 3);
}

/// The checker itself: a successful run checked as a failure that may write nothing is
/// reported with every violation.
#[test]
fn hostile_checker_reports_violations() {
    let wrong = fail("checker-self-test", &["no such text"], |d| {
        predict_model(d, &model(d))
    });
    let report = check(&wrong).unwrap_err();
    for needle in [
        "exit Some(0)",
        "stderr lacks `no such text`",
        "created: y.npy",
    ] {
        assert!(report.contains(needle), "{report}");
    }
    let right = succeed("checker-self-test-ok", &["y.npy"], |d| {
        predict_model(d, &model(d))
    });
    check(&right).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Builders for inputs.
// ---------------------------------------------------------------------------------------------

fn s(p: &Path) -> String {
    path_str(p).to_string()
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_string()).collect()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen::init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

fn ex1() -> Sequential {
    Sequential::new(keras_ex1(8, 50), 11, &Device::flex()).unwrap()
}

/// The Keras Ex1 model (8 channels, length 50, channels-last) saved at `dir`.
fn model_at(dir: &Path) -> PathBuf {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    ex1().save(dir, WeightFormat::Safetensors).unwrap();
    dir.to_path_buf()
}

/// The model at `d/model`.
fn model(d: &Path) -> PathBuf {
    model_at(&d.join("model"))
}

/// A `[2, 50, 8]` float32 input at `d/<name>`.
fn input_named(d: &Path, name: &str) -> PathBuf {
    let p = d.join(name);
    npy::write(&p, &[2, 50, 8], &values(800, 3)).unwrap();
    p
}

fn input(d: &Path) -> PathBuf {
    input_named(d, "x.npy")
}

fn predict_args(model: &Path, input: &Path, output: &Path) -> Vec<String> {
    vec![
        "predict".into(),
        "--model".into(),
        s(model),
        "--input".into(),
        s(input),
        "--output".into(),
        s(output),
    ]
}

/// `predict` of the standard model on `input`, writing `d/y.npy`.
fn predict_on(d: &Path, input: &Path) -> Vec<String> {
    let m = model(d);
    predict_args(&m, input, &d.join("y.npy"))
}

/// `predict` of `model` on a good input, writing `d/y.npy`.
fn predict_model(d: &Path, model: &Path) -> Vec<String> {
    let x = input(d);
    predict_args(model, &x, &d.join("y.npy"))
}

fn with(mut a: Vec<String>, extra: &[&str]) -> Vec<String> {
    a.extend(extra.iter().map(|e| (*e).to_string()));
    a
}

fn summary_args(model: &Path) -> Vec<String> {
    vec!["summary".into(), "--model".into(), s(model)]
}

fn expand_args(model: &Path, to: &str, out: &Path) -> Vec<String> {
    vec![
        "expand".into(),
        "--model".into(),
        s(model),
        "--to".into(),
        to.into(),
        "--strategy".into(),
        "zero".into(),
        "--out".into(),
        s(out),
    ]
}

/// `expand` of the standard model to `to` channels into `d/wide`.
fn expand_to(d: &Path, to: &str) -> Vec<String> {
    let m = model(d);
    expand_args(&m, to, &d.join("wide"))
}

/// The saved model's `model.json` after `edit`.
fn edited_json(d: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let m = model(d);
    let p = m.join("model.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    m
}

/// The saved model with `model.json` replaced by `bytes`.
fn raw_json(d: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    let m = model(d);
    fs::write(m.join("model.json"), bytes).unwrap();
    m
}

fn layer<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
    v["spec"]["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["name"] == name)
        .unwrap()
}

/// `.npy` version 1.0 bytes: `header` padded as NumPy pads it, then `body`.
fn npy_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    npy_versioned(1, header, body)
}

fn npy_versioned(major: u8, header: &str, body: &[u8]) -> Vec<u8> {
    npy::encode_raw(major, header, body)
}

fn f32_body(n: usize) -> Vec<u8> {
    values(n, 5).iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f64_body(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|v| v.to_le_bytes()).collect()
}

const GOOD_HEADER: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50, 8), }";

/// `predict` on hand-made `.npy` bytes stored as `d/input.bin`: the name has no `.npy`, so a
/// message that says `.npy` says it itself.
fn predict_raw(d: &Path, bytes: &[u8]) -> Vec<String> {
    let p = write(&d.join("input.bin"), bytes);
    predict_on(d, &p)
}

/// `predict` on a `[2, 50, 8]` float32 body under `header`.
fn predict_header(d: &Path, header: &str) -> Vec<String> {
    predict_raw(d, &npy_bytes(header, &f32_body(800)))
}

/// One safetensors tensor for hand-made files.
struct Tensor {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// The standard model's tensors (float32).
fn tensors() -> Vec<Tensor> {
    let m = ex1();
    m.weight_infos()
        .into_iter()
        .map(|info| {
            let v = m
                .weight(&info.layer, &info.param)
                .unwrap()
                .try_to_vec_as::<f32>()
                .unwrap();
            Tensor {
                name: info.key(),
                dtype: "F32",
                shape: info.shape.clone(),
                data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            }
        })
        .collect()
}

/// A safetensors file: u64 LE header length, JSON header, raw data (no checksums).
fn safetensors(tensors: &[Tensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for t in tensors {
        let start = data.len();
        data.extend_from_slice(&t.data);
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    out
}

fn tensor<'a>(ts: &'a mut [Tensor], name: &str) -> &'a mut Tensor {
    ts.iter_mut().find(|t| t.name == name).unwrap()
}

fn set_f32(t: &mut Tensor, index: usize, v: f32) {
    t.data[index * 4..index * 4 + 4].copy_from_slice(&v.to_le_bytes());
}

/// The standard model at `d/model` with its weights replaced by the hand-made file of
/// `edit(tensors)`.
fn crafted(d: &Path, edit: impl FnOnce(&mut Vec<Tensor>)) -> PathBuf {
    let m = model(d);
    let mut ts = tensors();
    edit(&mut ts);
    fs::write(m.join("weights.safetensors"), safetensors(&ts)).unwrap();
    m
}

/// The standard model at `d/model` with `weights.safetensors` replaced by `bytes`.
fn raw_weights(d: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    let m = model(d);
    fs::write(m.join("weights.safetensors"), bytes).unwrap();
    m
}

fn saved_weights() -> Vec<u8> {
    let dir = temp_dir("hostile-weights");
    let m = model_at(&dir.join("m"));
    let bytes = fs::read(m.join("weights.safetensors")).unwrap();
    let _ = fs::remove_dir_all(&dir);
    bytes
}

/// A `.ts` header for `channels` × `length` with `@classLabel <labels>`.
fn ts_header(channels: usize, length: usize, labels: &str) -> String {
    format!(
        "# hostile test data\n@problemName Hostile\n@timeStamps false\n@missing false\n\
         @univariate {}\n@dimensions {channels}\n@equalLength true\n@seriesLength {length}\n\
         @classLabel {labels}\n@data\n",
        channels == 1
    )
}

/// Case `i` of class `class`: `channels` series of `length` values, then `:label`.
fn ts_case(channels: usize, length: usize, i: usize, class: usize, label: Option<&str>) -> String {
    let v = values(channels * length, 1000 + i as u64);
    let dims: Vec<String> = (0..channels)
        .map(|c| {
            (0..length)
                .map(|t| {
                    let signal = ((t as f32) * (class as f32 + 1.0) * 0.3).sin() * (c as f32 + 1.0);
                    format!("{:.4}", signal + 0.3 * v[c * length + t])
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let mut line = dims.join(":");
    if let Some(l) = label {
        line.push(':');
        line.push_str(l);
    }
    line.push('\n');
    line
}

/// A labelled `.ts` text: `cases` cases, classes cycling over `labels` (declared in
/// `declared` order).
fn ts_text(
    channels: usize,
    length: usize,
    cases: usize,
    labels: &[&str],
    declared: &[&str],
) -> String {
    let mut text = ts_header(channels, length, &format!("true {}", declared.join(" ")));
    for i in 0..cases {
        let class = i % labels.len();
        text.push_str(&ts_case(channels, length, i, class, Some(labels[class])));
    }
    text
}

/// A good two-class, 3-channel, length-20 `.ts` text.
fn good_ts(cases: usize) -> String {
    ts_text(3, 20, cases, &["up", "down"], &["up", "down"])
}

const STUDY_TINY: &[&str] = &[
    "--seeds",
    "1",
    "--base-steps",
    "2",
    "--steps",
    "1",
    "--batch-size",
    "4",
    "--strategies",
    "zero",
    "--arch",
    "ex1",
    "--quiet",
];

/// `study` on the real scenario from `train` and `test` text (files `A.ts`, `B.ts`).
fn study_real(d: &Path, train: impl AsRef<[u8]>, test: impl AsRef<[u8]>, old: &str) -> Vec<String> {
    let a = write(&d.join("A.ts"), train);
    let b = write(&d.join("B.ts"), test);
    study_files(d, &a, &b, old)
}

fn study_files(d: &Path, a: &Path, b: &Path, old: &str) -> Vec<String> {
    let mut v = args(&["study", "--scenarios", "real", "--train"]);
    v.extend([
        s(a),
        "--test".into(),
        s(b),
        "--old-channels".into(),
        old.into(),
    ]);
    v.extend(args(STUDY_TINY));
    v.extend(["--out".into(), s(&d.join("out"))]);
    v
}

/// A broken training file against a good test file.
fn study_bad_train(d: &Path, train: impl AsRef<[u8]>) -> Vec<String> {
    study_real(d, train, good_ts(8), "1")
}

/// `study` on the tiny controlled scenario with `over` replacing or adding flags.
fn study_ctl(d: &Path, over: &[(&str, &str)]) -> Vec<String> {
    let out = s(&d.join("out"));
    let mut flags: Vec<(String, String)> = [
        ("--scenarios", "controlled"),
        ("--seeds", "1"),
        ("--base-steps", "5"),
        ("--steps", "2"),
        ("--train-cases", "40"),
        ("--test-cases", "20"),
        ("--c-old", "2"),
        ("--c-new", "4"),
        ("--length", "20"),
        ("--strategies", "zero"),
        ("--arch", "ex1"),
        ("--out", out.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    for (k, v) in over {
        match flags.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = (*v).to_string(),
            None => flags.push(((*k).to_string(), (*v).to_string())),
        }
    }
    let mut v = vec!["study".to_string(), "--quiet".to_string()];
    for (k, val) in flags {
        // `--flag=value`, so a value starting with `-` stays a value.
        v.push(format!("{k}={val}"));
    }
    v
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------------------------

const BUDGET: &[&str] = &["memory budget", "--max-memory"];
const REFUSE: &[&str] = &["refusing to write", "never modifies"];

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    vec![
        // ── Memory budget: caller-sized allocations beyond the budget are refused. ──────────
        fail("mem-expand-to-usize-max", BUDGET, |d| {
            expand_to(d, "18446744073709551615")
        }),
        fail("mem-expand-to-1e9", BUDGET, |d| expand_to(d, "1000000000")),
        fail("mem-expand-to-1e9-budget-64m", BUDGET, |d| {
            with(expand_to(d, "1000000000"), &["--max-memory", "64M"])
        }),
        fail("mem-budget-before-subcommand", BUDGET, |d| {
            let mut v = args(&["--max-memory", "64M"]);
            v.extend(expand_to(d, "1000000000"));
            v
        }),
        fail("mem-study-c-new-1e9", BUDGET, |d| {
            study_ctl(d, &[("--c-new", "1000000000")])
        }),
        fail("mem-study-train-cases-1e12", BUDGET, |d| {
            study_ctl(d, &[("--train-cases", "1000000000000")])
        }),
        fail("mem-study-length-1e9", BUDGET, |d| {
            study_ctl(d, &[("--length", "1000000000")])
        }),
        // The declared size is compared with the file's before anything is allocated: a short
        // body is a size mismatch, whatever the budget.
        fail(
            "mem-npy-huge-shape-short-body",
            &["needs 4000000000000 bytes of data", "the file has 3200"],
            |d| {
                let h =
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }";
                predict_raw(d, &npy_bytes(h, &f32_body(800)))
            },
        ),
        fail(
            "mem-npy-huge-shape-budget-64m",
            &["needs 4000000000000 bytes of data", "the file has 32"],
            |d| {
                let h =
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }";
                with(
                    predict_raw(d, &npy_bytes(h, &f32_body(8))),
                    &["--max-memory", "64M"],
                )
            },
        ),
        // `@seriesLength` is only compared with the series read, never allocated.
        fail(
            "mem-ts-huge-series-length",
            &["expected length 1000000000000 (from @seriesLength), found 20"],
            |d| {
                let text = ts_header(3, 1_000_000_000_000, "true up down")
                    + &ts_case(3, 20, 0, 0, Some("up"));
                with(study_bad_train(d, text), &["--max-memory", "1M"])
            },
        ),
        fail("mem-ts-one-long-line", BUDGET, |d| {
            let length = 400_000;
            let mut text = ts_header(1, length, "true up down");
            text.push_str(&"1.5,".repeat(length - 1));
            text.push_str("1.5:up\n");
            with(study_bad_train(d, text), &["--max-memory", "1M"])
        }),
        fail("mem-model-json-20mb", BUDGET, |d| {
            let m = edited_json(d, |v| {
                let layers = v["spec"]["layers"].as_array_mut().unwrap();
                let pool = layers.pop().unwrap();
                for i in 0..150_000 {
                    layers.push(json!({"name": format!("act_{i}"), "type": "activation",
                        "activation": {"name": "relu"}}));
                }
                layers.push(pool);
            });
            with(summary_args(&m), &["--max-memory", "16M"])
        }),
        fail("mem-weights-over-budget", BUDGET, |d| {
            with(predict_model(d, &model(d)), &["--max-memory", "1K"])
        }),
        fail("mem-env-budget", BUDGET, |d| predict_model(d, &model(d)))
            .env(&[("WIDEN_MAX_MEMORY", "1K")]),
        fail("mem-env-garbage", &["WIDEN_MAX_MEMORY||memory size"], |d| {
            summary_args(&model(d))
        })
        .env(&[("WIDEN_MAX_MEMORY", "garbage")]),
        usage("mem-flag-garbage", &["--max-memory||memory size"], |d| {
            with(summary_args(&model(d)), &["--max-memory", "lots"])
        }),
        // The weights are checked against the architecture before the model is built, so a
        // 96 GB Conv1D never gets allocated.
        fail(
            "mj-conv-filters-1e9",
            &["conv1d.weight", "[1000000000, 8, 3]"],
            |d| {
                let m = edited_json(d, |v| {
                    layer(v, "conv1d")["filters"] = json!(1_000_000_000u64)
                });
                summary_args(&m)
            },
        ),
        succeed("mem-budget-normal-run", &["y.npy"], |d| {
            with(predict_model(d, &model(d)), &["--max-memory", "64M"])
        }),
        // ── `.ts` labels. ────────────────────────────────────────────────────────────────────
        fail("ts-unlabelled", &["labels"], |d| {
            let mut text = ts_header(3, 20, "false");
            for i in 0..8 {
                text.push_str(&ts_case(3, 20, i, i % 2, None));
            }
            study_real(d, text.clone(), text, "1")
        }),
        finish("ts-100k-labels", &["out"], |d| {
            let declared: Vec<String> = (0..100_000).map(|i| format!("L{i}")).collect();
            let declared: Vec<&str> = declared.iter().map(String::as_str).collect();
            let text = ts_text(3, 20, 8, &declared[..2], &declared);
            study_real(d, text.clone(), text, "1")
        })
        .limit(20),
        succeed("ts-label-order-differs", &["out"], |d| {
            let train = ts_text(3, 20, 8, &["up", "down"], &["up", "down"]);
            let test = ts_text(3, 20, 8, &["up", "down"], &["down", "up"]);
            study_real(d, train, test, "1")
        }),
        // ── Outputs that alias inputs. ───────────────────────────────────────────────────────
        fail("alias-predict-output-is-input", REFUSE, |d| {
            let x = input(d);
            predict_args(&model(d), &x, &x)
        }),
        fail("alias-predict-output-is-input-dotted", REFUSE, |d| {
            let x = input(d);
            fs::create_dir(d.join("sub")).unwrap();
            predict_args(&model(d), &x, &d.join("sub/../x.npy"))
        }),
        fail("alias-predict-output-is-weights", REFUSE, |d| {
            let m = model(d);
            predict_args(&m, &input(d), &m.join("weights.safetensors"))
        }),
        fail("alias-predict-output-is-model-json", REFUSE, |d| {
            let m = model(d);
            predict_args(&m, &input(d), &m.join("model.json"))
        }),
        fail("alias-predict-output-symlink-to-input", REFUSE, |d| {
            let x = input(d);
            symlink(&x, &d.join("link.npy"));
            predict_args(&model(d), &x, &d.join("link.npy"))
        }),
        fail("alias-predict-output-inside-model", REFUSE, |d| {
            let m = model(d);
            predict_args(&m, &input(d), &m.join("y.npy"))
        }),
        // Writing through a hard link would change the input; an atomic replace (or a refusal)
        // leaves it intact.
        finish(
            "alias-predict-output-hardlink-to-input",
            &["link.npy"],
            |d| {
                let x = input(d);
                fs::hard_link(&x, d.join("link.npy")).unwrap();
                predict_args(&model(d), &x, &d.join("link.npy"))
            },
        ),
        fail("alias-expand-out-is-model", REFUSE, |d| {
            let m = model(d);
            expand_args(&m, "16", &m)
        }),
        fail("alias-expand-out-is-model-slash", REFUSE, |d| {
            let m = model(d);
            expand_args(&m, "16", Path::new(&format!("{}/", s(&m))))
        }),
        fail("alias-expand-out-is-model-dotted", REFUSE, |d| {
            let m = model(d);
            expand_args(&m, "16", &m.join("../model"))
        }),
        fail("alias-expand-out-symlink-to-model", REFUSE, |d| {
            let m = model(d);
            symlink(&m, &d.join("link"));
            expand_args(&m, "16", &d.join("link"))
        }),
        fail("alias-expand-out-inside-model", REFUSE, |d| {
            let m = model(d);
            expand_args(&m, "16", &m.join("wide"))
        }),
        fail(
            "alias-expand-out-parent-of-model",
            &["refusing to write", "contains"],
            |d| {
                let m = model_at(&d.join("parent/model"));
                expand_args(&m, "16", &d.join("parent"))
            },
        ),
        fail("alias-expand-out-is-sample", REFUSE, |d| {
            let m = model(d);
            let sample = d.join("sample.npy");
            npy::write(&sample, &[2, 50, 16], &values(1600, 4)).unwrap();
            with(
                expand_args(&m, "16", &sample),
                &["--standardize", "--sample", path_str(&sample)],
            )
        }),
        // ── Output paths that cannot be files. ──────────────────────────────────────────────
        fail("out-predict-existing-dir", &["is a directory"], |d| {
            fs::create_dir(d.join("outdir")).unwrap();
            predict_args(&model(d), &input(d), &d.join("outdir"))
        }),
        fail("out-predict-new-dir-slash", &["is a directory"], |d| {
            predict_args(
                &model(d),
                &input(d),
                Path::new(&format!("{}/newdir/", s(d))),
            )
        }),
        fail("out-predict-missing-parent", &["does not exist"], |d| {
            predict_args(&model(d), &input(d), &d.join("no/such/dir/y.npy"))
        }),
        fail("out-expand-missing-parent", &["no/such"], |d| {
            expand_args(&model(d), "16", &d.join("no/such/wide"))
        }),
        fail(
            "out-expand-existing-dir-with-files",
            &["keep", "refusing to replace"],
            |d| {
                write(&d.join("keep/notes.txt"), "precious");
                expand_args(&model(d), "16", &d.join("keep"))
            },
        ),
        fail("out-expand-existing-file", &["file.txt"], |d| {
            write(&d.join("file.txt"), "precious");
            expand_args(&model(d), "16", &d.join("file.txt"))
        }),
        fail("out-study-is-file", &["file.txt"], |d| {
            write(&d.join("file.txt"), "precious");
            study_ctl(d, &[("--out", path_str(&d.join("file.txt")))])
        }),
        // ── Weights with bad values. ─────────────────────────────────────────────────────────
        fail("w-negative-moving-variance", &["moving_variance"], |d| {
            let m = crafted(d, |ts| {
                set_f32(tensor(ts, "batch_normalization.moving_variance"), 3, -0.5);
            });
            predict_model(d, &m)
        }),
        fail("w-conv-near-f32-max", &["non-finite"], |d| {
            let m = crafted(d, |ts| {
                let t = tensor(ts, "conv1d.weight");
                let n = t.data.len() / 4;
                for i in 0..n {
                    set_f32(t, i, 3e38);
                }
            });
            predict_model(d, &m)
        }),
        fail("w-nan-weight", &["non-finite", "conv1d.bias"], |d| {
            let m = crafted(d, |ts| set_f32(tensor(ts, "conv1d.bias"), 0, f32::NAN));
            predict_model(d, &m)
        }),
        fail(
            "w-f64-beyond-f32",
            &["conv1d.bias", "out of float32 range"],
            |d| {
                let m = crafted(d, |ts| {
                    let t = tensor(ts, "conv1d.bias");
                    let mut v = vec![0.1f64; 32];
                    v[5] = 1e300;
                    t.dtype = "F64";
                    t.data = f64_body(&v);
                });
                predict_model(d, &m)
            },
        ),
        fail("w-byte-size-mismatch", &["conv1d.weight"], |d| {
            let m = crafted(d, |ts| {
                let t = tensor(ts, "conv1d.weight");
                t.data.truncate(t.data.len() - 16);
            });
            predict_model(d, &m)
        }),
        fail("w-missing-tensor", &["conv1d.bias"], |d| {
            let m = crafted(d, |ts| ts.retain(|t| t.name != "conv1d.bias"));
            predict_model(d, &m)
        }),
        fail("w-extra-tensor", &["extra.weight"], |d| {
            let m = crafted(d, |ts| {
                ts.push(Tensor {
                    name: "extra.weight".into(),
                    dtype: "F32",
                    shape: vec![2],
                    data: f32_body(2),
                });
            });
            predict_model(d, &m)
        }),
        fail("w-wrong-shape", &["conv1d.weight", "[32, 8, 3]"], |d| {
            let m = crafted(d, |ts| tensor(ts, "conv1d.weight").shape = vec![32, 3, 8]);
            predict_model(d, &m)
        }),
        fail("w-dtype-i32", &["conv1d.bias"], |d| {
            let m = crafted(d, |ts| tensor(ts, "conv1d.bias").dtype = "I32");
            predict_model(d, &m)
        }),
        fail("w-crc-mismatch", &["CRC-32"], |d| {
            let mut bytes = saved_weights();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x40;
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-truncated-half", &["weights.safetensors"], |d| {
            let bytes = saved_weights();
            predict_model(d, &raw_weights(d, &bytes[..bytes.len() / 2]))
        }),
        fail("w-truncated-last-byte", &["weights.safetensors"], |d| {
            let bytes = saved_weights();
            predict_model(d, &raw_weights(d, &bytes[..bytes.len() - 1]))
        }),
        fail("w-truncated-length-only", &["weights.safetensors"], |d| {
            let bytes = saved_weights();
            predict_model(d, &raw_weights(d, &bytes[..8]))
        }),
        fail("w-header-length-u64-max", &["weights.safetensors"], |d| {
            let mut bytes = vec![0xff; 8];
            bytes.extend_from_slice(b"{}      ");
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-header-length-past-end", &["weights.safetensors"], |d| {
            let mut bytes = saved_weights();
            bytes[..8].copy_from_slice(&1_000_000u64.to_le_bytes());
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-header-not-json", &["weights.safetensors"], |d| {
            let mut bytes = 16u64.to_le_bytes().to_vec();
            bytes.extend_from_slice(b"not json at all!");
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-empty-file", &["weights.safetensors"], |d| {
            predict_model(d, &raw_weights(d, b""))
        }),
        fail("w-garbage", &["weights.safetensors"], |d| {
            let bytes: Vec<u8> = values(1024, 9)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-overlapping-offsets", &["weights.safetensors"], |d| {
            let mut bytes = saved_weights();
            // Point the last tensor's data back into the first tensor's bytes.
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
            let fixed = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
            assert_ne!(fixed, header, "the header format changed");
            bytes[8..8 + n].copy_from_slice(fixed.as_bytes());
            predict_model(d, &raw_weights(d, bytes))
        }),
        fail("w-weights-is-dir", &["weights.safetensors"], |d| {
            let m = model(d);
            fs::remove_file(m.join("weights.safetensors")).unwrap();
            fs::create_dir(m.join("weights.safetensors")).unwrap();
            predict_model(d, &m)
        }),
        fail("w-weights-missing", &["weights"], |d| {
            let m = model(d);
            fs::remove_file(m.join("weights.safetensors")).unwrap();
            predict_model(d, &m)
        }),
        fail("w-both-formats-unnamed", &["both"], |d| {
            let m = edited_json(d, |v| {
                v.as_object_mut().unwrap().remove("weights");
            });
            fs::copy(m.join("weights.safetensors"), m.join("weights.bpk")).unwrap();
            summary_args(&m)
        }),
        fail("w-burnpack-garbage", &["weights.bpk"], |d| {
            let m = edited_json(d, |v| v["weights"] = json!("weights.bpk"));
            write(&m.join("weights.bpk"), f32_body(300));
            summary_args(&m)
        }),
        // ── model.json. ─────────────────────────────────────────────────────────────────────
        fail("mj-empty", &["model.json"], |d| {
            summary_args(&raw_json(d, b""))
        }),
        fail("mj-binary-garbage", &["model.json"], |d| {
            summary_args(&raw_json(d, f32_body(512)))
        }),
        fail("mj-utf16", &["model.json"], |d| {
            let m = model(d);
            let text = fs::read_to_string(m.join("model.json")).unwrap();
            let mut bytes = vec![0xff, 0xfe];
            bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            fs::write(m.join("model.json"), bytes).unwrap();
            summary_args(&m)
        }),
        fail("mj-is-dir", &["model.json"], |d| {
            let m = model(d);
            fs::remove_file(m.join("model.json")).unwrap();
            fs::create_dir(m.join("model.json")).unwrap();
            summary_args(&m)
        }),
        fail("mj-missing", &["model.json"], |d| {
            let m = model(d);
            fs::remove_file(m.join("model.json")).unwrap();
            summary_args(&m)
        }),
        fail("mj-top-level-array", &["model.json", "object"], |d| {
            summary_args(&raw_json(d, "[]"))
        }),
        fail("mj-trailing-garbage", &["model.json"], |d| {
            let m = model(d);
            let mut text = fs::read(m.join("model.json")).unwrap();
            text.extend_from_slice(b"{\"more\": 1}");
            fs::write(m.join("model.json"), text).unwrap();
            summary_args(&m)
        }),
        fail("mj-deep-nesting", &["model.json"], |d| {
            let text = format!(
                "{{\"format\": \"widen-model\", \"version\": 1, \"spec\": {}{}}}",
                "[".repeat(200_000),
                "]".repeat(200_000)
            );
            summary_args(&raw_json(d, text))
        }),
        fail("mj-format-wrong", &["widen-model"], |d| {
            summary_args(&edited_json(d, |v| v["format"] = json!("keras")))
        }),
        fail("mj-version-string", &["version"], |d| {
            summary_args(&edited_json(d, |v| v["version"] = json!("1")))
        }),
        fail("mj-version-future", &["version", "99"], |d| {
            summary_args(&edited_json(d, |v| v["version"] = json!(99)))
        }),
        fail("mj-layers-not-array", &["layers"], |d| {
            summary_args(&edited_json(d, |v| {
                v["spec"]["layers"] = json!({"conv1d": 1})
            }))
        }),
        fail("mj-filters-string", &["conv1d", "filters||string"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["filters"] = json!("32")
            }))
        }),
        fail("mj-filters-negative", &["conv1d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["filters"] = json!(-32)
            }))
        }),
        fail("mj-filters-zero", &["conv1d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["filters"] = json!(0)
            }))
        }),
        fail("mj-filters-float", &["conv1d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["filters"] = json!(32.5)
            }))
        }),
        fail("mj-kernel-zero", &["conv1d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["kernel_size"] = json!(0)
            }))
        }),
        fail("mj-kernel-longer-than-input", &["conv1d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["kernel_size"] = json!(1000)
            }))
        }),
        fail("mj-input-channels-zero", &["channels"], |d| {
            summary_args(&edited_json(d, |v| {
                v["spec"]["input"]["channels"] = json!(0)
            }))
        }),
        fail("mj-input-channels-huge-number", &["model.json"], |d| {
            let m = model(d);
            let text = fs::read_to_string(m.join("model.json")).unwrap();
            let text = text.replacen("\"channels\": 8", "\"channels\": 1e400", 1);
            fs::write(m.join("model.json"), text).unwrap();
            summary_args(&m)
        }),
        fail("mj-unknown-layer-type", &["conv2d"], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "conv1d")["type"] = json!("conv2d")
            }))
        }),
        fail("mj-weights-traversal", &["weights", "etc/passwd"], |d| {
            summary_args(&edited_json(d, |v| {
                v["weights"] = json!("../../etc/passwd")
            }))
        }),
        fail("mj-weights-absolute", &["weights", "/etc/passwd"], |d| {
            summary_args(&edited_json(d, |v| v["weights"] = json!("/etc/passwd")))
        }),
        fail("mj-weights-number", &["weights"], |d| {
            summary_args(&edited_json(d, |v| v["weights"] = json!(5)))
        }),
        fail(
            "mj-spec-wrong-model",
            &["conv1d.weight", "[32, 16, 3]"],
            |d| {
                // The architecture says 16 channels, the weights are for 8.
                summary_args(&edited_json(d, |v| {
                    v["spec"]["input"]["channels"] = json!(16)
                }))
            },
        ),
        fail("mj-ansi-name-in-error", &["model.json"], |d| {
            summary_args(&edited_json(d, |v| {
                let l = layer(v, "conv1d");
                l["name"] = json!("evil\u{1b}[2J\u{1b}]0;pwned\u{7}");
                l["filters"] = json!("x");
            }))
        }),
        finish("mj-duplicate-layer-names", &[], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "global_max_pooling1d")["name"] = json!("conv1d");
            }))
        })
        .clean_stdout(),
        finish("mj-nul-and-newline-in-name", &[], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "global_max_pooling1d")["name"] = json!("a\u{0}b\r\nc\u{9b}31m");
            }))
        })
        .clean_stdout(),
        succeed("mj-ansi-name-summary", &[], |d| {
            summary_args(&edited_json(d, |v| {
                layer(v, "global_max_pooling1d")["name"] = json!("conv\u{1b}[31mred\u{7}");
            }))
        })
        .clean_stdout(),
        succeed("mj-bom-summary", &[], |d| {
            let m = model(d);
            let mut bytes = "\u{feff}".as_bytes().to_vec();
            bytes.extend(fs::read(m.join("model.json")).unwrap());
            fs::write(m.join("model.json"), bytes).unwrap();
            summary_args(&m)
        }),
        succeed("mj-bom-predict", &["y.npy"], |d| {
            let m = model(d);
            let mut bytes = "\u{feff}".as_bytes().to_vec();
            bytes.extend(fs::read(m.join("model.json")).unwrap());
            fs::write(m.join("model.json"), bytes).unwrap();
            predict_model(d, &m)
        }),
        succeed("mj-no-weights-key", &[], |d| {
            summary_args(&edited_json(d, |v| {
                v.as_object_mut().unwrap().remove("weights");
            }))
        }),
        fail("model-keras-file", &["keras_export.py"], |d| {
            let k = write(&d.join("model.keras"), b"PK\x03\x04 not really a zip");
            summary_args(&k)
        }),
        fail("model-keras-file-predict", &["keras_export.py"], |d| {
            let k = write(&d.join("model.keras"), b"PK\x03\x04 not really a zip");
            predict_model(d, &k)
        }),
        fail("model-is-plain-file", &["model.bin"], |d| {
            summary_args(&write(&d.join("model.bin"), b"hello"))
        }),
        fail("model-missing", &["nowhere"], |d| {
            summary_args(&d.join("nowhere"))
        }),
        fail("model-missing-expand", &["nowhere"], |d| {
            expand_args(&d.join("nowhere"), "16", &d.join("wide"))
        }),
        fail("model-empty-dir", &["model.json"], |d| {
            fs::create_dir(d.join("model")).unwrap();
            summary_args(&d.join("model"))
        }),
        fail("model-path-with-escapes", &["nowhere"], |d| {
            summary_args(&d.join("nowhere\u{1b}[31m\u{7}"))
        }),
        // ── predict inputs. ──────────────────────────────────────────────────────────────────
        fail("npy-f64-beyond-f32", &["out of float32 range"], |d| {
            let mut v = vec![0.25f64; 800];
            v[10] = 1e300;
            let h = GOOD_HEADER.replace("<f4", "<f8");
            predict_raw(d, &npy_bytes(&h, &f64_body(&v)))
        }),
        fail(
            "npy-f64-beyond-f32-negative",
            &["out of float32 range"],
            |d| {
                let mut v = vec![0.25f64; 800];
                v[799] = -1e39;
                let h = GOOD_HEADER.replace("<f4", "<f8");
                predict_raw(d, &npy_bytes(&h, &f64_body(&v)))
            },
        ),
        fail("npy-nan", &["NaN"], |d| {
            let p = d.join("x.npy");
            let mut v = values(800, 3);
            v[17] = f32::NAN;
            npy::write(&p, &[2, 50, 8], &v).unwrap();
            predict_on(d, &p)
        }),
        fail("npy-inf", &["Inf||non-finite||infinite"], |d| {
            let p = d.join("x.npy");
            let mut v = values(800, 3);
            v[3] = f32::NEG_INFINITY;
            npy::write(&p, &[2, 50, 8], &v).unwrap();
            predict_on(d, &p)
        }),
        fail(
            "npy-channels-first-without-flag",
            &["--channels-first"],
            |d| {
                let p = d.join("x.npy");
                npy::write(&p, &[4, 8, 50], &values(1600, 3)).unwrap();
                predict_on(d, &p)
            },
        ),
        fail(
            "npy-wrong-channels",
            &["layer `conv1d`: expected 8 input channels, got 32"],
            |d| {
                let p = d.join("x.npy");
                npy::write(&p, &[2, 50, 32], &values(3200, 3)).unwrap();
                predict_on(d, &p)
            },
        ),
        fail("npy-wrong-length", &["50", "[2, 10, 8]"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[2, 10, 8], &values(160, 3)).unwrap();
            predict_on(d, &p)
        }),
        fail("npy-zero-length", &["x.npy", "empty"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[2, 0, 8], &[]).unwrap();
            predict_on(d, &p)
        }),
        finish("npy-zero-batch", &["y.npy"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[0, 50, 8], &[]).unwrap();
            predict_on(d, &p)
        }),
        fail("npy-2d", &["3-D"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[2, 400], &values(800, 3)).unwrap();
            predict_on(d, &p)
        }),
        fail("npy-4d", &["3-D"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[2, 50, 8, 1], &values(800, 3)).unwrap();
            predict_on(d, &p)
        }),
        fail("npy-scalar", &["3-D"], |d| {
            let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
            predict_raw(d, &npy_bytes(h, &f32_body(1)))
        }),
        fail("npy-missing", &["nope.npy"], |d| {
            predict_on(d, &d.join("nope.npy"))
        }),
        fail("npy-is-dir", &["in.npy"], |d| {
            fs::create_dir(d.join("in.npy")).unwrap();
            predict_on(d, &d.join("in.npy"))
        }),
        fail("npy-garbage", &[".npy"], |d| predict_raw(d, &f32_body(900))),
        fail("npy-zero-length-file", &[".npy"], |d| predict_raw(d, b"")),
        fail("npy-magic-only", &[".npy"], |d| {
            predict_raw(d, b"\x93NUMPY")
        }),
        fail("npy-magic-and-version-only", &[".npy"], |d| {
            predict_raw(d, b"\x93NUMPY\x01\x00")
        }),
        fail("npy-version-9", &[".npy"], |d| {
            let mut b = npy_bytes(GOOD_HEADER, &f32_body(800));
            b[6] = 9;
            predict_raw(d, &b)
        }),
        fail("npy-header-length-past-end", &[".npy"], |d| {
            let mut b = npy_bytes(GOOD_HEADER, &f32_body(8));
            b[8..10].copy_from_slice(&60_000u16.to_le_bytes());
            predict_raw(d, &b)
        }),
        fail("npy-header-v2-length-past-end", &[".npy"], |d| {
            let mut b = npy_versioned(2, GOOD_HEADER, &f32_body(8));
            b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
            predict_raw(d, &b)
        }),
        fail("npy-header-duplicate-shape", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50, 8), 'shape': (2, 50, 8), }",
            )
        }),
        fail("npy-header-unclosed", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50, 8),",
            )
        }),
        fail("npy-header-trailing-garbage", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50, 8), } junk",
            )
        }),
        fail("npy-header-fortran-yes", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (2, 50, 8), }",
            )
        }),
        fail("npy-header-fortran-true", &[".npy", "Fortran"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 50, 8), }",
            )
        }),
        fail("npy-header-missing-descr", &[".npy"], |d| {
            predict_header(d, "{'fortran_order': False, 'shape': (2, 50, 8), }")
        }),
        fail("npy-header-missing-fortran-order", &[".npy"], |d| {
            predict_header(d, "{'descr': '<f4', 'shape': (2, 50, 8), }")
        }),
        fail("npy-header-missing-shape", &[".npy"], |d| {
            predict_header(d, "{'descr': '<f4', 'fortran_order': False, }")
        }),
        fail("npy-header-extra-key", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50, 8), 'extra': 1, }",
            )
        }),
        fail("npy-header-negative-shape", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -50, -8), }",
            )
        }),
        fail("npy-header-float-shape", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50.0, 8), }",
            )
        }),
        fail("npy-header-list-shape", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 50, 8], }",
            )
        }),
        fail(
            "npy-header-shape-overflow",
            &["[18446744073709551615, 2, 2]"],
            |d| {
                predict_header(
                    d,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 2, 2), }",
                )
            },
        ),
        fail("npy-header-shape-too-big-for-usize", &[".npy"], |d| {
            predict_header(
                d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 2, 2), }",
            )
        }),
        fail("npy-header-not-utf8", &[".npy"], |d| {
            let mut b = npy_bytes(GOOD_HEADER, &f32_body(800));
            b[12] = 0xff;
            predict_raw(d, &b)
        }),
        fail("npy-big-endian", &[".npy"], |d| {
            predict_header(d, &GOOD_HEADER.replace("<f4", ">f4"))
        }),
        fail("npy-int32", &[".npy"], |d| {
            predict_header(d, &GOOD_HEADER.replace("<f4", "<i4"))
        }),
        fail("npy-float16", &["`<f2`"], |d| {
            let h = GOOD_HEADER.replace("<f4", "<f2");
            predict_raw(d, &npy_bytes(&h, &f32_body(400)))
        }),
        fail("npy-object-dtype", &["`|O`"], |d| {
            predict_header(d, &GOOD_HEADER.replace("'<f4'", "'|O'"))
        }),
        fail("npy-body-short", &["3200", "3196"], |d| {
            predict_raw(d, &npy_bytes(GOOD_HEADER, &f32_body(799)))
        }),
        fail("npy-body-long", &["3200", "3204"], |d| {
            predict_raw(d, &npy_bytes(GOOD_HEADER, &f32_body(801)))
        }),
        succeed("npy-header-compact", &["y.npy"], |d| {
            predict_header(d, "{'descr':'<f4','fortran_order':False,'shape':(2,50,8)}")
        }),
        succeed("npy-header-reordered", &["y.npy"], |d| {
            predict_header(
                d,
                "{'shape': (2, 50, 8), 'fortran_order': False, 'descr': '<f4', }",
            )
        }),
        succeed("npy-version-2", &["y.npy"], |d| {
            predict_raw(d, &npy_versioned(2, GOOD_HEADER, &f32_body(800)))
        }),
        succeed("npy-version-3", &["y.npy"], |d| {
            predict_raw(d, &npy_versioned(3, GOOD_HEADER, &f32_body(800)))
        }),
        succeed("npy-float64", &["y.npy"], |d| {
            let v: Vec<f64> = values(800, 3).iter().map(|&x| f64::from(x) * 1e3).collect();
            predict_raw(
                d,
                &npy_bytes(&GOOD_HEADER.replace("<f4", "<f8"), &f64_body(&v)),
            )
        }),
        succeed("npy-channels-first-flag", &["y.npy"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[4, 8, 50], &values(1600, 3)).unwrap();
            with(predict_on(d, &p), &["--channels-first"])
        }),
        succeed("npy-odd-file-names", &["out put ü.npy"], |d| {
            let m = model_at(&d.join("mödel dir"));
            let x = input_named(d, "in put ☃.npy");
            predict_args(&m, &x, &d.join("out put ü.npy"))
        }),
        fail("npy-input-path-with-escapes", &["nope"], |d| {
            predict_on(d, &d.join("nope\u{1b}[31m.npy"))
        }),
        // ── expand requests. ─────────────────────────────────────────────────────────────────
        fail("expand-to-same", &["already has 8"], |d| expand_to(d, "8")),
        fail("expand-to-fewer", &["fewer"], |d| expand_to(d, "4")),
        fail("expand-to-zero", &["> 0"], |d| expand_to(d, "0")),
        usage("expand-to-negative", &["--to"], |d| {
            let mut v = expand_to(d, "16");
            v[3] = "--to=-1".into();
            v.remove(4);
            v
        }),
        usage("expand-to-not-a-number", &["--to"], |d| {
            expand_to(d, "lots")
        }),
        usage("expand-strategy-unknown", &["magic"], |d| {
            let mut v = expand_to(d, "16");
            v[6] = "magic".into();
            v
        }),
        usage("expand-standardize-without-sample", &["--sample"], |d| {
            with(expand_to(d, "16"), &["--standardize"])
        }),
        fail("expand-sample-missing", &["nope.npy"], |d| {
            let p = d.join("nope.npy");
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        fail("expand-sample-wrong-channels", &["16"], |d| {
            let p = input(d);
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        fail("expand-sample-nan", &["NaN"], |d| {
            let p = d.join("s.npy");
            let mut v = values(1600, 4);
            v[100] = f32::NAN;
            npy::write(&p, &[2, 50, 16], &v).unwrap();
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        fail("expand-sample-garbage", &[".npy"], |d| {
            let p = write(&d.join("s.bin"), b"\x93NUMPY garbage");
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        // A constant new channel has standard deviation 0: either a clean refusal or a
        // finite model.
        finish("expand-sample-constant-channels", &["wide"], |d| {
            let p = d.join("s.npy");
            npy::write(&p, &[2, 50, 16], &vec![3.0; 1600]).unwrap();
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        fail("expand-backend-unknown", &["unknown backend `tpu`"], |d| {
            with(expand_to(d, "16"), &["--backend", "tpu"])
        }),
        // ── study: flags. ────────────────────────────────────────────────────────────────────
        fail("study-lr-1e30", &["diverged"], |d| {
            study_ctl(d, &[("--lr", "1e30")])
        })
        .forbid(&["config"]),
        fail("study-lr-nan", &["learning rate"], |d| {
            study_ctl(d, &[("--lr", "nan")])
        }),
        fail("study-lr-negative", &["learning rate"], |d| {
            study_ctl(d, &[("--lr", "-1")])
        }),
        fail("study-lr-inf", &["learning rate"], |d| {
            study_ctl(d, &[("--lr", "inf")])
        }),
        fail("study-finetune-lr-zero", &["learning rate"], |d| {
            study_ctl(d, &[("--finetune-lr", "0")])
        }),
        fail("study-batch-size-zero", &["batch size"], |d| {
            study_ctl(d, &[("--batch-size", "0")])
        }),
        usage("study-seeds-empty", &["seed"], |d| {
            study_ctl(d, &[("--seeds", "")])
        }),
        usage("study-seeds-negative", &["seed"], |d| {
            study_ctl(d, &[("--seeds", "-1")])
        }),
        fail("study-length-zero", &["length"], |d| {
            study_ctl(d, &[("--length", "0")])
        }),
        fail("study-c-old-zero", &["old"], |d| {
            study_ctl(d, &[("--c-old", "0")])
        }),
        fail("study-c-new-below-c-old", &["new"], |d| {
            study_ctl(d, &[("--c-old", "4"), ("--c-new", "2")])
        }),
        fail("study-scale-inf", &["scale"], |d| {
            study_ctl(d, &[("--scale", "inf")])
        }),
        fail("study-scale-nan", &["scale"], |d| {
            study_ctl(d, &[("--scale", "nan")])
        }),
        fail("study-offset-nan", &["offset"], |d| {
            study_ctl(d, &[("--offset", "NaN")])
        }),
        fail("study-train-cases-zero", &["cases"], |d| {
            study_ctl(d, &[("--train-cases", "0")])
        }),
        fail("study-test-cases-zero", &["cases"], |d| {
            study_ctl(d, &[("--test-cases", "0")])
        }),
        fail(
            "study-unknown-strategy",
            &["unknown strategy `magic`"],
            |d| study_ctl(d, &[("--strategies", "magic")]),
        ),
        fail(
            "study-unknown-scenario",
            &["unknown scenario `imaginary`"],
            |d| study_ctl(d, &[("--scenarios", "imaginary")]),
        ),
        fail("study-unknown-backend", &["unknown backend `tpu`"], |d| {
            study_ctl(d, &[("--backend", "tpu")])
        }),
        usage("study-train-without-test", &["--test"], |d| {
            let a = write(&d.join("A.ts"), good_ts(8));
            args(&[
                "study",
                "--scenarios",
                "real",
                "--quiet",
                "--train",
                path_str(&a),
            ])
        }),
        // ── study: `.ts` files. ──────────────────────────────────────────────────────────────
        fail("ts-old-channels-all", &["fewer than"], |d| {
            let t = ts_text(6, 20, 8, &["up", "down"], &["up", "down"]);
            study_real(d, t.clone(), t, "6")
        }),
        fail("ts-old-channels-zero", &["--old-channels"], |d| {
            study_real(d, good_ts(8), good_ts(8), "0")
        }),
        fail("ts-old-channels-beyond", &["--old-channels"], |d| {
            study_real(d, good_ts(8), good_ts(8), "100")
        }),
        fail("ts-test-channels-differ", &["disagree"], |d| {
            study_real(
                d,
                good_ts(8),
                ts_text(4, 20, 8, &["up", "down"], &["up", "down"]),
                "1",
            )
        }),
        fail("ts-test-length-differs", &["disagree"], |d| {
            study_real(
                d,
                good_ts(8),
                ts_text(3, 30, 8, &["up", "down"], &["up", "down"]),
                "1",
            )
        }),
        fail("ts-missing-value", &["A.ts", "?"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,?:5,6:up\n1,2:3,4:5,6:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-nan-value", &["A.ts", "NaN"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,NaN:5,6:up\n1,2:3,4:5,6:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-inf-value", &["A.ts", "inf"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,inf:5,6:up\n1,2:3,4:5,6:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-value-beyond-f32", &["A.ts", "1e300"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,1e300:5,6:up\n1,2:3,4:5,6:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-non-numeric", &["A.ts", "abc"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,abc:5,6:up\n1,2:3,4:5,6:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-mismatched-dimensions", &["A.ts", "dimensions"], |d| {
            let mut t = ts_header(3, 2, "true up down");
            t.push_str("1,2:3,4:5,6:up\n1,2:3,4:down\n");
            study_bad_train(d, t)
        }),
        fail("ts-unequal-lengths", &["A.ts", "length"], |d| {
            let mut t = ts_header(3, 2, "true up down").replace(
                "@equalLength true\n@seriesLength 2\n",
                "@equalLength false\n",
            );
            t.push_str("1,2:3,4:5,6:up\n1,2,7:3,4,8:5,6,9:down\n");
            study_bad_train(d, t)
        }),
        fail(
            "ts-series-length-mismatch",
            &["A.ts", "expected length 20"],
            |d| {
                let mut t = good_ts(8);
                t.push_str(&ts_case(3, 19, 99, 0, Some("up")));
                study_bad_train(d, t)
            },
        ),
        fail("ts-timestamps-true", &["A.ts", "@timeStamps true"], |d| {
            study_bad_train(
                d,
                good_ts(8).replace("@timeStamps false", "@timeStamps true"),
            )
        }),
        fail("ts-no-classlabel", &["A.ts", "@classLabel"], |d| {
            study_bad_train(d, good_ts(8).replace("@classLabel true up down\n", ""))
        }),
        fail("ts-undeclared-label", &["A.ts", "sideways"], |d| {
            let mut t = good_ts(8);
            t.push_str(&ts_case(3, 20, 99, 0, Some("sideways")));
            study_bad_train(d, t)
        }),
        fail("ts-duplicate-labels", &["A.ts", "distinct"], |d| {
            study_bad_train(
                d,
                good_ts(8).replace("@classLabel true up down", "@classLabel true up down up"),
            )
        }),
        fail("ts-missing-label", &["A.ts", "label"], |d| {
            let mut t = good_ts(8);
            t.push_str(&ts_case(3, 20, 99, 0, None));
            study_bad_train(d, t)
        }),
        fail("ts-empty-series", &["A.ts", "empty"], |d| {
            let mut t =
                ts_header(3, 2, "true up down").replace("@equalLength true\n@seriesLength 2\n", "");
            t.push_str("1,2::5,6:up\n");
            study_bad_train(d, t)
        }),
        fail("ts-dimensions-zero", &["A.ts", "@dimensions"], |d| {
            study_bad_train(
                d,
                good_ts(8).replace("@univariate false\n@dimensions 3", "@dimensions 0"),
            )
        }),
        fail("ts-unknown-header", &["A.ts", "@frobnicate"], |d| {
            study_bad_train(d, good_ts(8).replace("@data", "@frobnicate yes\n@data"))
        }),
        fail("ts-header-after-data", &["A.ts", "@missing"], |d| {
            let mut t = good_ts(8);
            t.push_str("@missing true\n");
            study_bad_train(d, t)
        }),
        fail("ts-no-data-line", &["A.ts", "@data"], |d| {
            study_bad_train(d, good_ts(8).replace("@data\n", ""))
        }),
        fail("ts-no-cases", &["A.ts", "case"], |d| {
            study_bad_train(d, good_ts(0))
        }),
        fail("ts-empty-file", &["A.ts", "@data"], |d| {
            study_bad_train(d, "")
        }),
        fail("ts-comments-only", &["A.ts", "@data"], |d| {
            study_bad_train(d, "# nothing\n# here\n")
        }),
        fail("ts-binary-garbage", &["A.ts", "UTF-8"], |d| {
            study_bad_train(d, f32_body(1000))
        }),
        fail("ts-invalid-utf8", &["A.ts", "UTF-8"], |d| {
            let mut b = good_ts(8).into_bytes();
            let at = b.len() - 5;
            b[at] = 0xff;
            study_bad_train(d, b)
        }),
        fail("ts-nul-bytes", &["A.ts"], |d| {
            let t = good_ts(8).replacen(",", ",\u{0}", 3);
            study_bad_train(d, t)
        }),
        fail("ts-ansi-in-label", &["A.ts"], |d| {
            let mut t = good_ts(8);
            t.push_str(&ts_case(3, 20, 99, 0, Some("\u{1b}[2J\u{1b}[31mred\u{7}")));
            study_bad_train(d, t)
        }),
        fail("ts-train-is-dir", &["A.ts"], |d| {
            fs::create_dir(d.join("A.ts")).unwrap();
            let b = write(&d.join("B.ts"), good_ts(8));
            study_files(d, &d.join("A.ts"), &b, "1")
        }),
        fail("ts-train-missing", &["nope.ts"], |d| {
            let b = write(&d.join("B.ts"), good_ts(8));
            study_files(d, &d.join("nope.ts"), &b, "1")
        }),
        fail("ts-test-missing", &["nope.ts"], |d| {
            let a = write(&d.join("A.ts"), good_ts(8));
            study_files(d, &a, &d.join("nope.ts"), "1")
        }),
        succeed("ts-bom", &["out"], |d| {
            study_real(
                d,
                format!("\u{feff}{}", good_ts(8)),
                format!("\u{feff}{}", good_ts(8)),
                "1",
            )
        }),
        succeed("ts-crlf", &["out"], |d| {
            study_real(d, good_ts(8).replace('\n', "\r\n"), good_ts(8), "1")
        }),
        // ── bench, demo, backends, the command line. ─────────────────────────────────────────
        fail("bench-unknown-shape", &["unknown shape `huge`"], |_| {
            args(&["bench", "--shapes", "huge", "--repeats", "1"])
        }),
        fail("bench-unknown-conv", &["unknown conv `magic`"], |_| {
            args(&[
                "bench",
                "--shapes",
                "seed",
                "--repeats",
                "1",
                "--conv",
                "magic",
            ])
        }),
        fail("bench-unknown-backend", &["unknown backend `tpu`"], |_| {
            args(&[
                "bench",
                "--backend",
                "tpu",
                "--shapes",
                "seed",
                "--repeats",
                "1",
            ])
        }),
        finish("bench-zero-repeats", &[], |_| {
            args(&["bench", "--shapes", "seed", "--repeats", "0", "--json"])
        }),
        fail("demo-backend-empty", &["backend"], |_| {
            args(&["demo", "--backend", ""])
        }),
        fail("demo-backend-escapes", &["backend"], |_| {
            args(&["demo", "--backend", "tpu\u{1b}[31m"])
        }),
        fail("env-backend-garbage", &["garbage"], |_| args(&["demo"]))
            .env(&[("WIDEN_BACKEND", "garbage")]),
        fail("summary-unknown-backend", &["unknown backend `tpu`"], |d| {
            with(summary_args(&model(d)), &["--backend", "tpu"])
        }),
        fail("predict-unknown-backend", &["unknown backend `tpu`"], |d| {
            with(predict_model(d, &model(d)), &["--backend", "tpu"])
        }),
        usage("unknown-subcommand", &["frobnicate"], |_| {
            args(&["frobnicate"])
        }),
        usage("unknown-flag", &["--frobnicate"], |d| {
            with(summary_args(&model(d)), &["--frobnicate"])
        }),
        usage("predict-missing-output", &["--output"], |d| {
            let mut v = predict_model(d, &model(d));
            v.truncate(5);
            v
        }),
        // ── Inputs that are not regular files, and odd paths. ───────────────────────────────
        fail(
            "special-npy-dev-zero",
            &["/dev/zero", "not a regular file"],
            |d| predict_on(d, Path::new("/dev/zero")),
        ),
        fail(
            "special-npy-dev-urandom",
            &["/dev/urandom", "not a regular file"],
            |d| predict_on(d, Path::new("/dev/urandom")),
        ),
        fail(
            "special-ts-dev-zero",
            &["/dev/zero", "not a regular file"],
            |d| {
                let b = write(&d.join("B.ts"), good_ts(8));
                study_files(d, Path::new("/dev/zero"), &b, "1")
            },
        ),
        fail(
            "special-model-json-to-dev-zero",
            &["model.json", "not a regular file"],
            |d| {
                let m = model(d);
                fs::remove_file(m.join("model.json")).unwrap();
                symlink(Path::new("/dev/zero"), &m.join("model.json"));
                summary_args(&m)
            },
        ),
        fail(
            "special-weights-to-dev-zero",
            &["weights.safetensors", "not a regular file"],
            |d| {
                let m = model(d);
                fs::remove_file(m.join("weights.safetensors")).unwrap();
                symlink(Path::new("/dev/zero"), &m.join("weights.safetensors"));
                summary_args(&m)
            },
        ),
        fail(
            "special-sample-dev-zero",
            &["/dev/zero", "not a regular file"],
            |d| {
                with(
                    expand_to(d, "16"),
                    &["--standardize", "--sample", "/dev/zero"],
                )
            },
        ),
        fail("special-npy-fifo", &["in.npy", "not a regular file"], |d| {
            mkfifo(&d.join("in.npy"));
            predict_on(d, &d.join("in.npy"))
        })
        .limit(15),
        fail("special-ts-fifo", &["A.ts", "not a regular file"], |d| {
            mkfifo(&d.join("A.ts"));
            let b = write(&d.join("B.ts"), good_ts(8));
            study_files(d, &d.join("A.ts"), &b, "1")
        })
        .limit(15),
        fail("special-model-symlink-loop", &["loop"], |d| {
            symlink(&d.join("loop"), &d.join("loop"));
            summary_args(&d.join("loop"))
        }),
        fail("special-model-path-too-long", &["too long"], |d| {
            summary_args(&d.join("m".repeat(5000)))
        }),
        fail("special-output-parent-is-file", &["file.txt"], |d| {
            write(&d.join("file.txt"), "precious");
            predict_args(&model(d), &input(d), &d.join("file.txt/y.npy"))
        }),
        // ── More memory and overflow edges. ──────────────────────────────────────────────────
        usage("mem-flag-overflow", &["--max-memory"], |d| {
            with(
                summary_args(&model(d)),
                &["--max-memory", "18446744073709551616"],
            )
        }),
        usage("mem-flag-suffix-overflow", &["--max-memory"], |d| {
            with(summary_args(&model(d)), &["--max-memory", "99999999999T"])
        }),
        finish("mem-flag-zero", &[], |d| {
            with(summary_args(&model(d)), &["--max-memory", "0"])
        }),
        finish("mem-env-empty", &[], |d| summary_args(&model(d))).env(&[("WIDEN_MAX_MEMORY", "")]),
        fail("mem-ts-huge-dimensions", &["A.ts"], |d| {
            let text = ts_header(3, 20, "true up down")
                .replace("@dimensions 3", "@dimensions 1000000000000")
                + &ts_case(3, 20, 0, 0, Some("up"));
            study_bad_train(d, text)
        }),
        fail("npy-header-zero-and-huge-shape", &["input.bin"], |d| {
            let h =
                "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 18446744073709551615, 8), }";
            predict_raw(d, &npy_bytes(h, b""))
        }),
        fail("ts-series-length-zero", &["A.ts", "@seriesLength"], |d| {
            study_bad_train(d, good_ts(8).replace("@seriesLength 20", "@seriesLength 0"))
        }),
        // Finite inputs whose outputs overflow float32.
        fail("npy-values-near-f32-max", &["non-finite"], |d| {
            let p = d.join("x.npy");
            npy::write(&p, &[2, 50, 8], &vec![3e38; 800]).unwrap();
            predict_on(d, &p)
        }),
        finish("expand-sample-near-f32-max", &["wide"], |d| {
            let p = d.join("s.npy");
            let mut v = values(1600, 4);
            for x in v.iter_mut().step_by(3) {
                *x *= 3e38;
            }
            npy::write(&p, &[2, 50, 16], &v).unwrap();
            with(
                expand_to(d, "16"),
                &["--standardize", "--sample", path_str(&p)],
            )
        }),
        finish("study-duplicate-seeds", &["out"], |d| {
            study_ctl(d, &[("--seeds", "1,1")])
        }),
        // The study's outputs must not overwrite its own inputs either.
        fail("alias-study-out-holds-train", REFUSE, |d| {
            let a = write(&d.join("out/study.json"), good_ts(8));
            let b = write(&d.join("B.ts"), good_ts(8));
            study_files(d, &a, &b, "1")
        }),
    ]
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}
