//! Shared helpers for the hypervisor's integration tests: KVM presence,
//! tiny hand-assembled 32-bit guests, and a minimal PVH ELF wrapper.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a `pvh` run ended and what it printed.
pub struct PvhRun {
    /// The exit status.
    pub status: i32,
    /// Standard output, raw (guest output may be any bytes).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl PvhRun {
    /// Standard output as text (lossy).
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs the `pvh` binary with `args` (OS strings: any bytes), stdin from
/// /dev/null, and kills it after `watchdog` (a test never hangs, whatever
/// the VMM does).
pub fn run_pvh<S: AsRef<OsStr>>(args: &[S], watchdog: Duration) -> PvhRun {
    run_pvh_with_stdin(args, None, watchdog)
}

/// [`run_pvh`] with `input` written to `pvh`'s stdin (then closed), or
/// stdin from /dev/null when `None`.
pub fn run_pvh_with_stdin<S: AsRef<OsStr>>(
    args: &[S],
    input: Option<&'static [u8]>,
    watchdog: Duration,
) -> PvhRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pvh"))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pvh");
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(bytes);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait pvh") {
            break st;
        }
        if start.elapsed() > watchdog {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: pvh still running after {watchdog:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    PvhRun {
        status: status.code().expect("pvh killed by a signal"),
        stdout: out_t.join().unwrap(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Whether KVM tests can run here. Absent `/dev/kvm` is a skip, except
/// under `CI=true`, where it is a failure.
pub fn kvm_available(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: /dev/kvm is required under CI=true");
    }
    eprintln!("{test}: skipped: no /dev/kvm");
    false
}

/// A guest artifact from `scripts/fetch-artifacts.sh` (`$PVH_ARTIFACTS`,
/// else `target/pvh-artifacts`). Absent it is a skip, except under
/// `CI=true`, where it is a failure.
pub fn artifact(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PVH_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pvh-artifacts"),
        PathBuf::from,
    );
    let p = dir.join(name);
    if p.exists() {
        return Some(p);
    }
    let reason = format!("no {name} (run scripts/fetch-artifacts.sh)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A tiny assembler for the handful of 32-bit instructions the test guests
/// use. Encodings from the Intel SDM, operand size 32 (the PVH entry's CS
/// has D=1).
#[derive(Default, Clone)]
pub struct Asm(pub Vec<u8>);

impl Asm {
    /// New, empty.
    pub fn new() -> Self {
        Self::default()
    }
    /// `mov dx, imm16`.
    pub fn mov_dx(mut self, v: u16) -> Self {
        self.0.extend([0x66, 0xba]);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `mov al, imm8`.
    pub fn mov_al(mut self, v: u8) -> Self {
        self.0.extend([0xb0, v]);
        self
    }
    /// `mov eax, imm32`.
    pub fn mov_eax(mut self, v: u32) -> Self {
        self.0.push(0xb8);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `out dx, al`.
    pub fn out_dx_al(mut self) -> Self {
        self.0.push(0xee);
        self
    }
    /// `out dx, ax`.
    pub fn out_dx_ax(mut self) -> Self {
        self.0.extend([0x66, 0xef]);
        self
    }
    /// `out dx, eax`.
    pub fn out_dx_eax(mut self) -> Self {
        self.0.push(0xef);
        self
    }
    /// `in al, dx`.
    pub fn in_al_dx(mut self) -> Self {
        self.0.push(0xec);
        self
    }
    /// `inc dx`.
    pub fn inc_dx(mut self) -> Self {
        self.0.extend([0x66, 0x42]);
        self
    }
    /// `cmp dx, imm16`.
    pub fn cmp_dx(mut self, v: u16) -> Self {
        self.0.extend([0x66, 0x81, 0xfa]);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `jne rel8` back to byte offset `target` of this code.
    pub fn jne_to(mut self, target: usize) -> Self {
        let rel = target as isize - (self.0.len() as isize + 2);
        self.0.extend([0x75, rel as i8 as u8]);
        self
    }
    /// `jmp rel8` back to byte offset `target`.
    pub fn jmp_to(mut self, target: usize) -> Self {
        let rel = target as isize - (self.0.len() as isize + 2);
        self.0.extend([0xeb, rel as i8 as u8]);
        self
    }
    /// `cli`.
    pub fn cli(mut self) -> Self {
        self.0.push(0xfa);
        self
    }
    /// `hlt`.
    pub fn hlt(mut self) -> Self {
        self.0.push(0xf4);
        self
    }
    /// `ud2`.
    pub fn ud2(mut self) -> Self {
        self.0.extend([0x0f, 0x0b]);
        self
    }
    /// `int3`.
    pub fn int3(mut self) -> Self {
        self.0.push(0xcc);
        self
    }
    /// `lidt [abs32]`.
    pub fn lidt_abs(mut self, addr: u32) -> Self {
        self.0.extend([0x0f, 0x01, 0x1d]);
        self.0.extend(addr.to_le_bytes());
        self
    }
    /// `xor edx, edx`.
    pub fn xor_edx(mut self) -> Self {
        self.0.extend([0x31, 0xd2]);
        self
    }
    /// `jb rel8` to byte offset `target` (forward or back).
    pub fn jb_to(mut self, target: usize) -> Self {
        let rel = target as isize - (self.0.len() as isize + 2);
        self.0.extend([0x72, rel as i8 as u8]);
        self
    }
    /// `jbe rel8` to byte offset `target`.
    pub fn jbe_to(mut self, target: usize) -> Self {
        let rel = target as isize - (self.0.len() as isize + 2);
        self.0.extend([0x76, rel as i8 as u8]);
        self
    }
    /// Raw bytes.
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend(b);
        self
    }
    /// `mov esi, imm32`.
    pub fn mov_esi(mut self, v: u32) -> Self {
        self.0.push(0xbe);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `mov edi, imm32`.
    pub fn mov_edi(mut self, v: u32) -> Self {
        self.0.push(0xbf);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `mov ecx, imm32`.
    pub fn mov_ecx(mut self, v: u32) -> Self {
        self.0.push(0xb9);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `rep outsb` (DS:ESI to port DX, ECX times).
    pub fn rep_outsb(mut self) -> Self {
        self.0.extend([0xf3, 0x6e]);
        self
    }
    /// `rep insb` (port DX to ES:EDI, ECX times).
    pub fn rep_insb(mut self) -> Self {
        self.0.extend([0xf3, 0x6c]);
        self
    }
    /// Current length (a jump target).
    pub fn here(&self) -> usize {
        self.0.len()
    }
    /// Prints `s` on COM1 byte by byte.
    pub fn print(mut self, s: &str) -> Self {
        self = self.mov_dx(0x3f8);
        for b in s.bytes() {
            self = self.mov_al(b).out_dx_al();
        }
        self
    }
    /// Writes `code` to the exit port, then spins (in case it returns).
    pub fn exit(self, code: u8) -> Self {
        let s = self.mov_dx(0xf4).mov_al(code).out_dx_al();
        let at = s.here();
        s.jmp_to(at)
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Where the test ELFs load.
pub const LOAD_ADDR: u64 = 0x10_0000;
/// File offset of the code in the test ELFs.
pub const CODE_OFF: usize = 0x100;
/// Guest-physical address of the code's first byte (the entry point).
pub const CODE_ADDR: u64 = LOAD_ADDR + CODE_OFF as u64;

/// Wraps 32-bit `code` in a minimal ELF64 PVH kernel: one PT_LOAD at
/// [`LOAD_ADDR`] holding the whole file, and a PT_NOTE with
/// `XEN_ELFNOTE_PHYS32_ENTRY` pointing at `code`. (Test data for the real
/// loader, not a loader.)
pub fn pvh_elf(code: &[u8]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let note_off = EHDR + 2 * PHDR;
    // Note: namesz, descsz, type, "Xen\0", 4-byte entry.
    let note_len = 12 + 4 + 4;
    assert!(note_off + note_len <= CODE_OFF);
    let code_off = CODE_OFF;
    let file_len = code_off + code.len();
    let entry = LOAD_ADDR + code_off as u64;

    let mut f = Vec::with_capacity(file_len);
    // ELF header.
    f.extend(b"\x7fELF");
    f.extend([2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV ABI
    f.extend([0u8; 8]);
    f.extend(2u16.to_le_bytes()); // ET_EXEC
    f.extend(62u16.to_le_bytes()); // EM_X86_64
    f.extend(1u32.to_le_bytes());
    f.extend(entry.to_le_bytes());
    f.extend((EHDR as u64).to_le_bytes()); // e_phoff
    f.extend(0u64.to_le_bytes()); // e_shoff
    f.extend(0u32.to_le_bytes()); // e_flags
    f.extend((EHDR as u16).to_le_bytes());
    f.extend((PHDR as u16).to_le_bytes());
    f.extend(2u16.to_le_bytes()); // e_phnum
    f.extend(64u16.to_le_bytes()); // e_shentsize
    f.extend(0u16.to_le_bytes()); // e_shnum
    f.extend(0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(f.len(), EHDR);
    // PT_LOAD: the whole file, RWX.
    f.extend(1u32.to_le_bytes());
    f.extend(7u32.to_le_bytes());
    f.extend(0u64.to_le_bytes()); // p_offset
    f.extend(LOAD_ADDR.to_le_bytes()); // p_vaddr
    f.extend(LOAD_ADDR.to_le_bytes()); // p_paddr
    f.extend((file_len as u64).to_le_bytes());
    f.extend((file_len as u64).to_le_bytes());
    f.extend(0x1000u64.to_le_bytes());
    // PT_NOTE.
    f.extend(4u32.to_le_bytes());
    f.extend(4u32.to_le_bytes());
    f.extend((note_off as u64).to_le_bytes());
    f.extend((LOAD_ADDR + note_off as u64).to_le_bytes());
    f.extend((LOAD_ADDR + note_off as u64).to_le_bytes());
    f.extend((note_len as u64).to_le_bytes());
    f.extend((note_len as u64).to_le_bytes());
    f.extend(4u64.to_le_bytes());
    assert_eq!(f.len(), note_off);
    f.extend(4u32.to_le_bytes()); // namesz
    f.extend(4u32.to_le_bytes()); // descsz
    f.extend(18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    f.extend(b"Xen\0");
    f.extend((entry as u32).to_le_bytes());
    f.resize(code_off, 0);
    f.extend(code);
    f
}

/// Spawns `cmd` (stdin empty, stdout read, stderr dropped), waits for its
/// first line of output (or for stdout to close), calls `look` with its
/// pid while it still runs, then kills it. For guests that print a line
/// and spin: the kill is the watchdog.
#[allow(dead_code)]
pub fn first_line_then_kill<T>(
    cmd: &mut std::process::Command,
    look: impl FnOnce(u32) -> T,
) -> (String, T) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pvh");
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let found = look(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (line, found)
}
