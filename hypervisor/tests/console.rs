//! The interactive console on a real terminal: `pvh boot` runs in a tmux
//! pane (a pseudo-terminal with a shell in front of it, as a user has), and
//! the test types into it with `tmux send-keys`. Checked: raw mode is on
//! while the guest runs (Ctrl-C reaches the guest, no local echo), Ctrl-A x
//! quits and Ctrl-A h helps, and the terminal's settings (`stty -g`) are
//! the same after every way out: the guest exits, the timeout, an output
//! error, SIGTERM and SIGINT from `kill`. Also the progress line while a
//! kernel loads. tmux comes from scripts/setup.sh.

#[path = "../../loader/bootdomains/tests/bootinfo_util/mod.rs"]
mod bootinfo_util;
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use bootinfo_util::Scratch;
use common::{Asm, artifact, kvm_available, pvh_elf};
use pvh_hypervisor::output::PROGRESS_DELAY;
use pvh_hypervisor::status;

/// Bound for anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// Whether tmux is here; absent it is a skip, except under `CI=true`.
fn tmux_available(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: tmux is required under CI=true (scripts/setup.sh installs it)");
    }
    eprintln!("{test}: skipped: tmux not installed (scripts/setup.sh)");
    false
}

/// A private tmux server with one pane running `script`.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(script: &Path) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "pvh-console-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let pane = Self { socket };
        let ok = pane
            .tmux(&["new-session", "-d", "-x", "120", "-y", "40", "sh"])
            .arg(script)
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        pane
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    fn send(&self, keys: &[&str]) {
        let ok = self
            .tmux(&["send-keys", "-t", "0"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = self
            .tmux(&["capture-pane", "-p", "-t", "0"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tty(&self) -> String {
        let out = self
            .tmux(&["display-message", "-p", "-t", "0", "#{pane_tty}"])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `stty -a` of the pane's terminal, seen from outside.
    fn stty(&self) -> String {
        let out = Command::new("stty")
            .args(["-F", &self.tty(), "-a"])
            .output()
            .expect("stty");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}

/// Waits until `f` returns `Some`, or fails with `what` and the screen.
fn wait_for<T>(pane: &Pane, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}; screen:\n{}",
            pane.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A guest that echoes every byte COM1 receives and exits with the byte
/// as its status when it is a control character (Ctrl-C: 3).
fn echo_guest() -> Asm {
    let mut code = Asm::new();
    let top = code.here();
    code = code.mov_dx(0x3fd);
    let poll = code.here();
    code = code.in_al_dx().raw(&[0xa8, 0x01]); // test al, 1 (LSR.DR)
    let jz = code.here();
    code = code.raw(&[0x74, (poll as isize - (jz as isize + 2)) as i8 as u8]); // jz poll
    code = code.mov_dx(0x3f8).in_al_dx().out_dx_al().raw(&[0x3c, 0x20]); // cmp al, 0x20
    let jae = code.here();
    code = code.raw(&[0x73, (top as isize - (jae as isize + 2)) as i8 as u8]); // jae top
    let code = code.mov_dx(0xf4).out_dx_al();
    let here = code.here();
    code.jmp_to(here)
}

/// One interactive run: the script saves `stty -g`, runs pvh (exec'd, so
/// its pid is in `pid`), records its status and `stty -g` again.
struct Session {
    dir: Scratch,
    pane: Pane,
}

impl Session {
    fn start(extra: &[&str]) -> Self {
        let dir = Scratch::new();
        let kernel = dir.file("echo.elf", &pvh_elf(echo_guest().bytes()));
        let mut cmd = format!(
            "exec '{}' boot --kernel '{}'",
            env!("CARGO_BIN_EXE_pvh"),
            kernel.display()
        );
        for a in extra {
            cmd.push_str(&format!(" '{a}'"));
        }
        let script = dir.file(
            "run.sh",
            format!(
                "cd '{}'\nstty -g > before\nsh -c 'echo $$ > pid; {cmd}'\necho $? > status.tmp\n\
                 stty -g > after\nmv status.tmp status\nexec sleep 600\n",
                dir.0.display()
            )
            .as_bytes(),
        );
        let pane = Pane::start(&script);
        let s = Self { dir, pane };
        // Raw mode is on once the terminal stops being canonical.
        wait_for(&s.pane, "raw mode", || {
            s.file("pid")?;
            s.pane.stty().contains("-icanon").then_some(())
        });
        s
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.0.join(name)).ok()
    }

    fn pid(&self) -> String {
        self.file("pid").unwrap().trim().to_owned()
    }

    /// Waits for pvh to end; returns its status as the shell saw it.
    fn status(&self) -> i32 {
        let s = wait_for(&self.pane, "pvh to end", || self.file("status"));
        s.trim().parse().unwrap()
    }

    fn assert_terminal_restored(&self) {
        let before = self.file("before").unwrap();
        let after = self.file("after").unwrap();
        assert!(!before.is_empty());
        assert_eq!(before, after, "terminal settings changed");
        assert!(self.pane.stty().contains(" icanon"), "{}", self.pane.stty());
    }
}

fn available(test: &str) -> bool {
    tmux_available(test) && kvm_available(test)
}

#[test]
fn raw_mode_sends_every_key_to_the_guest_and_is_undone_when_it_exits() {
    if !available("raw_mode_sends_every_key_to_the_guest_and_is_undone_when_it_exits") {
        return;
    }
    let s = Session::start(&[]);
    let stty = s.pane.stty();
    assert!(stty.contains("-echo ") && stty.contains("-isig"), "{stty}");
    s.pane.send(&["-l", "hello"]);
    wait_for(&s.pane, "the guest's echo", || {
        s.pane.screen().contains("hello").then_some(())
    });
    // Ctrl-C is a byte for the guest (its status), not SIGINT for pvh.
    s.pane.send(&["C-c"]);
    assert_eq!(s.status(), 3);
    s.assert_terminal_restored();
    // No local echo: the guest's is the only copy.
    assert_eq!(
        s.pane.screen().matches("hello").count(),
        1,
        "{}",
        s.pane.screen()
    );
}

#[test]
fn ctrl_a_x_quits_and_ctrl_a_h_helps() {
    if !available("ctrl_a_x_quits_and_ctrl_a_h_helps") {
        return;
    }
    let s = Session::start(&[]);
    s.pane.send(&["C-a", "h"]);
    wait_for(&s.pane, "the help", || {
        s.pane.screen().contains("Ctrl-A x").then_some(())
    });
    s.pane.send(&["C-a", "x"]);
    assert_eq!(s.status(), i32::from(status::QUIT));
    s.assert_terminal_restored();
    assert!(
        s.pane.screen().contains("quit from the console"),
        "{}",
        s.pane.screen()
    );
}

#[test]
fn terminal_is_restored_after_a_timeout() {
    if !available("terminal_is_restored_after_a_timeout") {
        return;
    }
    let s = Session::start(&["--timeout", "2"]);
    assert_eq!(s.status(), i32::from(status::TIMEOUT));
    s.assert_terminal_restored();
}

#[test]
fn terminal_is_restored_after_an_output_error() {
    if !available("terminal_is_restored_after_an_output_error") {
        return;
    }
    let s = Session::start(&["--serial", "/dev/full"]);
    // The guest's echo cannot be written: the run ends with status 77.
    s.pane.send(&["-l", "x"]);
    assert_eq!(s.status(), i32::from(status::OUTPUT));
    s.assert_terminal_restored();
}

#[test]
fn terminal_is_restored_after_a_fatal_signal() {
    if !available("terminal_is_restored_after_a_fatal_signal") {
        return;
    }
    for (signal, number) in [("TERM", libc::SIGTERM), ("INT", libc::SIGINT)] {
        let s = Session::start(&[]);
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &s.pid()])
            .status()
            .unwrap();
        assert!(ok.success());
        // The shell reports death by a signal as 128 + its number: the
        // default action still ran after the terminal was put back.
        assert_eq!(s.status(), 128 + number, "SIG{signal}");
        s.assert_terminal_restored();
    }
}

/// Makes a FIFO at `path` (mkfifo(1)) and returns the path.
fn mkfifo(path: &Path) -> PathBuf {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
    path.to_path_buf()
}

/// Writes `bytes` into the FIFO at `path` from a thread: the first half as
/// soon as a reader opens it (then `half` is signalled), the rest once `go`
/// is sent or dropped. The reader is held mid-input for as long as the
/// test likes, so "work that runs long" does not depend on this machine's
/// speed (the xz payload of Debian's kernel decompresses in about the
/// progress line's delay here).
fn feed_in_two_halves(path: PathBuf, bytes: Vec<u8>) -> (Receiver<()>, Sender<()>) {
    let (half_tx, half) = channel();
    let (go, go_rx) = channel::<()>();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open the FIFO");
        let (first, rest) = bytes.split_at(bytes.len() / 2);
        f.write_all(first).expect("write the first half");
        let _ = half_tx.send(());
        let _ = go_rx.recv();
        f.write_all(rest).expect("write the rest");
    });
    (half, go)
}

#[test]
fn long_loading_shows_a_progress_line_on_a_terminal_only() {
    if !tmux_available("long_loading_shows_a_progress_line_on_a_terminal_only") {
        return;
    }
    let Some(bz) = artifact("bzImage") else {
        return;
    };
    let bz = std::fs::read(bz).unwrap();
    let dir = Scratch::new();
    let to_file = mkfifo(&dir.0.join("kernel-1.fifo"));
    let to_tty = mkfifo(&dir.0.join("kernel-2.fifo"));
    let script = dir.file(
        "run.sh",
        format!(
            "cd '{}'\n'{}' boot --kernel '{}' --boot-protocol pvh-unpack --no-unpack-cache --plan > plan 2> stderr.log\n\
             '{}' boot --kernel '{}' --boot-protocol pvh-unpack --no-unpack-cache --plan > plan.tty\n\
             echo $? > status\nexec sleep 600\n",
            dir.0.display(),
            env!("CARGO_BIN_EXE_pvh"),
            to_file.display(),
            env!("CARGO_BIN_EXE_pvh"),
            to_tty.display()
        )
        .as_bytes(),
    );
    let pane = Pane::start(&script);
    // The first run's stderr is a file: held mid-input for three times the
    // delay, it still draws nothing.
    let (half, go) = feed_in_two_halves(to_file, bz.clone());
    half.recv_timeout(PATIENCE)
        .expect("the first run reads its kernel");
    std::thread::sleep(3 * PROGRESS_DELAY);
    drop(go);
    // The second run's stderr is the pane: the line appears while the
    // kernel is being read...
    let (half, go) = feed_in_two_halves(to_tty, bz);
    half.recv_timeout(PATIENCE)
        .expect("the second run reads its kernel");
    wait_for(&pane, "the progress line", || {
        pane.screen()
            .contains("pvh: reading --kernel...")
            .then_some(())
    });
    drop(go);
    let status = wait_for(&pane, "pvh to end", || {
        std::fs::read_to_string(dir.0.join("status")).ok()
    });
    assert_eq!(status.trim(), "0");
    // ... and is erased when the work is done (decompressing included).
    let screen = pane.screen();
    assert!(!screen.contains("pvh:"), "{screen}");
    let log = std::fs::read_to_string(dir.0.join("stderr.log")).unwrap();
    assert_eq!(log, "", "nothing on a non-terminal stderr");
    let plan = std::fs::read_to_string(dir.0.join("plan")).unwrap();
    assert!(plan.starts_with("entry "), "{plan}");
    assert_eq!(
        std::fs::read_to_string(dir.0.join("plan.tty")).unwrap(),
        plan,
        "the same plan however the kernel came in"
    );
}
