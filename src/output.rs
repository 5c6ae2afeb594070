//! The one output policy every command follows (docs/formats.md, "Outputs").
//!
//! - **Atomic**: a file is written to a temporary file in its own directory
//!   (`.<name>.flimgru-tmp-<pid>-<n>`) and renamed over the destination only
//!   when complete; on every error path (and on a panic, through `Drop`) the
//!   temporary file is removed. A kill can still leave one behind: the next
//!   write of the same name removes temporaries of processes that no longer
//!   run.
//! - **Never an input**: a command declares its inputs and outputs in a
//!   [`Plan`] before any work; an output that is the same file as an input
//!   (the model, a config, the histograms, ...) or as another output of the
//!   same command is refused (same canonical path, or same device and inode
//!   when the file exists).
//! - **Only regular files are replaced**: an existing destination that is a
//!   directory, a character or block device, a FIFO or a socket is refused.
//! - **Checked before the work**: [`Plan::output`] checks that the
//!   destination directory exists and is writable (by creating and removing
//!   a temporary file in it), so a long run does not fail at its end.
//! - Errors name the user's path (and the option that gave it), never the
//!   hidden temporary file.
//!
//! This module depends on nothing else in the crate: everything that writes
//! sits above it.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marker in every temporary file name (`.<name>.flimgru-tmp-<pid>-<n>`).
pub const TEMP_MARK: &str = ".flimgru-tmp-";

/// The directory a file path lives in (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    match path.file_name() {
        Some(n) => Ok(n.to_string_lossy().into_owned()),
        None => bail!("{}: not a file path", path.display()),
    }
}

/// What kind of thing stands at an existing path, for error messages.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Refuse an existing destination that is not a regular file (following
/// symbolic links): it would be replaced by a regular file.
pub fn check_destination(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => bail!(
            "{} is {}; an output must be a regular file (refusing to replace it)",
            path.display(),
            kind_of(&m)
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect output {}", path.display())),
    }
}

/// Whether a process id is running (Linux `/proc`; elsewhere assume so,
/// which only means stale temporaries are not cleaned).
fn process_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    proc_dir.join(pid.to_string()).exists()
}

/// Remove temporaries of `name` in `dir` left by processes that no longer
/// run (a killed earlier run). Errors are ignored: this is housekeeping.
fn clean_stale(dir: &Path, name: &str) {
    let prefix = format!(".{name}{TEMP_MARK}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let f = e.file_name();
        let Some(rest) = f.to_str().and_then(|s| s.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A file being written: a temporary file beside `path`, renamed over it by
/// [`AtomicFile::commit`] and removed when dropped uncommitted.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    committed: bool,
}

impl AtomicFile {
    /// Start writing `path` (refused if it exists and is not a regular file).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        check_destination(path)?;
        let name = file_name(path)?;
        let dir = parent_dir(path);
        clean_stale(&dir, &name);
        loop {
            let tmp = dir.join(format!(
                ".{name}{TEMP_MARK}{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        path: path.to_path_buf(),
                        tmp,
                        file: Some(file),
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot write {}: cannot create a file in directory {}",
                            path.display(),
                            dir.display()
                        )
                    })
                }
            }
        }
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file (for writers that open a path themselves).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until committed")
    }

    /// Close the temporary file and rename it over the destination.
    pub fn commit(mut self) -> Result<()> {
        let path = self.path.clone();
        drop(self.file.take());
        check_destination(&path)?;
        std::fs::rename(&self.tmp, &path)
            .with_context(|| format!("cannot move the finished {} into place", path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `path` through `write(tmp_path)`: the closure writes the temporary
/// file (opening it by path itself), which is renamed over `path` on
/// success and removed on error. Prefer [`write_with`], whose writer never
/// exposes the temporary path.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let mut f = AtomicFile::create(path)?;
    drop(f.file.take());
    write(f.temp_path()).with_context(|| format!("cannot write {}", path.display()))?;
    f.commit()
}

/// Write `path` through a buffered writer (flushed and checked here),
/// atomically. Errors name `path`.
pub fn write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let mut f = AtomicFile::create(path)?;
    {
        let mut w = BufWriter::new(f.file());
        write(&mut w).with_context(|| format!("cannot write {}", path.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    f.commit()
}

/// Write `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| Ok(w.write_all(bytes)?))
}

/// A writer that keeps the first error instead of returning it, for
/// libraries that panic on a write error (rust-hdl's VCD probe unwraps):
/// later writes are dropped, and [`LatchedWriter::error`] reports it.
pub struct LatchedWriter<W: Write> {
    inner: W,
    error: std::rc::Rc<std::cell::RefCell<Option<io::Error>>>,
}

impl<W: Write> LatchedWriter<W> {
    /// The writer and a handle to its first error.
    pub fn new(inner: W) -> (Self, ErrorLatch) {
        let error = std::rc::Rc::new(std::cell::RefCell::new(None));
        (
            LatchedWriter {
                inner,
                error: error.clone(),
            },
            ErrorLatch(error),
        )
    }

    fn latch(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.borrow_mut().get_or_insert(e);
        }
    }
}

/// The first error of a [`LatchedWriter`].
pub struct ErrorLatch(std::rc::Rc<std::cell::RefCell<Option<io::Error>>>);

impl ErrorLatch {
    pub fn take(&self) -> Option<io::Error> {
        self.0.borrow_mut().take()
    }
}

impl<W: Write> Write for LatchedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.error.borrow().is_none() {
            let r = self.inner.write_all(buf);
            self.latch(r);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.error.borrow().is_none() {
            let r = self.inner.flush();
            self.latch(r);
        }
        Ok(())
    }
}

/// A failed write to standard output.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Write `text` to standard output and flush it: a failure (a closed pipe,
/// a full disk) is a [`StdoutError`], not the panic of `print!`.
pub fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::Error::new(StdoutError(e)))
}

/// Whether `e` is standard output closed by its reader (`| head`): the
/// binary then exits quietly with status 141 (128 + SIGPIPE, what a shell
/// reports for tools killed by the signal).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|s| s.0.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Who a file is: its canonical path and, when it exists, device and inode.
#[derive(Clone, Debug)]
struct Identity {
    canonical: PathBuf,
    #[cfg_attr(not(unix), allow(dead_code))]
    id: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Identity {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| {
            // Not there yet: the canonical directory plus the name.
            let dir = std::fs::canonicalize(parent_dir(path)).unwrap_or_else(|_| {
                std::env::current_dir()
                    .map(|c| c.join(parent_dir(path)))
                    .unwrap_or_else(|_| parent_dir(path))
            });
            match path.file_name() {
                Some(n) => dir.join(n),
                None => dir,
            }
        });
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let id = None;
        Identity { canonical, id }
    }

    fn same(&self, other: &Identity) -> bool {
        self.canonical == other.canonical || (self.id.is_some() && self.id == other.id)
    }
}

#[derive(Debug)]
struct Entry {
    role: String,
    path: PathBuf,
    identity: Identity,
}

/// A command's files, declared before its work: inputs, then outputs, each
/// output checked against every input and earlier output and its directory
/// checked writable.
#[derive(Debug, Default)]
pub struct Plan {
    inputs: Vec<Entry>,
    outputs: Vec<Entry>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    /// An input of the command; `role` names it in errors (`--model`,
    /// `the teacher (config field "teacher")`, ...).
    pub fn input(&mut self, role: &str, path: &Path) -> &mut Plan {
        self.inputs.push(Entry {
            role: role.to_string(),
            path: path.to_path_buf(),
            identity: Identity::of(path),
        });
        self
    }

    /// An output file: refused if it is an input, another output or not a
    /// regular file, or if its directory is missing or not writable.
    pub fn output(&mut self, role: &str, path: &Path) -> Result<&mut Plan> {
        let shown = path.display();
        file_name(path).with_context(|| format!("{role} {shown}"))?;
        check_destination(path).with_context(|| format!("{role} {shown}"))?;
        let identity = Identity::of(path);
        if let Some(i) = self.inputs.iter().find(|i| i.identity.same(&identity)) {
            bail!(
                "{role} {shown} is the same file as {} {}; refusing to overwrite an input",
                i.role,
                i.path.display()
            );
        }
        if let Some(o) = self.outputs.iter().find(|o| o.identity.same(&identity)) {
            bail!(
                "{role} {shown} is the same file as {} {}: two outputs of one command cannot share a path",
                o.role,
                o.path.display()
            );
        }
        let dir = parent_dir(path);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{role} {shown}: {} is not a directory", dir.display()),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{role} {shown}: its directory {} is not there",
                        dir.display()
                    )
                })
            }
        }
        // Writable: create (and drop, so remove) a temporary file there.
        AtomicFile::create(path).with_context(|| format!("{role} {shown} is not writable"))?;
        self.outputs.push(Entry {
            role: role.to_string(),
            path: path.to_path_buf(),
            identity,
        });
        Ok(self)
    }

    /// An output directory: created if missing, refused if it is an input
    /// or not a directory, and checked writable.
    pub fn output_dir(&mut self, role: &str, dir: &Path) -> Result<&mut Plan> {
        let shown = dir.display();
        let identity = Identity::of(dir);
        if let Some(i) = self.inputs.iter().find(|i| i.identity.same(&identity)) {
            bail!(
                "{role} {shown} is the same path as {} {}",
                i.role,
                i.path.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{role}: cannot create directory {shown}"))?;
        let probe = dir.join("probe");
        AtomicFile::create(&probe)
            .with_context(|| format!("{role}: directory {shown} is not writable"))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temps(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(TEMP_MARK))
            .collect()
    }

    #[test]
    fn writes_atomically_and_cleans_up_on_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write_bytes(&p, b"one").unwrap();
        let err = write_with(&p, |w| {
            w.write_all(b"half")?;
            bail!("boom")
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("a.txt") && !msg.contains(TEMP_MARK), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert!(temps(d.path()).is_empty());
        let e = write_atomically(&p, |_| bail!("no")).unwrap_err();
        assert!(!format!("{e:#}").contains(TEMP_MARK));
        assert!(temps(d.path()).is_empty());
    }

    #[test]
    fn refuses_directories_and_devices() {
        let d = tempfile::tempdir().unwrap();
        let e = write_bytes(d.path(), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("a directory"), "{e:#}");
        #[cfg(unix)]
        {
            let e = write_bytes(Path::new("/dev/null"), b"x").unwrap_err();
            assert!(format!("{e:#}").contains("character device"), "{e:#}");
        }
    }

    #[test]
    fn plan_refuses_inputs_and_duplicate_outputs() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.npy");
        std::fs::write(&input, b"data").unwrap();
        let link = d.path().join("link.npy");
        std::fs::hard_link(&input, &link).unwrap();
        let mut plan = Plan::new();
        plan.input("--input", &input);
        let e = plan.output("--output", &input).unwrap_err();
        assert!(format!("{e:#}").contains("--input"), "{e:#}");
        // The same file under another name.
        assert!(plan.output("--output", &link).is_err());
        let dotted = d.path().join(".").join("in.npy");
        assert!(plan.output("--output", &dotted).is_err());
        let out = d.path().join("out.csv");
        plan.output("--output", &out).unwrap();
        let e = plan.output("--vcd", &out).unwrap_err();
        assert!(format!("{e:#}").contains("--output"), "{e:#}");
        assert!(plan
            .output("--output", &d.path().join("missing/x.csv"))
            .is_err());
        assert_eq!(std::fs::read(&input).unwrap(), b"data");
        assert!(temps(d.path()).is_empty());
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // Pid beyond the kernel's limit: never alive.
        let stale = d.path().join(format!(".r.csv{TEMP_MARK}4294967294-0"));
        std::fs::write(&stale, b"partial").unwrap();
        write_bytes(&d.path().join("r.csv"), b"ok").unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn latched_writer_keeps_the_first_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (mut w, latch) = LatchedWriter::new(Full);
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        assert_eq!(latch.take().unwrap().to_string(), "disk full");
    }
}
