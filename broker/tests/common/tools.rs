//! The independent clients of the interop tests, installed on first use so that the README's
//! test command brings what it needs: Eclipse Paho (Python) in a virtualenv under the target
//! directory (`target/test-tools/python`, so `cargo clean` removes it), MQTT.js (Node.js) by
//! `npm ci` into `tests/mqttjs/node_modules`. An install is built in a scratch directory next to
//! its place and renamed into it, so a test process never sees a half-made one and two processes
//! installing at once both end up with a whole one. Where the install cannot be made (no
//! python3, no venv module, no node or npm, no registry), the test fails saying what to install.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest one install step (creating the venv, pip, npm) may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The Paho release line `tests/paho/flows.py` is written for (the 2.x callback API).
pub const PAHO_REQUIREMENT: &str = "paho-mqtt>=2,<3";
const PAHO_PROBE: &str = "import paho.mqtt.client; from paho.mqtt.enums import CallbackAPIVersion";

/// `<target>/test-tools`: the integration tests' `CARGO_TARGET_TMPDIR` is `<target>/tmp`.
pub fn tools_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-tools")
}

/// What a finished command printed.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run `cmd` to its end, its output kept in files under `scratch` (so a chatty command cannot
/// fill a pipe), killed after `timeout`. `Err` if it could not be started (not installed).
pub fn run_bounded(mut cmd: Command, scratch: &Path, timeout: Duration) -> std::io::Result<Ran> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    std::fs::create_dir_all(scratch).unwrap();
    let out_path = scratch.join(format!("out-{}-{n}", std::process::id()));
    let err_path = scratch.join(format!("err-{}-{n}", std::process::id()));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| {
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let _ = std::fs::remove_file(p);
        text
    };
    Ok(Ran {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

/// A directory removed on drop (also when a step panics).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Make `place` by `build` unless `ready(place)` already holds. `build` gets a fresh scratch
/// directory beside `place` (same file system) and returns what it made there; that is renamed
/// to `place`. If another process put a ready one there first, ours is dropped.
fn install_once(place: &Path, ready: impl Fn(&Path) -> bool, build: impl FnOnce(&Path) -> PathBuf) {
    if ready(place) {
        return;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let parent = place.parent().unwrap();
    let name = place.file_name().unwrap().to_string_lossy().into_owned();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let scratch = Scratch(parent.join(format!(".{name}.install-{tag}")));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).unwrap();
    let made = build(&scratch.0);
    assert!(
        ready(&made),
        "{} was made but does not work",
        made.display()
    );
    for _ in 0..3 {
        if std::fs::rename(&made, place).is_ok() || ready(place) {
            return;
        }
        // Something else is in the way (an install made by hand that does not work): set it
        // aside, then try again.
        let aside = parent.join(format!(".{name}.old-{tag}"));
        if std::fs::rename(place, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    panic!("could not put {} in place", place.display());
}

/// Whether `program args...` runs and exits 0.
fn succeeds(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python of a virtualenv holding Paho (`target/test-tools/python`), made on first use by
/// `python3 -m venv` and `pip install 'paho-mqtt>=2,<3'`, reused afterwards.
pub fn paho_python() -> PathBuf {
    let venv = tools_dir().join("python");
    let ready = |venv: &Path| succeeds(&venv.join("bin").join("python"), &["-c", PAHO_PROBE]);
    install_once(&venv, ready, |scratch| {
        let made = scratch.join("venv");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&made);
        let ran = run_bounded(cmd, scratch, INSTALL_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "python3 is needed to install the Paho client ({e}): install Python 3 with its \
                 venv module and pip (Debian: apt-get install python3 python3-venv python3-pip)"
            )
        });
        assert!(
            ran.status.success(),
            "`python3 -m venv` failed: the venv module (with ensurepip) is missing; install it \
             (Debian: apt-get install python3-venv).\n{}",
            ran.output()
        );
        let mut cmd = Command::new(made.join("bin").join("python"));
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PAHO_REQUIREMENT,
        ]);
        let ran = run_bounded(cmd, scratch, INSTALL_TIMEOUT).unwrap();
        assert!(
            ran.status.success(),
            "pip could not install '{PAHO_REQUIREMENT}' into {} (is PyPI reachable? is pip \
             there: Debian: apt-get install python3-pip)\n{}",
            made.display(),
            ran.output()
        );
        made
    });
    venv.join("bin").join("python")
}

/// Node.js with MQTT.js installed in `dir` (`tests/mqttjs`): `npm ci --no-audit --no-fund` from
/// its package-lock.json when `node_modules` cannot load `mqtt`. Returns the `node` to run.
pub fn mqttjs_node(dir: &Path) -> PathBuf {
    let node = PathBuf::from("node");
    let version = Command::new(&node).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "node is needed to run MQTT.js ({version:?}): install Node.js 16 or later with npm \
         (Debian: apt-get install nodejs npm)"
    );
    let ready = |modules: &Path| {
        modules.join("mqtt").is_dir()
            && succeeds(
                Path::new("node"),
                &[
                    "-e",
                    &format!("require({:?})", modules.join("mqtt").display().to_string()),
                ],
            )
    };
    install_once(&dir.join("node_modules"), ready, |scratch| {
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(dir.join(file), scratch.join(file)).unwrap();
        }
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(scratch);
        let logs = scratch.join("logs");
        let ran = run_bounded(cmd, &logs, INSTALL_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "npm is needed to install MQTT.js ({e}): install it with Node.js \
                 (Debian: apt-get install npm)"
            )
        });
        assert!(
            ran.status.success(),
            "`npm ci` could not install MQTT.js from {}/package-lock.json (is the npm registry \
             reachable?)\n{}",
            dir.display(),
            ran.output()
        );
        scratch.join("node_modules")
    });
    node
}
